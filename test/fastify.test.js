'use strict'
const crypto = require('node:crypto')
const http = require('node:http')
const { Writable } = require('node:stream')
const { test } = require('tap')
const { MiB, sha256, startServer, request } = require('./helpers')

test('HEAD gets the headers and no body', async (t) => {
  const body = crypto.randomBytes(MiB)
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  const res = await request(port, '/', { method: 'HEAD' })
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], String(MiB))
  t.equal(res.length, 0)
  t.equal(app.zeroCopy.stats().fallbacks.head, 1)
  const get = await request(port, '/')
  t.equal(get.sha, sha256(body), 'a GET after it on the server is exact')
})

test('onSend hooks run and their headers arrive; onResponse fires once per request', async (t) => {
  const body = crypto.randomBytes(2 * MiB)
  const responses = []
  const { app, port } = await startServer(t, {
    options: { whenCopied: 'keep' }, // every body on the keep-alive connection through SEND_ZC
    setup (app) {
      app.addHook('onSend', async (req, reply, payload) => {
        reply.header('x-on-send', 'ran')
        return payload
      })
      app.addHook('onResponse', async (req, reply) => {
        responses.push({ url: req.url, sent: reply.sent, status: reply.statusCode })
      })
      app.get('/:n', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  for (let i = 0; i < 5; i++) {
    const res = await request(port, `/${i}`, { agent })
    t.equal(res.headers['x-on-send'], 'ran')
    t.equal(res.sha, sha256(body))
  }
  await new Promise((resolve) => setImmediate(resolve))
  t.same(responses.map((r) => r.url), ['/0', '/1', '/2', '/3', '/4'], 'once per request, in order')
  t.ok(responses.every((r) => r.sent === true && r.status === 200), 'reply.sent is true when onResponse runs')
  t.equal(app.zeroCopy.stats().responses.sendZc, 5, 'onResponse ran after the last result, so all five are counted')
})

test('an onSend hook that replaces the payload is honoured', async (t) => {
  const body = crypto.randomBytes(MiB)
  const other = crypto.randomBytes(MiB / 2)
  const { app, port } = await startServer(t, {
    setup (app) {
      app.addHook('onSend', async (req, reply, payload) => {
        reply.header('content-length', String(other.length))
        return other
      })
      app.get('/', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  const res = await request(port, '/')
  t.equal(res.sha, sha256(other))
  t.equal(app.zeroCopy.stats().responses.sendZc, 0, 'the replaced body never reached the ring')
})

test('the request log line has the status and a response time', async (t) => {
  const lines = []
  const stream = new Writable({ write (chunk, enc, cb) { lines.push(JSON.parse(chunk)); cb() } })
  const body = crypto.randomBytes(MiB)
  const { port } = await startServer(t, {
    fastify: { logger: { level: 'info', stream } },
    setup (app) { app.get('/', (req, reply) => reply.code(201).sendZeroCopy(body)) }
  })
  await request(port, '/')
  await new Promise((resolve) => setImmediate(resolve))
  const done = lines.filter((l) => l.msg === 'request completed')
  t.equal(done.length, 1)
  t.equal(done[0].res.statusCode, 201)
  t.type(done[0].responseTime, 'number')
})

test('inject() answers correctly through the fallback', async (t) => {
  const body = crypto.randomBytes(MiB)
  const { app } = await startServer(t, {
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], String(MiB))
  t.ok(res.rawPayload.equals(body))
  t.same(app.zeroCopy.stats().fallbacks, { inject: 1 })
})
