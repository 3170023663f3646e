'use strict'
const crypto = require('node:crypto')
const http = require('node:http')
const net = require('node:net')
const { test } = require('tap')
const { KiB, MiB, sha256, startServer, request, eventually, inFlightIsZero } = require('./helpers')

test('100 responses on one keep-alive connection arrive exact', async (t) => {
  const bodies = [crypto.randomBytes(256 * KiB), crypto.randomBytes(MiB + 17), crypto.randomBytes(4 * KiB)]
  const { app, port } = await startServer(t, {
    options: { whenCopied: 'keep' }, // SEND_ZC for every large body, though loopback copies
    setup (app) { app.get('/:i', (req, reply) => reply.sendZeroCopy(bodies[Number(req.params.i)])) }
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const sockets = new Set()
  for (let i = 0; i < 100; i++) {
    const which = i % 3
    const res = await new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: `/${which}`, agent }, (r) => {
        const hash = crypto.createHash('sha256')
        r.on('data', (d) => hash.update(d))
        r.on('end', () => resolve({ sha: hash.digest('hex') }))
      })
      req.on('socket', (s) => sockets.add(s))
      req.on('error', reject)
    })
    if (res.sha !== sha256(bodies[which])) t.fail(`response ${i} differs`)
  }
  t.equal(sockets.size, 1, 'every request used the same connection')
  // A body is counted when the server reaps its last result, which may follow the client's end.
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 67), 'the two large bodies went through SEND_ZC')
  t.equal(app.zeroCopy.stats().responses.stream, 33, 'the small one through Fastify')
  t.ok(await eventually(() => inFlightIsZero(app)))
})

test('a pipelined pair on a raw socket: both responses, in order, exact', async (t) => {
  const a = crypto.randomBytes(3 * MiB)
  const b = crypto.randomBytes(2 * MiB + 5)
  const { app, port } = await startServer(t, {
    setup (app) {
      app.get('/a', (req, reply) => reply.sendZeroCopy(a))
      app.get('/b', (req, reply) => reply.sendZeroCopy(b))
    }
  })
  const raw = await new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks = []
    socket.on('connect', () => socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
    socket.on('data', (d) => chunks.push(d))
    socket.on('end', () => resolve(Buffer.concat(chunks)))
    socket.on('error', reject)
  })
  const parse = (buf) => {
    const end = buf.indexOf('\r\n\r\n')
    const head = buf.subarray(0, end).toString('latin1')
    const length = Number(/content-length: (\d+)/i.exec(head)[1])
    return { head, body: buf.subarray(end + 4, end + 4 + length), rest: buf.subarray(end + 4 + length) }
  }
  const first = parse(raw)
  t.match(first.head, /^HTTP\/1\.1 200/)
  t.equal(sha256(first.body), sha256(a), 'first body exact')
  const second = parse(first.rest)
  t.match(second.head, /^HTTP\/1\.1 200/)
  t.equal(sha256(second.body), sha256(b), 'second body exact')
  t.equal(second.rest.length, 0, 'nothing after the second body')
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 2))
  // The second body starts while the kernel may still owe the first one's zero-copy
  // completions, which arrive on the connection's one error queue: each must release its own.
  t.ok(await eventually(() => inFlightIsZero(app)), 'both bodies released')
  t.same(app.zeroCopy.stats().inFlight, { sends: 0, pinnedBytes: 0, processPinnedBytes: 0 })
})

test('one Buffer served to 50 concurrent clients, exact; afterwards nothing is in flight', async (t) => {
  const body = crypto.randomBytes(8 * MiB)
  const want = sha256(body)
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  const results = await Promise.all(Array.from({ length: 50 }, () => request(port, '/', { agent: false })))
  t.equal(results.filter((r) => r.status === 200 && r.sha === want).length, 50, 'all 50 exact')
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 50))
  t.ok(await eventually(() => inFlightIsZero(app)), 'inFlight returns to zero')
  t.same(app.zeroCopy.stats().inFlight, { sends: 0, pinnedBytes: 0, processPinnedBytes: 0 })
})

for (const [whenCopied, path] of [['stream', 'stream'], ['send', 'send']]) {
  test(`whenCopied "${whenCopied}": once the kernel reported copying on a connection, its later bodies use ${path}`, async (t) => {
    const body = crypto.randomBytes(2 * MiB)
    const { app, port } = await startServer(t, {
      options: whenCopied === 'stream' ? {} : { whenCopied }, // 'stream' is the default
      setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
    })
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    t.equal((await request(port, '/', { agent })).sha, sha256(body))
    // Every notification of the first body reaped: loopback reports that the kernel copied.
    t.ok(await eventually(() => inFlightIsZero(app) && app.zeroCopy.stats().responses.sendZc === 1))
    const { notifications } = app.zeroCopy.stats()
    t.ok(notifications.total > 0 && notifications.copied === notifications.total, 'loopback: every notification says copied')
    for (let i = 0; i < 3; i++) t.equal((await request(port, '/', { agent })).sha, sha256(body), 'later bodies exact')
    t.ok(await eventually(() => app.zeroCopy.stats().responses[path] === 3), `the three later bodies went by ${path}`)
    t.equal(app.zeroCopy.stats().responses.sendZc, 1)
    t.equal(app.zeroCopy.stats().fallbacks['kernel-copies'], 3)
    t.equal((await request(port, '/')).sha, sha256(body), 'a new connection starts with SEND_ZC again')
    t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 2))
  })
}
