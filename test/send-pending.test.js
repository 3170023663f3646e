'use strict'
// A file that opens later than the call (its path not in the dentry cache: /proc/self/root/...
// never opens at once) is handed to Fastify as a pending body at the call, which becomes the
// file's when it is open. It must answer exactly as a file opened at once: the same status,
// headers and bytes for HEAD, conditionals and ranges; through async and wrapping onSend
// hooks; and when Fastify's error path answers instead (an onSend hook that fails, a missing
// file under an async error handler), the error handler's answer goes out.
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { PassThrough, pipeline } = require('node:stream')
const { test } = require('tap')
const { MiB, sha256, startServer, eventually, fdsUnder, logCapture, tempDir, seeded } = require('./helpers')

const SIZE = 3 * MiB + 5

function fetch (port, url, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: url, method, headers, agent: false }, (res) => {
      const hash = crypto.createHash('sha256')
      let length = 0
      let text = ''
      res.on('data', (chunk) => { hash.update(chunk); length += chunk.length; if (text.length < 2000) text += chunk.toString('latin1') })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length, sha: hash.digest('hex'), text, error: null }))
      res.on('error', (err) => resolve({ status: res.statusCode, headers: res.headers, length, sha: null, text, error: err.code }))
    })
    req.on('error', (err) => resolve({ status: 0, headers: {}, length: 0, sha: null, text: '', error: err.code }))
    req.end()
  })
}

/** What must be the same whether the file opened at once or later. */
function shape (res) {
  const headers = { ...res.headers }
  delete headers.date
  delete headers.connection
  delete headers['keep-alive']
  let body = res.sha
  if (res.status >= 400) body = JSON.parse(res.text).code
  return { status: res.status, headers, length: res.length, body, error: res.error }
}

test('a file opened later answers as one opened at once', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'body.bin')
  fs.writeFileSync(file, seeded('pending', 0, SIZE))
  const { lines, logger } = logCapture()
  const { port } = await startServer(t, {
    fastify: { logger },
    setup (app) {
      app.get('/warm', (req, reply) => reply.sendZeroCopy({ path: file }))
      app.get('/cold', (req, reply) => reply.sendZeroCopy({ path: '/proc/self/root' + file }))
    }
  })
  const warm = await fetch(port, '/warm')
  t.equal(warm.sha, sha256(fs.readFileSync(file)), 'the file, exact')
  const etag = warm.headers.etag
  const cases = [
    ['GET', {}],
    ['HEAD', {}],
    ['GET', { 'if-none-match': etag }],
    ['HEAD', { 'if-none-match': etag }],
    ['GET', { range: 'bytes=100-2000000' }],
    ['GET', { range: 'bytes=-10' }],
    ['GET', { range: `bytes=${SIZE + 10}-` }],
    ['GET', { 'if-match': '"nothing"' }],
    ['GET', { 'if-range': '"other"', range: 'bytes=0-9' }]
  ]
  for (const [method, headers] of cases) {
    const a = shape(await fetch(port, '/warm', { method, headers }))
    const b = shape(await fetch(port, '/cold', { method, headers }))
    t.same(b, a, `${method} ${JSON.stringify(headers)}: cold ${b.status} as warm ${a.status}`)
  }
  t.same(lines.filter((l) => l.msg === 'stream closed prematurely' || l.level >= 40).map((l) => l.msg), [],
    'nothing logged as closed early, no warning, no error')
  t.ok(await eventually(() => fdsUnder(dir) === 0), 'no descriptor left')
})

test('a file opened later, through onSend hooks: async, wrapping, failing; and an async error handler', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'body.bin')
  fs.writeFileSync(file, seeded('pending', 1, SIZE))
  const sha = sha256(fs.readFileSync(file))
  const cold = '/proc/self/root' + file
  const { port } = await startServer(t, {
    setup (app) {
      app.register(async (scope) => {
        scope.addHook('onSend', async (req, reply, payload) => {
          await new Promise((resolve) => setTimeout(resolve, 5))
          return payload
        })
        scope.get('/async-hook/:how', (req, reply) => reply.sendZeroCopy({ path: req.params.how === 'cold' ? cold : file }))
      })
      app.register(async (scope) => {
        scope.addHook('onSend', (req, reply, payload, done) => {
          const through = new PassThrough()
          pipeline(payload, through, () => {})
          reply.removeHeader('content-length')
          done(null, through)
        })
        scope.get('/wrapping-hook/:how', (req, reply) => reply.sendZeroCopy({ path: req.params.how === 'cold' ? cold : file }))
      })
      app.register(async (scope) => {
        scope.addHook('onSend', async () => { throw Object.assign(new Error('refused by a hook'), { statusCode: 409 }) })
        scope.get('/failing-hook/:how', async (req, reply) => {
          reply.sendZeroCopy({ path: req.params.how === 'cold' ? cold : file })
          return reply
        })
      })
      app.get('/bad-header/:how', (req, reply) => {
        reply.header('x-bad', 'a\nb')
        return reply.sendZeroCopy({ path: req.params.how === 'cold' ? cold : file })
      })
      app.register(async (scope) => {
        scope.setErrorHandler(async (err, req, reply) => {
          await new Promise((resolve) => setTimeout(resolve, 5))
          reply.code(err.statusCode ?? 500)
          return { handled: err.code }
        })
        scope.get('/missing/:how', async (req, reply) => {
          reply.sendZeroCopy({ path: (req.params.how === 'cold' ? '/proc/self/root' : '') + path.join(dir, 'nothing') })
          return { second: true }
        })
      })
    }
  })
  for (const how of ['warm', 'cold']) {
    const a = await fetch(port, `/async-hook/${how}`)
    t.same([a.error, a.status, a.length, a.sha], [null, 200, SIZE, sha], `${how}: an async onSend hook, the file exact`)
    const w = await fetch(port, `/wrapping-hook/${how}`)
    t.same([w.error, w.status, w.length, w.sha], [null, 200, SIZE, sha], `${how}: a wrapping onSend hook, the file exact`)
    const f = await fetch(port, `/failing-hook/${how}`)
    t.same([f.error, f.status, JSON.parse(f.text || 'null')?.message], [null, 409, 'refused by a hook'], `${how}: a failing onSend hook, the error handler's answer`)
    const b = await fetch(port, `/bad-header/${how}`)
    t.same([b.error, b.status], [null, 500], `${how}: a header Node refuses: a 500 from Fastify's error path, not a hang`)
    const m = await fetch(port, `/missing/${how}`)
    t.same([m.error, m.status, JSON.parse(m.text || 'null')], [null, 404, { handled: 'FST_ZERO_COPY_FILE_NOT_FOUND' }], `${how}: a missing file, the async error handler's answer`)
  }
  t.ok(await eventually(() => fdsUnder(dir) === 0), 'no descriptor left')
})
