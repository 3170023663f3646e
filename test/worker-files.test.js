'use strict'
// worker.terminate() while a worker's file responses are in flight: the environment's teardown
// closes every descriptor the plugin opened for it (a terminated worker never emits the
// responses' 'close'), so a pool that recycles workers never runs out of descriptors.
const fs = require('node:fs')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { test } = require('tap')
const { MiB, rateReader, eventually, fdsUnder, tempDir, after } = require('./helpers')
const { seeded } = require('./fixtures/bodies')

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const Fastify = require(workerData.fastify)
const zeroCopy = require(workerData.plugin)
const app = Fastify()
app.register(zeroCopy, workerData.options)
app.get('/file/:name', (req, reply) => reply.sendZeroCopy({ path: workerData.dir + '/' + req.params.name }))
app.listen({ port: 0, host: '127.0.0.1' }).then(() => parentPort.postMessage({ port: app.server.address().port, mode: app.zeroCopy.capabilities.mode }))
`

function startWorker (t, dir, options) {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { dir, options, fastify: require.resolve('fastify'), plugin: path.join(__dirname, '..') }
  })
  t.teardown(() => worker.terminate())
  return new Promise((resolve, reject) => {
    worker.once('message', (ready) => resolve({ worker, ...ready }))
    worker.once('error', reject)
  })
}

for (const [name, options] of [['native', {}], ['ordinary path', { mode: 'stream' }]]) {
  test(`${name}: terminating workers with file responses in flight leaves no descriptor open`, async (t) => {
    const dir = tempDir(t)
    const size = 48 * MiB
    fs.writeFileSync(path.join(dir, 'big.bin'), seeded('wt', 0, size))
    const expected = fs.readFileSync(path.join(dir, 'big.bin'))
    const ROUNDS = 6
    const CLIENTS = 4
    for (let round = 0; round < ROUNDS; round++) {
      const w = await startWorker(t, dir, options)
      if (name === 'native') t.equal(w.mode, 'send_zc', `round ${round}: the worker has a ring`)
      const slow = Array.from({ length: CLIENTS }, () => rateReader(w.port, '/file/big.bin', expected, { rate: 256 * 1024 }))
      t.ok(await eventually(() => slow.every((r) => r.received() > 0), 10000), `round ${round}: ${CLIENTS} file responses in flight`)
      t.ok(fdsUnder(dir) >= CLIENTS, `round ${round}: ${fdsUnder(dir)} descriptors of the file open`)
      await w.worker.terminate()
      for (const r of slow) r.setRate(0) // read what the kernel still holds, then see the close
      const ended = await Promise.race([Promise.all(slow.map((r) => r.done)), after(10000, null)])
      t.ok(ended !== null, `round ${round}: the clients' connections closed`)
      for (const res of ended || []) t.ok(res.firstBad < 0 && !res.complete, `round ${round}: a true prefix (${res.bodyLength} bytes)`)
      const closed = await eventually(() => fdsUnder(dir) === 0, 1500)
      t.ok(closed, `round ${round}: no descriptor of the file left 1.5 s after terminate (${fdsUnder(dir)} open)`)
    }
  })
}
