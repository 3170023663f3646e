'use strict'
const crypto = require('node:crypto')
const { test } = require('tap')
const { MiB, sha256, startServer, request, readPartOf, openFds, steadyFds, eventually, inFlightIsZero } = require('./helpers')

test('hundreds of clients that close mid-body: the server stays up, fds and pins return', async (t) => {
  const body = crypto.randomBytes(16 * MiB)
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  // Warm up once so lazily opened descriptors (the ring, the eventfd) are in the baseline.
  t.equal((await request(port, '/', { agent: false })).sha, sha256(body))
  t.ok(await eventually(() => inFlightIsZero(app)))
  // Once the warm-up's sockets are closed on both sides: a count taken at once can include one.
  const baseline = await steadyFds()
  let truncated = 0
  for (let round = 0; round < 10; round++) {
    const cuts = Array.from({ length: 30 }, (_, i) => readPartOf(port, '/', crypto.randomInt(1, body.length - 1), { reset: (round + i) % 2 === 0 }))
    for (const part of await Promise.all(cuts)) {
      if (part.length > body.length) t.fail('more bytes than the body')
      else if (!part.equals(body.subarray(0, part.length))) t.fail('a prefix differs from the body')
      else truncated++
    }
  }
  t.equal(truncated, 300, 'every partial body was a true prefix')
  t.ok(await eventually(() => openFds() === baseline, 10000), `open fds back to ${baseline} (now ${openFds()})`)
  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight, nothing pinned')
  t.equal(app.zeroCopy.stats().inFlight.pinnedBytes, 0)
  const after = await request(port, '/', { agent: false })
  t.equal(after.sha, sha256(body), 'the server goes on serving')
})

test('bytes never cross connections: a client vanishes and new ones connect at once', async (t) => {
  // Each request gets its own body, distinct in every byte range, so a byte that reached the
  // wrong connection would show up as a wrong hash.
  const rounds = 60
  const bodies = Array.from({ length: rounds * 3 }, () => crypto.randomBytes(4 * MiB + crypto.randomInt(0, 4096)))
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/:i', (req, reply) => reply.sendZeroCopy(bodies[Number(req.params.i)])) }
  })
  let exact = 0
  for (let r = 0; r < rounds; r++) {
    const victim = r * 3
    const vanishing = readPartOf(port, `/${victim}`, crypto.randomInt(1, 2 * MiB), { reset: r % 2 === 0 })
    const fresh = [request(port, `/${victim + 1}`, { agent: false }), request(port, `/${victim + 2}`, { agent: false })]
    const [part, ...full] = await Promise.all([vanishing, ...fresh])
    if (!part.equals(bodies[victim].subarray(0, part.length))) t.fail(`round ${r}: the vanishing client saw foreign bytes`)
    full.forEach((res, k) => {
      if (res.sha === sha256(bodies[victim + 1 + k]) && res.length === bodies[victim + 1 + k].length) exact++
      else t.fail(`round ${r}: client ${k} got the wrong bytes`)
    })
  }
  t.equal(exact, rounds * 2, 'every new client received exactly its own body')
  t.ok(await eventually(() => inFlightIsZero(app), 10000))
})

test('a client that disconnects mid-body is logged at info, not as an error', async (t) => {
  const lines = []
  const { Writable } = require('node:stream')
  const stream = new Writable({ write (chunk, enc, cb) { lines.push(JSON.parse(chunk)); cb() } })
  const body = crypto.randomBytes(32 * MiB)
  const { app, port } = await startServer(t, {
    fastify: { logger: { level: 'info', stream } },
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  await readPartOf(port, '/', MiB, { reset: true })
  t.ok(await eventually(() => inFlightIsZero(app) && app.zeroCopy.stats().responses.sendZc === 1))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.notOk(lines.some((l) => l.level >= 50), 'nothing logged at error level')
  t.notOk(lines.some((l) => l.res && l.res.statusCode === 500), 'no 500')
  t.ok(lines.some((l) => l.level === 30 && /prematurely/.test(l.msg)), 'logged once at info')
  t.equal((await request(port, '/', { agent: false })).sha, sha256(body))
})
