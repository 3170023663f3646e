'use strict'
// The Fastify plugins users register beside this one, over real sockets: their headers,
// limits and semantics hold, and large bodies still leave by the native path.
const crypto = require('node:crypto')
const http = require('node:http')
const zlib = require('node:zlib')
const { test } = require('tap')
const { MiB, sha256, startServer, request, eventually } = require('./helpers')

/** Native bodies carried so far (either engine, zero-copy or copying send). */
function native (app) {
  const { responses } = app.zeroCopy.stats()
  return responses.sendZc + responses.send
}

/** GET over a new connection; resolves with status, headers and the raw body bytes. */
function fetchRaw (port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false, headers }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

test('@fastify/compress (global): a sendZeroCopy body goes as is, natively; a route that configures compress, or reply.send, is compressed', async (t) => {
  const blob = crypto.randomBytes(MiB)
  const text = Buffer.from('compressible text '.repeat(64 * 1024))
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/compress'))
      app.get('/blob', (req, reply) => reply.sendZeroCopy(blob))
      app.get('/asked', { compress: { encodings: ['gzip'] } }, (req, reply) => reply.type('text/plain').sendZeroCopy(text))
      app.get('/json', (req, reply) => reply.send({ text: text.toString() }))
    }
  })
  const accept = { 'accept-encoding': 'br, gzip, deflate' }

  const blobRes = await fetchRaw(port, '/blob', accept)
  t.equal(blobRes.status, 200)
  t.equal(blobRes.headers['content-encoding'], undefined, 'not recompressed')
  t.equal(blobRes.headers['content-length'], String(MiB))
  t.equal(sha256(blobRes.body), sha256(blob), 'the exact bytes')
  t.ok(await eventually(() => native(app) === 1), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
  t.equal(app.zeroCopy.stats().fallbacks['payload-wrapped'], undefined, 'compress did not wrap it')

  const asked = await fetchRaw(port, '/asked', accept)
  t.equal(asked.headers['content-encoding'], 'gzip', 'the route that configures compress gets it')
  t.equal(sha256(zlib.gunzipSync(asked.body)), sha256(text), 'and its bytes decompress to the body')

  const json = await fetchRaw(port, '/json', accept)
  t.equal(json.headers['content-encoding'], 'br', 'reply.send on another route is still compressed')
  t.equal(JSON.parse(zlib.brotliDecompressSync(json.body)).text, text.toString())
})

test('@fastify/compress registered first, the route in a child scope: the same', async (t) => {
  const Fastify = require('fastify')
  const { zeroCopy } = require('./helpers')
  const blob = crypto.randomBytes(MiB)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(require('@fastify/compress'))
  await app.register(zeroCopy)
  await app.register(async (child) => { child.get('/blob', (req, reply) => reply.sendZeroCopy(blob)) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await fetchRaw(app.server.address().port, '/blob', { 'accept-encoding': 'br, gzip' })
  t.equal(res.headers['content-encoding'], undefined)
  t.equal(sha256(res.body), sha256(blob))
  t.ok(await eventually(() => native(app) === 1), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
})

test('@fastify/compress with onUnsupportedEncoding: the body is still the one sent, natively, and the client\'s headers are kept', async (t) => {
  const blob = crypto.randomBytes(MiB)
  let seen
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/compress'), { onUnsupportedEncoding: () => 'unsupported encoding' })
      app.get('/blob', (req, reply) => reply.sendZeroCopy(blob))
      app.addHook('onResponse', async (req) => { seen = req.raw.headers['accept-encoding'] })
    }
  })
  const res = await fetchRaw(port, '/blob', { 'accept-encoding': 'gzip' })
  t.equal(res.status, 200)
  t.equal(res.headers['content-encoding'], undefined)
  t.equal(sha256(res.body), sha256(blob), 'the exact bytes, not the handler\'s payload')
  t.ok(await eventually(() => seen !== undefined), 'onResponse ran')
  t.equal(seen, 'gzip', 'request.raw.headers as the client sent them')
  t.ok(await eventually(() => native(app) === 1), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
})

test('@fastify/etag: a large buffer gets the ETag etag gives it by inject(), and If-None-Match answers 304, over a socket', async (t) => {
  const body = crypto.randomBytes(100 * 1000)
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/etag'))
      app.get('/large', (req, reply) => reply.sendZeroCopy(body))
      app.get('/tagged', (req, reply) => reply.header('etag', '"mine"').sendZeroCopy(body))
    }
  })
  const injected = await app.inject('/large')
  t.ok(injected.headers.etag, `inject() (Fastify's path) has an ETag: ${injected.headers.etag}`)

  const first = await request(port, '/large')
  t.equal(first.status, 200)
  t.equal(first.sha, sha256(body))
  t.equal(first.headers.etag, injected.headers.etag, 'the same ETag over a socket')
  t.ok(await eventually(() => native(app) === 1), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)

  const again = await request(port, '/large', { headers: { 'if-none-match': first.headers.etag } })
  t.equal(again.status, 304, 'If-None-Match with the tag: 304')
  t.equal(again.length, 0, 'no body')
  t.equal(again.headers.etag, first.headers.etag)
  const other = await request(port, '/large', { headers: { 'if-none-match': '"something-else"' } })
  t.equal(other.status, 200, 'another tag: the body')
  t.equal(other.sha, sha256(body))

  const mine = await request(port, '/tagged', { headers: { 'if-none-match': '"mine"' } })
  t.equal(mine.status, 304, "the handler's own ETag is kept and compared")
  t.equal((await request(port, '/tagged')).headers.etag, '"mine"')
})

test('@fastify/etag with bufferEtag: a function gives the tag; one that returns no entity tag is a 500 with a code; false gives none', async (t) => {
  const body = crypto.randomBytes(100 * 1000)
  const tagged = await startServer(t, {
    options: { bufferEtag: (b) => (b === body ? '"kept-blob"' : 'no quotes') },
    async setup (app) {
      await app.register(require('@fastify/etag'))
      app.get('/large', (req, reply) => reply.sendZeroCopy(body))
      app.get('/bad', (req, reply) => reply.sendZeroCopy(Buffer.alloc(100 * 1000)))
    }
  })
  const res = await request(tagged.port, '/large')
  t.equal(res.headers.etag, '"kept-blob"')
  t.equal(res.sha, sha256(body))
  t.equal((await request(tagged.port, '/large', { headers: { 'if-none-match': '"kept-blob"' } })).status, 304)
  const bad = await fetchRaw(tagged.port, '/bad')
  t.equal(bad.status, 500)
  t.equal(JSON.parse(bad.body).code, 'FST_ZERO_COPY_INVALID_OPTION')

  const off = await startServer(t, {
    options: { bufferEtag: false },
    async setup (app) {
      await app.register(require('@fastify/etag'))
      app.get('/large', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  const none = await request(off.port, '/large')
  t.equal(none.headers.etag, undefined)
  t.equal(none.sha, sha256(body))
})

test('@fastify/etag with bufferEtag \'auto\': a body up to 1 MiB is hashed per response (304 on its tag); a larger one gets no tag and no 304, natively', async (t) => {
  const limit = 1024 * 1024
  const small = crypto.randomBytes(limit)
  const large = crypto.randomBytes(4 * limit + 1)
  const sha1 = (b) => '"' + crypto.createHash('sha1').update(b).digest('base64') + '"'
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/etag'))
      app.get('/small', (req, reply) => reply.sendZeroCopy(small))
      app.get('/large', (req, reply) => reply.sendZeroCopy(large))
    }
  })
  const tagged = await request(port, '/small')
  t.equal(tagged.status, 200)
  t.equal(tagged.sha, sha256(small))
  t.equal(tagged.headers.etag, sha1(small), '1 MiB: etag\'s default tag')
  t.equal((await request(port, '/small', { headers: { 'if-none-match': sha1(small) } })).status, 304, '1 MiB: 304 on its tag')

  const res = await request(port, '/large')
  t.equal(res.status, 200)
  t.equal(res.sha, sha256(large), 'the exact bytes')
  t.equal(res.headers.etag, undefined, 'above 1 MiB: no tag hashed on the event loop')
  const again = await request(port, '/large', { headers: { 'if-none-match': sha1(large) } })
  t.equal(again.status, 200, 'so no 304 either: the body')
  t.equal(again.sha, sha256(large))
  t.ok(await eventually(() => native(app) === 3), `each 200 natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
})

test('@fastify/cors: the CORS headers on a native body, and a preflight', async (t) => {
  const body = crypto.randomBytes(MiB)
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/cors'), { origin: 'https://app.example', exposedHeaders: ['content-length'] })
      app.get('/blob', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  const res = await request(port, '/blob', { headers: { origin: 'https://app.example' } })
  t.equal(res.status, 200)
  t.equal(res.sha, sha256(body))
  t.equal(res.headers['access-control-allow-origin'], 'https://app.example')
  t.equal(res.headers['access-control-expose-headers'], 'content-length')
  t.ok(await eventually(() => native(app) === 1), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
  const preflight = await request(port, '/blob', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } })
  t.equal(preflight.status, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example')
})

test('@fastify/helmet: its security headers on a native body', async (t) => {
  const body = crypto.randomBytes(MiB)
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/helmet'))
      app.get('/blob', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  const res = await request(port, '/blob')
  t.equal(res.status, 200)
  t.equal(res.sha, sha256(body))
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.match(res.headers['content-security-policy'], /default-src 'self'/)
  t.match(res.headers['strict-transport-security'], /max-age=/)
  t.equal(res.headers['x-powered-by'], undefined)
  t.ok(await eventually(() => native(app) === 1), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
})

test('@fastify/rate-limit: native bodies within the limit, with its headers; 429 past it', async (t) => {
  const body = crypto.randomBytes(MiB)
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/rate-limit'), { max: 2, timeWindow: 60000 })
      app.get('/blob', (req, reply) => reply.sendZeroCopy(body))
    }
  })
  for (const remaining of ['1', '0']) {
    const res = await request(port, '/blob')
    t.equal(res.status, 200)
    t.equal(res.sha, sha256(body))
    t.equal(res.headers['x-ratelimit-limit'], '2')
    t.equal(res.headers['x-ratelimit-remaining'], remaining)
  }
  t.ok(await eventually(() => native(app) === 2), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
  const refused = await request(port, '/blob')
  t.equal(refused.status, 429, 'past the limit')
  t.ok(refused.headers['retry-after'])
  t.equal(native(app), 2, 'the refused request sent no body')
})

test('@fastify/under-pressure: a health check of pinned bytes against the budget; 503 under pressure, native bodies otherwise', async (t) => {
  const body = crypto.randomBytes(MiB)
  let pressure = false
  const { app, port } = await startServer(t, {
    async setup (app) {
      await app.register(require('@fastify/under-pressure'), {
        healthCheck: async (fastify) => {
          const { inFlight } = fastify.zeroCopy.stats()
          const { pinBudget } = fastify.zeroCopy.capabilities
          return !pressure && (pinBudget === null || inFlight.processPinnedBytes < pinBudget)
        },
        healthCheckInterval: 20,
        exposeStatusRoute: true
      })
      app.get('/blob', (req, reply) => reply.sendZeroCopy(body))
      app.get('/ping', (req, reply) => reply.send('ok'))
    }
  })
  t.ok(await eventually(async () => (await request(port, '/status')).status === 200), 'healthy')
  const res = await request(port, '/blob')
  t.equal(res.status, 200)
  t.equal(res.sha, sha256(body))
  t.ok(await eventually(() => native(app) === 1), `natively (fallbacks: ${JSON.stringify(app.zeroCopy.stats().fallbacks)})`)
  pressure = true
  // The periodic check is what refuses requests (the status route runs its own at once).
  t.ok(await eventually(async () => (await request(port, '/ping')).status === 503), 'the health check fails')
  const before = app.zeroCopy.stats().responses
  const refused = await request(port, '/blob')
  t.equal(refused.status, 503, 'under pressure: 503')
  t.equal(refused.length < 1024, true, 'no body')
  t.same(app.zeroCopy.stats().responses, before, 'no body sent under pressure')
})
