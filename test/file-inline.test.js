'use strict'
// The cached head of a file body: when every page of the first `fileInline` bytes (256 KiB by
// default) of what a response sends is in the page cache, the plugin sends them with one
// sendfile(2) on the event loop's thread, as far as the socket takes them, and the ring splices
// the rest. Shown here over real sockets, with the page cache set up and checked by a helper
// of its own (test/fixtures/page-cache.c: posix_fadvise to evict, mincore to look):
// - a cached file up to fileInline goes whole by sendfile, and the socket is not left corked;
// - an evicted file, or one with part of its head evicted, goes through the ring; a range
//   whose own pages are cached goes by sendfile though the file's head is not;
// - a socket that fills during the sendfile: the ring sends the rest when it drains;
// - a file cut short before its body started: FILE_CHANGED, a short body, the connection
//   closed, nothing leaked;
// - a path whose lookup is not all in the dentry cache is opened through the ring;
// - as an unprivileged user: a file it owns goes by sendfile; one it may only read does not
//   (cachestat answers only for a file the caller owns or may write), the ring sends it.
// On the classic engine the rest goes by sendfile too (on the loop when its pages are cached,
// else on a disk thread): every byte counts as sendfile, none as spliced, so there the
// assertions on the head's share become ones on the whole.
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const {
  KiB, MiB, FILE_INLINE, sha256, startServer, request, eventually, inFlightIsZero, compileFixture, rateReader,
  steadyFds, seeded, sleep, after, spawnFixture, getJson, fdsUnder, logCapture, tempDir,
  CLASSIC, FILE_PATH, fileSplit, nativeFileBytes
} = require('./helpers')

const ROOT = process.getuid() === 0

/** The page-cache helper: evict(file[, offset, length]), load(...), resident(...) -> { resident, total }. */
function pageCache (t) {
  const bin = compileFixture(t, 'page-cache')
  const run = (args) => execFileSync(bin, args.map(String), { encoding: 'utf8' })
  return {
    evict: (file, ...range) => run(['evict', file, ...range]),
    load: (file, ...range) => run(['load', file, ...range]),
    resident: (file, ...range) => {
      const [resident, total] = run(['resident', file, ...range]).trim().split(' ').map(Number)
      return { resident, total }
    }
  }
}

test('a cached file up to fileInline goes whole by sendfile; the socket is not left corked after it', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'cached.bin')
  const body = seeded('inline', 0, 192 * KiB + 7)
  fs.writeFileSync(file, body)
  const page = seeded('inline', 1, 700)
  fs.writeFileSync(path.join(dir, 'page.bin'), page)
  const routes = (app) => app.get('/f/:name', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params.name) }))
  const { app, port } = await startServer(t, { setup: routes })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const delays = []
  for (let i = 0; i < 5; i++) {
    t.equal((await request(port, '/f/cached.bin', { agent })).sha, sha256(body), `#${i}: exact`)
    // Corked with its headers, the body's last partial segment would wait for the kernel's
    // 200 ms cork timer, and so would this small response on the same connection.
    const started = process.hrtime.bigint()
    t.equal((await request(port, '/f/page.bin', { agent })).sha, sha256(page), `#${i}: the small file after it, exact`)
    delays.push(Number(process.hrtime.bigint() - started) / 1e6)
  }
  const stats = app.zeroCopy.stats()
  t.same(stats.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 5, stream: 5 }, 'the large ones by sendfile alone, the small ones through Node')
  t.same(stats.bytes, { sendZc: 0, send: 0, splice: 0, sendfile: 5 * body.length, stream: 5 * page.length })
  t.ok(inFlightIsZero(app), 'nothing on the ring')
  delays.sort((a, b) => a - b)
  t.ok(delays[2] < 100, `a small response after a sendfile body takes ${delays[2].toFixed(1)} ms (median), not a cork's 200 ms`)

  const off = await startServer(t, { options: { fileInline: 0 }, setup: routes })
  t.equal((await request(off.port, '/f/cached.bin')).sha, sha256(body), 'fileInline 0: exact')
  t.ok(await eventually(() => off.app.zeroCopy.stats().responses[FILE_PATH] === 1), 'fileInline 0: carried by the engine')
  const offBytes = off.app.zeroCopy.stats().bytes
  t.same({ splice: offBytes.splice, sendfile: offBytes.sendfile }, fileSplit(0, body.length), 'fileInline 0: no inline sendfile, all of it by the engine')
})

// io_uring only: on the classic engine the rest goes by sendfile as well, so which bytes the
// inline sendfile took does not show in the stats (the classic engine's own choice, the loop or
// a disk thread, is test/slow-fs.test.js's).
const RING_ONLY = CLASSIC && 'the classic engine sends the rest by sendfile too: the head\'s share does not show'

test('only cached bytes go by sendfile: an evicted file, or a head with pages evicted, goes through the ring', { skip: RING_ONLY }, async (t) => {
  const pc = pageCache(t)
  const dir = tempDir(t)
  const file = path.join(dir, 'two.bin')
  const size = 2 * MiB + 5
  const body = seeded('inline', 2, size)
  fs.writeFileSync(file, body)
  // A head of 1 MiB (the default is 256 KiB): room for a hole inside it.
  const { app, port } = await startServer(t, {
    options: { fileInline: MiB },
    setup: (app) => app.get('/two', (req, reply) => reply.sendZeroCopy({ path: file }))
  })
  let last = { splice: 0, sendfile: 0 }
  /** The bytes each path carried since the last call, once the ring has finished. */
  async function delta (responses) {
    t.ok(await eventually(() => nativeFileBytes(app.zeroCopy.stats(), 'responses') === responses), `${responses} native responses`)
    const b = app.zeroCopy.stats().bytes
    const out = { splice: b.splice - last.splice, sendfile: b.sendfile - last.sendfile }
    if (CLASSIC) t.equal(out.splice, 0, 'nothing spliced on the classic engine')
    last = { splice: b.splice, sendfile: b.sendfile }
    return out
  }

  pc.evict(file)
  t.equal(pc.resident(file).resident, 0, 'evicted: no page of the file is cached')
  t.equal((await request(port, '/two')).sha, sha256(body), 'evicted: exact')
  t.same(await delta(1), fileSplit(0, size), 'evicted: nothing by the inline sendfile, all of it by the engine, which read it from disk')

  const cached = pc.resident(file)
  t.equal(cached.resident, cached.total, 'the splices brought every page into the cache')
  t.equal((await request(port, '/two')).sha, sha256(body), 'cached: exact')
  let d = await delta(2)
  if (CLASSIC) {
    t.same(d, fileSplit(0, size), 'cached: every byte by sendfile (the head on the loop, the rest by the engine)')
  } else {
    t.ok(d.sendfile > 0 && d.sendfile <= MiB, `cached: the head by sendfile (${d.sendfile} bytes)`)
    t.equal(d.sendfile + d.splice, size, 'cached: the rest spliced')
  }

  // 64 KiB missing in the middle of the head. Evicting it alone may leave it cached: the
  // splices read the file into large folios, which a partial eviction does not drop. So the
  // file is evicted whole and all but the hole read back in, without readahead.
  // A page still referenced (the last response's skbs, freed once the client's kernel is done
  // with them) is not dropped by the eviction: tried again until the hole is there.
  let hole
  for (let tries = 0; tries < 20; tries++) {
    pc.evict(file)
    pc.load(file, 0, 512 * KiB)
    pc.load(file, 576 * KiB, size - 576 * KiB)
    hole = pc.resident(file, 0, MiB)
    if (hole.resident < hole.total) break
    await sleep(50)
  }
  t.ok(hole.resident < hole.total, `a hole in the head: ${hole.resident} of ${hole.total} pages cached`)
  t.equal((await request(port, '/two')).sha, sha256(body), 'a hole in the head: exact')
  t.same(await delta(3), fileSplit(0, size), 'a hole in the head: nothing by the inline sendfile')

  // The check covers the bytes the response sends, not the file's head.
  pc.evict(file, 0, MiB)
  const tail = pc.resident(file, MiB + MiB / 2, size - MiB - MiB / 2)
  t.equal(tail.resident, tail.total, 'the range below is cached')
  const res = await request(port, '/two', { headers: { range: `bytes=${MiB + MiB / 2}-` } })
  t.equal(res.status, 206)
  t.equal(res.sha, sha256(body.subarray(MiB + MiB / 2)), 'a cached range of an evicted head: exact')
  d = await delta(4)
  t.ok(d.sendfile > 0, `a cached range of an evicted head: by sendfile (${d.sendfile} bytes)`)
  t.equal(d.sendfile + d.splice, size - MiB - MiB / 2)
})

test('a socket that fills during the sendfile: the ring sends the rest once the client reads', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'big.bin')
  const body = seeded('inline', 3, 48 * MiB + 11)
  fs.writeFileSync(file, body)
  const { app, port } = await startServer(t, {
    options: { fileInline: 64 * MiB },
    setup: (app) => app.get('/big', (req, reply) => reply.sendZeroCopy({ path: file }))
  })
  // The client reads nothing for a while: the sendfile stops where the socket is full.
  const reader = rateReader(port, '/big', body, { rate: -1 })
  t.ok(await eventually(() => inFlightIsZero(app) === false), 'the ring holds the rest, waiting for the socket')
  await sleep(200)
  t.notOk(inFlightIsZero(app), 'and still does while the client reads nothing')
  reader.setRate(0)
  const res = await Promise.race([reader.done, after(30000, null)])
  t.not(res, null, 'the body ended')
  if (res === null) return
  t.ok(res.exact, `${res.bodyLength} bytes, exact`)
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 1 && inFlightIsZero(app)), 'the engine finished it')
  const bytes = app.zeroCopy.stats().bytes
  if (CLASSIC) {
    t.same({ splice: bytes.splice, sendfile: bytes.sendfile }, fileSplit(0, body.length), 'every byte by sendfile, counted once')
  } else {
    t.ok(bytes.sendfile > 0 && bytes.sendfile < body.length, `the socket took ${bytes.sendfile} bytes by sendfile, then was full`)
    t.equal(bytes.sendfile + bytes.splice, body.length, 'every byte counted once')
  }
})

test('a file cut short before its body started: FILE_CHANGED, a short body, the connection closed, nothing leaked', async (t) => {
  const dir = tempDir(t)
  const size = 3 * MiB
  const body = seeded('inline', 4, size)
  const { lines, logger } = logCapture()
  const cuts = new Map()
  const { app, port } = await startServer(t, {
    fastify: { logger },
    setup (app) {
      // After the headers (Content-Length: the whole file) are decided, before the body starts.
      app.addHook('onSend', (req, reply, payload, done) => {
        const cut = cuts.get(req.query.name)
        if (cut !== undefined) fs.truncateSync(path.join(dir, req.query.name), cut)
        done(null, payload)
      })
      app.get('/f', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.query.name) }))
    }
  })
  const baseline = await steadyFds()
  // Past the cached head (sendfile sends 1 MiB, the ring meets the end), and inside it
  // (sendfile sends what there is, if cachestat still counts the large folio that held the
  // end as cached, and the ring meets the end; or the ring sends all of it).
  for (const cut of [MiB + 1000, 300 * KiB]) {
    const name = `cut-${cut}.bin`
    fs.writeFileSync(path.join(dir, name), body)
    cuts.set(name, cut)
    const reader = rateReader(port, `/f?name=${name}`, body)
    const res = await Promise.race([reader.done, after(30000, null)])
    t.not(res, null, `${cut}: the connection was closed (no hang)`)
    if (res === null) return
    t.match(res.head, /^HTTP\/1\.1 200 /, `${cut}: 200`)
    t.equal(res.contentLength, size, `${cut}: Content-Length announced the whole file`)
    t.equal(res.bodyLength, cut, `${cut}: the client got the ${cut} bytes there were`)
    t.equal(res.firstBad, -1, `${cut}: a true prefix`)
    t.equal(res.completedAt, 0, `${cut}: the server closed the connection`)
  }
  const changed = lines.filter((l) => l.level >= 40 && l.err && l.err.code === 'FST_ZERO_COPY_FILE_CHANGED')
  t.ok(await eventually(() => lines.filter((l) => l.level >= 40 && l.err && l.err.code === 'FST_ZERO_COPY_FILE_CHANGED').length === 2),
    `FST_ZERO_COPY_FILE_CHANGED logged once per response (${changed.length} so far)`)
  t.ok(await eventually(() => inFlightIsZero(app)), 'nothing in flight')
  const bytes = app.zeroCopy.stats().bytes
  t.equal(nativeFileBytes(app.zeroCopy.stats()), MiB + 1000 + 300 * KiB, 'what reached the clients, counted once')
  t.ok(bytes.sendfile >= MiB / 2, `the first one's cached head by sendfile (${bytes.sendfile} bytes in all)`)
  t.ok(await eventually(() => fdsUnder(dir) === 0), 'the files are closed')
  t.equal(await steadyFds(), baseline, 'open fds back to baseline')
  cuts.clear()
  fs.writeFileSync(path.join(dir, 'whole.bin'), body)
  t.equal((await request(port, '/f?name=whole.bin')).sha, sha256(body), 'the server goes on serving')
})

// (On the classic engine such a path is opened by libuv's pool: it has no open of its own.)
test('a path whose lookup is not all in the dentry cache is opened through the ring', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'open.bin')
  const body = seeded('inline', 5, MiB + 3)
  fs.writeFileSync(file, body)
  // procfs revalidates its entries, so openat2(RESOLVE_CACHED) cannot resolve /proc/self/root/...
  // and answers EAGAIN: the plugin then opens the path with IORING_OP_OPENAT.
  const binding = require('node-gyp-build')(path.join(__dirname, '..'))
  const fd = binding.openCached(file)
  t.ok(fd >= 0, 'a cached lookup opens at once')
  if (fd >= 0) fs.closeSync(fd)
  t.equal(binding.openCached(`/proc/self/root${file}`), -1, 'a lookup through procfs is left to the ring')
  t.notOk(fs.existsSync(path.join(dir, 'missing.bin')), 'a lookup of a missing file (now a cached miss)')
  t.throws(() => binding.openCached(path.join(dir, 'missing.bin')), { code: 'ENOENT' }, 'a cached miss is the answer')

  const { app, port } = await startServer(t, {
    setup: (app) => app.get('/p/*', (req, reply) => reply.sendZeroCopy({ path: `/proc/self/root${dir}/${req.params['*']}` }))
  })
  const res = await request(port, '/p/open.bin')
  t.equal(res.status, 200)
  t.equal(res.sha, sha256(body), 'opened through the ring: exact')
  t.equal((await request(port, '/p/missing.bin')).status, 404, 'a missing file through the ring\'s open: 404')
  t.ok(await eventually(() => app.zeroCopy.stats().responses[FILE_PATH] === 1), 'native')
  t.ok(await eventually(() => fdsUnder(dir) === 0), 'the file is closed')
})

test('as an unprivileged user: a file it owns goes by sendfile, a file it may only read through the ring', async (t) => {
  const dir = tempDir(t, 0o755)
  const owned = seeded('inline', 6, 2 * MiB + 9)
  fs.writeFileSync(path.join(dir, 'owned.bin'), owned, { mode: 0o644 })
  // As root the server becomes nobody: the file is given to nobody, and a root-owned one is
  // what it may only read. Otherwise the server is this user, who owns what it writes; the
  // file it may only read is Node's own binary when root owns it.
  let readOnly = null
  if (ROOT) {
    fs.chownSync(path.join(dir, 'owned.bin'), 65534, 65534)
    readOnly = { url: '/file/root.bin', body: seeded('inline', 7, 2 * MiB + 9) }
    fs.writeFileSync(path.join(dir, 'root.bin'), readOnly.body, { mode: 0o644 })
  } else if (fs.statSync(process.execPath).uid !== process.getuid() && fs.statSync(process.execPath).size > 2 * MiB) {
    fs.symlinkSync(process.execPath, path.join(dir, 'node'))
    const head = Buffer.alloc(2 * MiB)
    const fd = fs.openSync(process.execPath, 'r')
    fs.readSync(fd, head, 0, head.length, 0)
    fs.closeSync(fd)
    readOnly = { url: '/file/node', range: `bytes=0-${2 * MiB - 1}`, body: head }
  }
  const server = await spawnFixture(t, 'file-server', { dir, drop: true })
  t.equal(server.state, 'READY', server.message)
  t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  t.equal(server.capabilities.mode, 'send_zc', 'the native path is the one serving')
  const stats = () => getJson(server.port, '/stats')

  t.equal((await request(server.port, '/file/owned.bin')).sha, sha256(owned), 'its own file: exact')
  let s
  t.ok(await eventually(async () => { s = await stats(); return s.responses[FILE_PATH] === 1 }), 'its own file: native')
  t.ok(s.bytes.sendfile > 0, `its own file: the cached head by sendfile (${s.bytes.sendfile} bytes)`)
  t.equal(nativeFileBytes(s), owned.length, 'its own file: the rest by the engine')
  const before = s.bytes.sendfile

  if (readOnly === null) {
    t.comment('no file here is readable but neither owned nor writable by this user: that half is shown when the suite runs as root')
    return
  }
  const res = await request(server.port, readOnly.url, { headers: readOnly.range ? { range: readOnly.range } : {} })
  t.equal(res.sha, sha256(readOnly.body), 'a file it may only read: exact')
  t.ok(await eventually(async () => { s = await stats(); return s.responses[FILE_PATH] === 2 }), 'a file it may only read: native')
  // On the classic engine its pages, not known to be cached, go by sendfile on a disk thread.
  if (!CLASSIC) t.equal(s.bytes.sendfile, before, 'a file it may only read: nothing by sendfile')
  t.equal(nativeFileBytes(s), owned.length + readOnly.body.length, 'a file it may only read: all of it by the engine')
})

test('pipelined file responses on one connection: sendfile alone, sendfile then the ring, a range, a small one, in order and exact', async (t) => {
  const dir = tempDir(t)
  const small = seeded('inline', 8, 512 * KiB + 1)
  const large = seeded('inline', 9, 3 * MiB + 77)
  const tiny = seeded('inline', 10, 900)
  fs.writeFileSync(path.join(dir, 'small.bin'), small)
  fs.writeFileSync(path.join(dir, 'large.bin'), large)
  fs.writeFileSync(path.join(dir, 'tiny.bin'), tiny)
  const { app, port } = await startServer(t, {
    setup: (app) => app.get('/f/:name', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params.name) }))
  })
  const requests = [
    ['/f/small.bin', '', small],
    ['/f/large.bin', '', large],
    ['/f/small.bin', 'Range: bytes=1000-300000\r\n', small.subarray(1000, 300001)],
    ['/f/large.bin', 'Range: bytes=-2000000\r\n', large.subarray(large.length - 2000000)],
    ['/f/tiny.bin', 'Connection: close\r\n', tiny]
  ]
  const raw = await new Promise((resolve, reject) => {
    const socket = require('node:net').connect(port, '127.0.0.1')
    const chunks = []
    socket.on('connect', () => socket.write(requests.map(([url, extra]) => `GET ${url} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`).join('')))
    socket.on('data', (d) => chunks.push(d))
    socket.on('end', () => resolve(Buffer.concat(chunks)))
    socket.on('error', reject)
  })
  let rest = raw
  for (const [url, extra, expected] of requests) {
    const end = rest.indexOf('\r\n\r\n')
    const head = rest.subarray(0, Math.max(0, end)).toString('latin1')
    t.match(head, extra.startsWith('Range') ? /^HTTP\/1\.1 206 / : /^HTTP\/1\.1 200 /, `${url} ${extra.trim()}: status`)
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1])
    t.equal(length, expected.length, `${url} ${extra.trim()}: length`)
    t.equal(sha256(rest.subarray(end + 4, end + 4 + length)), sha256(expected), `${url} ${extra.trim()}: exact`)
    rest = rest.subarray(end + 4 + length)
  }
  t.equal(rest.length, 0, 'nothing after the last body')
  t.ok(await eventually(() => nativeFileBytes(app.zeroCopy.stats(), 'responses') === 4), 'four native responses')
  const r = app.zeroCopy.stats().responses
  // The two longer than fileInline always need the ring; the others go by sendfile alone
  // when the socket has room for them after the bodies before (usually).
  t.ok(r[FILE_PATH] >= 2, `with the engine ${r[FILE_PATH]}, by sendfile alone ${r.sendfile}`)
})

test('when the ring cannot take the rest (EMFILE), Node sends it from where sendfile stopped: exact, nothing sent twice', async (t) => {
  // The server runs out of descriptors between the file's open and the op's dup(): the head
  // has gone by sendfile, and the rest must continue from there through Fastify's path.
  const dir = tempDir(t, 0o755)
  const body = seeded('inline', 11, 3 * MiB + 333)
  fs.writeFileSync(path.join(dir, 'big.bin'), body, { mode: 0o644 })
  const server = await spawnFixture(t, 'file-server', { dir, fdRoutes: true }, {
    wrap: ['sh', '-c', 'ulimit -n 256 && exec "$@"', 'sh']
  })
  t.equal(server.state, 'READY', server.message)
  t.equal((await request(server.port, '/file/big.bin')).sha, sha256(body), 'warm-up: exact')
  let stats
  t.ok(await eventually(async () => { stats = await getJson(server.port, '/stats'); return stats.responses[FILE_PATH] === 1 }), 'warm-up: native')
  const before = stats.bytes

  // One descriptor left under the limit while /fds/fill's connection is open, so two once it
  // closed: the next connection's accept and the file's open take them.
  const fill = await getJson(server.port, '/fds/fill?free=1')
  t.equal(fill.limit, 256, 'RLIMIT_NOFILE is 256')
  const fdCount = () => fs.readdirSync(`/proc/${server.pid}/fd`).length
  t.ok(await eventually(() => fdCount() === fill.limit - 2), `two descriptors free (${fill.limit - fdCount()})`)
  // The head goes by sendfile only while its pages are cached: read again just before, since
  // the machine's reclaim may have evicted them since the warm-up.
  fs.readFileSync(path.join(dir, 'big.bin'))
  const res = await request(server.port, '/file/big.bin')
  // Retried until the response's descriptors are back and the server can accept again.
  t.ok(await eventually(async () => { try { await getJson(server.port, '/fds/release'); return true } catch { return false } }), 'descriptors released')
  t.equal(res.status, 200)
  t.equal(res.length, body.length, 'the whole body')
  t.equal(res.sha, sha256(body), 'exact: the head by sendfile, the rest through Node, nothing twice')
  stats = await getJson(server.port, '/stats')
  t.same(stats.fallbacks, { 'start-emfile': 1 }, 'the ring could not take it: start-emfile')
  const head = stats.bytes.sendfile - before.sendfile
  t.ok(head > 0 && head <= FILE_INLINE, `the cached head by sendfile (${head} bytes)`)
  t.equal(stats.bytes.stream, body.length - head, 'the rest through Node')
  t.equal(stats.responses.stream, 1)
  t.equal((await request(server.port, '/file/big.bin')).sha, sha256(body), 'the server goes on serving')
})
