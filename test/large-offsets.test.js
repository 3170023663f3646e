'use strict'
// Offsets past 2^31 and 2^32 in a sparse 5 GiB file: ranges across each boundary and at the
// end of the file arrive exact on every path (the cached head by sendfile, the ring's splice,
// Fastify's ordinary path).
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { KiB, sha256, startServer, request, tempDir, CLASSIC } = require('./helpers')
const { seeded } = require('./fixtures/bodies')

const GiB = 1024 * 1024 * 1024
const SIZE = 5 * GiB
const SPAN = 192 * KiB

test('ranges across 2^31, 2^32 and the end of a 5 GiB file, on every path', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'sparse.bin')
  const fd = fs.openSync(file, 'w')
  // Data (not holes) around each boundary, so a wrong offset shows as wrong bytes.
  const marks = [2 ** 31, 2 ** 32, SIZE - SPAN]
  for (const [i, at] of marks.entries()) fs.writeSync(fd, seeded('offsets', i, 2 * SPAN), 0, 2 * SPAN, Math.min(at - SPAN, SIZE - 2 * SPAN))
  fs.ftruncateSync(fd, SIZE)
  fs.closeSync(fd)
  const read = (start, end) => {
    const out = Buffer.alloc(end - start + 1)
    const rfd = fs.openSync(file, 'r')
    fs.readSync(rfd, out, 0, out.length, start)
    fs.closeSync(rfd)
    return out
  }
  const ranges = [
    [2 ** 31 - 100 * KiB, 2 ** 31 + 60 * KiB - 1],
    [2 ** 31, 2 ** 31 + 100 * KiB],
    [2 ** 32 - 70 * KiB + 3, 2 ** 32 + 90 * KiB],
    [2 ** 32 + 1, 2 ** 32 + 150 * KiB],
    [SIZE - 150 * KiB, SIZE - 1]
  ]
  const servers = {
    sendfile: { fileInline: 1024 * KiB },
    splice: { fileInline: 0 },
    stream: { mode: 'stream' }
  }
  for (const [name, options] of Object.entries(servers)) {
    const { app, port } = await startServer(t, {
      options,
      setup (app) {
        app.get('/file', (req, reply) => reply.sendZeroCopy({ path: file }))
        app.get('/part/:s/:e', (req, reply) => reply.sendZeroCopy({ path: file }, { start: Number(req.params.s), end: Number(req.params.e) }))
      }
    })
    for (const [start, end] of ranges) {
      const want = sha256(read(start, end))
      const ranged = await request(port, '/file', { headers: { range: `bytes=${start}-${end}` } })
      t.equal(ranged.status, 206, `${name} ${start}-${end}: 206`)
      t.equal(ranged.headers['content-range'], `bytes ${start}-${end}/${SIZE}`, `${name}: content-range`)
      t.equal(ranged.sha, want, `${name} Range ${start}-${end}: exact`)
      const part = await request(port, `/part/${start}/${end}`)
      t.equal(part.sha, want, `${name} start/end ${start}-${end}: exact`)
      const injected = await app.inject({ url: '/file', headers: { range: `bytes=${start}-${end}` } })
      t.equal(sha256(injected.rawPayload), want, `${name} inject ${start}-${end}: exact`)
    }
    const head = await request(port, '/file', { method: 'HEAD' })
    t.equal(head.headers['content-length'], String(SIZE), `${name}: Content-Length of 5 GiB`)
    const stats = app.zeroCopy.stats()
    if (name === 'sendfile') t.ok(stats.bytes.sendfile > 0, `${name}: ${stats.bytes.sendfile} bytes by sendfile`)
    // fileInline 0: no inline sendfile; all of it by the engine (the ring's splice, or the classic engine's sendfile).
    if (name === 'splice' && CLASSIC) t.ok(stats.bytes.sendfile > 0 && stats.bytes.splice === 0, `${name}: ${stats.bytes.sendfile} bytes by the classic engine's sendfile`)
    if (name === 'splice' && !CLASSIC) t.ok(stats.bytes.splice > 0 && stats.bytes.sendfile === 0, `${name}: ${stats.bytes.splice} bytes spliced`)
    if (name === 'stream') t.ok(stats.bytes.stream > 0, `${name}: ${stats.bytes.stream} bytes through Node`)
  }
})
