'use strict'
const Fastify = require('fastify')
const { test } = require('tap')
const { zeroCopy, ENGINE, assertEngine } = require('./helpers')

const bad = [
  [{ threshold: -1 }, 'threshold'],
  [{ threshold: 1.5 }, 'threshold'],
  [{ threshold: '16k' }, 'threshold'],
  [{ mode: 'fast' }, 'mode'],
  [{ engine: 'uring' }, 'engine'],
  [{ engine: 1 }, 'engine'],
  [{ sliceSize: 100 }, 'sliceSize'],
  [{ sliceSize: 2 ** 40 }, 'sliceSize'],
  [{ depth: 0 }, 'depth'],
  [{ depth: 1000 }, 'depth'],
  [{ pinBudget: -5 }, 'pinBudget'],
  [{ whenCopied: 'never' }, 'whenCopied'],
  [{ fileChunk: 1024 }, 'fileChunk'],
  [{ fileInline: -1 }, 'fileInline'],
  [{ fileInline: 64 * 1024 * 1024 + 1 }, 'fileInline'],
  [{ fileInline: '1m' }, 'fileInline'],
  [{ bufferEtag: true }, 'bufferEtag'],
  [{ bufferEtag: 'sha1' }, 'bufferEtag']
]

for (const [options, name] of bad) {
  test(`registration rejects ${JSON.stringify(options)}`, async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(app.register(zeroCopy, options).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION', message: new RegExp(name) })
  })
}

test('defaults register; capabilities are frozen and complete', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(zeroCopy)
  const caps = app.zeroCopy.capabilities
  t.ok(Object.isFrozen(caps))
  t.same(Object.keys(caps).sort(), ['beneath', 'engine', 'ioUring', 'kernel', 'mode', 'native', 'pinBudget', 'reason', 'send', 'sendZc', 'threshold'])
  t.type(caps.kernel, 'string')
  t.equal(caps.beneath, 'openat2', 'openat2 works here (test/static-walk.test.js: where it is refused)')
  assertEngine(t, caps)
  t.equal(caps.ioUring, ENGINE === 'io_uring', 'ioUring: whether a ring was created (none is tried for engine "classic")')
  t.same(Object.keys(app.zeroCopy.stats()).sort(), ['aborted', 'bytes', 'engines', 'fallbacks', 'inFlight', 'notifications', 'responses'])
  t.same(app.zeroCopy.stats().engines, { io_uring: { responses: 0, bytes: 0 }, classic: { responses: 0, bytes: 0 } })
})

test('the plugin is importable as default and named export', async (t) => {
  t.equal(zeroCopy.default, zeroCopy)
  t.equal(zeroCopy.fastifyZeroCopy, zeroCopy)
})
