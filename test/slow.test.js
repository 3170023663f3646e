'use strict'
// Slow clients: readers at 64 KiB/s hold native transfers in flight (their bodies are far
// larger than what the socket buffers absorb) while fast clients go on at full speed through
// the same ring; and Fastify's timeouts (connectionTimeout, keepAliveTimeout, a handler's
// reply.raw.setTimeout) behave as documented for native transfers.
//
// Timeouts here are 2.5 s: on loopback the MSS is 64 KiB, so a reader at 64 KiB/s opens its
// receive window (and the server sees progress) about once a second; the plugin fires a
// socket timeout only after a whole period without progress.
const http = require('node:http')
const { test } = require('tap')
const { KiB, MiB, sha256, startServer, rateReader, fetchChecked, eventually, inFlightIsZero, seeded, sleep } = require('./helpers')

const RATE = 64 * KiB

test('readers at 64 KiB/s hold their transfers while fast clients proceed at full speed', async (t) => {
  const slowBodies = Array.from({ length: 8 }, (_, i) => seeded('slow', i, 8 * MiB + i))
  const fastBody = seeded('fast', 0, 8 * MiB)
  const fastSha = sha256(fastBody)
  const { app, port } = await startServer(t, {
    options: { whenCopied: 'keep' }, // every large body native, also on reused connections
    setup (app) {
      app.get('/slow/:i', (req, reply) => reply.sendZeroCopy(slowBodies[Number(req.params.i)]))
      app.get('/fast', (req, reply) => reply.sendZeroCopy(fastBody))
    }
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.teardown(() => agent.destroy())

  /** Four keep-alive lanes fetching the fast body for `ms`: bodies, bytes/s, slowest request. */
  async function fastFor (ms) {
    const until = Date.now() + ms
    const started = Date.now()
    let bodies = 0
    let worst = 0
    const bad = []
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (Date.now() < until) {
        const t0 = Date.now()
        const res = await fetchChecked(port, '/fast', fastBody, { agent })
        worst = Math.max(worst, Date.now() - t0)
        if (res.exact && res.sha === fastSha) bodies++
        else bad.push(`${res.length} bytes, first bad ${res.firstBad}`)
      }
    }))
    return { bodies, rate: (bodies * fastBody.length) / ((Date.now() - started) / 1000), worst, bad }
  }

  const alone = await fastFor(1500)
  t.same(alone.bad, [], 'fast bodies exact without slow clients')

  const started = Date.now()
  const slow = slowBodies.map((body, i) => rateReader(port, `/slow/${i}`, body, { rate: RATE }))
  await sleep(500)
  const together = await fastFor(4000)
  const elapsed = (Date.now() - started) / 1000
  const stats = app.zeroCopy.stats()
  const received = slow.map((r) => r.received())
  t.same(together.bad, [], `${together.bodies} fast bodies exact beside the slow readers`)
  t.ok(together.rate >= alone.rate * 0.25,
    `fast clients kept their pace: ${(together.rate / MiB).toFixed(0)} MiB/s beside slow readers, ${(alone.rate / MiB).toFixed(0)} MiB/s alone; slowest request ${together.worst} ms`)
  t.ok(together.worst < 3000, `no fast request waited on a slow one (slowest ${together.worst} ms)`)
  t.ok(received.every((n) => n <= RATE * elapsed + 192 * KiB && n >= RATE * elapsed * 0.5),
    `each slow reader read at about 64 KiB/s: ${received.map((n) => (n / KiB) | 0).join(', ')} KiB in ${elapsed.toFixed(1)} s`)
  t.ok(stats.inFlight.sends >= slow.length, `the slow transfers were still in flight on the ring (${stats.inFlight.sends} sends owed)`)

  for (const r of slow) r.setRate(0)
  const results = await Promise.all(slow.map((r) => r.done))
  results.forEach((res, i) => t.ok(res.exact && res.complete, `slow body ${i}: ${res.bodyLength} bytes, exact`))
  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight, nothing pinned')
})

const TIMEOUT = 2500

test('connectionTimeout: a steady 64 KiB/s reader is never cut off; a reader that stops is, after a period', async (t) => {
  const body = seeded('timeout', 0, 8 * MiB)
  const closedAt = {}
  const { app, port } = await startServer(t, {
    fastify: { connectionTimeout: TIMEOUT },
    setup (app) {
      app.get('/:who', (req, reply) => {
        req.raw.socket.once('close', () => { closedAt[req.params.who] = Date.now() })
        return reply.sendZeroCopy(body)
      })
    }
  })
  // Steady: 2.6 timeout periods at 64 KiB/s, then the rest at full speed.
  const steady = rateReader(port, '/steady', body, { rate: RATE })
  const stalled = rateReader(port, '/stalled', body, { rate: RATE })
  await eventually(() => stalled.received() > 0)
  stalled.setRate(-1) // stops reading (a paused socket does not see the server's close either)
  const stoppedAt = Date.now()
  await sleep(2.6 * TIMEOUT)
  t.ok(steady.received() > 2 * TIMEOUT / 1000 * RATE, `the steady reader is still being served (${steady.received()} bytes)`)
  t.notOk('steady' in closedAt, 'its connection is open')
  steady.setRate(0)
  const done = await steady.done
  t.ok(done.exact && done.complete, 'the steady reader got the whole body, exact')
  t.ok(await eventually(() => 'stalled' in closedAt, 2 * TIMEOUT), 'the stalled reader\'s connection was closed by the server')
  const after = closedAt.stalled - stoppedAt
  t.ok(after >= TIMEOUT - 100 && after <= 2 * TIMEOUT + 1000, `${after} ms after the reader stopped (timeout ${TIMEOUT} ms, checked once per period)`)
  stalled.setRate(0)
  const cut = await stalled.done
  t.ok(cut.firstBad < 0 && !cut.complete, `the stalled reader holds a true prefix (${cut.bodyLength} bytes)`)
  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight, nothing pinned')
})

test('keepAliveTimeout applies once a slow native transfer finished, as after Fastify\'s ordinary path', async (t) => {
  const body = seeded('keepalive', 0, 4 * MiB)
  const { app, port } = await startServer(t, {
    fastify: { connectionTimeout: 3 * TIMEOUT, keepAliveTimeout: 700 },
    setup (app) {
      app.get('/native', (req, reply) => reply.sendZeroCopy(body))
      app.get('/ordinary', (req, reply) => reply.send(body))
    }
  })
  const idle = {}
  await Promise.all(['native', 'ordinary'].map(async (path) => {
    const reader = rateReader(port, `/${path}`, body, { rate: RATE, closeAfterBody: false })
    await sleep(1500) // longer than keepAliveTimeout, in the middle of the body
    t.ok(reader.received() < body.length, `${path}: still in the middle of the body after 1.5 s`)
    reader.setRate(0)
    const res = await reader.done
    t.ok(res.exact && res.complete, `${path}: the whole body arrived, exact`)
    idle[path] = res.closedAt - res.completedAt
  }))
  t.ok(idle.native >= 500 && Math.abs(idle.native - idle.ordinary) < 600,
    `the idle connection was closed by the server ${idle.native} ms after a native body, ${idle.ordinary} ms after an ordinary one (keepAliveTimeout 700 ms)`)
  t.equal(app.zeroCopy.stats().responses.sendZc, 1, 'the native body went through the ring')
})

test('a handler\'s reply.raw.setTimeout: called for a stalled native transfer, never for a steady one', async (t) => {
  const body = seeded('settimeout', 0, 8 * MiB)
  const fired = []
  const { app, port } = await startServer(t, {
    setup (app) {
      app.get('/:who', (req, reply) => {
        reply.raw.setTimeout(TIMEOUT, () => {
          fired.push({ who: req.params.who, at: Date.now() })
          reply.raw.destroy()
        })
        return reply.sendZeroCopy(body)
      })
    }
  })
  const steady = rateReader(port, '/steady', body, { rate: RATE })
  const stalled = rateReader(port, '/stalled', body, { rate: RATE })
  await eventually(() => stalled.received() > 0)
  stalled.setRate(-1)
  const stoppedAt = Date.now()
  await sleep(2.6 * TIMEOUT)
  steady.setRate(0)
  const done = await steady.done
  t.ok(done.exact && done.complete, 'the steady reader got the whole body, exact')
  t.same(fired.map((f) => f.who), ['stalled'], 'the callback ran once, for the stalled transfer only')
  const after = (fired[0]?.at ?? 0) - stoppedAt
  t.ok(after >= TIMEOUT - 100 && after <= 2 * TIMEOUT + 1000, `it ran ${after} ms after the reader stopped (timeout ${TIMEOUT} ms)`)
  stalled.setRate(0)
  const cut = await stalled.done
  t.ok(cut.firstBad < 0 && !cut.complete, 'the stalled reader holds a true prefix')
  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight, nothing pinned')
})
