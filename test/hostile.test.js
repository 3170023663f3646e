'use strict'
// Hostile input, checked with property-based tests (fast-check): whatever the options and
// whatever a handler passes to sendZeroCopy, no exception escapes but the documented ones,
// and every answer is a valid HTTP response (parsed by Node's strict client) that is exactly
// what the documentation promises: the view's bytes, or a 500 with FST_ZERO_COPY_INVALID_BODY.
const crypto = require('node:crypto')
const http = require('node:http')
const Fastify = require('fastify')
const fc = require('fast-check')
const { test } = require('tap')
const { KiB, MiB, sha256, startServer, eventually, inFlightIsZero, zeroCopy } = require('./helpers')

const RUNS = Number(process.env.ZC_FC_RUNS || 0) // 0: each property's own default
const runs = (n) => RUNS > 0 ? RUNS : n

// What the README documents for each option.
const SPEC = {
  threshold: (v) => isInt(v, 0, Number.MAX_SAFE_INTEGER),
  sliceSize: (v) => isInt(v, 4 * KiB, 64 * MiB),
  depth: (v) => isInt(v, 1, 64),
  pinBudget: (v) => isInt(v, 0, Number.MAX_SAFE_INTEGER),
  mode: (v) => ['auto', 'send_zc', 'send', 'stream'].includes(v),
  whenCopied: (v) => ['stream', 'send', 'keep'].includes(v),
  fileChunk: (v) => isInt(v, 4 * KiB, 64 * MiB),
  fileInline: (v) => isInt(v, 0, 64 * MiB)
}
function isInt (v, min, max) {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max
}

// Values an option may take: valid ones, the edges around them, and anything at all (that
// has a string form; values without one are the subject of a test of their own below).
const integerish = (min, max) => fc.oneof(
  fc.integer({ min, max }),
  fc.constantFrom(min - 1, max + 1, min + 0.5, -0, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53)),
  fc.double(),
  fc.bigInt(),
  fc.integer({ min, max }).map(String)
)
const anything = fc.anything({
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withBigInt: true,
  withDate: true,
  withTypedArray: true,
  withSparseArray: true,
  withObjectString: true
})
// Each option: mostly valid values (so whole sets are often valid), sometimes hostile ones.
const mostly = (valid, hostile) => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostile })
const optionValue = {
  threshold: mostly(fc.integer({ min: 0, max: 4 * MiB }), fc.oneof(integerish(0, 4 * MiB), anything)),
  sliceSize: mostly(fc.integer({ min: 4 * KiB, max: 64 * MiB }), fc.oneof(integerish(4 * KiB, 64 * MiB), anything)),
  depth: mostly(fc.integer({ min: 1, max: 64 }), fc.oneof(integerish(1, 64), anything)),
  pinBudget: mostly(fc.integer({ min: 0, max: 256 * MiB }), fc.oneof(integerish(0, 256 * MiB), anything)),
  mode: mostly(fc.constantFrom('auto', 'send_zc', 'send', 'stream'), fc.oneof(fc.constantFrom('AUTO', 'send-zc', '', ' auto'), anything)),
  whenCopied: mostly(fc.constantFrom('stream', 'send', 'keep'), fc.oneof(fc.constantFrom('Keep', 'copy', ''), anything)),
  fileChunk: mostly(fc.integer({ min: 4 * KiB, max: 64 * MiB }), fc.oneof(integerish(4 * KiB, 64 * MiB), anything)),
  fileInline: mostly(fc.integer({ min: 0, max: 64 * MiB }), fc.oneof(integerish(0, 64 * MiB), anything))
}
const optionsArb = fc.tuple(
  fc.record(optionValue, { requiredKeys: [] }),
  fc.dictionary(fc.string(), anything, { maxKeys: 3 }) // unknown keys are ignored
).map(([known, extra]) => ({ ...extra, ...known }))

function invalidKeys (options) {
  // Only undefined means "the default": null is rejected like any other wrong value.
  const absent = (k) => options[k] === undefined
  return Object.keys(SPEC).filter((k) => !absent(k) && !SPEC[k](options[k]))
}

test('options: registration succeeds exactly when every option is valid, else fails with FST_ZERO_COPY_INVALID_OPTION naming one', async (t) => {
  let accepted = 0
  let rejected = 0
  await fc.assert(fc.asyncProperty(optionsArb, async (options) => {
    const bad = invalidKeys(options)
    const app = Fastify({ logger: false })
    try {
      await app.register(zeroCopy, options).ready()
      if (bad.length > 0) throw new Error(`accepted invalid ${bad.join(', ')}`)
      if (!['send_zc', 'send', 'stream'].includes(app.zeroCopy.capabilities.mode)) throw new Error('no mode')
      accepted++
    } catch (err) {
      if (err.code !== 'FST_ZERO_COPY_INVALID_OPTION') throw err
      if (bad.length === 0) throw new Error(`rejected valid options: ${err.message}`)
      if (!bad.some((k) => err.message.includes(`"${k}"`))) throw new Error(`the message names none of ${bad}: ${err.message}`)
      rejected++
    } finally {
      await app.close()
    }
  }), { numRuns: runs(1000) })
  t.ok(accepted > 50 && rejected > 50, `both sides covered: ${accepted} accepted, ${rejected} rejected`)
})

test('options without a string form are rejected with FST_ZERO_COPY_INVALID_OPTION too', async (t) => {
  const values = [Object.create(null), [Object.create(null)], { toString: null, valueOf: null }]
  for (const key of Object.keys(SPEC)) {
    for (const value of values) {
      const app = Fastify({ logger: false })
      let error = null
      try {
        await app.register(zeroCopy, { [key]: value }).ready()
      } catch (err) {
        error = err
      }
      await app.close()
      t.equal(error?.code, 'FST_ZERO_COPY_INVALID_OPTION', `${key}: ${error?.message}`)
    }
  }
})

/** One request: resolves with what Node's strict HTTP parser made of the answer. */
function call (port, path, { method = 'GET', headers = {}, agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent }, (res) => {
      const chunks = []
      const hash = crypto.createHash('sha256')
      let length = 0
      res.on('data', (d) => { hash.update(d); length += d.length; if (res.statusCode !== 200) chunks.push(d) })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length, sha: hash.digest('hex'), text: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
      res.on('aborted', () => reject(new Error(`${method} ${path}: response aborted after ${length} bytes`)))
    })
    req.on('error', reject)
    req.end()
  })
}

function checkAnswer (answer, value, method) {
  const problems = []
  if (ArrayBuffer.isView(value)) {
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    if (answer.status !== 200) problems.push(`status ${answer.status} for a ${value.constructor.name}: ${answer.text}`)
    if (answer.headers['content-length'] !== String(bytes.length)) problems.push(`content-length ${answer.headers['content-length']}, expected ${bytes.length}`)
    if (method === 'GET' && (answer.length !== bytes.length || answer.sha !== sha256(bytes))) problems.push(`body of ${answer.length} bytes differs from the view's ${bytes.length}`)
    if (method === 'HEAD' && answer.length !== 0) problems.push('a HEAD answer with a body')
  } else {
    if (answer.status !== 500) problems.push(`status ${answer.status} for a non-view`)
    if (method === 'GET') {
      let json = null
      try { json = JSON.parse(answer.text) } catch {}
      if (json?.code !== 'FST_ZERO_COPY_INVALID_BODY') problems.push(`code ${json?.code}: ${answer.text}`)
    }
    if (answer.headers['content-length'] !== String(answer.length) && method === 'GET') problems.push('content-length does not match the body')
  }
  return problems
}

// Views over every kind of TypedArray, at any offset of their buffer, of sizes around the
// threshold and up to 300 KiB; plain and shared ArrayBuffers (not views: invalid).
const viewArb = fc.tuple(
  fc.constantFrom(Uint8Array, Int8Array, Uint8ClampedArray, Uint16Array, Int16Array, Uint32Array, Int32Array,
    Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView, Buffer),
  fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 16 * KiB - 64, max: 16 * KiB + 64 }), fc.integer({ min: 0, max: 300 * KiB })),
  fc.integer({ min: 0, max: 4096 }),
  fc.boolean()
).map(([Kind, bytes, offset, shared]) => {
  const unit = Kind === DataView || Kind === Buffer ? 1 : Kind.BYTES_PER_ELEMENT
  const at = offset - (offset % unit)
  const count = Math.floor(bytes / unit)
  const backing = shared ? new SharedArrayBuffer(at + count * unit + 8) : new ArrayBuffer(at + count * unit + 8)
  crypto.randomFillSync(new Uint8Array(backing))
  if (Kind === Buffer) return Buffer.from(backing, at, count)
  return Kind === DataView ? new DataView(backing, at, count) : new Kind(backing, at, count)
})
const bodyArb = fc.oneof(
  { weight: 3, arbitrary: viewArb },
  { weight: 3, arbitrary: fc.anything({ withBoxedValues: true, withMap: true, withSet: true, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true, withObjectString: true }) },
  { weight: 1, arbitrary: fc.constantFrom(undefined, null, 0, '', 'a string body', [], {}, () => {}, Symbol('body'), new ArrayBuffer(64 * KiB), new SharedArrayBuffer(64 * KiB), Promise.resolve(Buffer.alloc(1)), new Error('x')) }
)
const header = fc.string({ unit: 'grapheme-ascii', maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, '').trim())
const headersArb = fc.record({
  range: header,
  'if-range': header,
  'if-none-match': header,
  'if-modified-since': header,
  'accept-encoding': header,
  cookie: header,
  'x-hostile': header
}, { requiredKeys: [] })

test('sendZeroCopy of arbitrary values: a view answers with its exact bytes, anything else a 500 FST_ZERO_COPY_INVALID_BODY', async (t) => {
  const values = new Map()
  let next = 0
  const { app, port } = await startServer(t, {
    options: { whenCopied: 'keep' }, // large views go native on the reused connections too
    setup (app) {
      app.get('/sync/:id', (req, reply) => reply.sendZeroCopy(values.get(req.params.id)))
      app.get('/async/:id', async (req, reply) => reply.sendZeroCopy(values.get(req.params.id)))
      app.get('/known', (req, reply) => reply.sendZeroCopy(known))
    }
  })
  const known = crypto.randomBytes(MiB)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 })
  t.teardown(() => agent.destroy())
  const seen = { view: 0, other: 0, native: 0 }
  await fc.assert(fc.asyncProperty(bodyArb, fc.constantFrom('sync', 'async'), fc.constantFrom('GET', 'GET', 'HEAD'), headersArb, async (value, kind, method, headers) => {
    const id = String(next++)
    values.set(id, value)
    try {
      const answer = await call(port, `/${kind}/${id}`, { method, headers, agent })
      const problems = checkAnswer(answer, value, method)
      if (problems.length > 0) throw new Error(problems.join('; '))
      seen[ArrayBuffer.isView(value) ? 'view' : 'other']++
    } finally {
      values.delete(id)
    }
  }), { numRuns: runs(1000) })
  seen.native = app.zeroCopy.stats().responses.sendZc + app.zeroCopy.stats().responses.send
  t.ok(seen.view > 50 && seen.other > 50, `views and non-views both covered: ${JSON.stringify(seen)}`)
  t.ok(await eventually(() => inFlightIsZero(app)), 'nothing in flight, nothing pinned')
  t.equal((await call(port, '/known', { agent })).sha, sha256(known), 'the server goes on serving')
})

test('every valid option set serves exact bodies of every size, GET and HEAD, on one keep-alive connection', async (t) => {
  const validOptions = fc.record({
    threshold: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 * MiB })),
    sliceSize: fc.oneof(fc.constantFrom(4 * KiB, 64 * MiB), fc.integer({ min: 4 * KiB, max: 2 * MiB })),
    depth: fc.integer({ min: 1, max: 64 }),
    pinBudget: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 64 * MiB })),
    mode: fc.constantFrom('auto', 'send_zc', 'send', 'stream'),
    whenCopied: fc.constantFrom('stream', 'send', 'keep')
  }, { requiredKeys: [] })
  const sizes = fc.array(fc.oneof(fc.constantFrom(0, 1, 16 * KiB - 1, 16 * KiB), fc.integer({ min: 0, max: 3 * MiB })), { minLength: 1, maxLength: 4 })
  let bodies = 0
  await fc.assert(fc.asyncProperty(validOptions, sizes, async (options, lengths) => {
    const app = Fastify({ logger: false })
    const list = lengths.map((n) => crypto.randomBytes(n))
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      await app.register(zeroCopy, options)
      app.get('/:i', (req, reply) => reply.sendZeroCopy(list[Number(req.params.i)]))
      await app.listen({ port: 0, host: '127.0.0.1' })
      const port = app.server.address().port
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < list.length; i++) {
          for (const method of ['GET', 'HEAD']) {
            const answer = await call(port, `/${i}`, { method, agent })
            const problems = checkAnswer(answer, list[i], method)
            if (problems.length > 0) throw new Error(`${JSON.stringify(options)} body ${i}: ${problems.join('; ')}`)
            bodies++
          }
        }
      }
      if (!(await eventually(() => inFlightIsZero(app)))) throw new Error(`${JSON.stringify(options)}: still in flight`)
    } finally {
      agent.destroy()
      await app.close()
    }
  }), { numRuns: runs(40) })
  t.ok(bodies > 0, `${bodies} answers checked`)
})

test('exotic non-bodies: proxies, detached and revoked things, throwing getters: a valid 500, never a crash', async (t) => {
  const big = crypto.randomBytes(MiB)
  const detached = new Uint8Array(MiB)
  structuredClone(detached.buffer, { transfer: [detached.buffer] })
  const revocable = Proxy.revocable({}, {})
  revocable.revoke()
  const cases = [
    ['a Proxy of a Buffer', new Proxy(big, {}), true],
    ['a revoked Proxy', revocable.proxy, true],
    ['a view of a detached ArrayBuffer', detached, false],
    ['an object whose constructor getter throws', { get constructor () { throw new Error('getter') } }, false],
    ['an object pretending to be a Uint8Array', { [Symbol.toStringTag]: 'Uint8Array', length: MiB, buffer: big.buffer, byteOffset: 0, byteLength: MiB }, true]
  ]
  const { port } = await startServer(t, {
    setup (app) {
      cases.forEach(([, value], i) => app.get(`/${i}`, (req, reply) => reply.sendZeroCopy(value)))
      app.get('/known', (req, reply) => reply.sendZeroCopy(big))
    }
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  for (const [i, [name, , invalidBody]] of cases.entries()) {
    const answer = await call(port, `/${i}`, { agent })
    t.equal(answer.status, 500, `${name}: 500`)
    t.equal(answer.headers['content-length'], String(answer.length), `${name}: a complete, valid answer`)
    if (invalidBody) {
      t.equal(JSON.parse(answer.text).code, 'FST_ZERO_COPY_INVALID_BODY', `${name}: ${answer.text}`)
    } else {
      t.comment(`${name}: ${answer.text}`)
    }
    t.equal((await call(port, '/known', { agent })).sha, sha256(big), `after ${name}, the same connection serves exact bytes`)
  }
})
