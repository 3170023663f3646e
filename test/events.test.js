'use strict'
// Per-response events on node:diagnostics_channel, aborted responses in stats(), and the
// effective threshold and pin budget in capabilities.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const dc = require('node:diagnostics_channel')
const { test } = require('tap')
const { MiB, sha256, startServer, request, readPartOf, eventually, inFlightIsZero, ENGINE, FILE_PATH, tempDir } = require('./helpers')

const CHANNEL = 'fastify-zero-copy:response'

/** Subscribes for the test's duration; returns the events seen. */
function subscribe (t) {
  const events = []
  const onEvent = (message) => events.push(message)
  dc.subscribe(CHANNEL, onEvent)
  t.teardown(() => dc.unsubscribe(CHANNEL, onEvent))
  return events
}

test('one event per response: the path, engine, bytes, fallback reason and duration', async (t) => {
  const events = subscribe(t)
  const body = crypto.randomBytes(2 * MiB)
  const dir = tempDir(t)
  const file = path.join(dir, 'f.bin')
  fs.writeFileSync(file, crypto.randomBytes(3 * MiB))
  const { app, port } = await startServer(t, {
    setup (app) {
      app.get('/blob', (req, reply) => reply.sendZeroCopy(body))
      app.get('/small', (req, reply) => reply.sendZeroCopy(Buffer.alloc(100)))
      app.get('/file', (req, reply) => reply.sendZeroCopy({ path: file }))
    }
  })
  t.equal((await request(port, '/blob')).sha, sha256(body))
  t.ok(await eventually(() => events.length === 1), 'the native body published one event')
  const [blob] = events
  t.ok(blob.path === 'sendZc' || blob.path === 'send', `path ${blob.path}`)
  t.equal(blob.engine, ENGINE)
  t.equal(blob.bytes, 2 * MiB)
  t.equal(blob.length, 2 * MiB)
  t.equal(blob.reason, null)
  t.equal(blob.aborted, false)
  t.type(blob.duration, 'number')
  t.ok(blob.duration >= 0)
  t.equal(blob.request.url, '/blob', 'the Fastify request')
  t.equal(blob.reply.statusCode, 200, 'and reply')

  await request(port, '/small')
  t.ok(await eventually(() => events.length === 2))
  t.match(events[1], { path: 'stream', engine: null, bytes: 100, length: 100, reason: 'below-threshold', aborted: false })

  const injected = await app.inject('/blob')
  t.equal(injected.rawPayload.length, 2 * MiB)
  t.ok(await eventually(() => events.length === 3))
  t.match(events[2], { path: 'stream', engine: null, reason: 'inject', bytes: 2 * MiB })

  t.equal((await request(port, '/file')).length, 3 * MiB)
  t.ok(await eventually(() => events.length === 4))
  t.match(events[3], { engine: ENGINE, bytes: 3 * MiB, length: 3 * MiB, reason: null, aborted: false })
  t.ok(events[3].path === FILE_PATH || events[3].path === 'sendfile', `file path ${events[3].path}`)
  t.equal(events.length, 4, 'one event per response')
})

test('stats(): an aborted native body and an aborted body on Fastify\'s path are counted, and their events say so', async (t) => {
  const events = subscribe(t)
  const body = crypto.randomBytes(32 * MiB)
  const { app, port } = await startServer(t, {
    setup (app) {
      app.get('/native', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  await readPartOf(port, '/native', MiB, { reset: true })
  t.ok(await eventually(() => inFlightIsZero(app) && app.zeroCopy.stats().aborted.responses === 1), `aborted: ${JSON.stringify(app.zeroCopy.stats().aborted)}`)
  t.same(app.zeroCopy.stats().aborted, { responses: 1, native: 1, stream: 0 })
  t.ok(await eventually(() => events.length === 1))
  t.equal(events[0].aborted, true)
  t.ok(events[0].bytes < 32 * MiB, `only part of it was sent: ${events[0].bytes}`)
  t.equal((await request(port, '/native')).sha, sha256(body), 'a whole body afterwards')
  t.ok(await eventually(() => events.length === 2))
  t.equal(app.zeroCopy.stats().aborted.responses, 1, 'a finished body is not an abort')

  const stream = await startServer(t, {
    options: { mode: 'stream' },
    setup (app) { app.get('/stream', (req, reply) => reply.sendZeroCopy(body)) }
  })
  await readPartOf(stream.port, '/stream', MiB, { reset: true })
  t.ok(await eventually(() => stream.app.zeroCopy.stats().aborted.stream === 1), 'the stream abort is counted')
  t.ok(await eventually(() => events.length === 3))
  t.match(events[2], { path: 'stream', reason: 'mode-stream', aborted: true })
})

test('capabilities: the effective threshold and pin budget', async (t) => {
  const { app } = await startServer(t, { options: { threshold: 12345, pinBudget: 3 * MiB } })
  t.equal(app.zeroCopy.capabilities.threshold, 12345)
  t.equal(app.zeroCopy.capabilities.pinBudget, 3 * MiB)
  const streamed = await startServer(t, { options: { mode: 'stream' } })
  t.equal(streamed.app.zeroCopy.capabilities.threshold, 16384, 'the default')
  t.equal(streamed.app.zeroCopy.capabilities.pinBudget, null, 'no engine, no budget')
})

test('no subscriber, no event: nothing is published', async (t) => {
  t.equal(dc.channel(CHANNEL).hasSubscribers, false)
  const body = crypto.randomBytes(MiB)
  const { port } = await startServer(t, { setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) } })
  const late = []
  // Subscribed after the response started: its event is not published half-measured.
  const res = request(port, '/')
  const onEvent = (m) => late.push(m)
  t.equal((await res).sha, sha256(body))
  dc.subscribe(CHANNEL, onEvent)
  t.teardown(() => dc.unsubscribe(CHANNEL, onEvent))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(late.length, 0)
})
