'use strict'
// A reply sent twice, in whatever order the application's sends come: the first send wins
// and is delivered whole; the other is logged as Fastify logs a second send ("Reply was
// already sent", FST_ERR_REP_ALREADY_SENT at warn) and changes nothing on the wire. Never a
// 200 cut short, never a descriptor left. "cold": the path is opened later, by the ring's
// workers or libuv's pool (/proc/self/root/... never opens at once), so the second send
// arrives while the file is still opening.
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { test } = require('tap')
const { MiB, sha256, startServer, eventually, fdsUnder, logCapture, tempDir, seeded } = require('./helpers')

const SIZE = 2 * MiB

/** GET without keep-alive: status, headers, body length and SHA-256, and how it ended. */
function get (port, url) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      const hash = crypto.createHash('sha256')
      const chunks = []
      let length = 0
      res.on('data', (chunk) => { hash.update(chunk); length += chunk.length; if (length <= 4096) chunks.push(chunk) })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length, sha: hash.digest('hex'), text: Buffer.concat(chunks).toString(), error: null }))
      res.on('error', (err) => resolve({ status: res.statusCode, headers: res.headers, length, sha: null, text: '', error: err.code ?? err.message }))
    })
    req.on('error', (err) => resolve({ status: 0, headers: {}, length: 0, sha: null, text: '', error: err.code ?? err.message }))
  })
}

const ALREADY_SENT = (url, method = 'GET') => `Reply was already sent, did you forget to "return reply" in "${url}" (${method})?`

test('sends in any order: one whole response, the other send logged as Fastify logs it', async (t) => {
  const dir = tempDir(t)
  const first = path.join(dir, 'first.bin')
  const second = path.join(dir, 'second.bin')
  fs.writeFileSync(first, seeded('order', 1, SIZE))
  fs.writeFileSync(second, seeded('order', 2, SIZE + 7))
  const firstSha = sha256(fs.readFileSync(first))
  const buffer = seeded('order', 3, SIZE)
  const bufferSha = sha256(buffer)
  const named = (how, file) => ({ path: how === 'cold' ? '/proc/self/root' + file : file })
  const ran = { handler: 0 }
  const { lines, logger } = logCapture()

  const { app, port } = await startServer(t, {
    fastify: { logger },
    setup (app) {
      app.get('/return-value/:how', async (req, reply) => {
        reply.sendZeroCopy(named(req.params.how, first))
        return { ok: true }
      })
      app.get('/then-send/:how', (req, reply) => {
        reply.sendZeroCopy(named(req.params.how, first))
        reply.send({ second: true })
      })
      app.get('/send-then/:how', (req, reply) => {
        reply.send({ first: true })
        reply.sendZeroCopy(named(req.params.how, second))
      })
      app.get('/stream-then/:how', (req, reply) => {
        reply.send(fs.createReadStream(first))
        reply.sendZeroCopy(named(req.params.how, second))
      })
      app.get('/twice/:how', (req, reply) => {
        reply.sendZeroCopy(named(req.params.how, first))
        reply.sendZeroCopy(named(req.params.how, second))
      })
      app.get('/pre-handler/:how', {
        preHandler: async (req, reply) => { reply.sendZeroCopy(named(req.params.how, first)) }
      }, async () => {
        ran.handler++
        return { handler: true }
      })
      app.get('/on-request/:how', {
        onRequest: async (req, reply) => { reply.sendZeroCopy(named(req.params.how, first)) }
      }, async () => {
        ran.handler++
        return { handler: true }
      })
      app.get('/later/:how', async (req, reply) => {
        setImmediate(() => reply.sendZeroCopy(named(req.params.how, second)))
        return { ok: true }
      })
      app.get('/then-throw/:how', async (req, reply) => {
        reply.sendZeroCopy(named(req.params.how, first))
        throw new Error('after the send')
      })
      app.get('/missing-then-value/:how', async (req, reply) => {
        reply.sendZeroCopy(named(req.params.how, path.join(dir, 'nothing')))
        return { ok: true }
      })
      app.get('/buffer-then-value', async (req, reply) => {
        reply.sendZeroCopy(buffer)
        return { ok: true }
      })
    }
  })

  const wholeFile = (res, what) => {
    t.equal(res.error, null, `${what}: the connection was not cut`)
    t.equal(res.status, 200, `${what}: 200`)
    t.equal(res.headers['content-length'], String(SIZE), `${what}: the file's length`)
    t.equal(res.length, SIZE, `${what}: every byte`)
    t.equal(res.sha, firstSha, `${what}: the first file, exact`)
  }
  const json = (res, body, what) => {
    t.equal(res.error, null, `${what}: the connection was not cut`)
    t.equal(res.status, 200, `${what}: 200`)
    t.same(JSON.parse(res.text || 'null'), body, `${what}: the first send's body`)
  }
  /** The request's log: one FST_ERR_REP_ALREADY_SENT at warn, with Fastify's message, and no error line. */
  const loggedOnce = async (url, what) => {
    const found = () => lines.filter((l) => l.level === 40 && l.err?.code === 'FST_ERR_REP_ALREADY_SENT' && (l.err?.message === ALREADY_SENT(url) || l.err?.message === ALREADY_SENT(url, 'HEAD')))
    await eventually(() => found().length > 0, 2000)
    t.equal(found().length, 1, `${what}: the other send is logged once as "Reply was already sent"`)
    const errors = lines.filter((l) => l.level >= 50)
    t.same(errors.map((l) => l.msg + ' ' + (l.err?.code ?? '')), [], `${what}: no error logged`)
  }

  for (const how of ['warm', 'cold']) {
    let url = `/return-value/${how}`
    lines.length = 0
    wholeFile(await get(port, url), `${how}: sendZeroCopy, then a returned value`)
    await loggedOnce(url, `${how}: returned value`)

    lines.length = 0
    const head = await new Promise((resolve) => {
      http.request({ host: '127.0.0.1', port, path: url, method: 'HEAD', agent: false }, (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, error: null }))
        res.on('error', (err) => resolve({ status: res.statusCode, headers: res.headers, error: err.code }))
      }).on('error', (err) => resolve({ status: 0, headers: {}, error: err.code })).end()
    })
    t.same([head.error, head.status, head.headers['content-length'], typeof head.headers.etag], [null, 200, String(SIZE), 'string'],
      `${how}: HEAD, sendZeroCopy then a returned value: the file's head`)
    await loggedOnce(url, `${how}: HEAD, returned value`)

    url = `/then-send/${how}`
    lines.length = 0
    wholeFile(await get(port, url), `${how}: sendZeroCopy, then reply.send`)
    await loggedOnce(url, `${how}: reply.send after`)

    url = `/send-then/${how}`
    lines.length = 0
    json(await get(port, url), { first: true }, `${how}: reply.send, then sendZeroCopy`)
    await loggedOnce(url, `${how}: sendZeroCopy after`)

    url = `/stream-then/${how}`
    lines.length = 0
    const streamed = await get(port, url)
    t.equal(streamed.error, null, `${how}: reply.send(stream), then sendZeroCopy: not cut`)
    t.equal(streamed.status, 200)
    t.equal(streamed.length, SIZE, `${how}: reply.send(stream), then sendZeroCopy: the stream's bytes`)
    t.equal(streamed.sha, firstSha, `${how}: reply.send(stream), then sendZeroCopy: the stream's file, exact`)
    await loggedOnce(url, `${how}: sendZeroCopy after a stream`)

    url = `/twice/${how}`
    lines.length = 0
    wholeFile(await get(port, url), `${how}: sendZeroCopy twice`)
    await loggedOnce(url, `${how}: the second sendZeroCopy`)

    url = `/later/${how}`
    lines.length = 0
    json(await get(port, url), { ok: true }, `${how}: a returned value, then sendZeroCopy later`)
    await loggedOnce(url, `${how}: the later sendZeroCopy`)

    for (const hook of ['pre-handler', 'on-request']) {
      url = `/${hook}/${how}`
      lines.length = 0
      ran.handler = 0
      wholeFile(await get(port, url), `${how}: sendZeroCopy from ${hook}`)
      t.equal(ran.handler, 0, `${how}: after ${hook} sent, the handler does not run (as after reply.send of a Buffer)`)
      t.same(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], `${how} ${hook}: no error logged`)
    }

    url = `/then-throw/${how}`
    lines.length = 0
    wholeFile(await get(port, url), `${how}: sendZeroCopy, then a throw`)
    await eventually(() => lines.some((l) => l.msg === 'Promise errored, but reply.sent = true was set'), 2000)
    t.ok(lines.some((l) => l.level === 50 && l.msg === 'Promise errored, but reply.sent = true was set' && l.err?.message === 'after the send'),
      `${how}: the throw is logged as Fastify logs an error after a send`)

    url = `/missing-then-value/${how}`
    lines.length = 0
    const missing = await get(port, url)
    t.equal(missing.error, null, `${how}: missing file, then a value: not cut`)
    t.equal(missing.status, 404, `${how}: missing file, then a value: the first send's answer, 404`)
    t.equal(JSON.parse(missing.text || 'null')?.code, 'FST_ZERO_COPY_FILE_NOT_FOUND', `${how}: its code`)
    await eventually(() => lines.some((l) => l.err?.code === 'FST_ERR_REP_ALREADY_SENT'), 2000)
    t.ok(lines.some((l) => l.level === 40 && l.err?.code === 'FST_ERR_REP_ALREADY_SENT'), `${how}: the value is logged as already sent`)
  }

  lines.length = 0
  const res = await get(port, '/buffer-then-value')
  t.equal(res.error, null, 'buffer, then a returned value: not cut')
  t.equal(res.status, 200)
  t.equal(res.length, SIZE)
  t.equal(res.sha, bufferSha, 'buffer, then a returned value: the buffer, exact')
  await loggedOnce('/buffer-then-value', 'buffer then value')

  t.ok(await eventually(() => fdsUnder(dir) === 0), `no descriptor left on the files (${fdsUnder(dir)})`)
  t.ok(await eventually(() => app.zeroCopy.stats().inFlight.pinnedBytes === 0), 'nothing left pinned')
})

test('await reply after sendZeroCopy resolves once the response finished (the kernel may read the body until then)', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'body.bin')
  fs.writeFileSync(file, seeded('order', 4, SIZE))
  const buffer = seeded('order', 5, SIZE)
  const seen = []
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/file/:how', async (req, reply) => {
        await reply.sendZeroCopy({ path: (req.params.how === 'cold' ? '/proc/self/root' : '') + file })
        seen.push(['file ' + req.params.how, reply.raw.writableFinished || reply.raw.destroyed])
      })
      app.get('/buffer', async (req, reply) => {
        await reply.sendZeroCopy(buffer)
        seen.push(['buffer', reply.raw.writableFinished || reply.raw.destroyed])
      })
    }
  })
  for (const url of ['/file/warm', '/file/cold', '/buffer']) {
    const res = await get(port, url)
    t.same([res.error, res.status, res.length], [null, 200, SIZE], `${url}: whole`)
  }
  t.ok(await eventually(() => seen.length === 3), 'every handler went on after its await')
  t.same(seen, [['file warm', true], ['file cold', true], ['buffer', true]], 'each await resolved after its response finished')
})
