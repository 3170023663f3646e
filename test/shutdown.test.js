'use strict'
// fastify.close() while 20 large native transfers are in flight, in a server process of its
// own (test/fixtures/app-server.js, closed by SIGUSR2): with forceCloseConnections false or
// 'idle' (Fastify 5's default) the transfers finish exactly; with true they are aborted and
// the clients see true prefixes. Either way close() resolves, every send and notification
// is reaped, and the process then ends by itself with status 0 and nothing on stderr (no
// error log, no crash, no sanitizer report under `npm run asan`).
const { test } = require('tap')
const { KiB, MiB, spawnFixture, getJson, rateReader, eventually, seeded, sleep, after } = require('./helpers')

const COUNT = 20
const SIZE = 16 * MiB
const SEED = 'shutdown'
const expected = Array.from({ length: COUNT }, (_, i) => seeded(SEED, i, SIZE + i * 4097))
const sizes = expected.map((b) => b.length)

async function inFlightAtClose (t, forceCloseConnections) {
  const server = await spawnFixture(t, 'app-server', {
    seed: SEED,
    sizes,
    log: 'warn',
    fastify: forceCloseConnections === undefined ? {} : { forceCloseConnections }
  })
  t.equal(server.state, 'READY')
  t.equal(server.capabilities.mode, 'send_zc')
  // Slow readers (256 KiB/s each): every transfer is in flight, blocked on its socket.
  const readers = expected.map((body, i) => rateReader(server.port, `/body/${i}`, body, { rate: 256 * KiB }))
  t.ok(await eventually(() => readers.every((r) => r.received() > 64 * KiB), 10000), 'every client has part of its body')
  const before = await getJson(server.port, '/stats')
  t.equal(before.responses.sendZc + before.responses.send + before.responses.stream, 0, 'no body has finished')
  t.ok(before.inFlight.sends >= COUNT, `${before.inFlight.sends} sends in flight, ${before.inFlight.pinnedBytes} bytes pinned`)
  server.child.kill('SIGUSR2')
  return { server, readers, before }
}

async function endsCleanly (t, server) {
  const closed = await server.line('CLOSED')
  t.equal(closed.stats.inFlight.sends, 0, 'no send owed after close')
  t.equal(closed.stats.inFlight.pinnedBytes, 0, 'nothing pinned after close')
  t.ok(closed.stats.notifications.total > 0, `${closed.stats.notifications.total} notifications reaped`)
  t.equal(closed.stats.responses.sendZc + closed.stats.responses.send, COUNT, 'all 20 bodies were carried by the ring (in whole or in part)')
  const exit = await Promise.race([server.exited, after(10000, { code: 'still running 10 s after close' })])
  t.same(exit, { code: 0, signal: null }, 'the process ended by itself, with status 0')
  t.equal(server.stderr(), '', 'nothing on stderr: no error log, no crash, no sanitizer report')
  return closed
}

for (const force of [false, undefined]) {
  const name = force === undefined ? 'default (\'idle\')' : String(force)
  test(`close() with forceCloseConnections ${name}: the 20 transfers in flight finish exactly`, async (t) => {
    const { server, readers } = await inFlightAtClose(t, force)
    await sleep(100)
    t.equal(server.child.exitCode, null, 'close() waits for the transfers')
    for (const r of readers) r.setRate(0) // now read at full speed
    const results = await Promise.all(readers.map((r) => r.done))
    let exact = 0
    results.forEach((res, i) => {
      if (res.exact && res.complete && /^HTTP\/1\.1 200/.test(res.head)) exact++
      else t.fail(`client ${i}: ${res.bodyLength} of ${sizes[i]} bytes, first bad byte ${res.firstBad}`)
    })
    t.equal(exact, COUNT, `${exact} of ${COUNT} bodies complete and exact`)
    const closed = await endsCleanly(t, server)
    t.comment(`close() took ${closed.ms} ms; stats ${JSON.stringify(closed.stats)}`)
  })
}

test('close() with forceCloseConnections true: the 20 transfers are aborted, every client sees a true prefix', async (t) => {
  const { server, readers } = await inFlightAtClose(t, true)
  const results = await Promise.race([
    Promise.all(readers.map((r) => r.done)),
    after(10000, null)
  ])
  t.ok(results !== null, 'every connection was closed by the server')
  let prefixes = 0
  for (const [i, res] of (results || []).entries()) {
    if (res.firstBad < 0 && !res.complete && res.bodyLength < sizes[i]) prefixes++
    else t.fail(`client ${i}: ${res.bodyLength} of ${sizes[i]} bytes, complete ${res.complete}, first bad byte ${res.firstBad}`)
  }
  t.equal(prefixes, COUNT, `${prefixes} clients cut short, each with a true prefix of its body`)
  const closed = await endsCleanly(t, server)
  t.ok(closed.ms < 5000, `close() resolved in ${closed.ms} ms`)
  t.comment(`stats ${JSON.stringify(closed.stats)}`)
})

test('close() while clients read at full speed and others vanish: no crash, everything reaped', async (t) => {
  const server = await spawnFixture(t, 'app-server', { seed: SEED, sizes, log: 'warn', fastify: { forceCloseConnections: true } })
  const readers = expected.map((body, i) => rateReader(server.port, `/body/${i}`, body, { rate: 0 }))
  // Half the clients go away on their own, at once, as the server closes.
  await eventually(() => readers.some((r) => r.received() > MiB), 5000)
  server.child.kill('SIGUSR2')
  readers.forEach((r, i) => { if (i % 2 === 0) r.socket.resetAndDestroy() })
  const results = await Promise.all(readers.map((r) => r.done))
  t.ok(results.every((res) => res.firstBad < 0), 'whatever arrived is a true prefix (or the whole body)')
  t.comment(`${results.filter((r) => r.complete).length} bodies completed before the close`)
  const closed = await server.line('CLOSED')
  t.equal(closed.stats.inFlight.sends, 0, 'no send owed after close')
  t.equal(closed.stats.inFlight.pinnedBytes, 0, 'nothing pinned after close')
  const exit = await Promise.race([server.exited, after(10000, { code: 'still running' })])
  t.same(exit, { code: 0, signal: null }, 'the process ended by itself, with status 0')
  t.equal(server.stderr(), '', 'nothing on stderr')
})
