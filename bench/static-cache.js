'use strict'
// What fastify-zero-copy/static's open-file cache saves on a hot file: requests per second and
// server CPU per request, cache on against off, the same run, pinned as shared/BENCH.md asks
// (servers on CPU 0, wrk on CPU 1), rounds alternating on/off, median of each and the ratio.
//
//   node bench/static-cache.js [--sizes 4k,20k] [--rounds 3] [--duration 3] [--conns 4]
//
// Each server is this checkout's dist/ with `openFileCache` true or false; one file per size
// under a fresh root (page cache warm: read once, and every measured run is preceded by a
// request whose body is checked by SHA-256). Prints one Markdown table; ~1 minute by default.
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { spawn, execFileSync } = require('node:child_process')

const args = { sizes: '4k,20k', rounds: '3', duration: '3', conns: '4', warmup: '1' }
for (let i = 2; i < process.argv.length; i++) {
  const m = /^--(sizes|rounds|duration|conns|warmup)$/.exec(process.argv[i])
  if (m === null) throw new Error(`unknown argument ${process.argv[i]}`)
  args[m[1]] = process.argv[++i]
}
const sizes = args.sizes.split(',').map((s) => {
  const m = /^(\d+)([km]?)$/i.exec(s)
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 * 1024 })[m[2].toLowerCase()]
})

const SERVER = `
const app = require('fastify')({ logger: false })
app.register(require(process.env.PLUGIN), { root: process.env.ROOT, prefix: '/assets/', openFileCache: process.env.CACHE === 'on' })
app.listen({ port: 0, host: '127.0.0.1' }).then(() => console.log('READY ' + app.server.address().port))
`

function startServer (root, cache) {
  const child = spawn('taskset', ['-c', '0', process.execPath, '-e', SERVER], {
    env: { ...process.env, ROOT: root, CACHE: cache, PLUGIN: path.join(__dirname, '..', 'dist', 'plugin', 'static', 'index.js') },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const m = /READY (\d+)/.exec(out)
      if (m) resolve({ child, port: Number(m[1]), cache })
    })
    child.on('exit', (code) => reject(new Error(`server (${cache}) exited ${code}`)))
  })
}

function cpuTicks (pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime (fields 14, 15)
}

function check (port, name, sha) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: `/assets/${name}` }, (res) => {
      const h = crypto.createHash('sha256')
      res.on('data', (d) => h.update(d))
      res.on('end', () => (h.digest('hex') === sha ? resolve() : reject(new Error(`${name}: wrong bytes`))))
    }).on('error', reject)
  })
}

function wrk (port, name, seconds) {
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', `-c${args.conns}`, `-d${seconds}s`, `http://127.0.0.1:${port}/assets/${name}`], { encoding: 'utf8' })
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1])
  const errors = /Non-2xx|Socket errors/.test(out)
  if (errors) throw new Error(`wrk reported errors:\n${out}`)
  return rps
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-bench-cache-'))
  const files = sizes.map((size) => {
    const name = `hot-${size}.bin`
    const body = crypto.randomBytes(size)
    fs.writeFileSync(path.join(root, name), body)
    fs.readFileSync(path.join(root, name)) // warm
    return { size, name, sha: crypto.createHash('sha256').update(body).digest('hex') }
  })
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ')
  const loadBefore = load()
  const servers = { on: await startServer(root, 'on'), off: await startServer(root, 'off') }
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }))
  const rows = []
  try {
    for (const f of files) {
      const r = { on: [], off: [], cpuOn: [], cpuOff: [] }
      for (let round = 0; round < Number(args.rounds); round++) {
        for (const which of round % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
          const s = servers[which]
          await check(s.port, f.name, f.sha)
          wrk(s.port, f.name, Number(args.warmup))
          const before = cpuTicks(s.child.pid)
          const rps = wrk(s.port, f.name, Number(args.duration))
          const cpu = (cpuTicks(s.child.pid) - before) / hz
          r[which].push(rps)
          r[which === 'on' ? 'cpuOn' : 'cpuOff'].push((cpu / (rps * Number(args.duration))) * 1e6)
        }
      }
      rows.push({ f, r })
    }
  } finally {
    for (const s of Object.values(servers)) s.child.kill('SIGTERM')
    fs.rmSync(root, { recursive: true, force: true })
  }
  const loadAfter = load()
  const fmt = (xs) => `${Math.round(median(xs))} (${Math.round(Math.min(...xs))}-${Math.round(Math.max(...xs))})`
  console.log(`wrk -t1 -c${args.conns} -d${args.duration}s (+${args.warmup}s warm-up), ${args.rounds} rounds alternating, server on CPU 0, wrk on CPU 1; load average before ${loadBefore}, after ${loadAfter}\n`)
  console.log('| file | cache off req/s, median (range) | cache on req/s | ratio on/off (per-round range) | server CPU us/req off | on | ratio on/off (per-round range) |')
  console.log('|---|---|---|---|---|---|---|')
  const range = (on, off) => {
    const ratios = on.map((v, i) => v / off[i])
    return `${(median(on) / median(off)).toFixed(3)} (${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)})`
  }
  const us = (xs) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`
  for (const { f, r } of rows) {
    console.log(`| ${f.size / 1024} KiB | ${fmt(r.off)} | ${fmt(r.on)} | ${range(r.on, r.off)} | ${us(r.cpuOff)} | ${us(r.cpuOn)} | ${range(r.cpuOn, r.cpuOff)} |`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
