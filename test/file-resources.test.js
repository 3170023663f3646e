'use strict'
// File bodies on real sockets: who closes what ({ path } by the plugin; a FileHandle or { fd }
// never), a 1 GiB file through the splice path, a file truncated mid-transfer, open errors
// (404, 403 as an unprivileged user), 1,000 requests with aborts, and the native file path as
// `nobody` under a low memlock limit. Bytes are checked against SHA-256 or byte by byte.
const crypto = require('node:crypto')
const fs = require('node:fs')
const fsp = require('node:fs/promises')
const http = require('node:http')
const net = require('node:net')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const {
  KiB, MiB, FILE_INLINE, sha256, startServer, request, readPartOf, eventually, inFlightIsZero, spawnFixture,
  getJson, procRss, steadyFds, fetchChecked, rateReader, sleep, seeded, after, fdLinks, fdsUnder, logCapture, tempDir,
  CLASSIC, FILE_PATH, nativeFileBytes, assertEngine
} = require('./helpers')

const GiB = 1024 * MiB
const ROOT = process.getuid() === 0

/** Writes seeded(seed, 0, size) to `file` in 8 MiB chunks; returns its SHA-256. */
function writeSeeded (file, seed, size) {
  const key = crypto.createHash('sha256').update(`${seed}:0`).digest()
  const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(8 * MiB)
  const hash = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'w', 0o644)
  try {
    for (let done = 0; done < size;) {
      const chunk = cipher.update(zeros.subarray(0, Math.min(zeros.length, size - done)))
      for (let off = 0; off < chunk.length;) off += fs.writeSync(fd, chunk, off)
      hash.update(chunk)
      done += chunk.length
    }
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest('hex')
}

/** SHA-256 of a file, streamed (this also brings it into the page cache). */
async function hashFile (file) {
  const hash = crypto.createHash('sha256')
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 * MiB })) hash.update(chunk)
  return hash.digest('hex')
}

const pipeCount = (pid) => fdLinks(pid).filter((l) => l.startsWith('pipe:')).length

/**
 * Fds the test keeps opening while responses run: they take the lowest free numbers, often
 * ones the server just freed, so a second close of such a number (a file closed twice) would
 * close a sentinel, and finish() would count it.
 */
function sentinels (t) {
  const file = path.join(tempDir(t), 'sentinel')
  fs.writeFileSync(file, 'sentinel')
  const open = []
  let lost = 0
  const check = (fd) => {
    let ok = false
    try { ok = fs.readlinkSync(`/proc/self/fd/${fd}`) === file } catch {}
    if (ok) fs.closeSync(fd)
    else lost++
  }
  let timer = null
  const add = (count = 1, keep = Infinity) => {
    for (let k = 0; k < count; k++) open.push(fs.openSync(file, 'r'))
    while (open.length > keep) check(open.shift())
  }
  return {
    add,
    /** One more sentinel every millisecond or so (the last 64 kept), while responses run. */
    start () { timer = setInterval(() => add(1, 64), 1) },
    stop () { clearInterval(timer) },
    /** Checks and closes every sentinel; returns how many were closed behind the test's back. */
    finish () {
      clearInterval(timer)
      while (open.length > 0) check(open.shift())
      return lost
    }
  }
}

/** A request whose (small) body is kept as text; fails after `ms` instead of hanging. */
function fetchText (port, url, { method = 'GET', headers, ms = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: url, method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('latin1')
      res.on('data', (d) => { text += d })
      res.on('end', () => {
        let json = null
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.setTimeout(ms, () => req.destroy(new Error(`${url}: no response within ${ms} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** Sends a GET on a raw socket and resets it at once: the server may still be opening the file. */
function resetAtOnce (port, url) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`, () => setImmediate(() => socket.resetAndDestroy()))
    })
    socket.on('error', () => {})
    socket.on('close', resolve)
  })
}

test('ownership: a FileHandle and an { fd } stay open and the caller\'s; a { path } is closed after every outcome', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'big.bin')
  const big = seeded('own', 0, 4 * MiB + 123)
  fs.writeFileSync(file, big)
  const smallFile = path.join(dir, 'small.txt')
  const small = seeded('own', 1, 4 * KiB)
  fs.writeFileSync(smallFile, small)
  let handle = null
  let fd = -1
  const { app, port } = await startServer(t, {
    setup (app) {
      // ?end=N: only bytes 0..N (a small part goes by the ordinary path, through the caller's file)
      const part = (q) => (q.end === undefined ? undefined : { end: Number(q.end) })
      app.get('/handle', (req, reply) => reply.sendZeroCopy(handle, part(req.query)))
      app.get('/fd', (req, reply) => reply.sendZeroCopy({ fd }, part(req.query)))
      app.get('/path/:name', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params.name) }, part(req.query)))
    }
  })
  t.equal((await request(port, '/path/big.bin')).sha, sha256(big), 'warm-up')
  t.ok(await eventually(() => inFlightIsZero(app)))
  const baseline = await steadyFds()
  const pipes = pipeCount()
  const ino = fs.statSync(file).ino

  /** The caller's file is still open, on the same file, and reads right. */
  async function stillTheCallers (what, kind) {
    t.ok(await eventually(() => inFlightIsZero(app), 10000), `${what}: nothing in flight`)
    await sleep(50) // the server side of the response has closed
    const n = kind === 'handle' ? handle.fd : fd
    t.ok(n >= 0, `${what}: the FileHandle was not closed (fd ${n})`)
    let link = null
    try { link = fs.readlinkSync(`/proc/self/fd/${n}`) } catch {}
    t.equal(link, file, `${what}: fd ${n} is still open on the file`)
    if (link !== file) return
    const st = kind === 'handle' ? await handle.stat() : fs.fstatSync(fd)
    t.equal(st.ino, ino, `${what}: stat works`)
    const first = Buffer.alloc(64)
    if (kind === 'handle') await handle.read(first, 0, 64, 0)
    else fs.readSync(fd, first, 0, 64, 0)
    t.same(first, big.subarray(0, 64), `${what}: still reads the file`)
  }

  for (const kind of ['handle', 'fd']) {
    if (kind === 'handle') handle = await fsp.open(file, 'r')
    else fd = fs.openSync(file, 'r')
    const url = `/${kind}`
    const spliced = app.zeroCopy.stats().responses[FILE_PATH]
    const full = await request(port, url)
    t.equal(full.sha, sha256(big), `${kind}: whole file exact`)
    t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === spliced + 1), `${kind}: carried by the engine`)
    await stillTheCallers(`${kind} after a spliced 200`, kind)

    const part = await request(port, `${url}?end=4095`)
    t.equal(part.sha, sha256(big.subarray(0, 4096)), `${kind}: a small part exact (ordinary path)`)
    await stillTheCallers(`${kind} after an ordinary-path 200`, kind)

    const head = await request(port, url, { method: 'HEAD' })
    t.equal(head.status, 200)
    t.equal(head.headers['content-length'], String(big.length))
    await stillTheCallers(`${kind} after HEAD`, kind)

    const range = await request(port, url, { headers: { range: 'bytes=1000-1049575' } })
    t.equal(range.status, 206)
    t.equal(range.sha, sha256(big.subarray(1000, 1049576)), `${kind}: 206 exact`)
    await stillTheCallers(`${kind} after 206`, kind)

    t.equal((await request(port, url, { headers: { range: `bytes=${big.length}-` } })).status, 416)
    await stillTheCallers(`${kind} after 416`, kind)

    t.equal((await request(port, url, { headers: { 'if-none-match': full.headers.etag } })).status, 304)
    await stillTheCallers(`${kind} after 304`, kind)

    const cut = await readPartOf(port, url, MiB, { reset: true })
    t.ok(cut.equals(big.subarray(0, cut.length)), `${kind}: the aborted body was a prefix`)
    await readPartOf(port, url, 0)
    await stillTheCallers(`${kind} after aborted responses`, kind)

    const many = await Promise.all(Array.from({ length: 8 }, () => request(port, url)))
    t.ok(many.every((r) => r.sha === sha256(big)), `${kind}: 8 concurrent responses from one open file, exact`)
    await stillTheCallers(`${kind} after 8 concurrent responses`, kind)

    // The caller closes; a second close would fail (EBADF) had the plugin closed it.
    if (kind === 'handle') await t.resolves(handle.close(), 'the caller closes its FileHandle')
    else t.doesNotThrow(() => fs.closeSync(fd), 'the caller closes its fd')
  }
  t.equal(await steadyFds(), baseline, 'fds back to baseline once the caller closed its files')

  // { path }: every outcome, then nothing of dir is open.
  const etag = (await request(port, '/path/big.bin', { method: 'HEAD' })).headers.etag
  const outcomes = [
    ['200 spliced', () => request(port, '/path/big.bin'), (r) => r.status === 200 && r.sha === sha256(big)],
    ['200 small file', () => request(port, '/path/small.txt'), (r) => r.status === 200 && r.sha === sha256(small)],
    ['206', () => request(port, '/path/big.bin', { headers: { range: 'bytes=5-100004' } }), (r) => r.status === 206 && r.sha === sha256(big.subarray(5, 100005))],
    ['HEAD', () => request(port, '/path/big.bin', { method: 'HEAD' }), (r) => r.status === 200 && r.length === 0],
    ['304', () => request(port, '/path/big.bin', { headers: { 'if-none-match': etag } }), (r) => r.status === 304],
    ['412', () => request(port, '/path/big.bin', { headers: { 'if-match': '"nope"' } }), (r) => r.status === 412],
    ['416', () => request(port, '/path/big.bin', { headers: { range: 'bytes=99999999-' } }), (r) => r.status === 416],
    ['404', () => request(port, '/path/missing.bin'), (r) => r.status === 404],
    ['aborted mid-body (RST)', () => readPartOf(port, '/path/big.bin', MiB, { reset: true }), (b) => b.equals(big.subarray(0, b.length))],
    ['aborted mid-body (FIN)', () => readPartOf(port, '/path/big.bin', 2 * MiB), (b) => b.equals(big.subarray(0, b.length))],
    ['aborted after the headers', () => readPartOf(port, '/path/big.bin', 0, { reset: true }), (b) => b.equals(big.subarray(0, b.length))],
    ['aborted while opening', () => resetAtOnce(port, '/path/big.bin'), () => true]
  ]
  const traps = sentinels(t)
  for (const [what, run, ok] of outcomes) {
    traps.start()
    const results = await Promise.all(Array.from({ length: 5 }, run))
    t.ok(results.every(ok), `${what}: as expected`)
    t.ok(await eventually(() => fdsUnder(dir) === 0, 5000), `${what}: the plugin closed every file it opened (open: ${fdsUnder(dir)})`)
    await sleep(20)
    traps.stop()
  }
  // The same outcomes in turn on one keep-alive connection.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const sockets = new Set()
  const keepAlive = (headers, method) => new Promise((resolve, reject) => {
    http.request({ host: '127.0.0.1', port, path: '/path/big.bin', method, headers, agent }, (res) => {
      sockets.add(res.socket)
      const hash = crypto.createHash('sha256')
      res.on('data', (d) => hash.update(d))
      res.on('end', () => resolve(`${res.statusCode} ${hash.digest('hex') === sha256(big) ? 'exact' : 'other'}`))
    }).on('error', reject).end()
  })
  traps.start()
  const seen = []
  for (const [headers, method] of [[{ range: 'bytes=99999999-' }], [{ 'if-none-match': etag }], [{}, 'HEAD'], [{}],
    [{ range: 'bytes=10-2000009' }], [{ 'if-match': '"nope"' }], [{}]]) seen.push(await keepAlive(headers, method))
  traps.stop()
  agent.destroy()
  t.same(seen, ['416 other', '304 other', '200 other', '200 exact', '206 other', '412 other', '200 exact'], 'one keep-alive connection: 416, 304, HEAD, 200, 206, 412, 200')
  t.equal(sockets.size, 1, 'all on the same connection')
  t.ok(await eventually(() => fdsUnder(dir) === 0, 5000), 'keep-alive: the plugin closed every file it opened')

  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight')
  await sleep(200)
  t.equal(traps.finish(), 0, 'no fd of the test was closed by the plugin: each file closed exactly once')
  t.equal(await steadyFds(), baseline, 'open fds back to baseline')
  t.equal(pipeCount(), pipes, 'no pipe left open')
  t.equal((await request(port, '/path/big.bin')).sha, sha256(big), 'the server goes on serving')
})

test('a 1 GiB file arrives exact through the splice path', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'huge.bin')
  const written = writeSeeded(file, 'huge', GiB)
  const onDisk = await hashFile(file) // warms the page cache too
  t.equal(onDisk, written, 'the file holds what was written')
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/huge', (req, reply) => reply.sendZeroCopy({ path: file })) }
  })
  const started = Date.now()
  const res = await request(port, '/huge')
  const ms = Date.now() - started
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], String(GiB))
  t.equal(res.length, GiB, 'every byte arrived')
  t.equal(res.sha, onDisk, 'the body hashes as the file does')
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 1 && inFlightIsZero(app), 10000), 'counted once the engine finished')
  const stats = app.zeroCopy.stats()
  if (!CLASSIC) t.ok(stats.bytes.sendfile <= FILE_INLINE, `at most fileInline by sendfile (${stats.bytes.sendfile})`)
  t.equal(nativeFileBytes(stats), GiB, 'the rest by the engine (spliced by the ring, or the classic engine\'s sendfile)')
  assertEngine(t, app.zeroCopy.capabilities, stats, 1)
  t.equal(stats.engines[app.zeroCopy.capabilities.engine].bytes, GiB)
  t.equal(stats.responses.stream, 0, 'nothing through the ordinary path')
  t.equal(stats.bytes.stream, 0)
  t.ok(await eventually(() => fdsUnder(dir) === 0), 'the file is closed')
  t.comment(`1 GiB in ${ms} ms (${(GiB / MiB / (ms / 1000)).toFixed(0)} MiB/s, client hashing included)`)
})

for (const mode of ['auto', 'stream']) {
  const route = mode === 'auto' ? 'the native splice path' : "the ordinary path (mode 'stream')"
  test(`a file truncated during the transfer, ${route}: short body, closed connection, logged, server goes on`, async (t) => {
    const size = 256 * MiB
    const cut = 64 * MiB
    const dir = tempDir(t)
    const file = path.join(dir, 'shrinking.bin')
    const expected = seeded('truncate', 0, size)
    fs.writeFileSync(file, expected)
    const log = logCapture()
    const { app, port } = await startServer(t, {
      options: { mode },
      fastify: { logger: log.logger },
      setup (app) { app.get('/file', (req, reply) => reply.sendZeroCopy({ path: file })) }
    })
    t.equal((await request(port, '/file', { headers: { range: 'bytes=0-99' } })).status, 206, 'warm-up')
    const baseline = await steadyFds()
    const pipes = pipeCount()

    // A reader that stops after the headers: the server fills the socket buffers and waits.
    const reader = rateReader(port, '/file', expected, { rate: -1 })
    t.ok(await eventually(() => reader.socket.bytesRead > 0), 'the response started')
    await sleep(300)
    if (mode === 'auto') t.ok(app.zeroCopy.stats().inFlight.sends > 0, 'the transfer is in flight')
    const before = reader.socket.bytesRead
    t.ok(before < cut, `the client had ${before} bytes when the file shrank to ${cut}`)
    fs.truncateSync(file, cut)
    reader.setRate(0)
    const res = await Promise.race([reader.done, after(30000, null)])
    t.ok(res !== null, 'the connection was closed (no hang)')
    if (res === null) return
    t.match(res.head, /^HTTP\/1\.1 200 /)
    t.equal(res.contentLength, size, 'Content-Length announced the whole file')
    t.ok(res.bodyLength < size, `the client got ${res.bodyLength} of ${size} bytes: a short body`)
    t.notOk(res.complete, 'never a complete-looking response')
    t.equal(res.completedAt, 0, 'the server, not the client, closed the connection')
    t.equal(res.firstBad, -1, 'what arrived is a true prefix of the file')

    const changed = (l) => l.level >= 40 && l.err && l.err.code === 'FST_ZERO_COPY_FILE_CHANGED'
    t.ok(await eventually(() => log.lines.some(changed)), 'the server logged FST_ZERO_COPY_FILE_CHANGED')
    t.equal(log.lines.filter(changed).length, 1, 'logged once')
    t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight')
    const stats = app.zeroCopy.stats()
    if (mode === 'auto') {
      t.equal(stats.responses[FILE_PATH], 1, 'the native path carried it')
      t.equal(nativeFileBytes(stats), res.bodyLength, 'bytes.splice and bytes.sendfile count what reached the client')
    } else {
      t.equal(nativeFileBytes(stats, 'responses'), 0, 'the ordinary path carried it')
    }
    t.ok(await eventually(() => fdsUnder(dir) === 0), 'the file is closed')
    t.equal(await steadyFds(), baseline, 'open fds back to baseline')
    t.equal(pipeCount(), pipes, 'no pipe left open')

    const again = await request(port, '/file')
    t.equal(again.status, 200, 'the server goes on serving')
    t.equal(again.length, cut)
    t.equal(again.sha, sha256(expected.subarray(0, cut)), 'the shorter file, exact')
    t.equal(log.lines.filter(changed).length, 1, 'no further error')
  })
}

test('open errors: 404 for a missing file, a directory, a FIFO (without hanging), a device; nothing left open', async (t) => {
  const dir = tempDir(t)
  fs.writeFileSync(path.join(dir, 'plain.bin'), seeded('errors', 0, 64 * KiB))
  fs.mkdirSync(path.join(dir, 'sub'))
  execFileSync('mkfifo', [path.join(dir, 'fifo')])
  fs.symlinkSync('/dev/zero', path.join(dir, 'zero'))
  fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'))
  fs.symlinkSync(path.join(dir, 'loop'), path.join(dir, 'loop'))
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/p/*', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params['*']) })) }
  })
  t.equal((await request(port, '/p/plain.bin')).status, 200, 'warm-up')
  const baseline = await steadyFds()
  const cases = [
    ['missing.bin', 404, 'FST_ZERO_COPY_FILE_NOT_FOUND'],
    ['plain.bin/below', 404, 'FST_ZERO_COPY_FILE_NOT_FOUND'], // ENOTDIR
    ['sub', 404, 'FST_ZERO_COPY_NOT_A_FILE'], // EISDIR
    ['fifo', 404, 'FST_ZERO_COPY_NOT_A_FILE'],
    ['zero', 404, 'FST_ZERO_COPY_NOT_A_FILE'], // a character device, through a symlink
    ['dangling', 404, 'FST_ZERO_COPY_FILE_NOT_FOUND'],
    ['loop', 404, 'FST_ZERO_COPY_FILE_NOT_FOUND'] // ELOOP
  ]
  for (const [name, status, code] of cases) {
    const started = Date.now()
    const res = await fetchText(port, `/p/${name}`)
    t.equal(res.status, status, `${name}: ${status}`)
    t.equal(res.json && res.json.code, code, `${name}: ${code}`)
    t.ok(Date.now() - started < 2000, `${name}: answered in ${Date.now() - started} ms`)
  }
  // More FIFOs than libuv has threads: an open that waited for a writer would starve the pool.
  const started = Date.now()
  const fifos = await Promise.all(Array.from({ length: 16 }, () => fetchText(port, '/p/fifo')))
  t.ok(fifos.every((r) => r.status === 404 && r.json.code === 'FST_ZERO_COPY_NOT_A_FILE'), '16 concurrent FIFO requests: 404')
  t.ok(Date.now() - started < 3000, `... in ${Date.now() - started} ms`)
  t.equal((await request(port, '/p/plain.bin')).sha, sha256(seeded('errors', 0, 64 * KiB)), 'the server goes on serving files')
  t.ok(await eventually(() => fdsUnder(dir) === 0), `nothing of the directory is open (${fdLinks().filter((l) => l.startsWith(dir))})`)
  t.ok(await eventually(() => inFlightIsZero(app)))
  t.equal(await steadyFds(), baseline, 'open fds back to baseline')
})

test('native file responses do not wait for libuv\'s thread pool: served while every pool thread is blocked', async (t) => {
  // A path is opened from the dentry cache or through the ring (IORING_OP_OPENAT), stat'ed and
  // closed synchronously, sent by sendfile and the ring: nothing of it queues behind fs,
  // dns.lookup, crypto or zlib work.
  const dir = tempDir(t)
  const size = 3 * MiB + 17
  const file = path.join(dir, 'large.bin')
  fs.writeFileSync(file, seeded('pool', 0, size))
  const { app, port } = await startServer(t, {
    setup (app) { app.get('/p/*', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params['*']) })) }
  })
  // Every thread of this process's pool opens a FIFO for reading without O_NONBLOCK: each
  // stays blocked until a writer comes (the test itself is the server's process).
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4
  const fifos = Array.from({ length: threads }, (_, i) => path.join(dir, `block-${i}`))
  for (const fifo of fifos) execFileSync('mkfifo', [fifo])
  const blocked = fifos.map((fifo) => new Promise((resolve) => fs.open(fifo, 'r', (err, fd) => resolve({ err, fd }))))
  let released = false
  const release = () => {
    if (released) return
    released = true
    // A writer for each FIFO: the pool's opens return (O_NONBLOCK on a FIFO's write end
    // fails with ENXIO only when no reader is there; here every one has its reader).
    for (const fifo of fifos) fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK))
  }
  t.teardown(release)
  let poolBusy = true
  fs.stat(file, () => { poolBusy = false })
  await sleep(200)
  t.ok(poolBusy, 'the pool is blocked: an fs.stat queued behind it has not run')
  for (let i = 0; i < 3; i++) {
    // Bounded: through the pool, this request would wait for as long as the pool is blocked.
    const res = await Promise.race([request(port, '/p/large.bin'), after(5000, null)])
    t.not(res, null, `#${i}: answered within 5 s`)
    if (res === null) break
    t.equal(res.status, 200, `#${i}: 200`)
    t.equal(res.sha, sha256(seeded('pool', 0, size)), `#${i}: exact`)
  }
  t.ok(poolBusy, 'the pool was blocked throughout')
  // A body is counted when the server reaps its last result, which may follow the client's end.
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 3), 'all three native')
  const missing = await fetchText(port, '/p/missing.bin')
  t.equal(missing.status, 404, 'a missing file is a 404 without the pool too')
  release()
  for (const { err, fd } of await Promise.all(blocked)) {
    t.equal(err, null, 'the pool\'s open returned once a writer came')
    fs.closeSync(fd)
  }
  t.ok(await eventually(() => !poolBusy), 'the queued fs.stat ran after')
  t.ok(await eventually(() => inFlightIsZero(app)))
})

test('EACCES: 403 FST_ZERO_COPY_FILE_FORBIDDEN from a server that cannot read the file', async (t) => {
  // Root bypasses permission checks: as root the server runs as `nobody`.
  const dir = tempDir(t, 0o755)
  const readable = seeded('eacces', 0, MiB)
  fs.writeFileSync(path.join(dir, 'open.bin'), readable, { mode: 0o644 })
  fs.writeFileSync(path.join(dir, 'secret.bin'), readable)
  fs.chmodSync(path.join(dir, 'secret.bin'), ROOT ? 0o600 : 0o000)
  fs.mkdirSync(path.join(dir, 'locked'))
  fs.writeFileSync(path.join(dir, 'locked', 'inner.bin'), readable, { mode: 0o644 })
  fs.chmodSync(path.join(dir, 'locked'), ROOT ? 0o700 : 0o000)
  t.teardown(() => fs.chmodSync(path.join(dir, 'locked'), 0o700)) // so the directory can be removed
  const server = await spawnFixture(t, 'file-server', { dir, drop: true })
  t.equal(server.state, 'READY', server.message)
  t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  const ok = await request(server.port, '/file/open.bin')
  t.equal(ok.sha, sha256(readable), 'a readable file is served')
  const baseline = await steadyFds(server.pid)
  for (const name of ['secret.bin', 'locked/inner.bin']) {
    const res = await fetchText(server.port, `/file/${name}`)
    t.equal(res.status, 403, `${name}: 403`)
    t.equal(res.json && res.json.code, 'FST_ZERO_COPY_FILE_FORBIDDEN', `${name}: FST_ZERO_COPY_FILE_FORBIDDEN`)
  }
  t.equal(fdsUnder(dir, server.pid), 0, 'the server holds nothing of the directory open')
  t.equal(await steadyFds(server.pid), baseline, 'the server\'s fds back to baseline')
})

test('1,000 requests for large files with aborts: bodies exact, fds, pipes, ring and RSS back', async (t) => {
  const dir = tempDir(t)
  const files = [16 * KiB, MiB + 1, 3 * MiB + 4097, 6 * MiB - 3].map((size, i) => {
    const buf = seeded('many', i, size)
    fs.writeFileSync(path.join(dir, `f${i}.bin`), buf)
    return { name: `f${i}.bin`, size, buf }
  })
  const { app, port } = await startServer(t, {
    setup (app) {
      app.get('/file/:name', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params.name) }))
      app.get('/part/:name', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params.name) },
        { start: Number(req.query.start), end: Number(req.query.end) }))
    }
  })
  for (const f of files) t.equal((await request(port, `/file/${f.name}`)).sha, sha256(f.buf), `warm-up ${f.name}`)
  t.ok(await eventually(() => inFlightIsZero(app)))
  const baseline = await steadyFds()
  const pipes = pipeCount()
  const rss = procRss()
  const before = app.zeroCopy.stats().responses
  const carried = (r) => r.splice + r.sendfile - before.splice - before.sendfile

  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  const total = 1000
  const tally = { complete: 0, exact: 0, prefixes: 0, partial: 0, failures: [] }
  const fail = (i, why) => { if (tally.failures.length < 20) tally.failures.push(`request ${i}: ${why}`) }
  async function one (i) {
    const f = files[i % files.length]
    const url = `/file/${f.name}`
    const hash = (i * 2654435761) >>> 0 // a deterministic spread of cut points
    if (i % 5 === 0 || i % 10 === 1) {
      // Every 5th vanishes mid-body (RST or FIN); some right after the headers.
      const at = i % 5 === 0 ? 1 + (hash % (f.size - 1)) : 0
      const part = await readPartOf(port, url, at, { reset: i % 2 === 0 })
      tally.partial++
      if (part.length <= f.size && part.equals(f.buf.subarray(0, part.length))) tally.prefixes++
      else fail(i, `a cut body of ${part.length} bytes is not a prefix`)
      return
    }
    let expected = f.buf
    let target = url
    let options = { agent: false }
    if (i % 10 === 9) {
      // Part of the file through { start, end }.
      const length = Math.max(16 * KiB, Math.floor(f.size / 3))
      const start = hash % (f.size - length + 1)
      expected = f.buf.subarray(start, start + length)
      target = `/part/${f.name}?start=${start}&end=${start + length - 1}`
    } else if (i % 10 === 3 || i % 10 === 7) {
      // Keep-alive; one in four of these goes away mid-body with RST.
      options = { agent, vanishAt: i % 40 === 3 ? Math.floor(f.size / 2) : -1, reset: true }
    }
    const res = await fetchChecked(port, target, expected, options)
    if (res.vanished) {
      tally.partial++
      if (res.firstBad < 0) tally.prefixes++
      else fail(i, `first bad byte at ${res.firstBad}`)
      return
    }
    tally.complete++
    if (res.status === 200 && res.exact && res.sha === sha256(expected)) tally.exact++
    else fail(i, `status ${res.status}, ${res.length} bytes, first bad byte ${res.firstBad}`)
  }
  let next = 0
  const started = Date.now()
  const traps = sentinels(t)
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < total) {
      const i = next++
      try { await one(i) } catch (err) { fail(i, err.message) }
      traps.add(1, 64)
    }
  }))
  agent.destroy()
  t.comment(`${total} requests in ${Date.now() - started} ms: ${tally.complete} complete, ${tally.partial} cut by the client`)
  t.same(tally.failures, [], 'no request failed')
  t.equal(tally.exact, tally.complete, `all ${tally.complete} completed bodies exact`)
  t.equal(tally.prefixes, tally.partial, `all ${tally.partial} cut bodies true prefixes`)
  t.equal(tally.complete + tally.partial, total)

  t.ok(await eventually(() => app.zeroCopy.stats().inFlight.sends === 0, 10000), 'nothing in flight on the ring')
  const stats = app.zeroCopy.stats()
  t.equal(carried(stats.responses), total, 'every response went native')
  if (CLASSIC) {
    t.equal(stats.responses.splice, 0, 'the classic engine: every one by sendfile')
  } else {
    t.ok(stats.responses.splice > before.splice && stats.responses.sendfile > before.sendfile,
      `by both of its paths: the ring took part in ${stats.responses.splice - before.splice}, sendfile alone sent ${stats.responses.sendfile - before.sendfile}`)
  }
  t.equal(stats.responses.stream, 0, 'none through the ordinary path')
  t.ok(await eventually(() => fdsUnder(dir) === 0), `every file closed (open: ${fdsUnder(dir)})`)
  t.equal(traps.finish(), 0, 'no fd of the test was closed by the plugin: each file closed exactly once')
  t.equal(await steadyFds(), baseline, 'open fds back to baseline')
  t.equal(pipeCount(), pipes, 'no pipe left open')
  const now = procRss()
  t.ok(now < rss + 256 * MiB, `RSS ${(now / MiB).toFixed(0)} MiB, ${(rss / MiB).toFixed(0)} MiB before the requests`)
  for (const f of files) t.equal((await request(port, `/file/${f.name}`)).sha, sha256(f.buf), `still serving ${f.name}`)
})

test('the native file path as an unprivileged user with a 128 KiB memlock limit: 8 concurrent 64 MiB responses exact', async (t) => {
  const dir = tempDir(t, 0o755)
  const body = seeded('nobody', 0, 64 * MiB)
  fs.writeFileSync(path.join(dir, 'big.bin'), body, { mode: 0o644 })
  const server = await spawnFixture(t, 'file-server', { dir, drop: true }, {
    wrap: ['sh', '-c', 'ulimit -l 128 && exec "$@"', 'sh']
  })
  t.equal(server.state, 'READY', server.message)
  t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  const limits = fs.readFileSync(`/proc/${server.pid}/limits`, 'utf8')
  t.equal(Number(/^Max locked memory\s+(\d+)/m.exec(limits)?.[1]), 128 * KiB, 'RLIMIT_MEMLOCK is 128 KiB')
  const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8')
  t.equal(BigInt('0x' + /^CapEff:\s*(\S+)/m.exec(status)[1]), 0n, 'no capabilities')
  t.equal(server.capabilities.mode, 'send_zc', 'the native path is the one serving')
  const baseline = await steadyFds(server.pid)
  const pipes = pipeCount(server.pid) // its stdio

  const results = await Promise.all(Array.from({ length: 8 }, () => fetchChecked(server.port, '/file/big.bin', body)))
  results.forEach((res, i) => {
    t.equal(res.status, 200)
    t.ok(res.exact && res.sha === sha256(body), `client ${i}: ${res.length} bytes, exact`)
  })
  let stats
  t.ok(await eventually(async () => {
    stats = await getJson(server.port, '/stats')
    return stats.responses[FILE_PATH] === 8 && stats.inFlight.sends === 0
  }, 10000), 'all 8 carried by the engine, nothing in flight')
  t.equal(stats.responses[FILE_PATH], 8)
  if (CLASSIC) {
    // Not known to be cached (as root's file to nobody), pages go by sendfile on a disk thread.
    t.equal(stats.bytes.sendfile, 8 * 64 * MiB, 'the classic engine: every byte by sendfile')
  } else if (ROOT) {
    // The file is root's, 0644: cachestat(2) does not answer for it to nobody (test/file-inline.test.js).
    t.equal(stats.bytes.sendfile, 0, 'a file nobody may only read: nothing by sendfile, the ring carried it all')
  } else {
    t.ok(stats.bytes.sendfile > 0, `a file this user owns: its cached heads by sendfile (${stats.bytes.sendfile} bytes)`)
  }
  t.equal(nativeFileBytes(stats), 8 * 64 * MiB)
  t.equal(stats.responses.stream, 0, 'none through the ordinary path')
  t.equal(fdsUnder(dir, server.pid), 0, 'the server closed the file')
  t.equal(await steadyFds(server.pid), baseline, 'the server\'s fds back to baseline')
  t.equal(pipeCount(server.pid), pipes, 'no pipe left open in the server')
})

// io_uring only: the size of the ring's SQ (the classic engine has no queue to fill).
test('the smallest ring (8 KiB memlock, unprivileged) with depth 64: files are still spliced whole', { skip: CLASSIC && 'a test of the ring\'s queue' }, async (t) => {
  // Under an 8 KiB memlock limit only the smallest ring opens (32 SQEs). A splice round of
  // depth 64 must shrink to what that ring holds, with room for its poll, leftover drain and
  // uncork; asking for more SQEs than the ring has would fail every file op. fileInline 0:
  // the ring carries every byte.
  const dir = tempDir(t, 0o755)
  const body = seeded('small-ring', 0, 3 * MiB + 5)
  fs.writeFileSync(path.join(dir, 'three.bin'), body, { mode: 0o644 })
  const server = await spawnFixture(t, 'file-server', { dir, drop: true, options: { depth: 64, fileChunk: 64 * KiB, fileInline: 0 } }, {
    wrap: ['sh', '-c', 'ulimit -l 8 && exec "$@"', 'sh']
  })
  t.equal(server.state, 'READY', server.message)
  t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  t.equal(server.capabilities.mode, 'send_zc', 'a ring opened under 8 KiB')
  const results = await Promise.all(Array.from({ length: 4 }, () => fetchChecked(server.port, '/file/three.bin', body)))
  results.forEach((res, i) => t.ok(res.status === 200 && res.exact && res.sha === sha256(body), `client ${i}: ${res.length} bytes, exact`))
  let stats
  t.ok(await eventually(async () => {
    stats = await getJson(server.port, '/stats')
    return stats.responses.splice === 4 && stats.inFlight.sends === 0
  }, 10000), `all 4 spliced by the ring (${JSON.stringify(stats?.fallbacks)})`)
  t.equal(stats.bytes.splice, 4 * body.length, 'every byte')
  t.equal(stats.responses.stream, 0, 'none through the ordinary path')
})
