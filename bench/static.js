'use strict'
// Directory benchmark: fastify-zero-copy/static (io_uring and classic engines), @fastify/static
// with the same options, and nginx (root, sendfile, tcp_nopush, open_file_cache; one worker
// process, as one Node process) serving one tree (bench/static-tree.js): 2,000 files of 1-256
// KiB (log-normal, median 20 KiB) requested at random by wrk (bench/static-pick.lua), and
// 1 MiB and 64 MiB downloads. As ../shared/BENCH.md asks: the server pinned to CPU 0 with
// all its threads and wrk to CPU 1 (taskset), servers alternating within each round, the
// median of the rounds, ratios to @fastify/static and nginx with their per-round ranges
// (bench/compare.js), server CPU from /proc/PID/stat (utime+stime of the whole process) per
// request and per GB, peak RSS, and bytes checked by SHA-256 against the tree's manifest
// before timing and before every measured run. Writes bench/results/<date>-static.{json,md}.
//
//   node bench/static.js                       small c4,c64 + 1m, 64m c1,c4; 5 servers; 5 x 4 s
//   node bench/static.js --cases small --rounds 1 --duration 2     a smoke run
//
// Options: --servers fastify-ceiling,zc-static,zc-static-classic,fastify-static,nginx   (and KIND+NAME, see --variant)
//          (fastify-open, not run by default: a Fastify route opening the file per request)
//          --cases small,1m,64m  --small-conns 4,64  --large-conns 1,4
//          --rounds N  --duration S  --warmup S  --seed N (the tree and wrk's picks)  --tree DIR
//          --options JSON          options of both directory plugins (root and prefix '/' are set)
//          --plugin-options JSON   options of fastify-zero-copy/static only (e.g. {"openFileCache": ...})
//          --core-options JSON     options of the core plugin (the kind sets `engine`)
//          --variant NAME=JSON     also run zc-static+NAME: --plugin-options with JSON over them
//                                  (its "core" key: over --core-options instead)
//                                  (zc-static-classic+NAME too when named in --servers)
//          --nginx-cache 'max=4096 inactive=60s valid=60s' | off
//          --verify N (small paths checked per server before timing; default 64)
//          --quiet-wait S (default 10)  --no-pin  --use-tree  --rev REV  --out DIR
// See bench/README.md, "Serving a directory".
const { spawn } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { eachOption } = require('./args')
const { formatSize } = require('./body')
const { pinning, onCpu, threadAffinity } = require('./placement')
const { startNginx: launchNginx } = require('./nginx')
const { comparisonMarkdown } = require('./compare')
const { ensureTree, describe, generator } = require('./static-tree')
const run = require('./run')

const ROOT = path.join(__dirname, '..')
const GB = 1e9
const MiB = 1024 * 1024
const KINDS = ['fastify-ceiling', 'fastify-open', 'zc-static', 'zc-static-classic', 'fastify-static', 'nginx']

// ---------------------------------------------------------------------------------------
// Options

function parseJson (name, text) {
  let v
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw new Error(`${name}: ${err.message}`)
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${name}: a JSON object, not ${text}`)
  return v
}

function parseArgs (argv) {
  const o = { variants: new Map(), pin: true }
  const list = (text, f = x => x) => text.split(',').filter(x => x !== '').map(f)
  const counts = text => list(text, Number).map(n => {
    if (!Number.isInteger(n) || n < 1) throw new Error(`not a connection count: ${text}`)
    return n
  })
  eachOption(argv, (a, value) => {
    switch (a) {
      case '--servers': o.servers = list(value()); break
      case '--cases': o.cases = list(value()); break
      case '--small-conns': o.smallConns = counts(value()); break
      case '--large-conns': o.largeConns = counts(value()); break
      case '--rounds': o.rounds = Number(value()); break
      case '--duration': o.duration = Number(value()); break
      case '--warmup': o.warmup = Number(value()); break
      case '--seed': o.seed = Number(value()); break
      case '--tree': o.tree = value(); break
      case '--options': o.options = parseJson(a, value()); break
      case '--plugin-options': o.pluginOptions = parseJson(a, value()); break
      case '--core-options': o.coreOptions = parseJson(a, value()); break
      case '--variant': {
        const v = value()
        const eq = v.indexOf('=')
        const name = v.slice(0, eq)
        if (eq < 1 || !/^[\w.-]+$/.test(name)) throw new Error(`--variant NAME=JSON, got ${v}`)
        o.variants.set(name, parseJson(`--variant ${name}`, v.slice(eq + 1)))
        break
      }
      case '--nginx-cache': o.nginxCache = value(); break
      case '--verify': o.verify = Number(value()); break
      case '--quiet-wait': o.quietWait = Number(value()); break
      case '--no-pin': o.pin = false; break
      case '--use-tree': o.useTree = true; break
      case '--rev': o.rev = value(); break
      case '--out': o.out = path.resolve(value()); break
      case '-h': case '--help': {
        const lines = fs.readFileSync(__filename, 'utf8').split('\n')
        let end = 1
        while (end < lines.length && lines[end].startsWith('//')) end++
        process.stdout.write(lines.slice(1, end).map(l => l.replace(/^\/\/ ?/, '')).join('\n') + '\n')
        process.exit(0)
        break
      }
      default: throw new Error(`unknown argument ${a}`)
    }
  })
  const variantNames = [...o.variants.keys()]
  const servers = o.servers ?? ['fastify-ceiling', 'zc-static', ...variantNames.map(n => `zc-static+${n}`), 'zc-static-classic', 'fastify-static', 'nginx']
  for (const s of servers) {
    const [kind, variant] = s.split('+')
    if (!KINDS.includes(kind)) throw new Error(`unknown server ${s}: one of ${KINDS.join(', ')}, or zc-static+NAME with --variant NAME=JSON`)
    if (variant !== undefined && (!kind.startsWith('zc-') || !o.variants.has(variant))) throw new Error(`server ${s}: needs a zc- kind and --variant ${variant}=JSON`)
  }
  const cases = o.cases ?? ['small', '1m', '64m']
  for (const c of cases) if (!['small', '1m', '64m'].includes(c)) throw new Error(`unknown case ${c}: small, 1m, 64m`)
  const nginxCache = o.nginxCache ?? 'max=4096 inactive=60s valid=60s'
  const rounds = o.rounds ?? 5
  const duration = o.duration ?? 4
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds needs a positive integer')
  // wrk takes whole seconds.
  if (!Number.isInteger(duration) || duration < 1) throw new Error('--duration needs a whole number of seconds, at least 1')
  if (o.warmup !== undefined && (!Number.isInteger(o.warmup) || o.warmup < 1)) throw new Error('--warmup needs a whole number of seconds, at least 1')
  return {
    servers,
    cases,
    smallConns: o.smallConns ?? [4, 64],
    largeConns: o.largeConns ?? [1, 4],
    rounds,
    duration,
    warmup: o.warmup ?? 1,
    seed: o.seed ?? 1,
    tree: o.tree,
    options: o.options ?? {},
    pluginOptions: o.pluginOptions ?? {},
    coreOptions: o.coreOptions ?? {},
    variants: Object.fromEntries(o.variants),
    nginxCache: nginxCacheConfig(nginxCache),
    nginxCacheText: nginxCache,
    verify: o.verify ?? 64,
    quietWait: o.quietWait ?? 10,
    pin: o.pin,
    useTree: o.useTree === true,
    rev: o.rev,
    out: o.out ?? run.RESULTS
  }
}

/** 'max=4096 inactive=60s valid=60s' -> nginx directives; 'off' -> open_file_cache off. */
function nginxCacheConfig (text) {
  if (text.trim() === 'off') return 'open_file_cache off;'
  const kv = Object.fromEntries(text.trim().split(/\s+/).map(p => p.split('=')))
  if (!/^\d+$/.test(kv.max ?? '')) throw new Error(`--nginx-cache: max=N needed, got ${text}`)
  const time = v => /^\d+(ms|s|m|h)?$/.test(v) ? v : (() => { throw new Error(`--nginx-cache: not a time: ${v}`) })()
  const lines = [`open_file_cache max=${kv.max}${kv.inactive !== undefined ? ` inactive=${time(kv.inactive)}` : ''};`]
  if (kv.valid !== undefined) lines.push(`open_file_cache_valid ${time(kv.valid)};`)
  if (kv.min_uses !== undefined) lines.push(`open_file_cache_min_uses ${Number(kv.min_uses)};`)
  return lines.join('\n  ')
}

// ---------------------------------------------------------------------------------------
// Servers

let cpus = null // { server, client } when pinned
const live = new Set()

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const srv of live) srv.child.kill('SIGTERM')
    process.exit(130)
  })
}

function watch (srv) {
  live.add(srv)
  srv.child.stderr.on('data', d => { srv.stderr = run.tail(srv.stderr + d, 60) })
  srv.child.on('exit', (code, signal) => { srv.exited = { code, signal }; live.delete(srv) })
}

function pluginOptionsOf (opts, spec) {
  if (spec.variant === undefined) return opts.pluginOptions
  const { core, ...plugin } = opts.variants[spec.variant]
  return { ...opts.pluginOptions, ...plugin }
}

function coreOptionsOf (opts, spec) {
  const core = spec.variant === undefined ? undefined : opts.variants[spec.variant].core
  return core === undefined ? opts.coreOptions : { ...opts.coreOptions, ...core }
}

async function startNode (opts, spec, tree, pluginRoot) {
  const args = [path.join(__dirname, 'static-server.js'), spec.kind, '--root', tree, '--options', JSON.stringify(opts.options)]
  if (spec.kind.startsWith('zc-')) args.push('--plugin-options', JSON.stringify(pluginOptionsOf(opts, spec)), '--core-options', JSON.stringify(coreOptionsOf(opts, spec)))
  const child = spawn(...onCpu(cpus?.server, process.execPath, args), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BENCH_PLUGIN: pluginRoot } })
  const srv = { spec, label: spec.label, child, pid: child.pid, port: null, stderr: '', stdout: '', exited: null }
  watch(srv)
  srv.port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${srv.label}: no READY within 30 s\n${srv.stderr}`)), 30000)
    child.stdout.on('data', d => {
      srv.stdout = run.tail(srv.stdout + d, 60)
      const m = /^READY (\d+)$/m.exec(srv.stdout)
      if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${srv.label} exited before READY (code ${code}, signal ${signal})\n${srv.stderr}`))
    })
  })
  return srv
}

async function startNginx (opts, nginxBin, tree) {
  const mimeTypes = fs.existsSync('/etc/nginx/mime.types') ? 'include /etc/nginx/mime.types;' : 'types { }'
  const srv = launchNginx(nginxBin, {
    tmp: run.TMP,
    name: 'nginx-static',
    label: 'nginx',
    port: await run.freePort(),
    cpu: cpus?.server,
    writer: 'bench/static.js',
    http: [opts.nginxCache, mimeTypes],
    server: [`root ${tree};`, 'location / { }']
  })
  watch(srv)
  await run.waitForPort(srv.port, 10000)
  return srv
}

const stopServer = run.stopServer

// ---------------------------------------------------------------------------------------
// Checks: bytes against the manifest, hashed as they arrive (64 MiB files included)

function fetchHash (port, urlPath, timeoutMs = 60000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, res => {
      const hash = crypto.createHash('sha256')
      let length = 0
      res.on('data', c => { hash.update(c); length += c.length })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length, sha256: hash.digest('hex'), complete: res.complete }))
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

async function verifyFiles (srv, files) {
  for (const f of files) {
    const r = await fetchHash(srv.port, f.url)
    const problems = []
    if (r.status !== 200) problems.push(`status ${r.status}`)
    if (!r.complete) problems.push('response incomplete')
    if (Number(r.headers['content-length']) !== f.size) problems.push(`content-length ${r.headers['content-length']} != ${f.size}`)
    if (r.length !== f.size) problems.push(`received ${r.length} bytes, expected ${f.size}`)
    if (r.sha256 !== f.sha256) problems.push(`sha256 ${r.sha256} != ${f.sha256}`)
    if (problems.length > 0) throw new Error(`WRONG ANSWER from ${srv.label} for ${f.url}: ${problems.join('; ')}`)
  }
  return files.length
}

/** `n` files of `files`, picked by a generator seeded with `seed` (with repeats allowed). */
function sample (files, n, seed) {
  const rand = generator(seed)
  return Array.from({ length: Math.min(n, files.length * 4) }, () => files[Math.floor(rand() * files.length)])
}

async function zcStats (srv) {
  const r = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: srv.port, path: '/__stats', agent: false }, res => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    }).on('error', reject)
  })
  if (r.status !== 200) throw new Error(`${srv.label}: /__stats answered ${r.status}`)
  return JSON.parse(r.body)
}

function delta (after, before) {
  const out = {}
  for (const k of Object.keys(after ?? {})) {
    if (typeof after[k] === 'number') out[k] = after[k] - (typeof before?.[k] === 'number' ? before[k] : 0)
    else if (after[k] !== null && typeof after[k] === 'object' && !Array.isArray(after[k])) out[k] = delta(after[k], before?.[k])
  }
  return out
}

// ---------------------------------------------------------------------------------------
// wrk

const SCRIPT = path.join(__dirname, 'static-pick.lua')

/** wrk -t1 -cC -dDs with the picking script over `list`; its own CPU from the shell's cutime+cstime. */
function runWrk (wrkBin, port, conns, seconds, list, seed) {
  const shell = '"$@"; rc=$?; echo; echo "SHELLSTAT $(cat /proc/$$/stat)"; exit $rc'
  const args = ['-c', shell, 'sh', wrkBin, '-t1', `-c${conns}`, `-d${seconds}s`, '--latency', '--timeout', '30s', '-s', SCRIPT, `http://127.0.0.1:${port}`, '--', list, String(seed)]
  return new Promise((resolve, reject) => {
    const child = spawn(...onCpu(cpus?.client, 'sh', args), { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { err += d })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`wrk did not finish within ${seconds + 30} s (server hang?)`))
    }, (seconds + 30) * 1000)
    child.on('exit', code => {
      clearTimeout(timer)
      if (code !== 0) return reject(new Error(`wrk exited with ${code}\n${out}\n${err}`))
      try {
        const r = run.parseWrk(out)
        const s = /SHELLSTAT (.*)/.exec(out)
        if (s !== null) {
          const f = s[1].slice(s[1].lastIndexOf(')') + 2).split(' ')
          r.clientCpuSeconds = (Number(f[13]) + Number(f[14])) / run.CLK_TCK
        }
        resolve(r)
      } catch (e) {
        reject(e)
      }
    })
  })
}

// ---------------------------------------------------------------------------------------
// Cases

/** [{ name, label, conns, files, list, meanSize }] in run order. */
function planCases (opts, manifest, tmp) {
  const out = []
  for (const name of opts.cases) {
    const files = name === 'small'
      ? manifest.files.filter(f => f.kind === 'small')
      : manifest.files.filter(f => f.kind === 'large' && f.size === (name === '1m' ? 1 : 64) * MiB)
    if (files.length === 0) throw new Error(`case ${name}: no files in the tree`)
    // The list wrk picks from: every file of the case, in the manifest's (seeded) order.
    const list = path.join(tmp, `static-${opts.seed}-${name}.list`)
    fs.writeFileSync(list, files.map(f => f.url).join('\n') + '\n')
    const meanSize = files.reduce((a, f) => a + f.size, 0) / files.length
    const label = name === 'small' ? `small (${files.length} files)` : formatSize(files[0].size)
    for (const conns of name === 'small' ? opts.smallConns : opts.largeConns) out.push({ name, label, conns, files, list, meanSize })
  }
  return out
}

function specs (opts) {
  return opts.servers.map(s => {
    const [kind, variant] = s.split('+')
    return { kind, variant, label: s }
  })
}

async function measure (ctx, srv, c, round) {
  // Two paths before every measured run, so a server that went wrong mid-run cannot count.
  await verifyFiles(srv, sample(c.files, 2, ctx.opts.seed * 7919 + round))
  const quiet = await run.waitQuiet(ctx)
  const zc = srv.spec.kind.startsWith('zc-')
  const before = zc ? await zcStats(srv) : null
  const peakReset = run.resetPeak(srv.pid)
  const m0 = run.machineTicks()
  const t0 = run.cpuTimes(srv.pid)
  const w = await runWrk(ctx.tools.wrk, srv.port, c.conns, ctx.opts.duration, c.list, ctx.opts.seed + round)
  const t1 = run.cpuTimes(srv.pid)
  const m1 = run.machineTicks()
  if (srv.exited !== null) throw new Error(`${srv.label} died during the run (${JSON.stringify(srv.exited)})\n${srv.stderr}`)
  const cpu = (t1.user + t1.sys) - (t0.user + t0.sys)
  // Body bytes: exact for one size; for the small files, requests x the list's mean size
  // (every path equally likely; over 10^4+ requests within a percent or so).
  const bytes = w.requests * c.meanSize
  const r = {
    requests: w.requests,
    seconds: w.seconds,
    reqPerSec: w.requests / w.seconds,
    bytes,
    gbps: bytes / w.seconds / GB,
    wrkBytesRead: w.bytesRead,
    serverCpuSeconds: cpu,
    serverCpuPerReq: w.requests > 0 ? cpu * 1e6 / w.requests : null, // microseconds
    serverCpuPerGB: bytes > 0 ? cpu / (bytes / GB) : null,
    serverUserUsPerReq: w.requests > 0 ? (t1.user - t0.user) * 1e6 / w.requests : null,
    serverSysUsPerReq: w.requests > 0 ? (t1.sys - t0.sys) * 1e6 / w.requests : null,
    clientCpuSeconds: w.clientCpuSeconds ?? null,
    machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
    otherCpuShare: Math.max(0, ((m1.busy - m0.busy) / run.CLK_TCK - cpu - (w.clientCpuSeconds ?? 0)) / ((m1.total - m0.total) / run.CLK_TCK)),
    peakRssKiB: run.statusKiB(srv.pid, 'VmHWM'),
    peakIsPerRound: peakReset,
    quietWaitMs: quiet.waitedMs,
    busyBefore: quiet.busyBefore,
    latency: w.latency,
    socketErrors: w.socketErrors,
    non2xx: w.non2xx
  }
  if (zc) {
    const after = await zcStats(srv)
    r.zc = delta(after.stats, before.stats)
    r.serverErrors = after.server.errors - before.server.errors
    r.lastError = after.server.lastError
  }
  // A 404 answers fast: a run with any non-2xx response measured something else.
  if (r.non2xx > 0) throw new Error(`${srv.label}: ${r.non2xx} non-2xx responses in a measured run${r.lastError ? ` (last server error: ${r.lastError})` : ''}`)
  const errs = Object.values(r.socketErrors).reduce((a, b) => a + b, 0)
  if (errs > 0) ctx.observations.push(`${srv.label} ${c.label} c${c.conns}: wrk socket errors ${JSON.stringify(r.socketErrors)}`)
  return r
}

function summarize (rounds) {
  const pick = k => rounds.map(r => r[k])
  const rps = pick('reqPerSec')
  const s = {
    rounds: rounds.length,
    reqPerSec: run.median(rps),
    reqPerSecMin: Math.min(...rps),
    reqPerSecMax: Math.max(...rps),
    gbps: run.median(pick('gbps')),
    serverCpuPerReq: run.median(pick('serverCpuPerReq')),
    serverCpuPerGB: run.median(pick('serverCpuPerGB')),
    serverUserUsPerReq: run.median(pick('serverUserUsPerReq')),
    serverSysUsPerReq: run.median(pick('serverSysUsPerReq')),
    clientCpuPerReq: run.median(rounds.map(r => r.clientCpuSeconds === null ? null : r.clientCpuSeconds * 1e6 / r.requests)),
    otherCpuShareMax: Math.max(...pick('otherCpuShare')),
    peakRssMiB: run.median(pick('peakRssKiB')) / 1024,
    latencyP99ms: run.median(rounds.map(r => r.latency.p99)) * 1000,
    socketErrors: rounds.reduce((a, r) => a + Object.values(r.socketErrors).reduce((x, y) => x + y, 0), 0),
    serverErrors: rounds.reduce((a, r) => a + (r.serverErrors ?? 0), 0)
  }
  if (rounds[0]?.zc?.bytes !== undefined) {
    const bytes = {}
    for (const r of rounds) for (const [k, v] of Object.entries(r.zc.bytes)) bytes[k] = (bytes[k] ?? 0) + v
    const all = Object.values(bytes).reduce((a, b) => a + b, 0)
    s.bytesShare = all === 0 ? null : Object.fromEntries(Object.entries(bytes).map(([k, v]) => [k, v / all]))
  }
  return s
}

async function runCase (ctx, c) {
  const { opts } = ctx
  const result = { case: c.name, sizeLabel: c.label, conns: c.conns, files: c.files.length, meanSize: c.meanSize, servers: ctx.specs.map(s => ({ label: s.label, kind: s.kind, variant: s.variant, rounds: [] })) }
  console.log(`\n## ${c.label}, ${c.conns} connection(s): ${ctx.specs.map(s => s.label).join(' | ')}`)
  const servers = []
  try {
    for (const spec of ctx.specs) {
      servers.push(spec.kind === 'nginx' ? await startNginx(opts, ctx.tools.nginx, ctx.tree) : await startNode(opts, spec, ctx.tree, ctx.build.root))
    }
    // Before timing: a sample of the small files (all of a download case's files) from every
    // server, against the manifest.
    const checkList = c.name === 'small' ? sample(c.files, opts.verify, opts.seed) : c.files
    for (let i = 0; i < servers.length; i++) {
      result.servers[i].verified = await verifyFiles(servers[i], checkList)
      if (servers[i].spec.kind.startsWith('zc-')) {
        const st = await zcStats(servers[i])
        result.servers[i].capabilities = st.capabilities
        const want = servers[i].spec.kind === 'zc-static-classic' ? 'classic' : 'io_uring'
        if (st.capabilities?.engine !== want) throw new Error(`${servers[i].label}: engine ${st.capabilities?.engine}, expected ${want} (${st.capabilities?.reason})`)
      }
      await runWrk(ctx.tools.wrk, servers[i].port, c.conns, opts.warmup, c.list, opts.seed + 1000) // warm-up, not measured
      result.servers[i].affinity = threadAffinity(servers[i].pid)
      if (cpus !== null && result.servers[i].affinity !== null) {
        const stray = Object.keys(result.servers[i].affinity).filter(k => k !== String(cpus.server))
        if (stray.length > 0) ctx.observations.push(`${servers[i].label} ${c.label} c${c.conns}: threads not pinned to CPU ${cpus.server}: ${JSON.stringify(result.servers[i].affinity)}`)
      }
    }
    for (let round = 0; round < opts.rounds; round++) {
      for (let i = 0; i < servers.length; i++) {
        const r = await measure(ctx, servers[i], c, round)
        result.servers[i].rounds.push(r)
        console.log(`  round ${round + 1} ${servers[i].label.padEnd(26)} ${r.reqPerSec.toFixed(0).padStart(7)} req/s  ${r.gbps.toFixed(3)} GB/s  ` +
          `${r.serverCpuPerReq.toFixed(1)} CPU us/req  ${r.serverCpuPerGB.toFixed(3)} CPU s/GB  ${(r.peakRssKiB / 1024).toFixed(0)} MiB  other ${(100 * r.otherCpuShare).toFixed(0)}%`)
      }
    }
    for (const s of result.servers) s.summary = summarize(s.rounds)
    const byKind = k => result.servers.find(s => s.label === k)?.summary
    for (const s of result.servers) {
      const st = byKind('fastify-static')
      const ng = byKind('nginx')
      s.xStatic = st === undefined ? null : { reqPerSec: s.summary.reqPerSec / st.reqPerSec, cpuPerReq: s.summary.serverCpuPerReq / st.serverCpuPerReq }
      s.xNginx = ng === undefined ? null : { reqPerSec: s.summary.reqPerSec / ng.reqPerSec, cpuPerReq: s.summary.serverCpuPerReq / ng.serverCpuPerReq }
    }
  } catch (err) {
    result.aborted = err.message
    ctx.failed = true
    console.log(`\n!!!!!!!! CASE ABORTED: ${c.label} c${c.conns}\n!!!!!!!! ${err.message.split('\n').join('\n!!!!!!!! ')}\n`)
    for (const srv of servers) if (srv.stderr.trim() !== '') console.log(`!!!!!!!! stderr of ${srv.label}:\n${srv.stderr}`)
    ctx.observations.push(`ABORTED ${c.label} c${c.conns}: ${err.message.split('\n')[0]}`)
  } finally {
    for (let i = 0; i < servers.length; i++) {
      const exit = await stopServer(servers[i])
      result.servers[i].stop = { exit, killedHard: servers[i].killedHard === true }
      if (servers[i].killedHard || exit.code !== 0) ctx.observations.push(`${servers[i].label} ${c.label} c${c.conns}: shutdown ${JSON.stringify(exit)}${servers[i].killedHard ? ' (SIGKILL needed)' : ''}`)
      if (servers[i].stderr.trim() !== '' && servers[i].spec.kind !== 'nginx') ctx.observations.push(`${servers[i].label} ${c.label} c${c.conns}: stderr: ${run.tail(servers[i].stderr, 5)}`)
    }
  }
  return result
}

// ---------------------------------------------------------------------------------------
// Report

/** The ratios the report leads with; variant servers against the same engine without it. */
function pairs (opts) {
  const out = []
  const names = opts.servers
  const add = (a, b, what) => { if (names.includes(a) && names.includes(b)) out.push([a, b, what]) }
  for (const a of names.filter(n => n.startsWith('zc-'))) {
    const what = a.startsWith('zc-static-classic') ? 'classic' : 'io_uring'
    const variant = a.includes('+') ? ` +${a.split('+')[1]}` : ''
    add(a, 'fastify-static', `${what}${variant} / @fastify/static`)
    add(a, 'nginx', `${what}${variant} / nginx`)
    if (variant !== '') add(a, a.split('+')[0], `${what}: +${a.split('+')[1]} / without`)
  }
  for (const a of names.filter(n => n.startsWith('zc-'))) {
    add(a, 'fastify-ceiling', `${a} / the ceiling (a bare Fastify route from memory)`)
    add(a, 'fastify-open', `${a} / a bare Fastify route opening the file per request`)
  }
  add('fastify-open', 'fastify-ceiling', 'the route opening per request / the ceiling')
  add('zc-static-classic', 'zc-static', 'classic / io_uring')
  add('fastify-ceiling', 'nginx', 'the ceiling / nginx')
  add('fastify-static', 'nginx', '@fastify/static / nginx')
  return out
}

const KEYS = { rate: 'reqPerSec', cpu: 'serverCpuPerReq', rateName: 'req/s', cpuName: 'CPU/req' }
const fmt = (x, d = 2) => x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d)
const pct = x => x === null || x === undefined ? '-' : `${(100 * x).toFixed(0)}%`

function markdown (report) {
  const m = report.machine
  const s = report.settings
  const t = report.tree
  const lines = ['# fastify-zero-copy/static: directory benchmark', '']
  lines.push(`${m.date}; kernel ${m.kernel}; ${m.cpuModel}, ${m.cores} cores; Node ${m.node}; ${m.wrk}; ${m.nginx ?? ''}; git ${m.git}; plugin: ${report.plugin.source}${report.plugin.sanitized ? ' (SANITIZER BUILD)' : ', release build'}; @fastify/static ${report.peers.fastifyStatic}`, '')
  lines.push(`Tree (seed ${t.seed}): ${t.smallFiles} files of ${formatSize(t.smallMin)}-${formatSize(t.smallMax)} (median ${(t.smallMedian / 1024).toFixed(1)} KiB, mean ${(t.smallMean / 1024).toFixed(1)} KiB, 90th percentile ${(t.smallP90 / 1024).toFixed(1)} KiB, ${(t.smallBytes / MiB).toFixed(0)} MiB) in ${t.directories} directories 1-4 levels deep; downloads ${t.large.map(l => `${l.count} x ${formatSize(l.size)}`).join(', ')}. Page cache warm (every file read before the first case). ` +
    (s.pin ? `Pinned (taskset): each server, all its threads, on CPU ${s.pin.server}; wrk on CPU ${s.pin.client}. ` : 'Not pinned (--no-pin). ') +
    `wrk -t1 -cC -d${s.duration}s with bench/static-pick.lua: every request a path of the case's files picked at random (seeded; the same sequence for every server of a round). ${s.rounds} round(s) alternating the servers after a ${s.warmup} s warm-up each; medians. ` +
    `Servers: zc-static = fastify-zero-copy/static, engine io_uring; zc-static-classic = the same, engine classic; fastify-static = @fastify/static; fastify-ceiling = a bare Fastify route answering each file's bytes from a Map in memory (reply.send(buffer), its Content-Type set), the ceiling of any Fastify server; fastify-open = a bare Fastify route opening, stating, reading and closing the file per request (synchronously), with a static server's headers: the floor of a Fastify server that touches the file per request; the directory plugins with options ${JSON.stringify({ root: '<tree>', prefix: '/', ...s.options })}` +
    `${Object.keys(s.pluginOptions).length > 0 ? `, fastify-zero-copy/static also ${JSON.stringify(s.pluginOptions)}` : ''}${Object.keys(s.variants).length > 0 ? `; variants ${Object.entries(s.variants).map(([n, v]) => `+${n} = ${JSON.stringify(v)}`).join(', ')}` : ''}. ` +
    `nginx: one worker process (master_process off, as one Node process), root, sendfile on, tcp_nopush on, access_log off, open_file_cache ${s.nginxCache}. ` +
    'GB/s: body bytes (a download case: requests x size; the small files: requests x their mean size) per second, GB = 1e9. CPU us/req, CPU s/GB: the server\'s utime+stime (whole process, /proc/PID/stat) over the run. ' +
    `Bytes: before timing, ${s.verify} small files (or every file of a download case) from each server against the manifest's SHA-256, and two more before every measured run; a non-2xx response in a measured run aborts the case.`, '')
  lines.push('| case | conns | server | req/s | min-max | x static | x nginx | GB/s | CPU us/req | x static | x nginx | CPU s/GB | user/sys us/req | wrk us/req | RSS MiB | p99 ms | native bytes | errors | other CPU |')
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const c of report.cases) {
    if (c.aborted !== undefined) {
      lines.push(`| ${c.sizeLabel} | ${c.conns} | **ABORTED** | ${c.aborted.split('\n')[0].replace(/\|/g, '/')} ||||||||||||||| |`)
      continue
    }
    for (const sv of c.servers) {
      const u = sv.summary
      const native = u.bytesShare === undefined ? '' : u.bytesShare === null ? '-' : pct(1 - (u.bytesShare.stream ?? 0))
      lines.push(`| ${c.sizeLabel} | ${c.conns} | ${sv.label} | ${fmt(u.reqPerSec, 0)} | ${fmt(u.reqPerSecMin, 0)}-${fmt(u.reqPerSecMax, 0)} | ${fmt(sv.xStatic?.reqPerSec)} | ${fmt(sv.xNginx?.reqPerSec)} | ${fmt(u.gbps, 3)} | ` +
        `${fmt(u.serverCpuPerReq, 1)} | ${fmt(sv.xStatic?.cpuPerReq)} | ${fmt(sv.xNginx?.cpuPerReq)} | ${fmt(u.serverCpuPerGB, 3)} | ${fmt(u.serverUserUsPerReq, 0)}/${fmt(u.serverSysUsPerReq, 0)} | ${fmt(u.clientCpuPerReq, 1)} | ` +
        `${fmt(u.peakRssMiB, 0)} | ${fmt(u.latencyP99ms, 1)} | ${native} | ${u.socketErrors + u.serverErrors} | ${pct(u.otherCpuShareMax)} |`)
    }
  }
  lines.push('', 'native bytes: share of the body bytes the plugin sent by its native path (the rest by Fastify\'s, e.g. below its threshold). ' +
    'For one size the req/s ratio is the GB/s ratio and CPU per request the CPU per GB ratio.')
  lines.push(...comparisonMarkdown(report, pairs(s), KEYS))
  const goals = []
  for (const c of report.cases) {
    if (c.aborted !== undefined) continue
    for (const sv of c.servers.filter(x => x.kind.startsWith('zc-') && x.xStatic !== null)) {
      const goal = c.case === 'small' ? 3 : 5
      const x = sv.xStatic.reqPerSec
      goals.push(`- ${c.sizeLabel} c${c.conns}, ${sv.label}: ${fmt(x)}x @fastify/static's ${c.case === 'small' ? 'req/s' : 'GB/s'} (goal >= ${goal}x: ${x >= goal ? 'met' : '**not met**'})` +
        (sv.xNginx !== null ? `; ${fmt(sv.xNginx.reqPerSec)}x nginx's, at ${fmt(sv.xNginx.cpuPerReq)}x its CPU per request` : ''))
    }
  }
  if (goals.length > 0) lines.push('', '## Goals (issue 15)', '', ...goals)
  if (report.observations.length > 0) {
    lines.push('', '## Observations', '')
    for (const o of report.observations) lines.push(`- ${o.replace(/\n/g, ' ')}`)
  }
  return lines.join('\n') + '\n'
}

// ---------------------------------------------------------------------------------------

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const tools = run.ensureTools(opts.servers.includes('nginx'))
  fs.mkdirSync(run.TMP, { recursive: true })
  const { root: tree, manifest } = ensureTree({ seed: opts.seed, dir: opts.tree })
  const build = run.ensureBuilt(opts.useTree, opts.rev)
  if (build.sanitized) console.log('!! the addon under test is built with sanitizers: figures are not release figures')
  cpus = pinning(opts.pin)
  // Warm the page cache: every file read once (the benchmark measures serving, not the disk).
  for (const f of manifest.files) fs.readFileSync(path.join(tree, f.rel))
  fs.mkdirSync(opts.out, { recursive: true })
  const machine = run.machineInfo(tools)
  const directories = new Set(manifest.files.map(f => path.posix.dirname(f.rel))).size
  const ctx = { opts, tools, tree, build, specs: specs(opts), observations: [], failed: false, noisyRounds: 0 }
  const report = {
    mode: 'static',
    machine,
    plugin: { source: build.source, commit: build.commit ?? null, sanitized: build.sanitized, uncommittedDiff: build.diff ?? null },
    peers: { fastifyStatic: require('@fastify/static/package.json').version },
    tree: { seed: opts.seed, root: tree, directories, ...describe(manifest) },
    settings: { ...opts, nginxCache: opts.nginxCacheText, pin: cpus, wrk: 'wrk -t1 -cC -dDs --latency --timeout 30s -s bench/static-pick.lua' },
    cases: [],
    observations: ctx.observations
  }
  delete report.settings.nginxCacheText
  const base = path.join(opts.out, `${run.stamp(machine.date)}-static`)
  const save = () => {
    fs.writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n')
    fs.writeFileSync(`${base}.md`, markdown(report))
  }
  const cases = planCases(opts, manifest, run.TMP)
  console.log(`# static: ${cases.map(c => `${c.label} c${c.conns}`).join(', ')}; ${opts.servers.join(', ')}; ${opts.rounds} round(s) of ${opts.duration} s; results -> ${path.relative(process.cwd(), base)}.{json,md}`)
  const t0 = Date.now()
  for (const c of cases) {
    report.cases.push(await runCase(ctx, c))
    save()
  }
  report.elapsedSeconds = Math.round((Date.now() - t0) / 1000)
  if (ctx.noisyRounds > 0) ctx.observations.push(`${ctx.noisyRounds} measured runs started while the machine was more than 15% busy with other work after waiting ${opts.quietWait} s: see "other CPU"`)
  save()
  console.log('\n' + markdown(report))
  console.log(`wrote ${path.relative(process.cwd(), base)}.json and .md in ${report.elapsedSeconds} s`)
  if (ctx.failed) {
    console.log('!!!!!!!! at least one case was ABORTED: see above')
    process.exitCode = 1
  }
}

main().catch(err => {
  console.error(err.stack)
  process.exit(1)
})
