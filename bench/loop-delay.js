'use strict'
// The event loop's delay while 4 clients download a 1 GiB file, on each engine, with the file
// in the page cache and with it evicted: what a server's other requests would wait for.
//
//   node bench/loop-delay.js [--rounds N] [--clients N] [--size BYTES] [--out DIR]
//
// One server process per engine and state (this checkout's plugin, FASTIFY_ZERO_COPY_ENGINE
// set), pinned on core 0; the clients are Node processes on core 1 that read as fast as they
// can and check the SHA-256. The server samples monitorEventLoopDelay (1 ms resolution) over
// each round and reports p50, p99 and max; 'evicted' drops the file's pages before each round
// (test/fixtures/page-cache.c), so the transfer reads the disk as it goes.
const { spawn, execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : fallback
}
const ROUNDS = Number(opt('--rounds', 3))
const CLIENTS = Number(opt('--clients', 4))
const SIZE = Number(opt('--size', 1024 * 1024 * 1024))
const OUT = opt('--out', path.join(__dirname, 'results'))
const ROOT = path.join(__dirname, '..')

const SERVER = `
const { monitorEventLoopDelay } = require('node:perf_hooks')
const Fastify = require(${JSON.stringify(require.resolve('fastify'))})
const app = Fastify()
app.register(require(${JSON.stringify(ROOT)}))
const h = monitorEventLoopDelay({ resolution: 1 })
h.enable()
app.get('/file', (req, reply) => reply.sendZeroCopy({ path: process.env.FILE }))
app.get('/delay', (req, reply) => {
  const out = { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, engine: app.zeroCopy.capabilities.engine, stats: app.zeroCopy.stats() }
  h.reset()
  reply.send(out)
})
app.listen({ port: 0, host: '127.0.0.1' }).then(() => console.log('READY ' + app.server.address().port))
`

const CLIENT = `
const http = require('node:http')
const crypto = require('node:crypto')
http.get({ host: '127.0.0.1', port: Number(process.argv[1]), path: '/file' }, (res) => {
  const hash = crypto.createHash('sha256')
  let n = 0
  res.on('data', (d) => { hash.update(d); n += d.length })
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, length: n, sha: hash.digest('hex') })))
})
`

function run (cmd, argv, env) {
  return spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
}

function lines (child) {
  return new Promise((resolve) => {
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.on('exit', () => resolve(out))
  })
}

function getJson (port, url) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve(JSON.parse(text)))
    }).on('error', reject)
  })
}

async function startServer (engine, file) {
  const child = run('taskset', ['-c', '0', process.execPath, '-e', SERVER], { FASTIFY_ZERO_COPY_ENGINE: engine, FILE: file })
  const port = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const m = /READY (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.on('exit', (code) => reject(new Error(`server exited ${code}`)))
  })
  return { child, port }
}

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-loop-'))
  const file = path.join(dir, 'big.bin')
  // Written in 8 MiB pieces of keystream, hashed as it goes.
  const hash = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'w')
  const cipher = crypto.createCipheriv('aes-256-ctr', crypto.randomBytes(32), Buffer.alloc(16))
  const piece = Buffer.alloc(8 * 1024 * 1024)
  for (let at = 0; at < SIZE; at += piece.length) {
    const chunk = cipher.update(piece.subarray(0, Math.min(piece.length, SIZE - at)))
    hash.update(chunk)
    fs.writeSync(fd, chunk)
  }
  fs.closeSync(fd)
  const sha = hash.digest('hex')
  const pageCache = path.join(dir, 'page-cache')
  execFileSync(process.env.CC || 'cc', ['-O2', '-o', pageCache, path.join(ROOT, 'test', 'fixtures', 'page-cache.c')])
  const results = []
  try {
    for (const state of ['cached', 'evicted']) {
      for (const engine of ['io_uring', 'classic']) {
        const server = await startServer(engine, file)
        try {
          for (let round = 0; round < ROUNDS; round++) {
            if (state === 'cached') execFileSync('cat', [file], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1 })
            else execFileSync(pageCache, ['evict', file])
            await getJson(server.port, '/delay') // resets the histogram
            const started = Date.now()
            const clients = Array.from({ length: CLIENTS }, () => lines(run('taskset', ['-c', '1', process.execPath, '-e', CLIENT, String(server.port)])))
            const outs = (await Promise.all(clients)).map((o) => JSON.parse(o))
            const seconds = (Date.now() - started) / 1000
            const delay = await getJson(server.port, '/delay')
            const exact = outs.every((o) => o.status === 200 && o.length === SIZE && o.sha === sha)
            const row = { state, engine: delay.engine, round, seconds, gbps: (CLIENTS * SIZE) / seconds / 1e9, p50: delay.p50, p99: delay.p99, max: delay.max, exact }
            results.push(row)
            console.log(`${state.padEnd(8)} ${String(delay.engine).padEnd(9)} round ${round}: ${row.gbps.toFixed(2)} GB/s, loop delay p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, max ${row.max.toFixed(2)} ms, exact ${exact}`)
          }
        } finally {
          server.child.kill('SIGKILL')
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
  fs.mkdirSync(OUT, { recursive: true })
  const md = ['| file | engine | GB/s (4 clients) | loop delay p99 ms | max ms | exact |', '|---|---|---|---|---|---|']
  for (const r of results) md.push(`| ${r.state} | ${r.engine} | ${r.gbps.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${r.exact} |`)
  const base = path.join(OUT, `${stamp}-loop-delay`)
  fs.writeFileSync(base + '.json', JSON.stringify({ size: SIZE, clients: CLIENTS, rounds: ROUNDS, load: os.loadavg(), results }, null, 2))
  fs.writeFileSync(base + '.md', md.join('\n') + '\n')
  console.log(md.join('\n'))
  console.log(`written ${base}.md`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
