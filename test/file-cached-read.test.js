'use strict'
// A small file body whose pages are all in the page cache is read on the event loop's thread
// (preadv2 with RWF_NOWAIT, plugin/small.ts) and sent by Fastify as a Buffer, with no read
// through libuv's pool. Shown over real sockets, on the engine under test:
// - many small files, through sendZeroCopy({ path }) and fastify-zero-copy/static: bytes
//   exact, ranges, HEAD and 304 as before, and not one read through the pool;
// - an evicted file (test/fixtures/page-cache.c) is read through the pool, exact; once that
//   read cached it, the next response reads it here;
// - a file cut short between its stat and its read never goes out as a short body under the
//   longer Content-Length;
// - a small file on a network filesystem (test/fixtures/slowfs.c, reads of 200 ms) is read
//   through the pool, cached or not, and the loop never waits for it;
// - nothing leaked: descriptors back to the baseline.
// The pool's reads are counted by wrapping fs.read, which plugin/file.ts calls through the
// module object at each read.
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const {
  KiB, sha256, startServer, request, eventually, compileFixture, steadyFds, seeded, fdsUnder, tempDir, after
} = require('./helpers')

/** Counts fs.read calls (the pool's reads of file bodies) until the test ends. */
function countPoolReads (t) {
  const real = fs.read
  const counter = { reads: 0 }
  fs.read = function (...args) {
    counter.reads++
    return real.apply(this, args)
  }
  t.teardown(() => { fs.read = real })
  return counter
}

function pageCache (t) {
  const bin = compileFixture(t, 'page-cache')
  const run = (args) => execFileSync(bin, args.map(String), { encoding: 'utf8' })
  return {
    evict: (file) => run(['evict', file]),
    resident: (file) => {
      const [resident, total] = run(['resident', file]).trim().split(' ').map(Number)
      return { resident, total }
    }
  }
}

/** Sizes of 1 B to 16 KiB - 1 (the default threshold), seeded, with the edges included. */
function smallSizes (count) {
  const sizes = [1, 4095, 4096, 4097, 16 * KiB - 1]
  let x = 12345
  while (sizes.length < count) {
    x = (x * 1103515245 + 12345) % 2147483648
    sizes.push(1 + (x % (16 * KiB - 1)))
  }
  return sizes
}

test('cached small files are read on the loop, exact, through sendZeroCopy and the static plugin; ranges, HEAD and 304 hold', async (t) => {
  const dir = tempDir(t)
  const bodies = new Map()
  for (const [i, size] of smallSizes(200).entries()) {
    const name = `f${i}.bin`
    const body = seeded('cached-read', i, size)
    fs.writeFileSync(path.join(dir, name), body)
    bodies.set(name, body)
  }
  const { app, port } = await startServer(t, {
    async setup (app) {
      app.get('/f/:name', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params.name) }))
      await app.register(require('fastify-zero-copy/static'), { root: dir, prefix: '/s/' })
    }
  })
  const baseline = await steadyFds()
  const pool = countPoolReads(t)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.teardown(() => agent.destroy())

  const wrong = []
  await Promise.all([...bodies].map(async ([name, body]) => {
    for (const prefix of ['/f/', '/s/']) {
      const res = await request(port, prefix + name, { agent })
      if (res.status !== 200 || res.sha !== sha256(body) || Number(res.headers['content-length']) !== body.length) wrong.push(`${prefix}${name}: ${res.status} ${res.length}/${body.length}`)
    }
  }))
  t.same(wrong, [], `${bodies.size * 2} responses, every one exact by SHA-256`)
  t.equal(pool.reads, 0, 'not one body read through libuv\'s pool')

  const body = bodies.get('f4.bin') // 16 KiB - 1
  const range = await request(port, '/f/f4.bin', { agent, headers: { range: 'bytes=100-4195' } })
  t.equal(range.status, 206, 'a range: 206')
  t.equal(range.headers['content-range'], `bytes 100-4195/${body.length}`)
  t.equal(range.sha, sha256(body.subarray(100, 4196)), 'a range: its bytes exactly')
  const tail = await request(port, '/s/f4.bin', { agent, headers: { range: 'bytes=-10' } })
  t.equal(tail.sha, sha256(body.subarray(body.length - 10)), 'a suffix range through the static plugin: exact')

  const head = await request(port, '/f/f4.bin', { agent, method: 'HEAD' })
  t.equal(head.status, 200, 'HEAD: 200')
  t.equal(head.headers['content-length'], String(body.length), 'HEAD: the file\'s Content-Length')
  t.equal(head.length, 0, 'HEAD: no body')

  const first = await request(port, '/f/f4.bin', { agent })
  t.ok(first.headers.etag, 'an ETag')
  const again = await request(port, '/f/f4.bin', { agent, headers: { 'if-none-match': first.headers.etag } })
  t.equal(again.status, 304, 'If-None-Match with its ETag: 304')
  t.equal(again.length, 0, '304: no body')
  t.equal(pool.reads, 0, 'still no read through the pool')

  const stats = app.zeroCopy.stats()
  // Bodies: 400, two ranges and the first of the ETag pair; the HEAD counts under its own reason.
  t.equal(stats.responses.stream, bodies.size * 2 + 4, 'each response counted once, as Node\'s path')
  t.equal(stats.fallbacks['below-threshold'], bodies.size * 2 + 3, 'the bodies below the threshold')
  t.equal(stats.fallbacks.head, 1, 'the HEAD')
  agent.destroy()
  t.ok(await eventually(() => fdsUnder(dir) === 0), 'every file closed')
  t.equal(await steadyFds(), baseline, 'open fds back to baseline')
})

test('an evicted small file is read through the pool, exact; once cached, on the loop', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'cold.bin')
  const body = seeded('cached-read', 1000, 12 * KiB + 5)
  fs.writeFileSync(file, body)
  const cache = pageCache(t)
  const { port } = await startServer(t, {
    setup: (app) => app.get('/f', (req, reply) => reply.sendZeroCopy({ path: file }))
  })
  const pool = countPoolReads(t)
  cache.evict(file)
  t.equal(cache.resident(file).resident, 0, 'evicted: no page of it in the page cache')
  const cold = await request(port, '/f')
  t.equal(cold.status, 200)
  t.equal(cold.sha, sha256(body), 'evicted: exact')
  t.ok(pool.reads >= 1, `evicted: read through the pool (${pool.reads} reads), not on the loop`)
  const { resident, total } = cache.resident(file)
  t.equal(resident, total, 'that read cached it')
  const before = pool.reads
  const warm = await request(port, '/f')
  t.equal(warm.sha, sha256(body), 'cached: exact')
  t.equal(pool.reads, before, 'cached: read on the loop, not through the pool')
})

/** One GET over a raw socket: status, Content-Length, the body bytes seen, whether the server closed. */
function rawGet (port, urlPath) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let data = Buffer.alloc(0)
    socket.on('connect', () => socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: x\r\n\r\n`))
    socket.on('data', (chunk) => { data = Buffer.concat([data, chunk]) })
    socket.on('error', () => {})
    socket.on('close', () => {
      const at = data.indexOf('\r\n\r\n')
      if (at < 0) return reject(new Error(`no head: ${data.toString('latin1')}`))
      const head = data.subarray(0, at).toString('latin1')
      const length = /\r\ncontent-length: *(\d+)/i.exec(head)
      resolve({ status: Number(head.split(' ')[1]), contentLength: length === null ? -1 : Number(length[1]), body: data.subarray(at + 4) })
    })
    // The server keeps a complete response's connection open: end ours once it is all in.
    socket.setTimeout(3000, () => socket.end())
  })
}

test('a small file cut short between its stat and its read: never a short body under the longer Content-Length', async (t) => {
  const dir = tempDir(t)
  const body = seeded('cached-read', 2000, 10 * KiB)
  const { app, port } = await startServer(t, {
    setup: (app) => app.get('/f/:name', (req, reply) => reply.sendZeroCopy({ path: path.join(dir, req.params.name) }))
  })
  const baseline = await steadyFds()
  // The plugin stats a local file with fs.fstatSync right before it reads it: cut the file
  // after that stat, so the read finds fewer bytes than the Content-Length it set.
  const realFstat = fs.fstatSync
  let cutTo = -1
  let cutPath = null
  fs.fstatSync = function (...args) {
    const stat = realFstat.apply(this, args)
    if (cutPath !== null && stat.size === body.length) {
      fs.truncateSync(cutPath, cutTo)
      cutPath = null
    }
    return stat
  }
  t.teardown(() => { fs.fstatSync = realFstat })
  for (const cut of [0, 4 * KiB, 10 * KiB - 1]) {
    const name = `cut-${cut}.bin`
    const file = path.join(dir, name)
    fs.writeFileSync(file, body)
    cutTo = cut
    cutPath = file
    const res = await Promise.race([rawGet(port, `/f/${name}`), after(10000, null)])
    t.not(res, null, `cut to ${cut}: an answer (no hang)`)
    if (res === null) continue
    t.equal(cutPath, null, `cut to ${cut}: the file was cut after its stat`)
    const complete = res.status === 200 && res.contentLength === res.body.length
    t.notOk(complete && res.contentLength !== body.length, `cut to ${cut}: no complete-looking short 200`)
    if (res.status === 200) {
      t.equal(res.contentLength, body.length, `cut to ${cut}: the Content-Length of the file as stat'ed`)
      t.ok(res.body.length < res.contentLength, `cut to ${cut}: the body stops short (${res.body.length} bytes) and the connection closes`)
      t.same(res.body, body.subarray(0, res.body.length), `cut to ${cut}: what came is a true prefix`)
    } else {
      t.ok(res.status >= 500, `cut to ${cut}: an error status (${res.status})`)
    }
  }
  fs.fstatSync = realFstat
  fs.writeFileSync(path.join(dir, 'whole.bin'), body)
  t.equal((await request(port, '/f/whole.bin')).sha, sha256(body), 'the server goes on serving')
  t.ok(await eventually(() => fdsUnder(dir) === 0), 'every file closed')
  t.equal(await steadyFds(), baseline, 'open fds back to baseline')
  t.ok(app.server.listening)
})

test('a small file on a network filesystem is never read on the loop, cached or not', async (t) => {
  const { mountSlowFs } = require('./slowfs')
  // Every read of the filesystem takes 200 ms: one on the loop would hold it that long. Two
  // things keep it off: the plugin never reads a remote file here, and FUSE itself answers
  // RWF_NOWAIT with EOPNOTSUPP (so this test holds with either alone).
  const slow = await mountSlowFs(t, { files: { 'remote.bin': 9 * KiB + 3 }, delays: { read: 200 }, interrupts: false })
  const remote = slow.files['remote.bin']
  const { port } = await startServer(t, {
    setup: (app) => app.get('/f', (req, reply) => reply.sendZeroCopy({ path: remote.path }))
  })
  const pool = countPoolReads(t)
  let longest = 0
  let last = process.hrtime.bigint()
  const ticker = setInterval(() => {
    const now = process.hrtime.bigint()
    longest = Math.max(longest, Number(now - last) / 1e6)
    last = now
  }, 2)
  t.teardown(() => clearInterval(ticker))
  for (const round of ['cold', 'warm', 'warm again']) {
    const before = pool.reads
    const res = await request(port, '/f')
    t.equal(res.status, 200)
    t.equal(res.sha, remote.sha, `${round}: exact`)
    t.ok(pool.reads > before, `${round}: read through the pool (${pool.reads - before} reads)`)
  }
  clearInterval(ticker)
  t.ok(longest < 150, `the loop never held for a 200 ms read (longest gap ${longest.toFixed(1)} ms)`)
})
