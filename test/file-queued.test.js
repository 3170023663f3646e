'use strict'
// A file response queued behind another on its connection (HTTP/1.1 pipelining): Node gives
// it the socket only when the responses before it finished, and when the connection closes
// first, Node emits 'close' on the socket's current response only, not on the ones waiting.
// A file opened for a waiting response must still be closed when its connection closes:
// sendZeroCopy({ path }) (whole, a range, opened after the call, on the ordinary path) and fastify-zero-copy/static
// (at once, and with the connection gone while an async onFile runs, before the response starts).
// Each case: a first request the server holds unanswered, the file request pipelined behind
// it, the file seen open in /proc/self/fd, the connection destroyed, the file's descriptors
// counted; then the same file on a new connection, exact by SHA-256.
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { test } = require('tap')
const serveStatic = require('fastify-zero-copy/static')
const { MiB, sha256, startServer, request, eventually, fdLinks, tempDir } = require('./helpers')

function fdsOf (file) {
  return fdLinks().filter((l) => l === file).length
}

async function setup (t, options) {
  const dir = tempDir(t, 0o755)
  const file = path.join(dir, '1m.bin')
  const body = crypto.randomBytes(MiB)
  fs.writeFileSync(file, body)
  fs.mkdirSync(path.join(dir, 'slow'))
  const slowFile = path.join(dir, 'slow', '1m.bin')
  fs.writeFileSync(slowFile, body)
  const held = []
  t.teardown(() => { for (const release of held) release() })
  const { port } = await startServer(t, {
    options,
    fastify: { forceCloseConnections: true },
    setup: async (app) => {
      // onFile waits for names beneath slow/: the connection closes meanwhile.
      await app.register(serveStatic, {
        root: dir,
        prefix: '/static/',
        onFile: async (name) => {
          if (name.includes('/slow/')) await new Promise((resolve) => setTimeout(resolve, 300))
        }
      })
      app.get('/hold', (req, reply) => new Promise((resolve) => held.push(() => resolve('released'))))
      app.get('/file/*', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params['*']) }))
      // A path through /proc/self/root is never in the dentry cache: the file opens after the
      // call, Fastify holding a pending body meanwhile.
      app.get('/late/*', (req, reply) => reply.sendZeroCopy({ path: '/proc/self/root' + path.join(dir, req.params['*']) }))
    }
  })
  return { port, file, slowFile, sha: sha256(body) }
}

/** A held request, `url` pipelined behind it; the connection destroyed once `file` is open. */
async function queuedThenGone (t, port, url, file, headers = '') {
  const before = fdsOf(file)
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.on('error', () => {})
  socket.write(`GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET ${url} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`)
  t.ok(await eventually(() => fdsOf(file) > before, 3000), `${url}: the file is open for the waiting response`)
  socket.destroy()
  const closed = await eventually(() => fdsOf(file) === before, 2000)
  t.ok(closed, `${url}: its descriptor is closed with the connection (open: ${fdsOf(file) - before} more than before)`)
}

for (const [name, options] of [['native', undefined], ['ordinary path (mode stream)', { mode: 'stream' }]]) {
  test(`a file response waiting behind another on a connection that closes: the file is closed (${name})`, async (t) => {
    const { port, file, slowFile, sha } = await setup(t, options)
    await queuedThenGone(t, port, '/file/1m.bin', file)
    await queuedThenGone(t, port, '/file/1m.bin', file, 'Range: bytes=1000-500000\r\n')
    await queuedThenGone(t, port, '/late/1m.bin', file)
    await queuedThenGone(t, port, '/static/1m.bin', file)
    await queuedThenGone(t, port, '/static/slow/1m.bin', slowFile)
    for (const url of ['/file/1m.bin', '/late/1m.bin', '/static/1m.bin', '/static/slow/1m.bin']) {
      const res = await request(port, url)
      t.equal(res.status, 200, `${url} afterwards: 200`)
      t.equal(res.sha, sha, `${url} afterwards: exact`)
    }
    t.ok(await eventually(() => fdsOf(file) === 0 && fdsOf(slowFile) === 0, 2000), 'no descriptor of either file left')
  })
}
