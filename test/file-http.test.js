'use strict'
// File bodies over real sockets: headers, ranges, conditionals, HEAD, options, errors and
// fallbacks. Every body is checked against the SHA-256 of the same slice read with fs.
const fs = require('node:fs')
const fsp = require('node:fs/promises')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const Fastify = require('fastify')
const { test } = require('tap')
const { KiB, MiB, FILE_INLINE, sha256, startServer, request, eventually, seeded, zeroCopy, CLASSIC, FILE_PATH, fileSplit, nativeFileBytes, assertEngine } = require('./helpers')

// A fixed mtime, so Last-Modified and ETag have known values.
const MTIME = new Date('2024-03-05T06:07:08.000Z')
const MTIME_HTTP = 'Tue, 05 Mar 2024 06:07:08 GMT'
const YEAR_MS = 365 * 24 * 3600 * 1000

// name -> size; contents are seeded bytes, so no two files are alike.
const SIZES = {
  'small.txt': 5000,
  'page.html': 700,
  'data.json': 20 * KiB,
  'image.png': 3000,
  'raw.bin': 2 * KiB,
  'blob.nosuchext': 1234,
  'large.bin': 3 * MiB + 123,
  'empty.txt': 0
}

/** Writes the fixture files into a temp dir (removed at teardown); returns { dir, files }. */
function makeFiles (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-file-http-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const files = {}
  let i = 0
  for (const [name, size] of Object.entries(SIZES)) {
    const p = path.join(dir, name)
    fs.writeFileSync(p, seeded('file-http', i++, size))
    fs.utimesSync(p, MTIME, MTIME)
    files[name] = { path: p, size, stat: fs.statSync(p) }
  }
  fs.mkdirSync(path.join(dir, 'dir'))
  return { dir, files }
}

/** The weak ETag the plugin derives from size and mtime. */
function etagOf (stat) {
  return `W/"${stat.size.toString(16)}-${stat.mtime.getTime().toString(16)}"`
}

/** SHA-256 of bytes start..end (inclusive) of a file, read with fs. */
function sliceSha (file, start, end) {
  const length = Math.max(0, end - start + 1)
  const buffer = Buffer.alloc(length)
  const fd = fs.openSync(file, 'r')
  try {
    let done = 0
    while (done < length) {
      const n = fs.readSync(fd, buffer, done, length - done, start + done)
      if (n === 0) throw new Error(`${file} ends before ${start + length}`)
      done += n
    }
  } finally {
    fs.closeSync(fd)
  }
  return sha256(buffer)
}

/** The URL of route /file/:name with per-call options `o`, handler headers `h`, handler status `s`. */
function fileUrl (name, { o, h, s } = {}) {
  const q = new URLSearchParams()
  if (o) q.set('o', JSON.stringify(o))
  if (h) q.set('h', JSON.stringify(h))
  if (s) q.set('s', String(s))
  const qs = q.toString()
  return `/file/${encodeURIComponent(name)}${qs ? '?' + qs : ''}`
}

/** One request on a connection of its own; resolves with status, headers, body, sha, length. */
function get (port, url, { method = 'GET', headers } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: url, method, headers, agent: false }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        resolve({ status: res.statusCode, headers: res.headers, body, length: body.length, sha: sha256(body) })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function json (res) {
  return JSON.parse(res.body.toString('utf8'))
}

/**
 * Routes over `dir`: /file/:name (a { path }, options/headers/status from the query),
 * /handle (a FileHandle the test keeps), /fd/:n (a raw { fd }).
 */
function fileRoutes (dir, { handle } = {}) {
  return (app) => {
    app.get('/file/:name', (req, reply) => {
      const { o, h, s } = req.query
      if (s) reply.code(Number(s))
      if (h) reply.headers(JSON.parse(h))
      return reply.sendZeroCopy({ path: path.join(dir, req.params.name) }, o === undefined ? undefined : JSON.parse(o))
    })
    if (handle) app.get('/handle', (req, reply) => reply.sendZeroCopy(handle))
    app.get('/fd/:n', (req, reply) => reply.sendZeroCopy({ fd: Number(req.params.n) }))
  }
}

/** Asserts a 200 of the whole file with every default header. */
function assertWhole (t, res, file, type, what) {
  t.equal(res.status, 200, `${what}: status`)
  t.equal(res.headers['content-type'], type, `${what}: content-type`)
  t.equal(res.headers['content-length'], String(file.size), `${what}: content-length`)
  t.equal(res.headers['last-modified'], file.stat.mtime.toUTCString(), `${what}: last-modified`)
  t.equal(res.headers.etag, etagOf(file.stat), `${what}: etag`)
  t.equal(res.headers['accept-ranges'], 'bytes', `${what}: accept-ranges`)
  t.equal(res.headers['cache-control'], 'public, max-age=0', `${what}: cache-control`)
  t.equal(res.headers['content-range'], undefined, `${what}: no content-range`)
  t.equal(res.length, file.size, `${what}: length`)
  t.equal(res.sha, sliceSha(file.path, 0, file.size - 1), `${what}: bytes`)
}

/** Asserts a 206 of bytes start..end of a file whose entity has `total` bytes. */
function assertPart (t, res, file, start, end, total, what, base = 0) {
  t.equal(res.status, 206, `${what}: status`)
  t.equal(res.headers['content-range'], `bytes ${start}-${end}/${total}`, `${what}: content-range`)
  t.equal(res.headers['content-length'], String(end - start + 1), `${what}: content-length`)
  t.equal(res.length, end - start + 1, `${what}: length`)
  t.equal(res.sha, sliceSha(file.path, base + start, base + end), `${what}: bytes`)
}

/** Asserts an error answered by Fastify's default error handler. */
function assertError (t, res, status, code, what) {
  t.equal(res.status, status, `${what}: status`)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8', `${what}: JSON`)
  const body = json(res)
  t.equal(body.statusCode, status, `${what}: statusCode`)
  t.equal(body.code, code, `${what}: code`)
  return body
}

/** A 32-bit seeded generator (mulberry32), for reproducible random ranges. */
function prng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

// ---------------------------------------------------------------------------------------

test('200 of a whole file: type by extension, length, validators, cache headers', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const types = {
    'small.txt': 'text/plain; charset=utf-8',
    'page.html': 'text/html; charset=utf-8',
    'data.json': 'application/json; charset=utf-8',
    'image.png': 'image/png',
    'raw.bin': 'application/octet-stream',
    'blob.nosuchext': 'application/octet-stream',
    'large.bin': 'application/octet-stream'
  }
  for (const [name, type] of Object.entries(types)) {
    assertWhole(t, await get(port, fileUrl(name)), files[name], type, name)
  }
  const large = await get(port, fileUrl('large.bin'))
  t.equal(large.headers['last-modified'], MTIME_HTTP, 'Last-Modified is the mtime in HTTP form')
  t.equal(large.headers.etag, `W/"30007b-${MTIME.getTime().toString(16)}"`, 'ETag is W/"<size hex>-<mtime ms hex>"')

  const empty = await get(port, fileUrl('empty.txt'))
  t.equal(empty.status, 200, 'an empty file is a 200')
  t.equal(empty.headers['content-length'], '0')
  t.equal(empty.headers['content-type'], 'text/plain; charset=utf-8')
  t.equal(empty.headers.etag, etagOf(files['empty.txt'].stat))
  t.equal(empty.length, 0)
})

test('validators follow the file at one path: a new size, the same size with a new mtime, a file renamed over it', async (t) => {
  // Each path's header values are kept between requests (for the size and mtime they were
  // formatted from): a change must give new ones, small (Node's path) and large (native) alike.
  const { dir } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  for (const [name, size] of [['changing.txt', 700], ['changing.bin', 64 * KiB]]) {
    const file = path.join(dir, name)
    const check = async (what) => {
      const stat = fs.statSync(file)
      const res = await get(port, fileUrl(name))
      t.equal(res.status, 200, `${name}, ${what}: 200`)
      t.equal(res.headers.etag, etagOf(stat), `${name}, ${what}: the ETag of the file as it is now`)
      t.equal(res.headers['last-modified'], stat.mtime.toUTCString(), `${name}, ${what}: its Last-Modified`)
      t.equal(res.sha, sha256(fs.readFileSync(file)), `${name}, ${what}: its bytes`)
      return res.headers.etag
    }
    fs.writeFileSync(file, seeded(name, 0, size))
    fs.utimesSync(file, MTIME, MTIME)
    const first = await check('first')
    t.equal(await check('again'), first, `${name}: unchanged, the same ETag`)
    fs.writeFileSync(file, seeded(name, 1, size + 1))
    fs.utimesSync(file, MTIME, MTIME)
    const grown = await check('one byte longer, the same mtime')
    t.not(grown, first, `${name}: a new size, a new ETag`)
    fs.writeFileSync(file, seeded(name, 2, size + 1))
    const later = new Date(MTIME.getTime() + 5000)
    fs.utimesSync(file, later, later)
    const touched = await check('the same size, a later mtime')
    t.not(touched, grown, `${name}: a new mtime, a new ETag`)
    const other = path.join(dir, `${name}.next`)
    fs.writeFileSync(other, seeded(name, 3, size + 2))
    fs.renameSync(other, file)
    t.not(await check('renamed over'), touched, `${name}: another file, a new ETag`)
  }
})

test('a large file goes native (its cached head by sendfile, the rest spliced by the ring); a small one goes through Node (below-threshold)', async (t) => {
  const { dir, files } = makeFiles(t)
  const { app, port } = await startServer(t, { setup: fileRoutes(dir) })
  t.equal(app.zeroCopy.capabilities.mode, 'send_zc', 'this machine has the native path')
  const large = files['large.bin']
  assertWhole(t, await get(port, fileUrl('large.bin')), large, 'application/octet-stream', 'large')
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 1), 'one response the engine took part in')
  let stats = app.zeroCopy.stats()
  t.same(stats.responses, { sendZc: 0, send: 0, ...fileSplit(0, 1), stream: 0 })
  // Just written, so cached: up to fileInline (256 KiB) by sendfile, as much as the socket took
  // (on the classic engine the rest by sendfile too).
  const head = stats.bytes.sendfile
  if (!CLASSIC) t.ok(head > 0 && head <= FILE_INLINE, `${head} bytes by sendfile`)
  t.same(stats.bytes, { sendZc: 0, send: 0, ...fileSplit(head, large.size - head), stream: 0 }, 'every byte counted once')
  t.same(stats.fallbacks, {})
  assertEngine(t, app.zeroCopy.capabilities, stats, 1)
  t.equal(stats.engines[app.zeroCopy.capabilities.engine].bytes, large.size, 'the engine\'s bytes: the whole file')

  const small = files['small.txt']
  assertWhole(t, await get(port, fileUrl('small.txt')), small, 'text/plain; charset=utf-8', 'small')
  stats = app.zeroCopy.stats()
  t.same(stats.responses, { sendZc: 0, send: 0, ...fileSplit(0, 1), stream: 1 })
  t.same(stats.bytes, { sendZc: 0, send: 0, ...fileSplit(head, large.size - head), stream: small.size })
  t.same(stats.fallbacks, { 'below-threshold': 1 })
})

test('no connection is left corked: after native bodies, a small response on the same connection comes at once', async (t) => {
  // The plugin corks the socket (TCP_CORK) so the headers leave with the body's first
  // bytes; a socket left corked would hold every later response smaller than a segment
  // for 200 ms.
  const { dir, files } = makeFiles(t)
  const buffer = seeded('cork', 0, 2 * MiB)
  const { app, port } = await startServer(t, {
    setup: (app) => {
      fileRoutes(dir)(app)
      app.get('/buffer', (req, reply) => reply.sendZeroCopy(buffer))
    }
  })
  let connections = 0
  app.server.on('connection', () => connections++)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const large = files['large.bin']
  const page = files['page.html']
  const bigs = [[fileUrl('large.bin'), sliceSha(large.path, 0, large.size - 1)], ['/buffer', sha256(buffer)]]
  const delays = []
  for (let i = 0; i < 5; i++) {
    for (const [url, sha] of bigs) {
      t.equal((await request(port, url, { agent })).sha, sha, `${url} #${i}: exact`)
      const started = process.hrtime.bigint()
      const small = await request(port, fileUrl('page.html'), { agent })
      delays.push(Number(process.hrtime.bigint() - started) / 1e6)
      t.equal(small.sha, sliceSha(page.path, 0, page.size - 1), `small after ${url} #${i}: exact`)
    }
  }
  t.equal(connections, 1, 'every request went over one connection')
  t.ok(app.zeroCopy.stats().responses[FILE_PATH] >= 5, 'the large file went native')
  t.ok(app.zeroCopy.stats().bytes.sendfile > 0, 'with its head by sendfile, which the plugin uncorks after')
  delays.sort((a, b) => a - b)
  const median = delays[delays.length >> 1]
  t.ok(median < 100, `a small response after a native body takes ${median.toFixed(1)} ms (median), not a cork's 200 ms`)
})

// io_uring only: the classic engine is driven by the event loop, so a busy thread holds its
// transfers (what it guarantees is that no socket is left corked, above).
test('the end of a body does not wait for the event loop: the ring uncorks the socket itself', { skip: CLASSIC && 'the classic engine runs on the event loop' }, async (t) => {
  // Corked, a body's last partial segment leaves only when the socket is uncorked (or when
  // the kernel's 200 ms cork timer fires). The ring uncorks it right behind the first drain
  // (kernel 6.7+), so a client gets the whole of a one-round body at once, while this thread
  // is still busy; an uncork left to the event loop would hold the last bytes until the
  // handler below returns, and here the cork timer would release them after 200 ms.
  // fileInline 0: the ring carries the whole body. (By default this cached body would go
  // whole by sendfile, uncorked, before the handler returns: test/file-inline.test.js.)
  const [major, minor] = os.release().split('.').map(Number)
  const ringUncorks = major > 6 || (major === 6 && minor >= 7)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-uncork-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'one-round.bin')
  const content = seeded('uncork', 0, 300 * KiB + 7) // one splice round: fill, drain, fill, drain
  fs.writeFileSync(file, content)
  const fd = fs.openSync(file, 'r')
  t.teardown(() => fs.closeSync(fd))
  const BUSY_MS = 2000
  const { app, port } = await startServer(t, {
    options: { fileInline: 0 },
    setup: (app) => {
      app.get('/busy', (req, reply) => {
        reply.sendZeroCopy({ fd }) // an fd body starts its transfer before this returns
        const until = Date.now() + BUSY_MS
        while (Date.now() < until) { /* this thread is busy; the ring is not */ }
      })
    }
  })
  // The client must not share the busy thread: a child process, timing its own request.
  const client = `
    const http = require('node:http'); const crypto = require('node:crypto')
    http.get({ host: '127.0.0.1', port: ${port}, path: '/busy' }, (res) => {
      const first = process.hrtime.bigint() // the headers, corked with the body's first bytes
      const hash = crypto.createHash('sha256'); let length = 0
      res.on('data', (c) => { hash.update(c); length += c.length })
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - first) / 1e6
        console.log(JSON.stringify({ ms, length, sha: hash.digest('hex') })); process.exit(0)
      })
    })`
  const { execFile } = require('node:child_process')
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', client], { timeout: 20000 }, (err, stdout) => err ? reject(err) : resolve(JSON.parse(stdout)))
  })
  t.equal(out.length, content.length, 'the whole body')
  t.equal(out.sha, sha256(content), 'exact')
  t.ok(await eventually(() => app.zeroCopy.stats().responses.splice === 1), 'spliced')
  t.equal(app.zeroCopy.stats().bytes.sendfile, 0, 'nothing by sendfile')
  t.equal(app.zeroCopy.stats().responses.stream, 0, 'nothing through the ordinary path')
  if (ringUncorks) {
    t.ok(out.ms < 100, `the rest of the body came ${out.ms.toFixed(1)} ms after the headers, while the server's thread was busy for ${BUSY_MS} ms (not after a cork's 200 ms)`)
  } else {
    t.comment(`kernel ${os.release()} cannot set socket options through the ring: the event loop uncorks (${out.ms.toFixed(1)} ms)`)
  }
})

test('single ranges: 206 with Content-Range and the exact slice, native and through Node', async (t) => {
  const { dir, files } = makeFiles(t)
  const { app, port } = await startServer(t, { setup: fileRoutes(dir) })
  for (const name of ['large.bin', 'small.txt']) {
    const f = files[name]
    const n = f.size
    const cases = [
      ['bytes=0-0', 0, 0],
      ['bytes=100-199', 100, 199],
      ['bytes=-500', n - 500, n - 1],
      ['bytes=100-', 100, n - 1],
      ['bytes=0-', 0, n - 1],
      [`bytes=${n - 10}-${n + 100000}`, n - 10, n - 1], // end past the size clamps
      [`bytes=-${n}`, 0, n - 1],
      [' bytes=1-2', 1, 2]
    ]
    for (const [range, start, end] of cases) {
      const res = await get(port, fileUrl(name), { headers: { range } })
      assertPart(t, res, f, start, end, n, `${name} ${range}`)
      t.equal(res.headers.etag, etagOf(f.stat), `${name} ${range}: etag`)
      t.equal(res.headers['content-type'], name === 'large.bin' ? 'application/octet-stream' : 'text/plain; charset=utf-8', `${name} ${range}: content-type`)
    }
  }
  // large.bin: 100-, 0- and -size are >= 16 KiB and go native, each longer than fileInline.
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 3), 'the large slices went native')
  t.equal(nativeFileBytes(app.zeroCopy.stats()), 3 * MiB + 23 + 3 * MiB + 123 + 3 * MiB + 123, 'every byte of them counted once')
})

test('a suffix range longer than the file is the whole file with 206 (RFC 9110 14.1.3)', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  for (const name of ['large.bin', 'small.txt']) {
    const f = files[name]
    assertPart(t, await get(port, fileUrl(name), { headers: { range: `bytes=-${f.size + 50}` } }), f, 0, f.size - 1, f.size, `${name} bytes=-${f.size + 50}`)
  }
})

test('416, several ranges, overlapping ranges, malformed and foreign units', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const f = files['large.bin']
  const n = f.size

  for (const range of [`bytes=${n}-`, `bytes=${n + 10}-${n + 20}`, 'bytes=-0']) {
    const res = await get(port, fileUrl('large.bin'), { headers: { range } })
    const body = assertError(t, res, 416, 'FST_ZERO_COPY_RANGE_NOT_SATISFIABLE', range)
    t.equal(res.headers['content-range'], `bytes */${n}`, `${range}: Content-Range names the size`)
    t.equal(body.error, 'Range Not Satisfiable')
  }
  const emptyRange = await get(port, fileUrl('empty.txt'), { headers: { range: 'bytes=0-' } })
  assertError(t, emptyRange, 416, 'FST_ZERO_COPY_RANGE_NOT_SATISFIABLE', 'a range of an empty file')
  t.equal(emptyRange.headers['content-range'], 'bytes */0')

  // Several ranges: the whole file with 200 (no multipart/byteranges).
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=0-9,20-29' } }), f, 'application/octet-stream', 'two ranges')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=0-9,-10' } }), f, 'application/octet-stream', 'a range and a suffix')
  // Overlapping or adjacent ranges combine into one.
  assertPart(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=0-99,50-149' } }), f, 0, 149, n, 'overlapping')
  assertPart(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=200-299,100-199' } }), f, 100, 299, n, 'adjacent, out of order')
  // Malformed or not in bytes: ignored.
  for (const range of ['bytes=abc', 'bytes=', 'bytes=--5', 'items=0-10', 'bits=0-7', '0-10']) {
    assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { range } }), f, 'application/octet-stream', `Range: ${range}`)
  }
})

test('40 random ranges of a 96 MiB file are exact', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-file-http-big-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'big.bin')
  const size = 96 * MiB
  const fd = fs.openSync(file, 'w')
  for (let i = 0; i < size / (8 * MiB); i++) fs.writeSync(fd, seeded('file-http-big', i, 8 * MiB))
  fs.closeSync(fd)
  t.equal(fs.statSync(file).size, size)

  const { app, port } = await startServer(t, {
    setup (app) { app.get('/big', (req, reply) => reply.sendZeroCopy({ path: file })) }
  })
  const random = prng(0x5eed)
  const pick = (max) => Math.floor(random() * max)
  const cases = []
  for (let i = 0; i < 40; i++) {
    // Lengths from 1 byte to 24 MiB, so both sides of the threshold are exercised.
    const cls = i % 4
    const length = 1 + (cls === 0 ? pick(16 * KiB) : cls === 3 ? pick(24 * MiB) : pick(4 * MiB))
    const form = pick(3)
    if (form === 1) { // suffix
      cases.push({ range: `bytes=-${length}`, start: size - length, end: size - 1 })
    } else {
      const start = pick(size - length + 1)
      if (form === 2 && start > size - 24 * MiB) cases.push({ range: `bytes=${start}-`, start, end: size - 1 })
      else cases.push({ range: `bytes=${start}-${start + length - 1}`, start, end: start + length - 1 })
    }
  }
  cases.push({ range: 'bytes=0-0', start: 0, end: 0 }, { range: `bytes=${size - 1}-`, start: size - 1, end: size - 1 })

  // Four at a time, each on a connection of its own.
  for (let i = 0; i < cases.length; i += 4) {
    const batch = cases.slice(i, i + 4)
    const results = await Promise.all(batch.map((c) => request(port, '/big', { headers: { range: c.range } })))
    results.forEach((res, j) => {
      const { range, start, end } = batch[j]
      t.equal(res.status, 206, `${range}: 206`)
      t.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`, `${range}: content-range`)
      t.equal(res.length, end - start + 1, `${range}: length`)
      t.equal(res.sha, sliceSha(file, start, end), `${range}: bytes`)
    })
  }
  const lengths = cases.map((c) => c.end - c.start + 1)
  const total = lengths.reduce((a, b) => a + b, 0)
  const native = lengths.filter((l) => l >= 16 * KiB)
  t.ok(await eventually(() => nativeFileBytes(app.zeroCopy.stats(), 'responses') === native.length), 'every large range went native')
  const stats = app.zeroCopy.stats()
  t.ok(stats.responses[FILE_PATH] >= native.filter((l) => l > MiB).length, 'the engine took part in every range longer than fileInline')
  t.equal(stats.responses.stream, cases.length - native.length)
  t.equal(nativeFileBytes(stats), native.reduce((a, b) => a + b, 0))
  t.equal(nativeFileBytes(stats) + stats.bytes.stream, total, 'every byte counted once')
})

test('If-None-Match and If-Modified-Since: 304 without content headers, or 200', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const f = files['large.bin']
  const etag = etagOf(f.stat)
  const type = 'application/octet-stream'
  const notModified = async (headers, what) => {
    const res = await get(port, fileUrl('large.bin'), { headers })
    t.equal(res.status, 304, `${what}: 304`)
    t.equal(res.headers['content-type'], undefined, `${what}: no content-type`)
    t.equal(res.headers['content-length'], undefined, `${what}: no content-length`)
    t.equal(res.headers['content-range'], undefined, `${what}: no content-range`)
    t.equal(res.headers.etag, etag, `${what}: etag kept`)
    t.equal(res.headers['cache-control'], 'public, max-age=0', `${what}: cache-control kept`)
    t.equal(res.length, 0, `${what}: no body`)
  }
  await notModified({ 'if-none-match': etag }, 'matching ETag')
  await notModified({ 'if-none-match': '*' }, 'If-None-Match: *')
  await notModified({ 'if-none-match': `"other", ${etag}` }, 'ETag in a list')
  await notModified({ 'if-none-match': etag, range: 'bytes=0-9' }, 'matching ETag with a Range')
  await notModified({ 'if-modified-since': MTIME_HTTP }, 'If-Modified-Since = mtime')
  await notModified({ 'if-modified-since': new Date(MTIME.getTime() + 86400000).toUTCString() }, 'If-Modified-Since after mtime')

  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-none-match': '"other"' } }), f, type, 'non-matching ETag')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-modified-since': new Date(MTIME.getTime() - 1000).toUTCString() } }), f, type, 'If-Modified-Since before mtime')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-none-match': '"other"', 'if-modified-since': MTIME_HTTP } }), f, type, 'If-None-Match decides over If-Modified-Since')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-none-match': etag, 'cache-control': 'no-cache' } }), f, type, 'Cache-Control: no-cache')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-modified-since': MTIME_HTTP, 'cache-control': 'no-cache' } }), f, type, 'no-cache with a date')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-modified-since': 'not a date' } }), f, type, 'an invalid date')
})

test('If-Match, If-Unmodified-Since (412) and If-Range', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const f = files['large.bin']
  const n = f.size
  const etag = etagOf(f.stat)
  const type = 'application/octet-stream'
  const older = new Date(MTIME.getTime() - 1000).toUTCString()

  for (const headers of [{ 'if-match': '"nope"' }, { 'if-match': 'W/"1-1", "2-2"' }, { 'if-unmodified-since': older }]) {
    const res = await get(port, fileUrl('large.bin'), { headers })
    const body = assertError(t, res, 412, 'FST_ZERO_COPY_PRECONDITION_FAILED', JSON.stringify(headers))
    t.equal(body.error, 'Precondition Failed')
  }
  // A failed precondition decides before a Range.
  assertError(t, await get(port, fileUrl('large.bin'), { headers: { 'if-match': '"nope"', range: 'bytes=0-9' } }),
    412, 'FST_ZERO_COPY_PRECONDITION_FAILED', 'If-Match with a Range')
  // The plugin's ETag is weak, and If-Match compares strongly (RFC 9110 13.1.1): it never
  // matches (test/http-strict.test.js has the strong cases).
  assertError(t, await get(port, fileUrl('large.bin'), { headers: { 'if-match': etag } }), 412, 'FST_ZERO_COPY_PRECONDITION_FAILED', 'If-Match with the weak ETag')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-match': '*' } }), f, type, 'If-Match: *')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { 'if-unmodified-since': MTIME_HTTP } }), f, type, 'If-Unmodified-Since = mtime')

  // If-Range: the Range applies only while the validator still matches.
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=10-19', 'if-range': etag } }), f, type, 'If-Range with the weak ETag (strong comparison)')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=10-19', 'if-range': 'W/"1-1"' } }), f, type, 'If-Range with a stale ETag')
  assertPart(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=10-19', 'if-range': MTIME_HTTP } }), f, 10, 19, n, 'If-Range with Last-Modified')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=10-19', 'if-range': older } }), f, type, 'If-Range with an older date')
  assertWhole(t, await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=10-19', 'if-range': 'garbage' } }), f, type, 'If-Range that is neither')
})

test('412 and 416 error bodies do not carry the file\'s Cache-Control or validators', async (t) => {
  // They describe a JSON error, not the file: a shared cache must not keep them for maxAge.
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { options: { maxAge: YEAR_MS, immutable: true }, setup: fileRoutes(dir) })
  const n = files['large.bin'].size
  const ok = await get(port, fileUrl('large.bin'))
  t.equal(ok.headers['cache-control'], 'public, max-age=31536000, immutable', 'the 200 has it')
  for (const [headers, status, code] of [
    [{ 'if-match': '"nope"' }, 412, 'FST_ZERO_COPY_PRECONDITION_FAILED'],
    [{ range: `bytes=${n}-` }, 416, 'FST_ZERO_COPY_RANGE_NOT_SATISFIABLE']
  ]) {
    const res = await get(port, fileUrl('large.bin'), { headers })
    assertError(t, res, status, code, String(status))
    t.equal(res.headers['cache-control'], undefined, `${status}: no Cache-Control`)
    t.equal(res.headers.etag, undefined, `${status}: no ETag`)
    t.equal(res.headers['last-modified'], undefined, `${status}: no Last-Modified`)
  }
})

test('HEAD: the headers of GET with the real Content-Length, and no body', async (t) => {
  const { dir, files } = makeFiles(t)
  const { app, port } = await startServer(t, { setup: fileRoutes(dir) })
  for (const [name, type] of [['large.bin', 'application/octet-stream'], ['small.txt', 'text/plain; charset=utf-8']]) {
    const f = files[name]
    const res = await get(port, fileUrl(name), { method: 'HEAD' })
    t.equal(res.status, 200, `${name}: 200`)
    t.equal(res.headers['content-length'], String(f.size), `${name}: Content-Length of the file`)
    t.equal(res.headers['content-type'], type)
    t.equal(res.headers.etag, etagOf(f.stat))
    t.equal(res.headers['last-modified'], MTIME_HTTP)
    t.equal(res.headers['accept-ranges'], 'bytes')
    t.equal(res.headers['cache-control'], 'public, max-age=0')
    t.equal(res.length, 0, `${name}: no body`)
  }
  const part = await get(port, fileUrl('large.bin'), { method: 'HEAD', headers: { range: 'bytes=100-1123' } })
  t.equal(part.status, 206)
  t.equal(part.headers['content-range'], `bytes 100-1123/${files['large.bin'].size}`)
  t.equal(part.headers['content-length'], '1024', 'the range\'s length')
  t.equal(part.length, 0)
  const cached = await get(port, fileUrl('large.bin'), { method: 'HEAD', headers: { 'if-none-match': etagOf(files['large.bin'].stat) } })
  t.equal(cached.status, 304)
  // RFC 9110 8.6: a 304 may carry Content-Length only with the 200's value.
  t.equal(cached.headers['content-length'], undefined, 'a HEAD 304 has no Content-Length')
  t.equal(cached.headers.etag, etagOf(files['large.bin'].stat))
  const empty = await get(port, fileUrl('empty.txt'), { method: 'HEAD' })
  t.equal(empty.status, 200)
  t.equal(empty.headers['content-length'], '0')

  const stats = app.zeroCopy.stats()
  t.equal(nativeFileBytes(stats, 'responses'), 0, 'no HEAD went native')
  t.equal(stats.bytes.stream, 0, 'no body bytes counted for HEAD')
  t.equal(stats.fallbacks.head, 3, 'counted as head: the whole large, the small and the range')
})

test('start/end options: exactly that part, with Range relative to it', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const f = files['large.bin']
  const n = f.size
  const part = fileUrl('large.bin', { o: { start: 10, end: 1000 } })

  const res = await get(port, part)
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], '991')
  t.equal(res.headers['content-range'], undefined)
  t.equal(res.sha, sliceSha(f.path, 10, 1000), 'bytes 10..1000')
  t.equal(res.headers['accept-ranges'], 'bytes')

  assertPart(t, await get(port, part, { headers: { range: 'bytes=0-99' } }), f, 0, 99, 991, 'Range 0-99 of the part', 10)
  assertPart(t, await get(port, part, { headers: { range: 'bytes=-10' } }), f, 981, 990, 991, 'suffix of the part', 10)
  assertPart(t, await get(port, part, { headers: { range: 'bytes=900-5000' } }), f, 900, 990, 991, 'clamped to the part', 10)
  const over = await get(port, part, { headers: { range: 'bytes=991-' } })
  assertError(t, over, 416, 'FST_ZERO_COPY_RANGE_NOT_SATISFIABLE', 'past the part')
  t.equal(over.headers['content-range'], 'bytes */991')

  const tail = await get(port, fileUrl('large.bin', { o: { start: 2 * MiB } }))
  t.equal(tail.status, 200)
  t.equal(tail.headers['content-length'], String(n - 2 * MiB))
  t.equal(tail.sha, sliceSha(f.path, 2 * MiB, n - 1), 'start only: to the end of the file')
  const head = await get(port, fileUrl('large.bin', { o: { end: 0 } }))
  t.equal(head.headers['content-length'], '1')
  t.equal(head.sha, sliceSha(f.path, 0, 0), 'end: 0 is the first byte')
  const clamped = await get(port, fileUrl('large.bin', { o: { start: n - 5, end: n + 100 } }))
  t.equal(clamped.headers['content-length'], '5')
  t.equal(clamped.sha, sliceSha(f.path, n - 5, n - 1), 'end past the file clamps')

  for (const o of [{ start: n }, { start: n + 10 }, { start: 100, end: 50 }]) {
    const empty = await get(port, fileUrl('large.bin', { o }))
    t.equal(empty.status, 200, `${JSON.stringify(o)}: 200`)
    t.equal(empty.headers['content-length'], '0', `${JSON.stringify(o)}: Content-Length 0`)
    t.equal(empty.length, 0, `${JSON.stringify(o)}: empty`)
  }
})

test('per-call options turn headers and ranges off, and set Cache-Control', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const f = files['large.bin']
  const etag = etagOf(f.stat)

  const noRanges = await get(port, fileUrl('large.bin', { o: { acceptRanges: false } }), { headers: { range: 'bytes=0-9' } })
  t.equal(noRanges.status, 200, 'acceptRanges: false ignores Range')
  t.equal(noRanges.headers['accept-ranges'], undefined)
  t.equal(noRanges.headers['content-range'], undefined)
  t.equal(noRanges.headers['content-length'], String(f.size))
  t.equal(noRanges.sha, sliceSha(f.path, 0, f.size - 1))

  const noEtag = await get(port, fileUrl('large.bin', { o: { etag: false } }), { headers: { 'if-none-match': etag } })
  t.equal(noEtag.headers.etag, undefined, 'etag: false')
  t.equal(noEtag.status, 200, 'without an ETag, If-None-Match cannot match')
  t.equal(noEtag.headers['last-modified'], MTIME_HTTP)

  const noLm = await get(port, fileUrl('large.bin', { o: { lastModified: false } }), { headers: { 'if-modified-since': MTIME_HTTP } })
  t.equal(noLm.headers['last-modified'], undefined, 'lastModified: false')
  t.equal(noLm.status, 200, 'without Last-Modified, If-Modified-Since cannot match')
  t.equal(noLm.headers.etag, etag)

  const noCc = await get(port, fileUrl('large.bin', { o: { cacheControl: false } }))
  t.equal(noCc.headers['cache-control'], undefined, 'cacheControl: false')
  t.equal(noCc.status, 200)

  const noCt = await get(port, fileUrl('small.txt', { o: { contentType: false } }))
  t.equal(noCt.headers['content-type'], undefined, 'contentType: false')
  t.equal(noCt.sha, sliceSha(files['small.txt'].path, 0, files['small.txt'].size - 1))

  const long = await get(port, fileUrl('large.bin', { o: { maxAge: 3600000, immutable: true } }))
  t.equal(long.headers['cache-control'], 'public, max-age=3600, immutable')
  const rounded = await get(port, fileUrl('large.bin', { o: { maxAge: 1999 } }))
  t.equal(rounded.headers['cache-control'], 'public, max-age=1', 'maxAge is milliseconds, rounded down')
})

test('plugin-level options are the defaults; per-call options override them', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, {
    options: { etag: false, maxAge: 60000, acceptRanges: false, immutable: true },
    setup: fileRoutes(dir)
  })
  const f = files['large.bin']
  const res = await get(port, fileUrl('large.bin'), { headers: { range: 'bytes=0-9' } })
  t.equal(res.status, 200)
  t.equal(res.headers.etag, undefined)
  t.equal(res.headers['accept-ranges'], undefined)
  t.equal(res.headers['cache-control'], 'public, max-age=60, immutable')
  t.equal(res.headers['last-modified'], MTIME_HTTP)
  t.equal(res.sha, sliceSha(f.path, 0, f.size - 1))

  const back = await get(port, fileUrl('large.bin', { o: { etag: true, maxAge: 0, acceptRanges: true, immutable: false } }), { headers: { range: 'bytes=0-9' } })
  assertPart(t, back, f, 0, 9, f.size, 'per-call overrides')
  t.equal(back.headers.etag, etagOf(f.stat))
  t.equal(back.headers['cache-control'], 'public, max-age=0')
})

test('invalid options: 500 FST_ZERO_COPY_INVALID_OPTION per call, rejected at registration', async (t) => {
  const { dir } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const bad = [
    [{ start: -1 }, 'start'],
    [{ start: 1.5 }, 'start'],
    [{ start: '10' }, 'start'],
    [{ end: -2 }, 'end'],
    [{ etag: 'yes' }, 'etag'],
    [{ acceptRanges: 1 }, 'acceptRanges'],
    [{ immutable: null }, 'immutable'],
    [{ maxAge: -1 }, 'maxAge'],
    [{ maxAge: 1.5 }, 'maxAge']
  ]
  for (const [o, name] of bad) {
    const res = await get(port, fileUrl('large.bin', { o }))
    const body = assertError(t, res, 500, 'FST_ZERO_COPY_INVALID_OPTION', JSON.stringify(o))
    t.match(body.message, `invalid option "${name}"`, `${JSON.stringify(o)}: names the option`)
  }
  for (const [options, name] of [[{ etag: 'yes' }, 'etag'], [{ maxAge: -1 }, 'maxAge'], [{ contentType: 0 }, 'contentType']]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(app.register(zeroCopy, options).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION', message: new RegExp(`"${name}"`) },
      `registration rejects ${JSON.stringify(options)}`)
  }
})

test('headers and status the handler set win, and are the ones conditionals compare', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const f = files['large.bin']
  const fileEtag = etagOf(f.stat)

  const mp4 = await get(port, fileUrl('large.bin', { h: { 'content-type': 'video/mp4', 'cache-control': 'no-store', 'x-extra': 'kept' } }))
  t.equal(mp4.status, 200)
  t.equal(mp4.headers['content-type'], 'video/mp4')
  t.equal(mp4.headers['cache-control'], 'no-store')
  t.equal(mp4.headers['x-extra'], 'kept')
  t.equal(mp4.headers.etag, fileEtag)
  t.equal(mp4.sha, sliceSha(f.path, 0, f.size - 1))

  const own = { h: { etag: '"v1"' } }
  const tagged = await get(port, fileUrl('large.bin', own))
  t.equal(tagged.headers.etag, '"v1"', 'the handler\'s ETag is sent')
  t.equal((await get(port, fileUrl('large.bin', own), { headers: { 'if-none-match': '"v1"' } })).status, 304, 'and is the one If-None-Match matches')
  t.equal((await get(port, fileUrl('large.bin', own), { headers: { 'if-none-match': fileEtag } })).status, 200, 'the derived one no longer matches')
  t.equal((await get(port, fileUrl('large.bin', own), { headers: { 'if-match': '"v1"' } })).status, 200)
  t.equal((await get(port, fileUrl('large.bin', own), { headers: { 'if-match': fileEtag } })).status, 412)
  assertPart(t, await get(port, fileUrl('large.bin', own), { headers: { range: 'bytes=5-9', 'if-range': '"v1"' } }), f, 5, 9, f.size, 'If-Range with the handler ETag')

  const lm = 'Mon, 01 Jan 2024 00:00:00 GMT'
  const dated = { h: { 'last-modified': lm } }
  t.equal((await get(port, fileUrl('large.bin', dated))).headers['last-modified'], lm)
  t.equal((await get(port, fileUrl('large.bin', dated), { headers: { 'if-modified-since': lm } })).status, 304, 'the handler\'s Last-Modified is compared')

  const status = await get(port, fileUrl('large.bin', { s: 203 }))
  t.equal(status.status, 203, 'a handler status for the whole file is kept')
  t.equal(status.headers['content-length'], String(f.size))
  t.equal(status.sha, sliceSha(f.path, 0, f.size - 1))
})

test('a handler status other than 2xx is kept: Range and preconditions do not apply to it', async (t) => {
  // E.g. a custom 404 page served from a file (RFC 9110 13.2.1, 14.2).
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const f = files['page.html']
  const url = fileUrl('page.html', { s: 404 })
  for (const headers of [{}, { range: 'bytes=0-9' }, { 'if-none-match': etagOf(f.stat) }, { 'if-match': '"nope"' }, { range: `bytes=${f.size}-` }]) {
    const res = await get(port, url, { headers })
    t.equal(res.status, 404, `${JSON.stringify(headers)}: 404`)
    t.equal(res.headers['content-type'], 'text/html; charset=utf-8', `${JSON.stringify(headers)}: the page's type`)
    t.equal(res.headers['content-range'], undefined, `${JSON.stringify(headers)}: no content-range`)
    t.equal(res.sha, sliceSha(f.path, 0, f.size - 1), `${JSON.stringify(headers)}: the whole page`)
  }
  // A 2xx status the handler set still yields 412 when a precondition fails.
  const failed = await get(port, fileUrl('large.bin', { s: 203 }), { headers: { 'if-match': '"nope"' } })
  t.equal(failed.status, 412, '203 + failed If-Match: 412')
  t.equal(json(failed).code, 'FST_ZERO_COPY_PRECONDITION_FAILED')
})

test('open errors go through the error handler with codes and statuses', async (t) => {
  const { dir, files } = makeFiles(t)
  const { port } = await startServer(t, { setup: fileRoutes(dir) })
  const missing = assertError(t, await get(port, fileUrl('missing.txt')), 404, 'FST_ZERO_COPY_FILE_NOT_FOUND', 'missing')
  t.equal(missing.error, 'Not Found')
  assertError(t, await get(port, fileUrl('dir')), 404, 'FST_ZERO_COPY_NOT_A_FILE', 'a directory')
  assertError(t, await get(port, '/fd/999999'), 500, 'FST_ZERO_COPY_INVALID_BODY', '{ fd: 999999 }')
  assertError(t, await get(port, '/fd/-1'), 500, 'FST_ZERO_COPY_INVALID_BODY', '{ fd: -1 }')
  const dirFd = fs.openSync(dir, 'r')
  t.teardown(() => fs.closeSync(dirFd))
  assertError(t, await get(port, `/fd/${dirFd}`), 500, 'FST_ZERO_COPY_INVALID_BODY', '{ fd } of a directory')
  // The server goes on.
  assertWhole(t, await get(port, fileUrl('large.bin')), files['large.bin'], 'application/octet-stream', 'after the errors')
})

test('a custom error handler sees each error with its code and statusCode', async (t) => {
  const { dir, files } = makeFiles(t)
  const seen = []
  const { port } = await startServer(t, {
    setup (app) {
      fileRoutes(dir)(app)
      app.setErrorHandler((err, req, reply) => {
        seen.push({ code: err.code, statusCode: err.statusCode })
        reply.code(err.statusCode).send({ handled: err.code })
      })
    }
  })
  const n = files['large.bin'].size
  const cases = [
    [fileUrl('missing.txt'), {}, 404, 'FST_ZERO_COPY_FILE_NOT_FOUND'],
    [fileUrl('dir'), {}, 404, 'FST_ZERO_COPY_NOT_A_FILE'],
    ['/fd/999999', {}, 500, 'FST_ZERO_COPY_INVALID_BODY'],
    [fileUrl('large.bin'), { 'if-match': '"nope"' }, 412, 'FST_ZERO_COPY_PRECONDITION_FAILED'],
    [fileUrl('large.bin'), { range: `bytes=${n}-` }, 416, 'FST_ZERO_COPY_RANGE_NOT_SATISFIABLE'],
    [fileUrl('large.bin', { o: { start: -1 } }), {}, 500, 'FST_ZERO_COPY_INVALID_OPTION']
  ]
  for (const [url, headers, status, code] of cases) {
    const res = await get(port, url, { headers })
    t.equal(res.status, status, `${code}: status`)
    t.same(json(res), { handled: code }, `${code}: the handler's body`)
    if (status === 416) t.equal(res.headers['content-range'], `bytes */${n}`, 'Content-Range survives the handler')
  }
  t.same(seen, cases.map(([, , statusCode, code]) => ({ code, statusCode })))
})

test('FileHandle and { fd } bodies: same bytes and validators; the caller\'s descriptor stays open', async (t) => {
  const { dir, files } = makeFiles(t)
  const f = files['large.bin']
  const handle = await fsp.open(f.path, 'r')
  t.teardown(() => handle.close())
  const fd = fs.openSync(files['small.txt'].path, 'r')
  t.teardown(() => fs.closeSync(fd))
  const { app, port } = await startServer(t, { setup: fileRoutes(dir, { handle }) })

  // No path, so no extension: application/octet-stream.
  assertWhole(t, await get(port, '/handle'), f, 'application/octet-stream', 'FileHandle')
  assertPart(t, await get(port, '/handle', { headers: { range: 'bytes=1000-' } }), f, 1000, f.size - 1, f.size, 'FileHandle range')
  assertWhole(t, await get(port, `/fd/${fd}`), files['small.txt'], 'application/octet-stream', '{ fd }')
  t.equal((await get(port, `/fd/${fd}`, { headers: { 'if-none-match': etagOf(files['small.txt'].stat) } })).status, 304)
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 2))

  t.equal((await handle.stat()).size, f.size, 'the FileHandle is still open')
  t.equal(fs.fstatSync(fd).size, files['small.txt'].size, 'the fd is still open')
})

test('inject() and mode "stream" serve the same bytes with the same headers', async (t) => {
  const { dir, files } = makeFiles(t)
  const f = files['large.bin']
  const { app, port } = await startServer(t, { setup: fileRoutes(dir) })
  const names = ['content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges', 'cache-control', 'content-range']
  const pick = (headers) => Object.fromEntries(names.map((h) => [h, headers[h]]))

  for (const headers of [{}, { range: 'bytes=1000-2999999' }]) {
    const real = await get(port, fileUrl('large.bin'), { headers })
    const injected = await app.inject({ method: 'GET', url: fileUrl('large.bin'), headers })
    t.equal(injected.statusCode, real.status, `${JSON.stringify(headers)}: status`)
    t.same(pick(injected.headers), pick(real.headers), `${JSON.stringify(headers)}: headers`)
    t.equal(sha256(injected.rawPayload), real.sha, `${JSON.stringify(headers)}: bytes`)
  }
  t.equal(sha256((await app.inject({ url: fileUrl('large.bin') })).rawPayload), sliceSha(f.path, 0, f.size - 1))
  const injected304 = await app.inject({ url: fileUrl('large.bin'), headers: { 'if-none-match': etagOf(f.stat) } })
  t.equal(injected304.statusCode, 304)
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 2))
  const stats = app.zeroCopy.stats()
  t.same(stats.fallbacks, { inject: 3 }, 'the injected bodies went through Node')
  t.equal(stats.responses.stream, 3)
  t.equal(stats.bytes.stream, f.size + 2999000 + f.size)

  const streamed = await startServer(t, { options: { mode: 'stream' }, setup: fileRoutes(dir) })
  assertWhole(t, await get(streamed.port, fileUrl('large.bin')), f, 'application/octet-stream', 'mode stream')
  assertPart(t, await get(streamed.port, fileUrl('large.bin'), { headers: { range: 'bytes=-70000' } }), f, f.size - 70000, f.size - 1, f.size, 'mode stream range')
  t.equal((await get(streamed.port, fileUrl('large.bin'), { headers: { 'if-none-match': etagOf(f.stat) } })).status, 304)
  const s = streamed.app.zeroCopy.stats()
  t.same(s.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 2 })
  t.same(s.fallbacks, { 'mode-stream': 2 })
  t.equal(s.bytes.stream, f.size + 70000)
})
