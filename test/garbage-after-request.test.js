'use strict'
// A client that sends garbage right behind its request while a native body is being sent:
// Node's parser fails on the garbage and Fastify's clientErrorHandler writes a 400 to the
// socket and destroys it. That 400 must never land inside the body the kernel is sending:
// the client gets the body exact, or cut with an exact prefix. Buffers and files, raw sockets.
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { test } = require('tap')
const { MiB, startServer, tempDir } = require('./helpers')

const RUNS = 20

/** Sends `bytes` at once; resolves with everything the server sent before it closed. */
function exchange (port, bytes) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const got = []
    const timer = setTimeout(() => socket.destroy(), 10000)
    socket.on('data', (chunk) => got.push(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(got))
    })
    socket.write(bytes)
  })
}

test('garbage after a request for a native body never lands inside that body', async (t) => {
  const dir = tempDir(t, 0o755)
  const file = path.join(dir, 'body.bin')
  const data = crypto.randomBytes(8 * MiB)
  fs.writeFileSync(file, data)
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/buffer', (req, reply) => reply.sendZeroCopy(data))
      app.get('/file', (req, reply) => reply.sendZeroCopy({ path: file }))
    }
  })
  const outcomes = { exact: 0, cut: 0, refused: 0 }
  for (let run = 0; run < RUNS; run++) {
    const url = run % 2 === 0 ? '/buffer' : '/file'
    const raw = await exchange(port, Buffer.from(`GET ${url} HTTP/1.1\r\nhost: x\r\n\r\n\x01\x02 NOT HTTP \x7f\r\n\r\n`))
    if (raw.length === 0) {
      outcomes.cut++ // reset before anything left: nothing to mistake for a response
      continue
    }
    const end = raw.indexOf('\r\n\r\n')
    const head = raw.subarray(0, end < 0 ? raw.length : end).toString('latin1')
    if (!head.startsWith('HTTP/1.1 200')) {
      // Parsed before the response began: the 400 alone is a coherent answer.
      t.match(head, /^HTTP\/1\.1 400/, `${url}: a 400 before any body`)
      outcomes.refused++
      continue
    }
    const body = raw.subarray(end + 4)
    t.equal(body.indexOf('HTTP/1.1 400'), -1, `${url}: no 400 inside the body`)
    const n = Math.min(body.length, data.length)
    t.ok(body.subarray(0, n).equals(data.subarray(0, n)), `${url}: ${body.length} bytes of the body, all the body's`)
    t.ok(body.length <= data.length, `${url}: nothing after the body`)
    if (body.length === data.length) outcomes.exact++
    else outcomes.cut++
  }
  t.comment(`exact ${outcomes.exact}, cut ${outcomes.cut}, refused ${outcomes.refused}`)
})
