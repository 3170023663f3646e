'use strict'
// A worker thread of the torture server: its own Fastify and its own registration of the
// plugin (its own ring), serving buffers and files while the main thread terminates it.
// workerData: { seed, root }. Posts { port } when listening; answers 'stats'.
const path = require('node:path')
const { parentPort, workerData } = require('node:worker_threads')
const Fastify = require('fastify')
const zeroCopy = require(path.join(__dirname, '..', '..'))
const { bytes, WORKER_BUFFERS, FILES, contentName } = require('./content')

const { seed, root } = workerData
const buffers = WORKER_BUFFERS.map((n, i) => bytes(seed, contentName('worker', String(i)), 0, n))
const stable = new Set(FILES.filter((f) => f.kind === 'stable').map((f) => f.rel))

async function main () {
  const app = Fastify({ logger: false, keepAliveTimeout: 2000 })
  await app.register(zeroCopy)
  app.get('/buf/:i', (req, reply) => {
    const body = buffers[Number(req.params.i)]
    return body === undefined ? reply.code(404).send() : reply.sendZeroCopy(body)
  })
  app.get('/file/*', (req, reply) => {
    const rel = req.params['*']
    return stable.has(rel) ? reply.sendZeroCopy({ path: path.join(root, rel) }) : reply.code(404).send()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  parentPort.on('message', (msg) => {
    if (msg === 'stats') parentPort.postMessage({ stats: app.zeroCopy.stats() })
  })
  parentPort.postMessage({ port: app.server.address().port })
}
main()
