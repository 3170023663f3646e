'use strict'
// A stream is not a sendZeroCopy body, even one with a string `.path` (fs.ReadStream): it is
// FST_ZERO_COPY_INVALID_BODY, with a message that says what to do instead and what was given,
// and the stream is destroyed, so its descriptor is not left open.
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { Readable } = require('node:stream')
const { test } = require('tap')
const { startServer, eventually, fdsUnder, tempDir, seeded } = require('./helpers')

function getJson (port, url) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => {
        let json = null
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode, json })
      })
      res.on('error', reject)
    }).on('error', reject)
  })
}

test('a stream given to sendZeroCopy: FST_ZERO_COPY_INVALID_BODY, and no descriptor left', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'body.bin')
  fs.writeFileSync(file, seeded('stream-body', 0, 64 * 1024))
  const streams = []
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/read-stream', async (req, reply) => {
        const stream = fs.createReadStream(file)
        streams.push(stream)
        return reply.sendZeroCopy(stream)
      })
      app.get('/readable', async (req, reply) => {
        const stream = new Readable({ read () { this.push('x'); this.push(null) } })
        streams.push(stream)
        return reply.sendZeroCopy(stream)
      })
    }
  })

  for (let i = 0; i < 5; i++) {
    const res = await getJson(port, '/read-stream')
    t.equal(res.status, 500, 'a ReadStream: 500')
    t.equal(res.json?.code, 'FST_ZERO_COPY_INVALID_BODY', 'a ReadStream: FST_ZERO_COPY_INVALID_BODY')
    t.match(res.json?.message, /reply\.send\(stream\)/, 'the message says to use reply.send(stream)')
    t.match(res.json?.message, /\{ path \}/, 'or to pass { path }')
    t.match(res.json?.message, /ReadStream/, 'and says what it received')
  }
  t.ok(await eventually(() => fdsUnder(dir) === 0), `no descriptor of the file left open (${fdsUnder(dir)} after 5 requests)`)
  t.ok(streams.every((s) => s.destroyed), 'every stream given was destroyed')

  const plain = await getJson(port, '/readable')
  t.equal(plain.status, 500)
  t.equal(plain.json?.code, 'FST_ZERO_COPY_INVALID_BODY')
  t.notMatch(plain.json?.message, /\[object Object\]/, 'not "[object Object]"')
  t.match(plain.json?.message, /Readable/, 'says it received a Readable')
})
