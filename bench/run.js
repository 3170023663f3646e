'use strict'
// Benchmark of fastify-zero-copy against its peers: Fastify's reply.send(Buffer) for buffer
// bodies; nginx (sendfile on, tcp_nopush on) and @fastify/static for file bodies (nginx runs
// in the buffer cases too, as a reference). Follows ../shared/BENCH.md: wrk as the load
// generator, servers measured one after another in the same run, alternating A B A B,
// median of the rounds, ratio to the peer, server CPU per GB from /proc, peak RSS, bytes
// verified by SHA-256 before every measured run. Writes bench/results/<date>-<mode>.{json,md}
// and one SVG chart per connection count.
//
//   node bench/run.js            full: 1K 16K 64K 256K 1M 16M 64M bodies, 1M 64M files x 1,4,64 connections, 3 x 4 s
//   node bench/run.js --quick    1K 256K 4M bodies, 1M file x 4 connections, 4 servers, 3 x 2 s
//   node bench/run.js --tune     zc-send_zc slice/depth grid at 256K 1M 4M x 4 connections, 3 x 3 s
//
// Overrides: --sizes 256k,4m (or --no-buffers)  --files 1m,64m (or --no-files)  --conns 1,4  --rounds N  --duration S  --warmup S
//            --wrk-threads N (wrk -tN; default 1; where one wrk thread is the limit, 2 lifts it, on the server's cores)
//            --servers fastify-send,zc-send_zc,...  --no-nginx  --no-ceiling  --out DIR
//            (file cases run zc-file, @fastify/static, nginx and fastify-sendfile: the ceiling of a
//            Fastify server, sendfile(2) on the main thread, built from bench/native/sendfile.c)
//            --rev REV (benchmark a git revision instead of the working tree)  --use-tree
//            --base REV (also build REV; a server named KIND@base in --servers runs on it, e.g. zc-auto@base)
//            --file-servers zc-file,zc-file-classic,... (the file cases' servers; nginx and the ceiling as above)
//            --container podman[,docker-like] (file cases: also zc-file and @fastify/static in a runc container)
//            --no-pin (by default the server runs on CPU 0 and wrk on CPU 1, by taskset)
//            --quiet-wait S (before each run, wait up to S s for the machine to be idle; default 10)
// See bench/README.md.
const { spawn, spawnSync, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { makeBody, sha256, parseSize, formatSize } = require('./body')
const { eachOption } = require('./args')
const { pinning, onCpu, threadAffinity, startContained } = require('./placement')
const { startNginx: launchNginx } = require('./nginx')
const { comparisonMarkdown } = require('./compare')

const ROOT = path.join(__dirname, '..')
const RESULTS = path.join(__dirname, 'results')
const TMP = path.join(RESULTS, 'tmp') // git-ignored: nginx prefix, server logs
const KiB = 1024
const MiB = 1024 * KiB
const GB = 1e9 // GB/s and CPU s/GB use decimal gigabytes

// ---------------------------------------------------------------------------------------
// Options

function parseArgs (argv) {
  const o = { mode: 'full', nginx: true, ceiling: true, pin: true, out: RESULTS }
  eachOption(argv, (a, value) => {
    switch (a) {
      case '--quick': o.mode = 'quick'; break
      case '--full': o.mode = 'full'; break
      case '--tune': o.mode = 'tune'; break
      case '--no-nginx': o.nginx = false; break
      case '--no-ceiling': o.ceiling = false; break
      case '--use-tree': o.useTree = true; break
      case '--no-pin': o.pin = false; break
      case '--base': o.base = value(); break
      case '--file-servers': o.fileServers = value().split(','); break
      case '--container': o.container = value().split(','); break
      case '--rev': o.rev = value(); break
      case '--quiet-wait': o.quietWait = Number(value()); break
      case '--sizes': o.sizes = value().split(',').map(parseSize); break
      case '--files': o.files = value().split(',').map(parseSize); break
      case '--no-files': o.files = []; break
      case '--no-buffers': o.sizes = []; break
      case '--conns': o.conns = value().split(',').map(Number); break
      case '--rounds': o.rounds = Number(value()); break
      case '--duration': o.duration = Number(value()); break
      case '--warmup': o.warmup = Number(value()); break
      case '--wrk-threads': o.wrkThreads = Number(value()); break
      case '--servers': o.servers = value().split(','); break
      case '--out': o.out = path.resolve(value()); break
      case '-h': case '--help':
        {
          // The comment block at the top of this file.
          const lines = fs.readFileSync(__filename, 'utf8').split('\n')
          let end = 1
          while (end < lines.length && lines[end].startsWith('//')) end++
          process.stdout.write(lines.slice(1, end).map(l => l.replace(/^\/\/ ?/, '')).join('\n') + '\n')
        }
        process.exit(0)
        break
      default: throw new Error(`unknown argument ${a}`)
    }
  })
  const presets = {
    quick: { sizes: [1 * KiB, 256 * KiB, 4 * MiB], files: [1 * MiB], conns: [4], rounds: 3, duration: 2, servers: ['fastify-send', 'zc-auto', 'zc-send_zc', 'nginx'] },
    full: { sizes: [1 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 16 * MiB, 64 * MiB], files: [1 * MiB, 64 * MiB], conns: [1, 4, 64], rounds: 3, duration: 4 },
    tune: { sizes: [256 * KiB, 1 * MiB, 4 * MiB], files: [], conns: [4], rounds: 3, duration: 3 }
  }
  const p = presets[o.mode]
  return {
    mode: o.mode,
    sizes: o.sizes ?? p.sizes,
    files: o.files ?? (o.sizes !== undefined && o.sizes.length > 0 ? [] : p.files),
    conns: o.conns ?? p.conns,
    rounds: o.rounds ?? p.rounds,
    duration: o.duration ?? p.duration,
    warmup: o.warmup ?? 1,
    wrkThreads: o.wrkThreads ?? 1,
    servers: o.servers ?? p.servers,
    fileServers: o.fileServers,
    container: o.container ?? [],
    pin: o.pin,
    base: o.base,
    nginx: o.nginx && o.mode !== 'tune',
    ceiling: o.ceiling,
    useTree: o.useTree === true,
    rev: o.rev,
    quietWait: o.quietWait ?? 10,
    out: o.out
  }
}

// ---------------------------------------------------------------------------------------
// Tools and build

function which (bin) {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } })
  return r.status === 0 ? r.stdout.toString().trim() : null
}

function ensureTools (wantNginx) {
  const need = [{ bin: 'wrk', pkg: 'wrk' }]
  if (wantNginx) need.push({ bin: 'nginx', pkg: 'nginx-light' })
  const missing = need.filter(t => which(t.bin) === null)
  if (missing.length > 0) {
    const pkgs = missing.map(t => t.pkg)
    if (process.getuid() === 0) {
      console.log(`# installing ${pkgs.join(' ')} (missing) with apt-get`)
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
      const up = spawnSync('apt-get', ['update'], { stdio: 'inherit', env })
      const inst = up.status === 0 ? spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env }) : up
      if (inst.status !== 0) throw new Error(`apt-get failed; install by hand: apt-get update && apt-get install -y ${pkgs.join(' ')}`)
    } else {
      console.error(`missing: ${missing.map(t => t.bin).join(', ')}. Install with:\n  sudo apt-get update && sudo apt-get install -y ${pkgs.join(' ')}`)
      process.exit(1)
    }
  }
  return { wrk: which('wrk'), nginx: wantNginx ? which('nginx') : null }
}

/**
 * bench/native/sendfile.c as a Node addon in TMP (an N-API module needs Node's headers and
 * nothing to link), for the fastify-sendfile kind. Null, with the reason printed, when it
 * cannot be built: the file cases then run without the ceiling.
 */
function buildCeiling () {
  const source = path.join(__dirname, 'native', 'sendfile.c')
  const out = path.join(TMP, 'sendfile.node')
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(source).mtimeMs) return out
  const include = path.join(path.dirname(process.execPath), '..', 'include', 'node')
  const cc = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-I', include, '-o', out, source], { encoding: 'utf8' })
  if (cc.status !== 0) {
    console.log(`!! fastify-sendfile (the ceiling) left out: cc failed (${(cc.stderr || cc.error?.message || '').trim().split('\n')[0]})`)
    return null
  }
  return out
}

/**
 * The checkout's build/ is shared (tests, `npm run asan` rebuild it, possibly with
 * sanitizers, while a benchmark runs), so the benchmark measures a release build of its own:
 * a snapshot of plugin/, native/, types/ and the build files in bench/results/tmp/pkg,
 * compiled with `npx tsc -p tsconfig.json` and `npx node-gyp rebuild` (no ZERO_COPY_SANITIZE),
 * rebuilt only when the sources changed. --use-tree loads the checkout itself (require('..')).
 */
const SNAPSHOT_FILES = ['package.json', 'binding.gyp', 'tsconfig.json', 'plugin', 'native', 'types', 'scripts']

function filesUnder (rel) {
  const abs = path.join(ROOT, rel)
  if (!fs.statSync(abs).isDirectory()) return [rel]
  return fs.readdirSync(abs).sort().flatMap(f => filesUnder(path.join(rel, f)))
}

function ensureBuilt (useTree, rev, dir = 'pkg') {
  if (useTree) {
    const dist = path.join(ROOT, 'dist', 'plugin', 'index.js')
    if (!fs.existsSync(dist)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' })
    if (!fs.existsSync(path.join(ROOT, 'build', 'Release', 'zerocopy.node'))) execFileSync('npx', ['node-gyp', 'rebuild'], { cwd: ROOT, stdio: 'inherit' })
    return { root: ROOT, source: 'checkout (--use-tree)', sanitized: isSanitized(path.join(ROOT, 'build', 'Release', 'zerocopy.node')) }
  }
  const pkg = path.join(TMP, dir)
  let commit = null
  let files
  const read = f => rev === undefined ? fs.readFileSync(path.join(ROOT, f)) : execFileSync('git', ['show', `${commit}:${f}`], { cwd: ROOT, maxBuffer: 1 << 28 })
  if (rev === undefined) {
    files = SNAPSHOT_FILES.flatMap(filesUnder)
  } else {
    commit = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: ROOT }).toString().trim()
    files = execFileSync('git', ['ls-tree', '-r', '--name-only', commit, '--', ...SNAPSHOT_FILES], { cwd: ROOT }).toString().trim().split('\n')
  }
  const contents = new Map(files.map(f => [f, read(f)]))
  const hash = require('node:crypto').createHash('sha256')
  for (const [f, data] of contents) hash.update(f).update('\0').update(data).update('\0')
  const digest = hash.digest('hex')
  const addon = path.join(pkg, 'build', 'Release', 'zerocopy.node')
  const stampFile = path.join(pkg, '.sources-sha256')
  const built = fs.existsSync(addon) && fs.existsSync(path.join(pkg, 'dist', 'plugin', 'index.js')) &&
    fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === digest
  if (!built) {
    console.log(`# building a release snapshot of plugin/ and native/ in ${path.relative(process.cwd(), pkg)}`)
    fs.rmSync(pkg, { recursive: true, force: true })
    fs.mkdirSync(pkg, { recursive: true })
    for (const [f, data] of contents) {
      fs.mkdirSync(path.dirname(path.join(pkg, f)), { recursive: true })
      fs.writeFileSync(path.join(pkg, f), data)
    }
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'))
    const env = { ...process.env }
    delete env.ZERO_COPY_SANITIZE
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: pkg, stdio: 'inherit', env })
    execFileSync('npx', ['node-gyp', 'rebuild'], { cwd: pkg, stdio: ['ignore', 'ignore', 'inherit'], env })
    fs.writeFileSync(stampFile, digest)
  }
  const what = commit === null ? 'working tree' : `git ${commit.slice(0, 7)}`
  // What the working tree changed against HEAD, so uncommitted figures can be traced.
  let diff = null
  if (commit === null) {
    try {
      diff = execFileSync('git', ['diff', 'HEAD', '--', ...SNAPSHOT_FILES], { cwd: ROOT, maxBuffer: 1 << 26 }).toString()
    } catch {}
  }
  return { root: pkg, source: `release snapshot of the ${what}${diff ? ' (with uncommitted changes to HEAD)' : ''} (sources sha256 ${digest.slice(0, 12)})`, commit, diff, sanitized: isSanitized(addon) }
}

function isSanitized (addon) {
  return fs.readFileSync(addon).includes('__asan_init')
}

// ---------------------------------------------------------------------------------------
// /proc

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

/** utime and stime of the whole process (all threads), in seconds. */
function cpuTimes (pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // f[0] is field 3 (state)
  return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK } // fields 14 and 15
}

function statusKiB (pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? null : Number(m[1])
}

/** Resets VmHWM to the current RSS (Linux >= 4.0), so each round reports its own peak. */
function resetPeak (pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** Busy and total jiffies of the whole machine. */
function machineTicks () {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = cpu.reduce((a, b) => a + b, 0)
  const idle = cpu[3] + (cpu[4] ?? 0)
  return { busy: total - idle, total }
}

// ---------------------------------------------------------------------------------------
// Servers

function label (spec) {
  const where = (spec.base === true ? '@base' : '') + (spec.container !== undefined ? ` [${spec.container}]` : '')
  if (spec.kind !== 'zc-send_zc' || (spec.slice === undefined && spec.depth === undefined)) return spec.kind + where
  return `zc-send_zc slice=${formatSize(spec.slice ?? 256 * KiB).replace(' ', '')} depth=${spec.depth ?? 4}${where}`
}

/** "zc-auto@base" -> { kind: 'zc-auto', base: true } (a server of the --base revision). */
function parseServer (name) {
  return name.endsWith('@base') ? { kind: name.slice(0, -'@base'.length), base: true } : { kind: name }
}

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port
      s.close(() => resolve(port))
    })
  })
}

function waitForPort (port, ms) {
  const deadline = Date.now() + ms
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, '127.0.0.1')
      sock.once('connect', () => { sock.destroy(); resolve() })
      sock.once('error', () => {
        sock.destroy()
        if (Date.now() > deadline) reject(new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

function tail (text, lines = 20) {
  return text.split('\n').slice(-lines).join('\n')
}

let ctxBuild = { root: ROOT }
let baseBuild = null // --base: the other revision's snapshot
let ceilingAddon = null // bench/native/sendfile.c built, for the fastify-sendfile kind
let cpus = null // { server, client } when pinned (--no-pin: null)
const live = new Set() // host servers started and not yet stopped: ended with run.js if it is interrupted

// Interrupted (Ctrl-C, a runner's SIGTERM): no server is left running. Synchronous, since the
// container module turns the same signals into an exit (which removes its containers).
// Installed by main(): bench/static.js loads this file for its helpers and has its own.
function endServersOnSignal () {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      for (const srv of live) srv.child.kill('SIGTERM')
      process.exit(130)
    })
  }
}

function pluginRoot (spec) {
  if (spec.base !== true) return ctxBuild.root
  if (baseBuild === null) throw new Error(`${label(spec)} needs --base REV`)
  return baseBuild.root
}

async function startNode (spec, size, file) {
  const args = [path.join(__dirname, 'server.js'), spec.kind, String(size)]
  if (file !== undefined) args.push('--file', file)
  if (spec.slice !== undefined) args.push('--slice', String(spec.slice))
  if (spec.depth !== undefined) args.push('--depth', String(spec.depth))
  if (spec.container !== undefined) return startContained({ spec, label: label(spec), size, file, cpu: cpus?.server, pluginRoot: pluginRoot(spec) })
  const env = { ...process.env, BENCH_PLUGIN: pluginRoot(spec) }
  if (ceilingAddon !== null) env.BENCH_SENDFILE_ADDON = ceilingAddon
  const child = spawn(...onCpu(cpus?.server, process.execPath, args), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env })
  const srv = { spec, label: label(spec), child, pid: child.pid, port: null, stderr: '', stdout: '', exited: null }
  live.add(srv)
  child.stderr.on('data', d => { srv.stderr = tail(srv.stderr + d, 60) })
  child.on('exit', (code, signal) => { srv.exited = { code, signal }; live.delete(srv) })
  srv.port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${srv.label}: no READY within 30 s\n${srv.stderr}`)), 30000)
    child.stdout.on('data', d => {
      srv.stdout = tail(srv.stdout + d, 60)
      const m = /^READY (\d+)$/m.exec(srv.stdout)
      if (m !== null && srv.port === null) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${srv.label} exited before READY (code ${code}, signal ${signal})\n${srv.stderr}`))
    })
  })
  return srv
}

async function startNginx (nginxBin, size, file) {
  const srv = launchNginx(nginxBin, {
    tmp: TMP,
    name: 'nginx',
    label: 'nginx sendfile',
    port: await freePort(),
    cpu: cpus?.server,
    writer: 'bench/run.js',
    http: ['types { }'],
    server: [`location = /body { alias ${file}; }`]
  })
  live.add(srv)
  srv.child.stderr.on('data', d => { srv.stderr = tail(srv.stderr + d, 60) })
  srv.child.on('exit', (code, signal) => { srv.exited = { code, signal }; live.delete(srv) })
  await waitForPort(srv.port, 10000)
  return srv
}

async function stopServer (srv) {
  if (srv.exited !== null) return srv.exited
  if (srv.stop !== undefined) return srv.stop() // in a container: removed with it
  const done = new Promise(resolve => srv.child.once('exit', (code, signal) => resolve({ code, signal })))
  srv.child.kill('SIGTERM')
  const timer = setTimeout(() => {
    console.log(`!! ${srv.label} (pid ${srv.pid}) did not exit within 10 s of SIGTERM; SIGKILL`)
    srv.killedHard = true
    srv.child.kill('SIGKILL')
  }, 10000)
  const r = await done
  clearTimeout(timer)
  if (srv.prefix) fs.rmSync(srv.prefix, { recursive: true, force: true })
  return r
}

// ---------------------------------------------------------------------------------------
// HTTP checks

function get (port, urlPath, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, res => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete }))
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

/** One GET /body checked against the known SHA-256; throws on any difference. */
async function verify (srv, size, expected) {
  const r = await get(srv.port, '/body')
  const digest = sha256(r.body)
  const problems = []
  if (r.status !== 200) problems.push(`status ${r.status}`)
  if (!r.complete) problems.push('response incomplete')
  if (Number(r.headers['content-length']) !== size) problems.push(`content-length ${r.headers['content-length']} != ${size}`)
  if (r.body.length !== size) problems.push(`received ${r.body.length} bytes, expected ${size}`)
  if (digest !== expected) {
    let first = -1
    const want = makeBody(size)
    for (let i = 0; i < Math.min(want.length, r.body.length); i++) if (want[i] !== r.body[i]) { first = i; break }
    problems.push(`sha256 ${digest} != ${expected}${first >= 0 ? ` (first differing byte at offset ${first})` : ''}`)
  }
  if (problems.length > 0) throw new Error(`WRONG BYTES from ${srv.label} on 127.0.0.1:${srv.port}/body (${formatSize(size)}): ${problems.join('; ')}`)
}

async function zcStats (srv) {
  const r = await get(srv.port, '/__stats', 10000)
  if (r.status !== 200) throw new Error(`/__stats answered ${r.status}`)
  return JSON.parse(r.body.toString())
}

// ---------------------------------------------------------------------------------------
// wrk

const UNIT = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }
const TIME = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }

function parseWrk (out) {
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?B) read/.exec(out)
  if (m === null) throw new Error(`cannot parse wrk output:\n${out}`)
  const r = {
    requests: Number(m[1]),
    seconds: Number(m[2]) * TIME[m[3]],
    bytesRead: Number(m[4]) * UNIT[m[5]],
    reqPerSec: Number((/Requests\/sec:\s+([\d.]+)/.exec(out) ?? [])[1]),
    transferPerSec: null,
    socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: 0,
    latency: {}
  }
  const t = /Transfer\/sec:\s+([\d.]+)([KMGT]?B)/.exec(out)
  if (t !== null) r.transferPerSec = Number(t[1]) * UNIT[t[2]]
  const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  if (e !== null) r.socketErrors = { connect: +e[1], read: +e[2], write: +e[3], timeout: +e[4] }
  const n = /Non-2xx or 3xx responses: (\d+)/.exec(out)
  if (n !== null) r.non2xx = Number(n[1])
  for (const p of ['50', '75', '90', '99']) {
    const l = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out)
    if (l !== null) r.latency[`p${p}`] = Number(l[1]) * TIME[l[2]]
  }
  const avg = /Latency\s+([\d.]+)(us|ms|s|m)/.exec(out)
  if (avg !== null) r.latency.avg = Number(avg[1]) * TIME[avg[2]]
  return r
}

/** wrk's thread count (--wrk-threads), 1 unless asked. */
let wrkThreads = 1

/**
 * wrk -tN -cC -dDs --latency --timeout 30s, run from a shell that then prints its own
 * /proc/self/stat: its cutime+cstime are wrk's CPU (the load generator's side).
 */
function runWrk (wrkBin, port, conns, seconds) {
  const script = '"$@"; rc=$?; echo; echo "SHELLSTAT $(cat /proc/$$/stat)"; exit $rc'
  const args = ['-c', script, 'sh', wrkBin, `-t${Math.min(wrkThreads, conns)}`, `-c${conns}`, `-d${seconds}s`, '--latency', '--timeout', '30s', `http://127.0.0.1:${port}/body`]
  return new Promise((resolve, reject) => {
    const child = spawn(...onCpu(cpus?.client, 'sh', args), { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { err += d })
    const limit = (seconds + 30) * 1000
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`wrk did not finish within ${limit / 1000} s (server hang?)`))
    }, limit)
    child.on('exit', code => {
      clearTimeout(timer)
      if (code !== 0) return reject(new Error(`wrk exited with ${code}\n${out}\n${err}`))
      try {
        const r = parseWrk(out)
        const s = /SHELLSTAT (.*)/.exec(out)
        if (s !== null) {
          const f = s[1].slice(s[1].lastIndexOf(')') + 2).split(' ')
          r.clientCpuSeconds = (Number(f[13]) + Number(f[14])) / CLK_TCK // cutime, cstime
        }
        resolve(r)
      } catch (e) {
        reject(e)
      }
    })
  })
}

// ---------------------------------------------------------------------------------------
// One measured round

const sum = o => Object.values(o).reduce((a, b) => a + b, 0)

function delta (after, before) {
  const out = {}
  for (const k of Object.keys(after)) {
    if (typeof after[k] === 'number') out[k] = after[k] - (before?.[k] ?? 0)
    else if (after[k] !== null && typeof after[k] === 'object') out[k] = delta(after[k], before?.[k])
  }
  return out
}

/**
 * This machine is shared: before a measured run, wait (up to --quiet-wait seconds) until the
 * machine, with every benchmark server idle, is at most 15% busy over half a second.
 */
async function waitQuiet (ctx) {
  const limit = ctx.opts.quietWait * 1000
  const t0 = Date.now()
  let busy = 0
  for (;;) {
    const a = machineTicks()
    await new Promise(resolve => setTimeout(resolve, 500))
    const b = machineTicks()
    busy = (b.busy - a.busy) / Math.max(1, b.total - a.total)
    if (busy <= 0.15 || Date.now() - t0 >= limit) break
  }
  const waited = Date.now() - t0
  if (busy > 0.15 && limit > 0) ctx.noisyRounds++
  return { waitedMs: waited, busyBefore: busy }
}

async function measure (ctx, srv, size, conns, seconds, expected) {
  await verify(srv, size, expected)
  const quiet = await waitQuiet(ctx)
  const zc = srv.spec.kind.startsWith('zc-')
  const before = zc ? await zcStats(srv) : null
  const peakReset = resetPeak(srv.pid)
  const m0 = machineTicks()
  const t0 = cpuTimes(srv.pid)
  const w = await runWrk(ctx.tools.wrk, srv.port, conns, seconds)
  const t1 = cpuTimes(srv.pid)
  const cpu0 = t0.user + t0.sys
  const cpu1 = t1.user + t1.sys
  const m1 = machineTicks()
  if (srv.exited !== null) throw new Error(`${srv.label} died during the run (${JSON.stringify(srv.exited)})\n${srv.stderr}`)
  const round = {
    requests: w.requests,
    seconds: w.seconds,
    bytes: w.requests * size,
    gbps: (w.requests * size) / w.seconds / GB,
    reqPerSec: w.requests / w.seconds,
    wrkReqPerSec: w.reqPerSec,
    wrkTransferGBps: w.transferPerSec === null ? null : w.transferPerSec / GB,
    serverCpuSeconds: cpu1 - cpu0,
    serverCpuPerGB: (cpu1 - cpu0) / ((w.requests * size) / GB),
    // per response, in microseconds: where the server's time went (user: Node, V8, the plugin;
    // sys: the kernel, the copy into the socket and, on loopback, much of the delivery)
    serverUserUsPerReq: w.requests > 0 ? (t1.user - t0.user) * 1e6 / w.requests : null,
    serverSysUsPerReq: w.requests > 0 ? (t1.sys - t0.sys) * 1e6 / w.requests : null,
    clientCpuPerGB: w.clientCpuSeconds === undefined ? null : w.clientCpuSeconds / ((w.requests * size) / GB),
    machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total), // share of all cores busy
    // CPU that neither the server nor wrk used (other processes, softirq elsewhere), as a share
    // of all cores: a noise indicator; high values mean the figure is suspect.
    otherCpuShare: Math.max(0, ((m1.busy - m0.busy) / CLK_TCK - (cpu1 - cpu0) - (w.clientCpuSeconds ?? 0)) / ((m1.total - m0.total) / CLK_TCK)),
    peakRssKiB: statusKiB(srv.pid, 'VmHWM'),
    peakIsPerRound: peakReset,
    rssAfterKiB: statusKiB(srv.pid, 'VmRSS'),
    quietWaitMs: quiet.waitedMs,
    busyBefore: quiet.busyBefore, // machine busy share just before the run (servers idle)
    latency: w.latency,
    socketErrors: w.socketErrors,
    non2xx: w.non2xx
  }
  if (zc) {
    let after = await zcStats(srv)
    // wrk closes its connections at the end: sends still queued on them are cancelled.
    // Give the ring a moment to reap them, then record what stays in flight (should be 0).
    for (let i = 0; i < 20 && after.stats.inFlight.sends > 0; i++) {
      await new Promise(resolve => setTimeout(resolve, 100))
      after = await zcStats(srv)
    }
    round.zc = {
      bytes: delta(after.stats.bytes, before.stats.bytes),
      responses: delta(after.stats.responses, before.stats.responses),
      notifications: delta(after.stats.notifications, before.stats.notifications),
      fallbacks: delta(after.stats.fallbacks, before.stats.fallbacks),
      inFlightAfter: after.stats.inFlight,
      serverErrors: after.server.errors - before.server.errors,
      clientErrors: after.server.clientErrors - before.server.clientErrors,
      lastError: after.server.lastError,
      lastClientError: after.server.lastClientError
    }
    if (after.stats.inFlight.sends > 0 || after.stats.inFlight.pinnedBytes > 0) {
      ctx.observations.push(`${srv.label} ${formatSize(size)} c${conns}: in flight 2 s after wrk ended: ${JSON.stringify(after.stats.inFlight)}`)
    }
    if (round.zc.serverErrors > 0) {
      ctx.observations.push(`${srv.label} ${formatSize(size)} c${conns}: ${round.zc.serverErrors} request errors (last: ${after.server.lastError})`)
    }
  }
  const errs = sum(round.socketErrors) + round.non2xx
  if (errs > 0) ctx.observations.push(`${srv.label} ${formatSize(size)} c${conns}: wrk socket errors ${JSON.stringify(round.socketErrors)}, non-2xx ${round.non2xx}`)
  return round
}

// ---------------------------------------------------------------------------------------
// Aggregation

function median (xs) {
  const v = xs.filter(x => x !== null && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

function summarize (rounds) {
  const pick = k => rounds.map(r => r[k])
  const gb = pick('gbps')
  const s = {
    rounds: rounds.length,
    gbps: median(gb),
    gbpsMin: Math.min(...gb),
    gbpsMax: Math.max(...gb),
    reqPerSec: median(pick('reqPerSec')),
    serverCpuPerGB: median(pick('serverCpuPerGB')),
    serverUserUsPerReq: median(pick('serverUserUsPerReq')),
    serverSysUsPerReq: median(pick('serverSysUsPerReq')),
    clientCpuPerGB: median(pick('clientCpuPerGB')),
    machineBusy: median(pick('machineBusy')),
    otherCpuShare: median(pick('otherCpuShare')),
    otherCpuShareMax: Math.max(...pick('otherCpuShare')),
    peakRssMiB: median(pick('peakRssKiB')) / 1024,
    latencyP50ms: median(rounds.map(r => r.latency.p50)) * 1000,
    latencyP99ms: median(rounds.map(r => r.latency.p99)) * 1000,
    socketErrors: rounds.reduce((a, r) => a + sum(r.socketErrors), 0),
    non2xx: rounds.reduce((a, r) => a + r.non2xx, 0)
  }
  if (rounds[0]?.zc !== undefined) {
    const tot = { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 0 }
    const notif = { total: 0, copied: 0 }
    let serverErrors = 0
    const fallbacks = {}
    for (const r of rounds) {
      for (const k of Object.keys(tot)) tot[k] += r.zc.bytes[k] ?? 0
      notif.total += r.zc.notifications.total
      notif.copied += r.zc.notifications.copied
      serverErrors += r.zc.serverErrors
      for (const [k, v] of Object.entries(r.zc.fallbacks)) fallbacks[k] = (fallbacks[k] ?? 0) + v
    }
    const all = sum(tot)
    s.share = all === 0 ? null : Object.fromEntries(Object.entries(tot).map(([k, v]) => [k, v / all]))
    s.notifications = notif
    s.copiedShare = notif.total === 0 ? null : notif.copied / notif.total
    s.serverErrors = serverErrors
    s.fallbacks = fallbacks
  }
  return s
}

/** The peer each case is compared with: reply.send(buffer) for buffers, nginx for files. */
function refKind (caseResult) {
  return caseResult.source === 'file' ? 'nginx' : 'fastify-send'
}

function ratios (s, ref) {
  if (ref === undefined || s.summary === undefined) return undefined
  return {
    gbps: s.summary.gbps / ref.gbps,
    reqPerSec: s.summary.reqPerSec / ref.reqPerSec,
    serverCpuPerGB: s.summary.serverCpuPerGB / ref.serverCpuPerGB,
    peakRss: s.summary.peakRssMiB / ref.peakRssMiB
  }
}

function addRatios (caseResult) {
  const ref = caseResult.servers.find(s => s.kind === refKind(caseResult))?.summary
  const staticRef = caseResult.servers.find(s => s.kind === 'fastify-static')?.summary
  for (const s of caseResult.servers) {
    s.ratio = ratios(s, ref)
    if (caseResult.source === 'file') s.ratioStatic = ratios(s, staticRef)
  }
}

// ---------------------------------------------------------------------------------------
// Cases

function serverSpecs (opts, size, source) {
  if (source === 'file') {
    const kinds = (opts.fileServers ?? ['zc-file', 'zc-file-classic', 'fastify-static', 'nginx', 'fastify-sendfile'])
      .filter(k => (k !== 'nginx' || opts.nginx) && (k !== 'fastify-sendfile' || ceilingAddon !== null))
    // In a container: the plugin with its defaults (io_uring refused there, so the classic
    // engine) and @fastify/static, each after its host counterpart.
    const contained = opts.container.flatMap(profile => ['zc-file', 'fastify-static'].map(kind => ({ kind, container: profile })))
    return [...kinds.map(parseServer), ...contained]
  }
  if (opts.mode === 'tune') {
    const specs = [{ kind: 'fastify-send' }]
    const seen = new Set()
    for (const slice of [64 * KiB, 256 * KiB, 1 * MiB]) {
      for (const depth of [1, 4, 8]) {
        // A body that fits in one slice is one send: slice and depth make no difference.
        const key = slice >= size ? 'one-slice' : `${slice}/${depth}`
        if (seen.has(key)) continue
        seen.add(key)
        specs.push({ kind: 'zc-send_zc', slice, depth: slice >= size ? 4 : depth })
      }
    }
    return specs
  }
  const kinds = opts.servers ?? ['fastify-send', 'zc-auto', 'zc-send_zc', 'zc-send', 'zc-stream']
  const specs = kinds.filter(k => k !== 'nginx').map(parseServer)
  if (opts.nginx && (opts.servers === undefined || opts.servers.includes('nginx'))) specs.push({ kind: 'nginx' })
  return specs
}

/** The body as a file every server of the case serves (nginx, and the file kinds), page cache warm. */
function bodyFile (size, body) {
  const file = path.join(TMP, `body-${size}.bin`)
  if (!fs.existsSync(file) || fs.statSync(file).size !== size) fs.writeFileSync(file, body)
  fs.chmodSync(file, 0o644)
  fs.readFileSync(file) // warm the page cache (it is warm anyway: just written or served before)
  return file
}

async function runCase (ctx, size, conns, source) {
  const { opts } = ctx
  const body = makeBody(size)
  const expected = sha256(body)
  const file = bodyFile(size, body)
  const specs = serverSpecs(opts, size, source)
  const sizeLabel = formatSize(size) + (source === 'file' ? ' file' : '')
  const result = { size, sizeLabel, source, conns, sha256: expected, servers: specs.map(spec => ({ label: label(spec), kind: spec.kind, slice: spec.slice, depth: spec.depth, rounds: [] })) }
  console.log(`\n## ${sizeLabel}, ${conns} connection(s): ${specs.map(label).join(' | ')}`)
  const servers = []
  try {
    // Every server of the case is started fresh now and killed at the end; idle ones use no CPU.
    for (const spec of specs) {
      servers.push(spec.kind === 'nginx' ? await startNginx(ctx.tools.nginx, size, file) : await startNode(spec, size, source === 'file' ? file : undefined))
    }
    for (let i = 0; i < servers.length; i++) {
      await verify(servers[i], size, expected)
      await runWrk(ctx.tools.wrk, servers[i].port, conns, opts.warmup) // warm-up, not measured
      // Once io_uring's workers exist: where each of the server's threads may run.
      result.servers[i].affinity = threadAffinity(servers[i].pid)
      if (cpus !== null && result.servers[i].affinity !== null) {
        const stray = Object.keys(result.servers[i].affinity).filter(k => k !== String(cpus.server))
        if (stray.length > 0) ctx.observations.push(`${servers[i].label} ${sizeLabel} c${conns}: threads not pinned to CPU ${cpus.server}: ${JSON.stringify(result.servers[i].affinity)}`)
      }
    }
    for (let round = 0; round < opts.rounds; round++) {
      for (let i = 0; i < servers.length; i++) {
        const r = await measure(ctx, servers[i], size, conns, opts.duration, expected)
        result.servers[i].rounds.push(r)
        console.log(`  round ${round + 1} ${servers[i].label.padEnd(34)} ${r.gbps.toFixed(3)} GB/s  ${r.reqPerSec.toFixed(0).padStart(7)} req/s  ` +
          `${r.serverCpuPerGB.toFixed(3)} CPU s/GB  ${(r.peakRssKiB / 1024).toFixed(0)} MiB` +
          (r.zc ? `  zc ${(100 * r.zc.bytes.sendZc / Math.max(1, sum(r.zc.bytes))).toFixed(0)}% splice ${(100 * (r.zc.bytes.splice ?? 0) / Math.max(1, sum(r.zc.bytes))).toFixed(0)}% sendfile ${(100 * (r.zc.bytes.sendfile ?? 0) / Math.max(1, sum(r.zc.bytes))).toFixed(0)}% copied ${r.zc.notifications.copied}/${r.zc.notifications.total}` : '') +
          `  other ${(100 * r.otherCpuShare).toFixed(0)}%`)
      }
    }
    for (const s of result.servers) s.summary = summarize(s.rounds)
    addRatios(result)
  } catch (err) {
    result.aborted = err.message
    ctx.failed = true
    console.log(`\n!!!!!!!! CASE ABORTED: ${formatSize(size)} c${conns}\n!!!!!!!! ${err.message.split('\n').join('\n!!!!!!!! ')}\n`)
    for (const srv of servers) {
      if (srv.stderr.trim() !== '') console.log(`!!!!!!!! stderr of ${srv.label}:\n${srv.stderr}`)
    }
    ctx.observations.push(`ABORTED ${formatSize(size)} c${conns}: ${err.message.split('\n')[0]}`)
  } finally {
    for (let i = 0; i < servers.length; i++) {
      const t0 = Date.now()
      const exit = await stopServer(servers[i])
      const stop = { exit, ms: Date.now() - t0, killedHard: servers[i].killedHard === true, stderr: servers[i].stderr }
      result.servers[i].stop = stop
      if (stop.killedHard || exit.code !== 0) {
        ctx.observations.push(`${servers[i].label} ${formatSize(size)} c${conns}: shutdown ${JSON.stringify(stop.exit)} after ${stop.ms} ms${stop.killedHard ? ' (SIGKILL needed)' : ''}`)
      }
      if (servers[i].stderr.trim() !== '' && servers[i].spec.kind !== 'nginx' && servers[i].spec.container === undefined) {
        ctx.observations.push(`${servers[i].label} ${formatSize(size)} c${conns}: stderr: ${tail(servers[i].stderr, 5)}`)
      }
    }
  }
  return result
}

// ---------------------------------------------------------------------------------------
// Report

const fmt = (x, d = 2) => x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d)
const pct = x => x === null || x === undefined ? '-' : `${(100 * x).toFixed(0)}%`

function markdown (report) {
  const lines = []
  const m = report.machine
  lines.push(`# fastify-zero-copy benchmark (${report.mode})`, '')
  lines.push(`${m.date}; kernel ${m.kernel}; ${m.cpuModel}, ${m.cores} cores; Node ${m.node}; ${m.wrk}; git ${m.git}; plugin: ${report.plugin.source}${report.plugin.sanitized ? ' (SANITIZER BUILD)' : ', release build'}`, '')
  lines.push((report.settings.pin ? `Pinned (taskset): the server, all its threads (io_uring workers included), on CPU ${report.settings.pin.server}; wrk on CPU ${report.settings.pin.client}. ` : 'Not pinned (--no-pin). ') +
    (report.settings.container.length > 0 ? '"[podman]", "[docker-like]": the server in a runc container under that seccomp profile (io_uring refused), host network, pinned the same way. ' : '') +
    (report.plugin.base ? `"@base": the plugin of ${report.plugin.base.source}. ` : '') +
    `wrk -t${report.settings.wrkThreads ?? 1} -cC -d${report.settings.duration}s, ${report.settings.rounds} rounds alternating the servers (after a ${report.settings.warmup} s wrk warm-up each), median of the rounds. ` +
    'GB = 1e9 bytes, counted as completed requests x body size. CPU s/GB: server utime+stime per GB sent; client: wrk\'s. ' +
    '"x ref": ratio to the peer in the same case: fastify-send (reply.send(buffer)) for buffers, nginx sendfile for files ' +
    '(GB/s: higher is better; CPU s/GB: lower is better); "x static": ratio to @fastify/static for files. ' +
    'user/sys us/req: the server\'s user and system CPU per response, medians. RSS: peak (VmHWM, reset before each round) of the server. zc/send/splice/sendfile/stream: share of the body bytes the plugin sent with SEND_ZC, ring SEND, ring SPLICE (files), sendfile on the event loop (the cached head of a file), Fastify\'s path. ' +
    'copied: share of SEND_ZC notifications that reported the kernel copied (always 100% on loopback). ' +
    'Every measured run was preceded by one GET /body checked against the body\'s SHA-256. ' +
    'other CPU: the largest share of the machine (all cores) busy in a round outside the server and wrk: other processes, a noise indicator.' +
    ' nginx, @fastify/static and the plugin\'s file route serve the same bytes from one file (page cache warm: written and read just before).' +
    ' fastify-sendfile is a ceiling, not a peer: Fastify, headers corked, then sendfile(2) on the main thread (bench/native/sendfile.c), the least a Fastify handler can do per file response.', '')
  lines.push('| body | conns | server | GB/s | min-max | x ref | x static | req/s | CPU s/GB | x ref | user/sys us/req | client CPU s/GB | RSS MiB | p99 ms | zc/send/splice/sendfile/stream | copied | errors | other CPU |')
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const c of report.cases) {
    if (c.aborted !== undefined) {
      lines.push(`| ${c.sizeLabel} | ${c.conns} | **ABORTED** | ${c.aborted.split('\n')[0].replace(/\|/g, '/')} |||||||||||||| |`)
      continue
    }
    for (const s of c.servers) {
      const u = s.summary
      const share = u.share === undefined ? '' : u.share === null ? '-' : `${pct(u.share.sendZc)}/${pct(u.share.send)}/${pct(u.share.splice)}/${pct(u.share.sendfile ?? 0)}/${pct(u.share.stream)}`
      const errors = u.socketErrors + u.non2xx + (u.serverErrors ?? 0)
      lines.push(`| ${c.sizeLabel} | ${c.conns} | ${s.label} | ${fmt(u.gbps, 3)} | ${fmt(u.gbpsMin, 3)}-${fmt(u.gbpsMax, 3)} | ${fmt(s.ratio?.gbps)} | ${fmt(s.ratioStatic?.gbps)} | ` +
        `${fmt(u.reqPerSec, 0)} | ${fmt(u.serverCpuPerGB, 3)} | ${fmt(s.ratio?.serverCpuPerGB)} | ${fmt(u.serverUserUsPerReq, 0)}/${fmt(u.serverSysUsPerReq, 0)} | ${fmt(u.clientCpuPerGB, 3)} | ${fmt(u.peakRssMiB, 0)} | ${fmt(u.latencyP99ms, 1)} | ` +
        `${share} | ${u.copiedShare === undefined ? '' : pct(u.copiedShare)} | ${errors} | ${pct(u.otherCpuShareMax)} |`)
    }
  }
  lines.push(...comparisonMarkdown(report))
  if (report.observations.length > 0) {
    lines.push('', '## Observations', '')
    for (const o of report.observations) lines.push(`- ${o.replace(/\n/g, ' ')}`)
  }
  return lines.join('\n') + '\n'
}

// ---------------------------------------------------------------------------------------
// Chart: one SVG per connection count, throughput (left) and server CPU per GB (right)
// against body size on a log scale, one line per server; file servers dashed.

const COLORS = { 'fastify-send': '#555555', 'zc-auto': '#d62728', 'zc-auto-classic': '#e377c2', 'zc-file-classic': '#17becf', 'zc-send_zc': '#ff7f0e', 'zc-send': '#bcbd22', 'zc-stream': '#8c564b', nginx: '#1f77b4', 'zc-file': '#2ca02c', 'fastify-static': '#9467bd', 'fastify-sendfile': '#7f7f7f' }

function escapeXml (s) {
  return String(s).replace(/[<>&"]/g, ch => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[ch])
}

function charts (report) {
  const out = []
  for (const conns of report.settings.conns) {
    const cases = report.cases.filter(c => c.conns === conns && c.aborted === undefined)
    if (cases.length === 0) continue
    // series key: source + label (nginx appears in both: its buffer line and its file line)
    const series = new Map()
    for (const c of cases) {
      for (const s of c.servers) {
        if (s.summary === undefined) continue
        const key = `${s.label}${c.source === 'file' ? ' (file)' : ''}`
        if (!series.has(key)) series.set(key, { key, kind: s.kind, file: c.source === 'file', points: [] })
        series.get(key).points.push({ size: c.size, gbps: s.summary.gbps, cpu: s.summary.serverCpuPerGB })
      }
    }
    const sizes = cases.map(c => c.size)
    const xMin = Math.log2(Math.min(...sizes))
    const xMax = Math.log2(Math.max(...sizes))
    const all = [...series.values()].flatMap(s => s.points)
    const W = 460
    const H = 300
    const M = { l: 56, r: 12, t: 30, b: 44 }
    const panel = (x0, title, pick, yMax) => {
      const px = v => x0 + M.l + (xMax === xMin ? 0.5 : (Math.log2(v) - xMin) / (xMax - xMin)) * (W - M.l - M.r)
      const py = v => M.t + (1 - v / yMax) * (H - M.t - M.b)
      const parts = [`<text x="${x0 + W / 2}" y="18" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`]
      for (let i = 0; i <= 5; i++) {
        const v = (yMax * i) / 5
        parts.push(`<line x1="${x0 + M.l}" x2="${x0 + W - M.r}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`,
          `<text x="${x0 + M.l - 6}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(v < 1 ? 2 : 1)}</text>`)
      }
      for (const size of [...new Set(sizes)].sort((a, b) => a - b)) {
        parts.push(`<line x1="${px(size)}" x2="${px(size)}" y1="${M.t}" y2="${H - M.b}" stroke="#eee"/>`,
          `<text x="${px(size)}" y="${H - M.b + 16}" text-anchor="middle">${escapeXml(formatSize(size).replace(' ', ''))}</text>`)
      }
      parts.push(`<text x="${x0 + W / 2}" y="${H - 8}" text-anchor="middle">body size</text>`)
      for (const s of series.values()) {
        const pts = s.points.filter(p => Number.isFinite(pick(p))).sort((a, b) => a.size - b.size)
        const color = COLORS[s.kind] ?? '#000'
        const dash = s.file ? ' stroke-dasharray="6 3"' : ''
        parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts.map(p => `${px(p.size).toFixed(1)},${py(pick(p)).toFixed(1)}`).join(' ')}"/>`)
        for (const p of pts) parts.push(`<circle cx="${px(p.size).toFixed(1)}" cy="${py(pick(p)).toFixed(1)}" r="${s.file ? 4 : 3}" fill="${s.file ? '#fff' : color}" stroke="${color}" stroke-width="1.5"/>`)
      }
      return parts.join('\n')
    }
    const gbMax = Math.ceil(Math.max(...all.map(p => p.gbps)) * 1.1 * 2) / 2
    const cpus = all.map(p => p.cpu).filter(Number.isFinite).sort((a, b) => a - b)
    // CPU per GB explodes at tiny bodies (per-request cost): clip at the 80th percentile.
    const cpuMax = Math.ceil(cpus[Math.floor(cpus.length * 0.8)] * 1.2 * 10) / 10 || 1
    const legend = [...series.values()].map((s, i) => {
      const y = H + 18 + Math.floor(i / 3) * 18
      const x = 20 + (i % 3) * 300
      const color = COLORS[s.kind] ?? '#000'
      return `<line x1="${x}" x2="${x + 26}" y1="${y - 4}" y2="${y - 4}" stroke="${color}" stroke-width="2"${s.file ? ' stroke-dasharray="6 3"' : ''}/><text x="${x + 32}" y="${y}">${escapeXml(s.key)}</text>`
    })
    const height = H + 24 + Math.ceil(series.size / 3) * 18
    const m = report.machine
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${height + 20}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="#fff"/>
${panel(0, `GB/s, ${conns} connection${conns === 1 ? '' : 's'} (higher is better)`, p => p.gbps, gbMax)}
${panel(W, `server CPU s per GB (lower is better; clipped at ${cpuMax})`, p => Math.min(p.cpu, cpuMax), cpuMax)}
${legend.join('\n')}
<text x="20" y="${height + 12}" fill="#666">${escapeXml(`${m.date.slice(0, 10)}, kernel ${m.kernel}, ${m.cpuModel}, ${m.cores} cores; wrk -t${report.settings.wrkThreads ?? 1} -c${conns}, median of ${report.settings.rounds} x ${report.settings.duration} s; loopback`)}</text>
</svg>
`
    out.push([conns, svg])
  }
  return out
}

function machineInfo (tools) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8')
  const version = (cmd, args) => {
    const r = spawnSync(cmd, args)
    return (r.stdout.toString() + r.stderr.toString()).split('\n')[0].trim()
  }
  let git = 'unknown'
  try {
    git = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'plugin', 'native'], { cwd: ROOT }).toString().trim()
    if (dirty !== '') git += ' (plugin/native modified)'
  } catch {}
  const limits = fs.readFileSync('/proc/self/limits', 'utf8')
  return {
    date: new Date().toISOString(),
    kernel: execFileSync('uname', ['-r']).toString().trim(),
    cpuModel: (/^model name\s*:\s*(.*)$/m.exec(cpuinfo) ?? [])[1] ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    wrk: version(tools.wrk, ['-v']).replace(/ Copyright.*/, ''),
    nginx: tools.nginx === null ? null : version(tools.nginx, ['-v']),
    uid: process.getuid(),
    memlock: (/^Max locked memory\s+(\S+)/m.exec(limits) ?? [])[1],
    clkTck: CLK_TCK,
    git
  }
}

function stamp (date) {
  return date.replace(/:/g, '').replace(/\..*$/, '').replace('T', '-') // 2025-11-26-221530
}

async function main () {
  endServersOnSignal()
  const opts = parseArgs(process.argv.slice(2))
  if (!Number.isInteger(opts.wrkThreads) || opts.wrkThreads < 1) throw new Error('--wrk-threads needs a positive integer')
  wrkThreads = opts.wrkThreads
  const tools = ensureTools(opts.nginx)
  fs.mkdirSync(TMP, { recursive: true })
  const build = ensureBuilt(opts.useTree, opts.rev)
  if (opts.base !== undefined) baseBuild = ensureBuilt(false, opts.base, 'pkg-base')
  cpus = pinning(opts.pin)
  if (opts.ceiling && opts.files.length > 0) ceilingAddon = buildCeiling()
  if (build.sanitized) console.log('!! the addon under test is built with sanitizers: figures are not release figures')
  fs.mkdirSync(opts.out, { recursive: true })
  const machine = machineInfo(tools)
  ctxBuild = build
  const ctx = { opts, tools, build, observations: [], failed: false, noisyRounds: 0 }
  const report = {
    mode: opts.mode,
    machine,
    plugin: { source: build.source, commit: build.commit ?? null, sanitized: build.sanitized, uncommittedDiff: build.diff ?? null, base: baseBuild === null ? null : { source: baseBuild.source, commit: baseBuild.commit, sanitized: baseBuild.sanitized } },
    settings: { sizes: opts.sizes, files: opts.files, conns: opts.conns, rounds: opts.rounds, duration: opts.duration, warmup: opts.warmup, nginx: opts.nginx, ceiling: ceilingAddon !== null, pin: cpus, container: opts.container, quietWait: opts.quietWait, wrkThreads: opts.wrkThreads, wrk: `wrk -t${opts.wrkThreads} -cC -dDs --latency --timeout 30s` },
    cases: [],
    observations: ctx.observations
  }
  const base = path.join(opts.out, `${stamp(machine.date)}-${opts.mode}`)
  const save = () => {
    fs.writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n')
    fs.writeFileSync(`${base}.md`, markdown(report))
    for (const [conns, svg] of charts(report)) fs.writeFileSync(`${base}-c${conns}.svg`, svg)
  }
  console.log(`# ${opts.mode}: ${opts.sizes.map(formatSize).join(', ')} buffers, ${opts.files.map(formatSize).join(', ')} files x ${opts.conns.join(',')} connections, ${opts.rounds} rounds of ${opts.duration} s; results -> ${path.relative(process.cwd(), base)}.{json,md}`)
  const t0 = Date.now()
  for (const [source, sizes] of [['buffer', opts.sizes], ['file', opts.files]]) {
    for (const size of sizes) {
      for (const conns of opts.conns) {
        report.cases.push(await runCase(ctx, size, conns, source))
        save() // partial results survive an interrupted run
      }
    }
  }
  report.elapsedSeconds = Math.round((Date.now() - t0) / 1000)
  report.noisyRounds = ctx.noisyRounds
  if (ctx.noisyRounds > 0) ctx.observations.push(`${ctx.noisyRounds} measured runs started while the machine was more than 15% busy with other work after waiting ${opts.quietWait} s: see "other CPU"`)
  save()
  console.log('\n' + markdown(report))
  console.log(`wrote ${path.relative(process.cwd(), base)}.json and .md in ${report.elapsedSeconds} s`)
  if (ctx.failed) {
    console.log('!!!!!!!! at least one case was ABORTED: see above')
    process.exitCode = 1
  }
}

// What bench/static.js shares with this benchmark.
module.exports = { ensureTools, ensureBuilt, stopServer, cpuTimes, statusKiB, resetPeak, machineTicks, parseWrk, freePort, waitForPort, waitQuiet, machineInfo, stamp, tail, median, CLK_TCK, TMP, RESULTS }

if (require.main === module) {
  main().catch(err => {
    console.error(err.stack)
    process.exit(1)
  })
}
