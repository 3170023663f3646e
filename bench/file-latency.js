'use strict'
// Latency of small requests while 1 GiB files are being downloaded from the same server.
//
//   node bench/file-latency.js [--rounds N] [--duration S] [--pace MS] [--quiet-wait S]
//                              [--scenarios idle,native-1,...] [--no-pin] [--limit-rate R]
//                              [--out DIR] [--quick]
//   npm run bench:latency
//   BENCH_ZC_OPTIONS='{"fileChunk":262144}' node bench/file-latency.js   (the plugin's options)
//
// Requirement measured: "the p99 latency of small requests stays within 2x of its idle
// value while a 1 GiB transfer runs".
//
// One server (test/fixtures/file-app.js, child process, Fastify logger off, the plugin with
// its defaults, @fastify/static registered on a temporary directory under /static/). Routes:
//   small requests   GET /small                  reply.sendZeroCopy(1 KiB Buffer)
//                    GET /file?path=small.bin    reply.sendZeroCopy({ path }) of a 4 KiB file
//   big downloads    GET /file?path=big.bin      reply.sendZeroCopy({ path }) of 1 GiB: native
//                                                (io_uring SPLICE, page cache -> pipe -> socket)
//                    GET /static/big.bin         @fastify/static (the peer: a read stream
//                                                through the event loop)
// Both files are deterministic bytes written to a temporary directory (in the page cache:
// written, then read once) and removed at the end.
//
// Scenarios (each round runs them one after another in this order, then the next round):
//   idle       no big download
//   native-1   1 client downloads big.bin through the native path, again and again
//   native-4   4 clients do (4 connections)
//   static-1   1 client downloads it through @fastify/static, again and again
//   static-4   4 clients do
// The downloading clients are `curl` processes, one per connection, each downloading the file
// again and again on its keep-alive connection (a URL range: ?n=[1-1000000], which the routes
// ignore), bytes to /dev/null, every download's status and length checked (curl -w). curl,
// not a Node client: a Node HTTP client received 0.43 GB/s with a whole core here, curl
// 2.5 GB/s. --limit-rate R holds each download connection to R (curl's --limit-rate, e.g.
// 100M = 100 MiB/s, a client behind a 1 Gb/s link); by default they take what they can.
// Throughput is read from the loopback interface's byte counter (/proc/net/dev) over the
// measurement. Once they are receiving, the small requests are measured from another
// process: `wrk -t1 -c1` with a Lua script that waits --pace ms between requests (one
// connection, requests one after another, each one's latency from its write to its last
// byte: a light, steady trickle, not a second load), --duration seconds per route; wrk's own
// per-request latency record (us).
//
// Pinning (default with 2 or more CPUs, `--no-pin` to let the scheduler place everything):
// the server and wrk on CPU 0, the downloading client on the last CPU. On loopback the
// client's receive work (the copy out of the socket) lands on this machine; on a real network
// it is another machine's. Pinned, that work cannot take the server's core, so what is left
// is the server's own share of a transfer (io_uring workers, softirq of the sends, its event
// loop). The server's event loop delay (perf_hooks, 10 ms resolution) is reported too: a
// transfer that blocks the loop shows there, one that only takes CPU does not.
//
// Before every round, each route (small, small file, big native, big static) is fetched once
// and checked by SHA-256. Before every scenario, up to --quiet-wait seconds of waiting until
// the machine (the server idle, no loader) is at most 15% busy over half a second: the machine
// is shared. Server CPU from /proc/PID/stat (all threads, io_uring workers included).
//
// Report: medians over the rounds of p50 and p99 per route and scenario, the p99 spread, the
// ratio of the busy median p99 to the idle median p99, the big downloads' throughput during
// the scenario, server CPU and other CPU, written to bench/results/<date>-<time>-latency.md
// (-nopin-latency.md, -rate<R>-latency.md for those settings) and printed.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const crypto = require('node:crypto')
const { spawn, execFileSync } = require('node:child_process')
const { eachOption } = require('./args')

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const BIG = GiB
const SMALL_FILE = 4 * KiB
const SMALL_BUFFER = 1 * KiB
const CLK_TCK = Number(safeExec('getconf', ['CLK_TCK']) || 100)

const SCENARIOS = {
  idle: { label: 'idle', conns: 0, via: null },
  'native-1': { label: '1 x 1 GiB, native (splice)', conns: 1, via: 'native' },
  'native-4': { label: '4 x 1 GiB, native (splice)', conns: 4, via: 'native' },
  'static-1': { label: '1 x 1 GiB, @fastify/static', conns: 1, via: 'static' },
  'static-4': { label: '4 x 1 GiB, @fastify/static', conns: 4, via: 'static' }
}

function safeExec (cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
  } catch {
    return null
  }
}

function parseArgs (argv) {
  const o = { rounds: 5, duration: 4, pace: 2, quietWait: 10, pin: os.cpus().length >= 2, scenarios: Object.keys(SCENARIOS), out: path.join(__dirname, 'results'), pkg: process.env.BENCH_PLUGIN }
  eachOption(argv, (a, value) => {
    switch (a) {
      case '--rounds': o.rounds = Number(value()); break
      case '--duration': o.duration = Number(value()); break
      case '--pace': o.pace = Number(value()); break
      case '--quiet-wait': o.quietWait = Number(value()); break
      case '--scenarios': o.scenarios = value().split(','); break
      case '--out': o.out = path.resolve(value()); break
      case '--pkg': o.pkg = path.resolve(value()); break
      case '--quick': o.rounds = 2; o.duration = 2; break
      case '--pin': o.pin = true; break
      case '--no-pin': o.pin = false; break
      case '--limit-rate': o.limitRate = value(); break
      default: throw new Error(`unknown option ${a}`)
    }
  })
  for (const s of o.scenarios) if (!(s in SCENARIOS)) throw new Error(`unknown scenario ${s}; known: ${Object.keys(SCENARIOS).join(', ')}`)
  if (!o.scenarios.includes('idle')) o.scenarios.unshift('idle') // every ratio is taken against it
  if (!(o.rounds >= 1) || !(o.duration > 0) || !(o.pace >= 0)) throw new Error('--rounds, --duration, --pace: positive numbers')
  return o
}

// ---------------------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function median (values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const m = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2
}

function cpuSeconds (pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK // fields 14 and 15
}

function machineTicks () {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = cpu.reduce((a, b) => a + b, 0)
  const idle = cpu[3] + (cpu[4] ?? 0)
  return { busy: total - idle, total }
}

/** Bytes sent on the loopback interface so far. */
function loopbackBytes () {
  const m = /^\s*lo:\s*(\d+)/m.exec(fs.readFileSync('/proc/net/dev', 'utf8'))
  return m === null ? NaN : Number(m[1])
}

/**
 * `conns` curl processes (through `prefix`, a command prefix), each downloading `url` again
 * and again on one keep-alive connection. stop() ends them and resolves with
 * { completed, bad, lastBad }; cpuSeconds() is their CPU so far.
 */
function startLoad (url, conns, size, prefix, limitRate) {
  const totals = { completed: 0, bad: 0, lastBad: null }
  const lanes = []
  for (let i = 0; i < conns; i++) {
    const argv = [...prefix, 'curl', '-s', ...(limitRate ? ['--limit-rate', limitRate] : []), '-w', '%{stderr}DL %{http_code} %{size_download}\\n', `${url}${url.includes('?') ? '&' : '?'}n=[1-1000000]`]
    const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
    let buffered = ''
    proc.stderr.on('data', (d) => {
      buffered += d
      let at
      while ((at = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, at)
        buffered = buffered.slice(at + 1)
        const m = /^DL (\d+) (\d+)$/.exec(line)
        if (m !== null && m[1] === '200' && Number(m[2]) === size) totals.completed++
        else { totals.bad++; totals.lastBad = line }
      }
    })
    lanes.push({ proc, exited: new Promise((resolve) => proc.on('exit', resolve)) })
  }
  return {
    procs: lanes.map((l) => l.proc),
    cpuSeconds: () => lanes.reduce((a, l) => a + (l.proc.exitCode === null ? cpuSeconds(l.proc.pid) : 0), 0),
    exitedEarly: () => lanes.some((l) => l.proc.exitCode !== null || l.proc.signalCode !== null),
    async stop () {
      for (const l of lanes) l.proc.kill('SIGTERM')
      await Promise.all(lanes.map((l) => l.exited))
      return totals
    }
  }
}

async function waitQuiet (limitS) {
  const t0 = Date.now()
  let busy = 0
  for (;;) {
    const a = machineTicks()
    await sleep(500)
    const b = machineTicks()
    busy = (b.busy - a.busy) / Math.max(1, b.total - a.total)
    if (busy <= 0.15 || Date.now() - t0 >= limitS * 1000) break
  }
  return { waitedMs: Date.now() - t0, busy }
}

/** Deterministic bytes (AES-256-CTR keystream), written in 8 MiB pieces; returns the SHA-256. */
function writeFile (file, size, seed) {
  const key = crypto.createHash('sha256').update(`latency:${seed}`).digest()
  const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const hash = crypto.createHash('sha256')
  const zeros = Buffer.alloc(Math.min(size, 8 * MiB))
  const fd = fs.openSync(file, 'w', 0o644)
  try {
    for (let done = 0; done < size;) {
      const n = Math.min(zeros.length, size - done)
      const piece = cipher.update(zeros.subarray(0, n))
      hash.update(piece)
      fs.writeSync(fd, piece, 0, piece.length, done)
      done += n
    }
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest('hex')
}

function readOnce (file) {
  const fd = fs.openSync(file, 'r')
  const buffer = Buffer.allocUnsafe(8 * MiB)
  let total = 0
  try {
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, total)) > 0;) total += n
  } finally {
    fs.closeSync(fd)
  }
  return total
}

/** GET on a connection of its own; resolves with { status, length, sha }. */
function fetchSha (port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      const hash = crypto.createHash('sha256')
      let length = 0
      res.on('data', (c) => { hash.update(c); length += c.length })
      res.on('end', () => resolve({ status: res.statusCode, length, sha: hash.digest('hex') }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

async function getJson (port, urlPath) {
  return await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => { try { resolve(JSON.parse(text)) } catch (err) { reject(err) } })
    }).on('error', reject)
  })
}

/** A child that prints WORD {json} lines; line(word) waits for the next one. */
function child (argv, env) {
  const proc = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  let seen = 0
  proc.stdout.on('data', (d) => { out += d })
  proc.stderr.on('data', (d) => { err += d })
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })))
  const line = (word, ms = 60000) => new Promise((resolve, reject) => {
    const re = new RegExp(`^${word} (.*)$`, 'mg')
    const timer = setTimeout(() => { clearInterval(poll); reject(new Error(`no ${word} from ${argv.join(' ')} within ${ms} ms: ${err}`)) }, ms)
    const poll = setInterval(() => {
      re.lastIndex = seen
      const m = re.exec(out)
      if (m !== null) {
        seen = re.lastIndex
        clearInterval(poll)
        clearTimeout(timer)
        resolve(JSON.parse(m[1]))
      } else if (proc.exitCode !== null || proc.signalCode !== null) {
        clearInterval(poll)
        clearTimeout(timer)
        reject(new Error(`${argv.join(' ')} ended (${proc.exitCode ?? proc.signalCode}) before ${word}: ${err}`))
      }
    }, 5)
  })
  return { proc, line, exited, stderr: () => err }
}

const LUA = `
local pace = tonumber(os.getenv("PACE_MS") or "2")
function delay()
  return pace
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('LAT {"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f,"requests":%d,"errors":%d,"non2xx":%d}\\n',
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
`

/** wrk -t1 -c1, paced: the latency record of `seconds` of small requests, in microseconds. */
async function runWrk (script, port, urlPath, seconds, pace, prefix = []) {
  const w = child([...prefix, 'wrk', '-t1', '-c1', `-d${seconds}s`, '--timeout', '10s', '-s', script, `http://127.0.0.1:${port}${urlPath}`], { PACE_MS: String(pace) })
  const lat = await w.line('LAT', (seconds + 30) * 1000)
  await w.exited
  return lat
}

// ---------------------------------------------------------------------------------------
// The benchmark

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  if (safeExec('sh', ['-c', 'command -v wrk']) === null) throw new Error('wrk is missing (Debian: apt-get install -y wrk)')
  if (safeExec('sh', ['-c', 'command -v curl']) === null) throw new Error('curl is missing (Debian: apt-get install -y curl)')
  if (opts.pin && safeExec('sh', ['-c', 'command -v taskset']) === null) throw new Error('taskset is missing (util-linux); or run with --no-pin')
  const lastCpu = os.cpus().length - 1
  const serverSide = opts.pin ? ['taskset', '-c', '0'] : []
  const clientSide = opts.pin ? ['taskset', '-c', String(lastCpu)] : []
  const started = new Date()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-latency-'))
  fs.chmodSync(dir, 0o755)
  const procs = []
  const cleanup = () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', cleanup)
  process.on('SIGINT', () => process.exit(130))
  process.on('SIGTERM', () => process.exit(143))

  const log = (s) => process.stderr.write(s + '\n')
  const bigFile = path.join(dir, 'big.bin')
  const smallFile = path.join(dir, 'small.bin')
  const t0 = Date.now()
  const bigSha = writeFile(bigFile, BIG, 'big')
  const smallFileSha = writeFile(smallFile, SMALL_FILE, 'small')
  if (readOnce(bigFile) !== BIG) throw new Error('big.bin: short read')
  log(`files written and read back in ${((Date.now() - t0) / 1000).toFixed(1)} s (${dir})`)
  const script = path.join(dir, 'paced.lua')
  fs.writeFileSync(script, LUA)

  const routes = [
    { key: 'small', label: '1 KiB Buffer, sendZeroCopy', path: '/small' },
    { key: 'smallFile', label: '4 KiB file, sendZeroCopy({ path })', path: `/file?path=${encodeURIComponent(smallFile)}` }
  ]
  const bigPaths = { native: `/file?path=${encodeURIComponent(bigFile)}`, static: '/static/big.bin' }

  const server = child([...serverSide, process.execPath, path.join(__dirname, '..', 'test', 'fixtures', 'file-app.js')], {
    ZC_FIXTURE: JSON.stringify({ pkg: opts.pkg, small: SMALL_BUFFER, staticRoot: dir, log: 'warn', loopDelay: true, options: process.env.BENCH_ZC_OPTIONS ? JSON.parse(process.env.BENCH_ZC_OPTIONS) : undefined })
  })
  procs.push(server.proc)
  const ready = await server.line('(?:READY|FAILED)')
  if (ready.port === undefined) throw new Error(`the server did not start: ${JSON.stringify(ready)}`)
  const { port, pid } = ready
  log(`server pid ${pid} port ${port}, capabilities ${JSON.stringify(ready.capabilities)}`)

  const verify = async () => {
    const expect = [
      ['/small', SMALL_BUFFER, ready.smallSha],
      [routes[1].path, SMALL_FILE, smallFileSha],
      [bigPaths.native, BIG, bigSha],
      [bigPaths.static, BIG, bigSha]
    ]
    for (const [p, length, sha] of expect) {
      const r = await fetchSha(port, p)
      if (r.status !== 200 || r.length !== length || r.sha !== sha) {
        throw new Error(`verification of ${p} failed: status ${r.status}, ${r.length} bytes (want ${length}), sha256 ${r.sha} (want ${sha})`)
      }
    }
  }

  // Warm-up (not measured): the verification, and a second of small requests per route.
  await verify()
  for (const r of routes) await runWrk(script, port, r.path, 1, opts.pace, serverSide)

  const runs = [] // { round, scenario, route, lat, loader, serverCpu, machine, other, quiet, spliced, streamed }
  let noisy = 0
  for (let round = 1; round <= opts.rounds; round++) {
    await verify()
    for (const name of opts.scenarios) {
      const sc = SCENARIOS[name]
      const quiet = await waitQuiet(opts.quietWait)
      if (quiet.busy > 0.15 && opts.quietWait > 0) noisy++
      const before = await getJson(port, '/stats')
      let load = null
      if (sc.conns > 0) {
        load = startLoad(`http://127.0.0.1:${port}${bigPaths[sc.via]}`, sc.conns, BIG, clientSide, opts.limitRate)
        procs.push(...load.procs)
        // Receiving: the loopback counter moves by at least 5 MB in a quarter of a second.
        for (let i = 0; ; i++) {
          const b0 = loopbackBytes()
          await sleep(250)
          if (loopbackBytes() - b0 > 5e6) break
          if (i > 40 || load.exitedEarly()) throw new Error(`the ${name} downloads did not start`)
        }
        await sleep(250)
      }
      await getJson(port, '/loop?reset=1')
      const loaderCpu0 = load === null ? 0 : load.cpuSeconds()
      const lo0 = loopbackBytes()
      const m0 = machineTicks()
      const cpu0 = cpuSeconds(pid)
      const w0 = process.hrtime.bigint()
      const lat = {}
      for (const r of routes) lat[r.key] = await runWrk(script, port, r.path, opts.duration, opts.pace, serverSide)
      const wall = Number(process.hrtime.bigint() - w0) / 1e9
      const cpu1 = cpuSeconds(pid)
      const m1 = machineTicks()
      const lo1 = loopbackBytes()
      const loop = await getJson(port, '/loop')
      let loaded = null
      if (load !== null) {
        const loaderCpu1 = load.cpuSeconds()
        const early = load.exitedEarly()
        loaded = await load.stop()
        loaded.cpuInWindow = loaderCpu1 - loaderCpu0
        if (early || loaded.bad > 0) throw new Error(`the ${name} downloads went wrong: ${early ? 'a curl ended; ' : ''}${JSON.stringify(loaded)}`)
      }
      await sleep(200)
      const after = await getJson(port, '/stats')
      const machineS = (m1.busy - m0.busy) / CLK_TCK
      const totalS = (m1.total - m0.total) / CLK_TCK
      const entry = {
        round,
        scenario: name,
        lat,
        wall,
        serverCpu: (cpu1 - cpu0) / wall, // cores
        loaderCpu: loaded === null ? 0 : loaded.cpuInWindow / wall, // cores
        loop,
        otherCpu: Math.max(0, (machineS - (cpu1 - cpu0) - (loaded?.cpuInWindow ?? 0)) / totalS), // share of all cores
        loaderGBps: loaded === null ? null : (lo1 - lo0) / wall / 1e9,
        downloads: loaded?.completed ?? 0,
        quiet,
        spliced: after.bytes.splice - before.bytes.splice,
        streamed: after.bytes.stream - before.bytes.stream
      }
      runs.push(entry)
      const fmt = (l) => `p50 ${(l.p50 / 1000).toFixed(3)} p99 ${(l.p99 / 1000).toFixed(3)} ms (${l.requests} req${l.errors + l.non2xx > 0 ? `, ${l.errors} errors, ${l.non2xx} non-2xx` : ''})`
      log(`round ${round} ${name.padEnd(8)} small: ${fmt(lat.small)}; file: ${fmt(lat.smallFile)}` +
        (loaded === null ? '' : `; loopback ${entry.loaderGBps.toFixed(2)} GB/s, ${loaded.completed} downloads done, spliced ${(entry.spliced / GiB).toFixed(1)} GiB`) +
        `; server ${(entry.serverCpu * 100).toFixed(0)}% of a core, loop delay p99 ${loop.p99.toFixed(1)} ms, client ${(entry.loaderCpu * 100).toFixed(0)}%, other ${(entry.otherCpu * 100).toFixed(0)}% of the machine`)
    }
  }
  await verify()
  const finalStats = await getJson(port, '/stats')
  server.proc.kill('SIGTERM')
  const stopped = await Promise.race([server.exited, sleep(10000).then(() => null)])

  // -------------------------------------------------------------------------------------
  // Report
  const ms = (us) => (us / 1000).toFixed(3)
  const pct = (x) => `${(x * 100).toFixed(0)}%`
  const rows = []
  const verdicts = []
  for (const r of routes) {
    const idle = runs.filter((e) => e.scenario === 'idle').map((e) => e.lat[r.key])
    const idleP99 = median(idle.map((l) => l.p99))
    for (const name of opts.scenarios) {
      const sc = SCENARIOS[name]
      const es = runs.filter((e) => e.scenario === name)
      const lats = es.map((e) => e.lat[r.key])
      const p99s = lats.map((l) => l.p99)
      const p99 = median(p99s)
      const ratio = p99 / idleP99
      const errors = lats.reduce((a, l) => a + l.errors + l.non2xx, 0)
      if (name !== 'idle') verdicts.push({ route: r.label, scenario: sc.label, ratio, ok: ratio <= 2 })
      rows.push(`| ${r.label} | ${sc.label} | ${ms(median(lats.map((l) => l.p50)))} | ${ms(p99)} | ${ms(Math.min(...p99s))}-${ms(Math.max(...p99s))} | ` +
        `${ms(median(lats.map((l) => l.p999)))} | ${name === 'idle' ? '1.00' : ratio.toFixed(2)} | ${name === 'idle' ? '' : ratio <= 2 ? 'yes' : '**no**'} | ` +
        `${sc.conns === 0 ? '' : median(es.map((e) => e.loaderGBps)).toFixed(2)} | ${pct(median(es.map((e) => e.serverCpu)))} | ${median(es.map((e) => e.loop.p99)).toFixed(1)} | ` +
        `${sc.conns === 0 ? '' : pct(median(es.map((e) => e.loaderCpu)))} | ${pct(Math.max(...es.map((e) => e.otherCpu)))} | ${errors} |`)
    }
  }
  const perRound = runs.map((e) => `| ${e.round} | ${e.scenario} | ${ms(e.lat.small.p50)} / ${ms(e.lat.small.p99)} | ${ms(e.lat.smallFile.p50)} / ${ms(e.lat.smallFile.p99)} | ` +
    `${e.loaderGBps === null ? '' : e.loaderGBps.toFixed(2)} | ${e.downloads} | ${(e.spliced / GiB).toFixed(2)} | ${(e.streamed / GiB).toFixed(2)} | ${pct(e.serverCpu)} | ${e.loop.p99.toFixed(1)} | ${pct(e.loaderCpu)} | ${pct(e.otherCpu)} | ${pct(e.quiet.busy)} |`)
  const stamp = started.toISOString().replace(/T/, '-').replace(/:/g, '').replace(/\..*$/, '')
  const rev = safeExec('git', ['-C', path.join(__dirname, '..'), 'rev-parse', '--short', 'HEAD'])
  const dirty = safeExec('git', ['-C', path.join(__dirname, '..'), 'status', '--porcelain', 'plugin', 'native'])
  const cpuModel = (/^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) ?? [])[1] ?? '?'
  const failing = verdicts.filter((v) => !v.ok)
  const md = [
    `# Small-request latency while 1 GiB files are downloaded (${started.toISOString()})`,
    '',
    '`node bench/file-latency.js ' + process.argv.slice(2).join(' ') + '`: ' +
      `${opts.rounds} rounds; per scenario and route, ${opts.duration} s of \`wrk -t1 -c1\` (one connection, one request at a time, ${opts.pace} ms pause between requests); ` +
      'medians over the rounds. Server: `test/fixtures/file-app.js` (Fastify, logger off, fastify-zero-copy with its defaults, @fastify/static 10 under /static/), ' +
      `loopback. Plugin: ${opts.pkg ? opts.pkg : 'this checkout (dist/, build/Release)'}, git ${rev ?? '?'}${dirty ? ' + uncommitted changes in plugin/ or native/' : ''}.`,
    '',
    `Machine: ${os.cpus().length} x ${cpuModel}, kernel ${os.release()}, Node ${process.version}, ${safeExec('sh', ['-c', 'wrk -v 2>&1 | head -1'])?.split(' ').slice(0, 2).join(' ') ?? 'wrk'}, uid ${process.getuid()}. ` +
      `Server capabilities: ${JSON.stringify(ready.capabilities)}.`,
    '',
    ...(opts.limitRate ? [`Each downloading connection held to ${opts.limitRate}B/s (curl --limit-rate; curl's M is 2^20).`, ''] : []),
    'Requirement: the p99 latency of small requests stays within 2x of its idle value while a 1 GiB transfer runs.',
    '',
    '| small request | big downloads meanwhile | p50 ms | p99 ms | p99 min-max | p99.9 ms | p99 / idle | within 2x | big GB/s | server CPU | loop delay p99 ms | client CPU | other CPU | errors |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    failing.length === 0
      ? 'Verdict: within 2x in every busy scenario.'
      : `Verdict: NOT within 2x in ${failing.length} of ${verdicts.length} busy scenarios: ${failing.map((v) => `${v.route} with ${v.scenario} (${v.ratio.toFixed(2)}x)`).join('; ')}.`,
    '',
    'Columns: p50/p99/p99.9: medians over the rounds of wrk\'s per-request latency percentiles (write of the request to the last byte of the response); ' +
      'p99 min-max: the lowest and highest round; p99 / idle: the median p99 over the idle median p99 of the same route; ' +
      'big GB/s: bytes per second through the loopback interface during the measurement (/proc/net/dev; the small requests are a few MB of it), 10^9 bytes; ' +
      'server CPU: the server process (all threads, io_uring workers included) during the measurement, in cores; ' +
      'loop delay p99: the server\'s event loop delay (perf_hooks.monitorEventLoopDelay, 10 ms resolution) over the measurement; ' +
      'client CPU: the downloading curl processes, in cores; ' +
      'other CPU: the largest share of the machine, over the rounds, busy outside the server and the downloading client (the latency client wrk, other processes): a noise indicator. ' +
      (opts.pin ? `Pinned: the server and wrk on CPU 0, the downloading client on CPU ${lastCpu} (taskset); other processes of the machine are not.` : 'Not pinned: the scheduler placed every process.'),
    '',
    `Checks: every route verified by SHA-256 before every round and at the end; every completed big download's status and length checked (none failed; ${runs.reduce((a, e) => a + e.downloads, 0)} completed). ` +
      `Server stats at the end: responses ${JSON.stringify(finalStats.responses)}, bytes ${JSON.stringify(finalStats.bytes)}, fallbacks ${JSON.stringify(finalStats.fallbacks)}. ` +
      `Server ${stopped === null ? 'did not stop within 10 s of SIGTERM' : `stopped (${stopped.code ?? stopped.signal})`}; its stderr: ${JSON.stringify(server.stderr().slice(0, 500))}.` +
      (noisy > 0 ? ` ${noisy} scenario runs started while the machine was more than 15% busy with other work after waiting ${opts.quietWait} s.` : ''),
    '',
    '## Per round',
    '',
    '| round | scenario | 1 KiB p50 / p99 ms | 4 KiB file p50 / p99 ms | big GB/s | downloads done | spliced GiB | streamed GiB | server CPU | loop delay p99 ms | client CPU | other CPU | busy before |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...perRound,
    ''
  ].join('\n')
  fs.mkdirSync(opts.out, { recursive: true })
  const file = path.join(opts.out, `${stamp}${opts.pin ? '' : '-nopin'}${opts.limitRate ? `-rate${opts.limitRate}` : ''}-latency.md`)
  fs.writeFileSync(file, md)
  process.stdout.write(md + '\n')
  log(`written to ${path.relative(process.cwd(), file)}`)
}

main().catch((err) => {
  process.stderr.write(`file-latency.js: ${err.stack}\n`)
  process.exit(1)
})
