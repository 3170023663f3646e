'use strict'
// pinBudget is the process's: the main thread and a worker, each with its own ring and the
// same budget, never pin more than that budget together (each alone would fill it).
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { test } = require('tap')
const { MiB, startServer, rateReader, eventually, inFlightIsZero } = require('./helpers')

const BUDGET = 4 * MiB
const OPTIONS = { pinBudget: BUDGET, whenCopied: 'keep', sliceSize: 256 * 1024, depth: 4 }
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const Fastify = require(workerData.fastify)
const app = Fastify()
const body = Buffer.alloc(16 * 1024 * 1024, 1)
app.register(require(workerData.plugin), workerData.options)
app.get('/', (req, reply) => reply.sendZeroCopy(body))
parentPort.on('message', () => parentPort.postMessage(app.zeroCopy.stats().inFlight.pinnedBytes))
app.listen({ port: 0, host: '127.0.0.1' }).then(() => parentPort.postMessage(app.server.address().port))
`

test('two environments share one pin budget', async (t) => {
  const body = Buffer.alloc(16 * MiB, 1)
  const { app, port } = await startServer(t, { options: OPTIONS, setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) } })
  const worker = new Worker(WORKER, { eval: true, workerData: { options: OPTIONS, fastify: require.resolve('fastify'), plugin: path.join(__dirname, '..') } })
  t.teardown(() => worker.terminate())
  const workerPort = await new Promise((resolve) => worker.once('message', resolve))
  const workerPinned = () => new Promise((resolve) => { worker.once('message', resolve); worker.postMessage('pinned') })
  // Paused clients: every slice the servers pin stays pinned until they read.
  const readers = [...Array(4)].flatMap(() => [rateReader(port, '/', body, { rate: -1 }), rateReader(workerPort, '/', body, { rate: -1 })])
  let most = 0
  let mainMost = 0
  let workerMost = 0
  const until = Date.now() + 1500
  while (Date.now() < until) {
    // The process's total, read at one instant (the two environments' own figures, read one
    // after the other, may count a slice released by one and pinned by the other twice).
    const inFlight = app.zeroCopy.stats().inFlight
    const theirs = await workerPinned()
    mainMost = Math.max(mainMost, inFlight.pinnedBytes)
    workerMost = Math.max(workerMost, theirs)
    most = Math.max(most, inFlight.processPinnedBytes)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  // Either environment alone would fill its budget with these paused readers (and, with a
  // budget each, both did: 8 MiB together). Shared, whichever pins first may take it all.
  t.ok(mainMost + workerMost > 0, `pages were pinned (main up to ${mainMost}, worker up to ${workerMost} bytes)`)
  t.ok(most <= BUDGET, `together at most ${most} bytes pinned, within the process's budget of ${BUDGET}`)
  for (const r of readers) r.setRate(0)
  const results = await Promise.all(readers.map((r) => r.done))
  t.ok(results.every((r) => r.exact && r.complete), 'every body exact')
  t.ok(await eventually(() => inFlightIsZero(app)), 'the main thread pins nothing')
  t.ok(await eventually(async () => (await workerPinned()) === 0), 'the worker pins nothing')
})
