'use strict'
// RFC 9110 where @fastify/send is looser: If-Match and If-Range use the strong comparison
// (a weak ETag never matches; If-Range compares the whole tag, not a substring), and a path
// that is a Unix socket (open gives ENXIO) is 404 NOT_A_FILE like any other non-file.
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { test } = require('tap')
const { sha256, startServer, request, tempDir } = require('./helpers')
const { seeded } = require('./fixtures/bodies')

async function jsonOf (port, url, headers) {
  const http = require('node:http')
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url, headers, agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }))
    }).on('error', reject)
  })
}

test('a Unix socket path is 404 NOT_A_FILE, through either open', async (t) => {
  const dir = tempDir(t)
  const sock = path.join(dir, 'a.sock')
  const server = net.createServer().listen(sock)
  t.teardown(() => server.close())
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/warm', (req, reply) => reply.sendZeroCopy({ path: sock }))
      app.get('/cold', (req, reply) => reply.sendZeroCopy({ path: '/proc/self/root' + sock }))
    }
  })
  for (const url of ['/warm', '/cold']) {
    const res = await jsonOf(port, url)
    t.equal(res.status, 404, `${url}: 404`)
    t.equal(JSON.parse(res.text).code, 'FST_ZERO_COPY_NOT_A_FILE', `${url}: NOT_A_FILE`)
  }
})

test('If-Match and If-Range: the strong comparison', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'f.bin')
  const bytes = seeded('strict', 0, 200 * 1024)
  fs.writeFileSync(file, bytes)
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/strong', (req, reply) => reply.header('etag', '"abc"').sendZeroCopy({ path: file }))
      app.get('/weak', (req, reply) => reply.sendZeroCopy({ path: file }))
    }
  })
  const weak = (await request(port, '/weak', { method: 'HEAD' })).headers.etag
  t.match(weak, /^W\/"/, 'the default ETag is weak')
  const cases = [
    ['/strong', { 'if-match': '"abc"' }, 200],
    ['/strong', { 'if-match': '"x", "abc"' }, 200],
    ['/strong', { 'if-match': 'W/"abc"' }, 412],
    ['/strong', { 'if-match': '*' }, 200],
    ['/weak', { 'if-match': weak }, 412],
    ['/weak', { 'if-match': weak.slice(2) }, 412],
    ['/strong', { range: 'bytes=10-19', 'if-range': '"abc"' }, 206],
    ['/strong', { range: 'bytes=10-19', 'if-range': 'W/"abc"' }, 200],
    ['/strong', { range: 'bytes=10-19', 'if-range': 'x"abc"y' }, 200],
    ['/strong', { range: 'bytes=10-19', 'if-range': '"abc", "d"' }, 200],
    ['/weak', { range: 'bytes=10-19', 'if-range': weak }, 200]
  ]
  for (const [url, headers, status] of cases) {
    const res = await request(port, url, { headers })
    t.equal(res.status, status, `${url} ${JSON.stringify(headers)}: ${status}`)
    if (status === 200) t.equal(res.sha, sha256(bytes), 'the whole file')
    if (status === 206) t.equal(res.sha, sha256(bytes.subarray(10, 20)), 'the range')
  }
})
