'use strict'
// A client that stops reading must not hold the server. Node lets go of such a connection by
// its own timeouts (keepAliveTimeout once the response is finished, connectionTimeout while
// it is not) or at close(); the plugin must let go with it: nothing of the response keeps the
// event loop alive or the connection open, and the process ends as it would with reply.send.
// The server runs in a process of its own (test/fixtures/app-server.js, closed by SIGUSR2).
const { test } = require('tap')
const { MiB, spawnFixture, getJson, rateReader, seeded, sleep, after } = require('./helpers')

const SEED = 'stalled'

test('a 3 MiB body to a client that never reads, keepAliveTimeout 500 ms: close() resolves, nothing stays pinned, the process ends', async (t) => {
  const body = seeded(SEED, 0, 3 * MiB)
  const server = await spawnFixture(t, 'app-server', {
    seed: SEED, sizes: [body.length], log: 'warn', options: { whenCopied: 'keep' }, fastify: { keepAliveTimeout: 500 }
  })
  t.equal(server.state, 'READY', server.message)
  t.equal(server.capabilities.mode, 'send_zc')
  const reader = rateReader(server.port, '/body/0', body)
  reader.setRate(-1) // paused before it connects: not one byte is read
  t.teardown(() => reader.socket.destroy())
  await sleep(2000)
  const before = await getJson(server.port, '/stats')
  t.ok(before.responses.sendZc === 1, `the body went by SEND_ZC (responses ${JSON.stringify(before.responses)})`)
  t.comment(`2 s in: ${before.inFlight.pinnedBytes} bytes pinned, ${before.inFlight.sends} sends owed`)
  const closing = Date.now()
  server.child.kill('SIGUSR2')
  const closed = await Promise.race([server.line('CLOSED'), after(8000, 'pending')])
  t.not(closed, 'pending', 'close() resolved and the stats were printed')
  if (closed !== 'pending') {
    t.equal(closed.stats.inFlight.pinnedBytes, 0, `nothing pinned after close (${Date.now() - closing} ms after SIGUSR2)`)
    t.equal(closed.stats.inFlight.sends, 0, 'no send owed after close')
  }
  const exit = await Promise.race([server.exited, after(8000, 'running')])
  t.not(exit, 'running', `the process ended by itself (${exit === 'running' ? 'still running 8 s after SIGUSR2' : `${Date.now() - closing} ms after SIGUSR2`})`)
  if (exit !== 'running') t.same(exit, { code: 0, signal: null }, 'with status 0')
  t.equal(server.stderr(), '', 'nothing on stderr')
})

test('a client still reading when Node closes the connection (keepAliveTimeout 300 ms) gets the whole body', async (t) => {
  const body = seeded(SEED, 0, 3 * MiB)
  const server = await spawnFixture(t, 'app-server', {
    seed: SEED, sizes: [body.length], log: 'warn', options: { whenCopied: 'keep' }, fastify: { keepAliveTimeout: 300 }
  })
  t.equal(server.state, 'READY', server.message)
  // 3 MiB at 2 MiB/s: the kernel took the whole body at once (the op finished), Node closes
  // the connection 300 ms later, and the client reads the rest for a second after that.
  const reader = rateReader(server.port, '/body/0', body, { rate: 2 * MiB, closeAfterBody: false })
  t.teardown(() => reader.socket.destroy())
  const res = await Promise.race([reader.done, after(8000, 'open')])
  t.not(res, 'open', 'the server closed the connection')
  if (res !== 'open') {
    t.ok(res.exact && res.complete, `every byte, exact (${res.bodyLength} of ${body.length}, first bad byte ${res.firstBad})`)
    t.ok(res.closedAt - res.completedAt >= 0, 'closed after the last byte (the FIN followed the body)')
  }
  const stats = await getJson(server.port, '/stats')
  t.equal(stats.responses.sendZc, 1, 'by SEND_ZC')
  t.equal(stats.inFlight.pinnedBytes, 0, 'nothing pinned')
  t.equal(server.stderr(), '', 'nothing on stderr')
})
