'use strict'
// The server under torture, in a process of its own so that a death is seen (exit code,
// signal). Started by scripts/torture.js with an IPC channel and env TORTURE = { seed, dir }.
//
// Three kinds of server in the one process, all serving at once:
//   a   the main app: buffers (1 KiB to 256 MiB), files by { path }, fastify-zero-copy/static
//       on dir/root (extensions, index, preCompressed, a JSON listing, allowedPath, setHeaders,
//       onFile), reply.sendFile with a per-call root, a handler that sends without returning,
//       and /ping. Never closed before the end.
//   b   a second app (static and buffers, forceCloseConnections) that the driver closes
//       mid-load and starts again on a new port.
//   w0, w1  worker threads with their own app and ring, terminated mid-transfer and restarted.
// allowedPath and setHeaders throw when a request asks for it (header x-torture-throw), onFile
// for any file beneath boom/, and allowedPath decodes the name as applications do (a stray '%'
// throws).
//
// Messages from the driver: { cmd, id, ... }; each is answered with { id, ... }.
const fs = require('node:fs')
const path = require('node:path')
const { monitorEventLoopDelay } = require('node:perf_hooks')
const { Worker } = require('node:worker_threads')
const Fastify = require('fastify')
const zeroCopy = require(path.join(__dirname, '..', '..'))
const serveStatic = require('fastify-zero-copy/static')
const { bytes, MAIN_BUFFERS, FILES, DENY, contentName } = require('./content')

const { seed, dir } = JSON.parse(process.env.TORTURE)
const root = path.join(dir, 'root')
const dlRoot = path.join(dir, 'dl')
const buffers = MAIN_BUFFERS.map((n, i) => bytes(seed, contentName('main', String(i)), 0, n))
const servable = new Set(FILES.filter((f) => f.kind !== 'refused').map((f) => f.rel))
const throws = { allowedPath: 0, setHeaders: 0, onFile: 0 }
const delay = monitorEventLoopDelay({ resolution: 10 })

function staticOptions () {
  return {
    root,
    prefix: '/static/',
    extensions: ['html'],
    index: ['index.html'],
    preCompressed: true,
    list: { format: 'json', names: ['/'] }, // a directory named with its slash lists when it has no index
    allowedPath: (name, r, request) => {
      if (request.headers['x-torture-throw'] === 'allowedPath') {
        throws.allowedPath++
        throw new Error('allowedPath threw (asked by the request)')
      }
      let decoded
      try {
        decoded = decodeURIComponent(name)
      } catch (err) {
        throws.allowedPath++
        throw err
      }
      return !DENY.some((d) => decoded === d || decoded.startsWith(d + '/'))
    },
    setHeaders: (reply, file) => {
      if (reply.request.headers['x-torture-throw'] === 'setHeaders') {
        throws.setHeaders++
        throw new Error('setHeaders threw (asked by the request)')
      }
      // Which file was opened, for the driver's check that no refused name was served.
      reply.header('x-torture-path', encodeURIComponent(path.relative(root, file)))
    },
    // onFile is not given the request: it rejects every file beneath boom/.
    onFile: async (file) => {
      if (path.relative(root, file).startsWith('boom/')) {
        throws.onFile++
        throw new Error('onFile rejected a file beneath boom/')
      }
    }
  }
}

async function startA () {
  const app = Fastify({ logger: false, keepAliveTimeout: 2000, requestTimeout: 10000, connectionTimeout: 15000 })
  await app.register(zeroCopy, { whenCopied: 'keep' })
  await app.register(serveStatic, staticOptions())
  app.get('/ping', (req, reply) => reply.send('pong'))
  app.get('/buf/:i', (req, reply) => {
    const body = buffers[Number(req.params.i)]
    return body === undefined ? reply.code(404).send() : reply.sendZeroCopy(body)
  })
  app.get('/file/*', (req, reply) => {
    const rel = req.params['*']
    return servable.has(rel) ? reply.sendZeroCopy({ path: path.join(root, rel) }) : reply.code(404).send()
  })
  app.get('/dl/*', (req, reply) => reply.sendFile(req.params['*'], dlRoot))
  // An application's mistake: sends, then returns a value of its own.
  app.get('/mistake/*', async (req, reply) => {
    const rel = req.params['*']
    if (!servable.has(rel)) return reply.code(404).send()
    reply.sendZeroCopy({ path: path.join(root, rel) })
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

async function startB () {
  const app = Fastify({ logger: false, keepAliveTimeout: 2000, forceCloseConnections: true })
  await app.register(zeroCopy)
  await app.register(serveStatic, staticOptions())
  app.get('/buf/:i', (req, reply) => {
    const i = Number(req.params.i)
    return i >= 0 && i < 6 ? reply.sendZeroCopy(buffers[i]) : reply.code(404).send()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

function startWorker () {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: { seed, root } })
    const failed = (err) => reject(new Error(`a worker failed to start: ${err && err.message}`))
    worker.once('error', failed)
    worker.once('message', (msg) => {
      worker.off('error', failed)
      worker.on('error', (err) => send({ type: 'note', text: `worker ${worker.threadId} error: ${err && err.stack}` }))
      resolve({ worker, port: msg.port })
    })
  })
}

function workerStats (w) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { w.worker.off('message', on); resolve(null) }, 2000)
    const on = (msg) => {
      if (!msg || !msg.stats) return
      clearTimeout(timer)
      w.worker.off('message', on)
      resolve(msg.stats)
    }
    w.worker.on('message', on)
    w.worker.postMessage('stats')
  })
}

function send (msg) {
  if (process.connected) process.send(msg)
}

/** Resolves with the time `promise` took, or rejects after `ms`. */
async function timed (promise, ms, what) {
  const t0 = Date.now()
  let timer
  const limit = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms) })
  try {
    await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
  return Date.now() - t0
}

let a
let b
const workers = []

function ports () {
  return { a: a.server.address().port, b: b ? b.server.address().port : null, w: workers.map((w) => (w ? w.port : null)) }
}

async function measure (gc) {
  if (gc && global.gc) {
    global.gc()
    await new Promise((resolve) => setImmediate(resolve))
    global.gc()
  }
  const entries = fs.readdirSync('/proc/self/fd')
  const fdTargets = []
  for (const n of entries) {
    try { fdTargets.push(`${n} -> ${fs.readlinkSync(`/proc/self/fd/${n}`)}`) } catch {} // readdir's own is gone
  }
  const sa = a.zeroCopy.stats().inFlight
  const sb = b ? b.zeroCopy.stats().inFlight : { sends: 0, pinnedBytes: 0 }
  const sw = await Promise.all(workers.map((w) => (w ? workerStats(w) : null)))
  const sends = sa.sends + sb.sends + sw.reduce((n, s) => n + (s ? s.inFlight.sends : 0), 0)
  return {
    fds: fdTargets.length,
    fdTargets,
    rss: process.memoryUsage().rss,
    pinned: sa.processPinnedBytes,
    sends,
    workerStatsMissing: sw.filter((s) => s === null).length,
    loopMaxMs: delay.max / 1e6,
    loopP99Ms: delay.percentile(99) / 1e6,
    throws: { ...throws }
  }
}

const handlers = {
  async measure (msg) { return measure(msg.gc) },
  async resetDelay () { delay.reset(); return {} },
  async terminate (msg) {
    const w = workers[msg.k]
    workers[msg.k] = null
    const ms = await timed(w.worker.terminate(), msg.bound, `worker.terminate() of a busy worker (thread ${w.worker.threadId})`)
    workers[msg.k] = await startWorker()
    return { ms, ports: ports() }
  },
  async restartB (msg) {
    const old = b
    b = null
    const ms = await timed(old.close(), msg.bound, 'fastify.close() of the second app under load')
    b = await startB()
    return { ms, ports: ports() }
  },
  async shutdown (msg) {
    delay.disable()
    const times = {}
    times.b = await timed(b.close(), msg.bound, 'fastify.close() of the second app at the end')
    b = null
    for (let k = 0; k < workers.length; k++) {
      times[`w${k}`] = await timed(workers[k].worker.terminate(), msg.bound, `worker.terminate() of worker ${k} at the end`)
      workers[k] = null
    }
    times.a = await timed(a.close(), msg.bound, 'fastify.close() of the main app at the end')
    return { times }
  }
}

process.on('message', async (msg) => {
  try {
    const result = await handlers[msg.cmd](msg)
    send({ id: msg.id, ok: true, ...result })
  } catch (err) {
    send({ id: msg.id, ok: false, error: err && err.message })
  }
  if (msg.cmd === 'shutdown') {
    shuttingDown = true
    process.disconnect() // from here nothing of ours keeps the loop alive
  }
})
// The driver went away without a shutdown (killed, crashed): do not outlive it.
let shuttingDown = false
process.on('disconnect', () => { if (!shuttingDown) process.exit(3) })

async function main () {
  a = await startA()
  b = await startB()
  for (let k = 0; k < 2; k++) workers.push(await startWorker())
  delay.enable()
  send({ type: 'ready', pid: process.pid, ports: ports(), capabilities: a.zeroCopy.capabilities })
}
main().catch((err) => {
  send({ type: 'failed', error: err && err.stack })
  process.exitCode = 1
  process.disconnect()
})
