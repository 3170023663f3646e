'use strict'
// Node's socket timeout only sees bytes written through Node. While the ring sends, the
// plugin fires it only when the transfer made no progress for a whole period.
const crypto = require('node:crypto')
const net = require('node:net')
const { test } = require('tap')
const { MiB, sha256, startServer, eventually, inFlightIsZero } = require('./helpers')

/** Reads a response over a raw socket, pausing `pauseMs` after every `stepBytes` bytes. */
function slowRead (port, { stepBytes, pauseMs }) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    const chunks = []
    let sinceStep = 0
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    socket.on('data', (d) => {
      chunks.push(d)
      sinceStep += d.length
      if (sinceStep >= stepBytes) {
        sinceStep = 0
        socket.pause()
        setTimeout(() => socket.resume(), pauseMs)
      }
    })
    socket.on('close', () => resolve({ raw: Buffer.concat(chunks) }))
    socket.on('error', () => {})
  })
}

function bodyOf (raw) {
  const end = raw.indexOf('\r\n\r\n')
  return end < 0 ? Buffer.alloc(0) : raw.subarray(end + 4)
}

test('a slow client that keeps reading is not cut off by connectionTimeout', async (t) => {
  const body = crypto.randomBytes(24 * MiB)
  const { app, port } = await startServer(t, {
    fastify: { connectionTimeout: 400 },
    setup (app) {
      app.get('/', (req, reply) => {
        reply.raw.on('finish', () => req.socket.end())
        return reply.sendZeroCopy(body)
      })
    }
  })
  const started = Date.now()
  // ~24 pauses of 150 ms: the transfer lasts several timeout periods, never idle for one.
  const { raw } = await slowRead(port, { stepBytes: MiB, pauseMs: 150 })
  t.ok(Date.now() - started > 1200, 'the transfer outlived several timeout periods')
  const got = bodyOf(raw)
  t.equal(got.length, body.length, 'all bytes arrived')
  t.equal(sha256(got), sha256(body), 'exact')
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 1))
})

test('a client that stops reading is timed out as Node would, and everything is released', async (t) => {
  const body = crypto.randomBytes(64 * MiB)
  let serverSocketClosed
  const closed = new Promise((resolve) => { serverSocketClosed = resolve })
  const { app, port } = await startServer(t, {
    fastify: { connectionTimeout: 300 },
    setup (app) {
      app.get('/', (req, reply) => {
        req.socket.on('close', () => serverSocketClosed(Date.now()))
        return reply.sendZeroCopy(body)
      })
    }
  })
  const started = Date.now()
  const socket = net.connect(port, '127.0.0.1')
  const chunks = []
  let got = 0
  socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  socket.on('data', (d) => {
    chunks.push(d)
    got += d.length
    if (got >= MiB) socket.pause() // stops reading for good
  })
  socket.on('error', () => {})
  t.teardown(() => socket.destroy())
  const closedAt = await closed
  t.ok(closedAt - started >= 300, `the server closed the connection after the timeout (${closedAt - started} ms)`)
  t.ok(closedAt - started < 5000, 'and promptly')
  const got1 = bodyOf(Buffer.concat(chunks))
  t.ok(got1.length < body.length, 'the transfer did not complete')
  t.ok(got1.equals(body.subarray(0, got1.length)), 'what arrived is a true prefix')
  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight, nothing pinned')
  t.ok(await eventually(() => app.zeroCopy.stats().responses.sendZc === 1), 'the aborted body is counted by what the ring carried')
})
