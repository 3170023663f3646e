'use strict'
// Two worker threads, each a Fastify server with its own ring. One is terminated while its
// native transfers are in flight (blocked on slow clients), round after round: the process,
// the main thread's server and the other worker go on serving exact bytes, the terminated
// worker's clients see true prefixes and a closed connection, and the process's fds return.
const http = require('node:http')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { test } = require('tap')
const { KiB, MiB, sha256, startServer, request, rateReader, fetchChecked, openFds, steadyFds, eventually, inFlightIsZero, seeded, after } = require('./helpers')

const sizes = [24 * MiB + 3, 4 * MiB + 1, 256 * KiB - 5]
const ROUNDS = 4
const SLOW_CLIENTS = 4

function startWorker (t, seed) {
  const worker = new Worker(path.join(__dirname, 'fixtures', 'worker-app.js'), { workerData: { sizes, seed, options: { whenCopied: 'keep' } } })
  t.teardown(() => worker.terminate())
  return new Promise((resolve, reject) => {
    worker.once('message', (ready) => resolve({ worker, ...ready, bodies: sizes.map((n, i) => seeded(seed, i, n)) }))
    worker.once('error', reject)
  })
}

function statsOf (w) {
  return new Promise((resolve) => {
    const onMessage = (msg) => { if (msg.stats) { w.worker.off('message', onMessage); resolve(msg.stats) } }
    w.worker.on('message', onMessage)
    w.worker.postMessage('stats')
  })
}

test('terminating a worker mid-transfer leaves the process, the main thread and the other worker serving', async (t) => {
  const mainBody = seeded('main', 0, 3 * MiB)
  const { app, port: mainPort } = await startServer(t, {
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(mainBody)) }
  })
  const b = await startWorker(t, 'B')
  t.equal(b.capabilities.mode, 'send_zc', 'worker B has a ring of its own')
  // Warm up B and the main thread, so that the baseline holds their rings and eventfds.
  for (let i = 0; i < sizes.length; i++) t.equal((await fetchChecked(b.port, `/body/${i}`, b.bodies[i])).exact, true)
  t.equal((await request(mainPort, '/')).sha, sha256(mainBody))
  await eventually(async () => { const s = await statsOf(b); return s.inFlight.sends === 0 && inFlightIsZero(app) })
  const baseline = await steadyFds()

  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.teardown(() => agent.destroy())
  let bExact = 0
  let prefixes = 0
  for (let round = 0; round < ROUNDS; round++) {
    const a = await startWorker(t, `A${round}`)
    t.not(a.threadId, b.threadId)
    // Slow clients on A: its transfers of 24 MiB are in flight, blocked on their sockets.
    const slow = Array.from({ length: SLOW_CLIENTS }, () => rateReader(a.port, '/body/0', a.bodies[0], { rate: 512 * KiB }))
    // Meanwhile B serves all three bodies in a loop over four keep-alive connections.
    let stop = false
    const lanes = Array.from({ length: 4 }, async (_, lane) => {
      const bad = []
      for (let k = lane; !stop; k++) {
        const i = k % sizes.length
        const res = await fetchChecked(b.port, `/body/${i}`, b.bodies[i], { agent }).catch((err) => ({ length: err.message, firstBad: -1 }))
        if (res.exact && res.sha === sha256(b.bodies[i])) bExact++
        else bad.push(`B body ${i}: ${res.length} bytes, first bad ${res.firstBad}`)
      }
      return bad
    })
    t.ok(await eventually(() => slow.every((r) => r.received() > 256 * KiB), 10000), `round ${round}: every slow client of A has part of its body`)
    const aStats = await statsOf(a)
    t.ok(aStats.inFlight.sends > 0, `round ${round}: A has ${aStats.inFlight.sends} sends in flight on its ring`)
    const started = Date.now()
    const code = await a.worker.terminate()
    t.equal(code, 1, `round ${round}: A terminated in ${Date.now() - started} ms`)
    const cut = await Promise.race([Promise.all(slow.map((r) => r.done)), after(10000, null)])
    t.ok(cut !== null, `round ${round}: every connection of A was closed`)
    for (const res of cut || []) {
      if (res.firstBad < 0 && !res.complete) prefixes++
      else t.fail(`round ${round}: an A client got ${res.bodyLength} bytes, complete ${res.complete}, first bad ${res.firstBad}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
    stop = true
    for (const bad of await Promise.all(lanes)) t.same(bad, [], `round ${round}: B's bodies exact while A ended`)
    t.equal((await request(mainPort, '/')).sha, sha256(mainBody), `round ${round}: the main thread serves`)
  }
  t.equal(prefixes, ROUNDS * SLOW_CLIENTS, `${prefixes} clients of terminated workers saw true prefixes`)
  t.ok(bExact > ROUNDS * 4, `${bExact} bodies from B, all exact`)
  agent.destroy()
  t.ok(await eventually(async () => (await statsOf(b)).inFlight.sends === 0, 5000), 'B owes nothing')
  const bStats = await statsOf(b)
  t.ok(bStats.notifications.total > 0 && bStats.inFlight.pinnedBytes === 0, `B reaped ${bStats.notifications.total} notifications, pins nothing`)
  const mainBytes = () => app.zeroCopy.stats().bytes.sendZc + app.zeroCopy.stats().bytes.send
  t.ok(await eventually(() => mainBytes() === (ROUNDS + 1) * mainBody.length), `the main thread's ring carried its own ${ROUNDS + 1} bodies and nothing else (${mainBytes()} bytes)`)
  t.ok(await eventually(() => openFds() <= baseline, 10000), `the process's fds are back to ${baseline} (now ${openFds()})`)
  await b.worker.terminate()
  t.equal((await request(mainPort, '/')).sha, sha256(mainBody), 'the main thread serves after both workers ended')
})
