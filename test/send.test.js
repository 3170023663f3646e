'use strict'
const crypto = require('node:crypto')
const http = require('node:http')
const { test } = require('tap')
const { KiB, MiB, sha256, startServer, request, eventually, inFlightIsZero, ENGINE_REASON, assertEngine } = require('./helpers')

test('bodies around the threshold and large ones arrive byte-exact; stats count each path', async (t) => {
  const sizes = [16 * KiB - 1, 16 * KiB, MiB, 64 * MiB]
  const bodies = new Map(sizes.map((n) => [n, crypto.randomBytes(n)]))
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/body/:n', (req, reply) => reply.sendZeroCopy(bodies.get(Number(req.params.n)))) }
  })
  t.equal(app.zeroCopy.capabilities.mode, 'send_zc', 'this machine serves through a zero-copy send')
  t.equal(app.zeroCopy.capabilities.reason, ENGINE_REASON)
  for (const n of sizes) {
    const res = await request(port, `/body/${n}`)
    t.equal(res.status, 200)
    t.equal(res.headers['content-length'], String(n))
    t.equal(res.headers['content-type'], 'application/octet-stream')
    t.equal(res.length, n, `${n} bytes arrive`)
    t.equal(res.sha, sha256(bodies.get(n)), `${n} bytes are exact`)
  }
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 3), 'counted when the server reaps the last result')
  const stats = app.zeroCopy.stats()
  t.same(stats.responses, { sendZc: 3, send: 0, splice: 0, sendfile: 0, stream: 1 })
  t.same(stats.bytes, { sendZc: 16 * KiB + MiB + 64 * MiB, send: 0, splice: 0, sendfile: 0, stream: 16 * KiB - 1 })
  t.same(stats.fallbacks, { 'below-threshold': 1 })
  assertEngine(t, app.zeroCopy.capabilities, stats, 3)
  t.equal(stats.engines[app.zeroCopy.capabilities.engine].bytes, 16 * KiB + MiB + 64 * MiB, 'the engine carried every native byte')
  t.ok(await eventually(() => inFlightIsZero(app)), 'every notification reaped')
  const after = app.zeroCopy.stats()
  t.ok(after.notifications.total >= 3, 'notifications arrived')
  t.ok(after.notifications.copied <= after.notifications.total)
})

test('TypedArray and DataView views send exactly their bytes', async (t) => {
  const backing = crypto.randomBytes(3 * MiB)
  const u16 = new Uint16Array(backing.buffer, backing.byteOffset + 2 * KiB, (MiB) / 2)
  const view = new DataView(backing.buffer, backing.byteOffset + 5, MiB + 3)
  const { app, port } = await startServer(t, {
    setup (app) {
      app.get('/u16', (req, reply) => reply.sendZeroCopy(u16))
      app.get('/dv', (req, reply) => reply.sendZeroCopy(view))
    }
  })
  const a = await request(port, '/u16')
  t.equal(a.sha, sha256(backing.subarray(2 * KiB, 2 * KiB + MiB)))
  const b = await request(port, '/dv')
  t.equal(b.sha, sha256(backing.subarray(5, 5 + MiB + 3)))
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 2))
})

test('status and headers set before sendZeroCopy are kept; content-type is not overridden', async (t) => {
  const body = crypto.randomBytes(MiB)
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/', (req, reply) => reply.code(203).header('content-type', 'video/mp4').header('x-kept', 'yes').sendZeroCopy(body))
      app.get('/async', async (req, reply) => { return reply.sendZeroCopy(body) })
    }
  })
  const res = await request(port, '/')
  t.equal(res.status, 203)
  t.equal(res.headers['content-type'], 'video/mp4')
  t.equal(res.headers['x-kept'], 'yes')
  t.equal(res.sha, sha256(body))
  const res2 = await request(port, '/async')
  t.equal(res2.status, 200)
  t.equal(res2.sha, sha256(body))
})

test('a bad body is a 500 with a code through the error handler, and the server goes on', async (t) => {
  const body = crypto.randomBytes(MiB)
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/bad', (req, reply) => reply.sendZeroCopy('a string'))
      app.get('/good', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const bad = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/bad', agent }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }))
    }).on('error', reject)
  })
  t.equal(bad.status, 500)
  t.equal(bad.json.code, 'FST_ZERO_COPY_INVALID_BODY')
  const good = await request(port, '/good', { agent })
  t.equal(good.sha, sha256(body))
})
