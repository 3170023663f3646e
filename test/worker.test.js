'use strict'
const crypto = require('node:crypto')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { test } = require('tap')
const { MiB, sha256, startServer, request, eventually } = require('./helpers')

test('a server in a worker thread serves through its own ring', async (t) => {
  const mainBody = crypto.randomBytes(2 * MiB)
  const { app, port: mainPort } = await startServer(t, {
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(mainBody)) }
  })
  const worker = new Worker(path.join(__dirname, 'fixtures', 'worker-server.js'))
  t.teardown(() => worker.terminate())
  const ready = await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  t.equal(ready.capabilities.mode, 'send_zc')
  for (let i = 0; i < 3; i++) {
    const res = await request(ready.port, `/body/${i}`, { agent: false })
    t.equal(res.sha, ready.shas[i], `worker body ${i} exact`)
  }
  const workerStats = await new Promise((resolve) => {
    worker.once('message', resolve)
    worker.postMessage('stats')
  })
  t.equal(workerStats.responses.sendZc, 3, 'the worker carried its bodies with SEND_ZC')
  t.ok(workerStats.notifications.total > 0, 'and reaped notifications on its own ring')
  t.equal(app.zeroCopy.stats().notifications.total, 0, 'the main thread\'s ring saw none of them')
  t.equal((await request(mainPort, '/', { agent: false })).sha, sha256(mainBody), 'the main thread serves too')
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 1))
  await worker.terminate()
  t.equal((await request(mainPort, '/', { agent: false })).sha, sha256(mainBody), 'and goes on after the worker ended')
})
