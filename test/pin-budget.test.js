'use strict'
// pinBudget is the process's: the main thread and a worker, each with its own ring and the
// same budget, never pin more than that budget together (each alone would fill it). The first
// test reads the plugin's own count (the one its reservation checks); the second has the
// kernel count: a reservation that reserves nothing passes the first and fails the second.
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

// The kernel's own count, not the plugin's: the server runs as a user of its own (no other
// test pins as it) with RLIMIT_MEMLOCK a little above the budget, so the kernel refuses to
// pin (ENOMEM/ENOBUFS, counted as fallback 'enomem') as soon as the process pins past the
// budget by more than the margin. The rings are charged to it too (84 KiB each).
test('the budget holds by the kernel\'s count: two environments, paused readers, RLIMIT_MEMLOCK at the budget and 1 MiB; the budget is contended, the kernel never refuses', async (t) => {
  const { spawnFixture, getJson, seeded } = require('./helpers')
  const SIZE = 16 * MiB
  const LIMIT = BUDGET + MiB
  const server = await spawnFixture(t, 'pin-app', { uid: 61234, seed: 'pin-budget', size: SIZE, options: OPTIONS }, {
    wrap: ['prlimit', `--memlock=${LIMIT}:${LIMIT}`]
  })
  t.equal(server.state, 'READY', server.message)
  if (process.getuid() === 0) t.equal(server.uid, 61234, 'the server runs as a user of its own')
  const body = seeded('pin-budget', 0, SIZE)
  const ports = [server.port, server.workerPort]
  const readers = [...Array(4)].flatMap(() => ports.map((port) => rateReader(port, '/body/0', body, { rate: -1 })))
  t.teardown(() => { for (const r of readers) r.socket.destroy() })
  let most = 0
  const until = Date.now() + 1500
  while (Date.now() < until) {
    most = Math.max(most, (await getJson(server.port, '/stats')).inFlight.processPinnedBytes)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  for (const r of readers) r.setRate(0)
  const results = await Promise.all(readers.map((r) => r.done))
  t.ok(results.every((r) => r.exact && r.complete), 'every body exact')
  let stats
  t.ok(await eventually(async () => {
    stats = await Promise.all(ports.map((port) => getJson(port, '/stats')))
    return stats.every((s) => s.responses.sendZc + s.responses.send === 4)
  }), 'every body counted')
  const fallback = (reason) => stats.reduce((n, s) => n + (s.fallbacks[reason] ?? 0), 0)
  t.ok(most > 0, `pages were pinned (up to ${most} bytes by the plugin's count)`)
  t.ok(fallback('pin-budget') > 0, `the budget was contended: ${fallback('pin-budget')} of 8 bodies sent a part by copy for it`)
  t.equal(fallback('enomem'), 0, `the kernel never refused to pin: the process stayed within ${LIMIT} bytes (fallbacks ${JSON.stringify(stats.map((s) => s.fallbacks))})`)
  t.ok(stats.every((s) => s.inFlight.pinnedBytes === 0), 'nothing pinned at the end')
})
