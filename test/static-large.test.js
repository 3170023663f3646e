'use strict'
// A 1 GiB file served by fastify-zero-copy/static on the native path: whole (SHA-256 over the
// stream), a Range across the 512 MiB mark, HEAD's Content-Length, and the stats that say the
// engine carried it; then the same range from a server running as `nobody`.
//
// The file is sparse, so that the test writes 8 MiB and not 1 GiB: its holes read as zeros,
// whose bytes are as known as any others, and the expected SHA-256 is computed here from the
// layout (zeros, then each chunk at its offset), not by reading the file back. Eight seeded
// MiB sit at offsets across the file, none page-aligned, one straddling the 512 MiB mark and
// one ending at the last byte: a byte sent from the wrong offset, a hole where data belongs
// or data where a hole belongs changes the digest.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const serveStatic = require('fastify-zero-copy/static')
const { MiB, request, tempDir, spawnFixture, getJson, nativeFileBytes, assertEngine, eventually } = require('./helpers')
const { seeded } = require('./fixtures/bodies')

const GiB = 1024 * MiB
const SIZE = GiB
const HALF = 512 * MiB
const CHUNK = MiB
const OFFSETS = [0, 3 * MiB + 17, 100 * MiB + 4095, HALF - CHUNK / 2 - 1, HALF + 5 * MiB + 1, 700 * MiB + 333, 1000 * MiB + 9, SIZE - CHUNK]

function buildLarge (t) {
  const dir = tempDir(t, 0o755)
  const root = path.join(dir, 'root')
  fs.mkdirSync(root, { mode: 0o755 })
  const file = path.join(root, 'one-gib.bin')
  const fd = fs.openSync(file, 'w', 0o644)
  const chunks = OFFSETS.map((at, i) => ({ at, bytes: seeded('one-gib', i, CHUNK) }))
  for (const { at, bytes } of chunks) fs.writeSync(fd, bytes, 0, bytes.length, at)
  fs.ftruncateSync(fd, SIZE)
  fs.closeSync(fd)
  const st = fs.statSync(file)
  t.equal(st.size, SIZE, 'the file is 1 GiB')
  t.ok(st.blocks * 512 < 64 * MiB, `sparse: ${st.blocks * 512} bytes on disk`)
  return { dir, root, file, chunks }
}

/** SHA-256 of bytes [start, end] of the layout: zeros but for the chunks. */
function expectedSha ({ chunks }, start, end) {
  const hash = crypto.createHash('sha256')
  const zeros = Buffer.alloc(16 * MiB)
  let at = start
  const zeroUntil = (limit) => {
    while (at < limit) {
      const n = Math.min(limit - at, zeros.length)
      hash.update(zeros.subarray(0, n))
      at += n
    }
  }
  for (const c of [...chunks].sort((a, b) => a.at - b.at)) {
    const from = Math.max(c.at, start)
    const to = Math.min(c.at + c.bytes.length, end + 1)
    if (from >= to) continue
    zeroUntil(from)
    hash.update(c.bytes.subarray(from - c.at, to - c.at))
    at = to
  }
  zeroUntil(end + 1)
  return hash.digest('hex')
}

test('a 1 GiB file: whole, a Range across 512 MiB, HEAD, all on the native path', async (t) => {
  const large = buildLarge(t)
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { root: large.root, prefix: '/assets/' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = app.server.address().port
  t.not(app.zeroCopy.capabilities.mode, 'stream', 'a native engine is serving')

  const started = process.hrtime.bigint()
  const whole = await request(port, '/assets/one-gib.bin')
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.equal(whole.status, 200)
  t.equal(whole.headers['content-length'], String(SIZE))
  t.equal(whole.length, SIZE, 'every byte arrived')
  t.equal(whole.sha, expectedSha(large, 0, SIZE - 1), 'the whole file: exact')
  t.comment(`1 GiB in ${ms.toFixed(0)} ms (client hashing included)`)

  const start = HALF - 3 * MiB - 11
  const end = HALF + 2 * MiB + 7
  const part = await request(port, '/assets/one-gib.bin', { headers: { range: `bytes=${start}-${end}` } })
  t.equal(part.status, 206)
  t.equal(part.headers['content-range'], `bytes ${start}-${end}/${SIZE}`)
  t.equal(part.length, end - start + 1)
  t.equal(part.sha, expectedSha(large, start, end), 'the range across 512 MiB: exact')
  // Read before the small tail and HEAD, which go by Fastify's ordinary path by design (below
  // the threshold; no body).
  // The engine counts a body once it has finished with it, which may follow the client's last byte.
  const sent = SIZE + (end - start + 1)
  await eventually(() => nativeFileBytes(app.zeroCopy.stats()) === sent)
  const stats = app.zeroCopy.stats()
  t.equal(stats.responses.stream, 0, 'nothing went through Node\'s stream')
  t.equal(nativeFileBytes(stats), sent, `all ${sent} bytes by the engine's file path (splice: ${stats.bytes.splice}, sendfile: ${stats.bytes.sendfile})`)
  assertEngine(t, app.zeroCopy.capabilities, stats, 2)

  const tail = await request(port, '/assets/one-gib.bin', { headers: { range: 'bytes=-1000' } })
  t.equal(tail.status, 206)
  t.equal(tail.sha, expectedSha(large, SIZE - 1000, SIZE - 1), 'the last 1000 bytes: exact')

  const head = await request(port, '/assets/one-gib.bin', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers['content-length'], String(SIZE), 'HEAD: Content-Length of 1 GiB')
  t.equal(head.length, 0, 'HEAD: no body')
})

test('a 1 GiB file from a server running as nobody: the Range across 512 MiB, natively', async (t) => {
  const large = buildLarge(t)
  const server = await spawnFixture(t, 'static-server', { drop: true, static: { root: large.root, prefix: '/assets/' } })
  t.equal(server.state, 'READY', server.message ?? 'the server is up')
  if (process.getuid() === 0) t.equal(server.uid, 65534, 'the server is nobody')
  else t.not(server.uid, 0, 'the server is not root')
  const start = HALF - 40 * MiB - 1
  const end = HALF + 24 * MiB
  const part = await request(server.port, '/assets/one-gib.bin', { headers: { range: `bytes=${start}-${end}` } })
  t.equal(part.status, 206)
  t.equal(part.headers['content-range'], `bytes ${start}-${end}/${SIZE}`)
  t.equal(part.sha, expectedSha(large, start, end), 'the range across 512 MiB: exact')
  let stats
  await eventually(async () => nativeFileBytes(stats = await getJson(server.port, '/stats')) === end - start + 1)
  t.equal(stats.responses.stream, 0, 'nothing went through Node\'s stream')
  t.equal(nativeFileBytes(stats), end - start + 1, 'the range by the engine\'s file path')
  assertEngine(t, server.capabilities, stats, 1)
})
