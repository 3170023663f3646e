'use strict'
// fastify-zero-copy/static's open-file cache (option openFileCache): hits skip the open (seen
// from outside by strace), a file written or truncated in place is served right at the next
// request, a path naming another file is served at most validMs stale, a symlink flipped out
// of the root is never followed, and the cache's descriptors are bounded and all closed at
// fastify.close(), after inactiveMs, and when a worker is terminated.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { Worker } = require('node:worker_threads')
const { test } = require('tap')
const Fastify = require('fastify')
const serveStatic = require('fastify-zero-copy/static')
const { KiB, MiB, sha256, eventually, fdsUnder, fdLinks, spawnFixture, rateReader, after, ENGINE } = require('./helpers')
const { buildTree, rawRequest, bytes } = require('./static-tree')

async function start (t, tree, cache, opts = {}) {
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', openFileCache: cache, ...opts })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: app.server.address().port }
}

/** GET: the response, checked well-formed (a body of its stated length). */
async function get (t, port, name, headers) {
  const res = await rawRequest(port, `/assets/${name}`, { headers })
  if (!res.valid) t.fail(`${name}: not a well-formed response (${res.status}, ${res.body.length} bytes)`)
  return res
}

/** Descriptors of this process naming `file` itself. */
function fdsOf (file) {
  return fdLinks().filter((l) => l === file).length
}

test('openFileCache: bad values fail registration with FST_ZERO_COPY_INVALID_OPTION', async (t) => {
  const tree = buildTree(t)
  for (const bad of [1, 'yes', null, [], { max: 0 }, { max: 1.5 }, { validMs: -1 }, { inactiveMs: 0 }, { maxEntries: 10 }]) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, { root: tree.root, openFileCache: bad }).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION' }, JSON.stringify(bad))
    await app.close()
  }
  for (const good of [false, true, {}, { max: 1, validMs: 0, inactiveMs: 1 }]) {
    const app = Fastify({ logger: false })
    await app.register(serveStatic, { root: tree.root, openFileCache: good })
    await app.ready()
    await app.close()
  }
})

/** strace's log of a fixture server's openat2 calls: how many name `name`. */
function openat2Calls (log, name) {
  return fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('openat2(') && l.includes(`"${name}"`)).length
}

test('hits skip the open: strace counts the server\'s openat2 calls, as `nobody`', async (t) => {
  const tree = buildTree(t)
  const name = 'hot.bin'
  const content = bytes('hot', 20 * KiB)
  fs.writeFileSync(path.join(tree.root, name), content, { mode: 0o644 })
  const N = 40
  const counts = {}
  for (const [label, cache] of [['off', false], ['on', { validMs: 60000 }]]) {
    const log = path.join(os.tmpdir(), `zc-static-cache-${process.pid}-${label}.strace`)
    t.teardown(() => fs.rmSync(log, { force: true }))
    // -f: the classic engine's disk threads open there; the ring's IORING_OP_OPENAT2 is no
    // syscall, but a hot, cached lookup opens inline (openat2 RESOLVE_CACHED) on either engine.
    const server = await spawnFixture(t, 'static-cache-app', { root: tree.root, cache, drop: true }, {
      wrap: ['strace', '-f', '-qq', '--seccomp-bpf', '-e', 'trace=openat2', '-e', 'signal=none', '-o', log]
    })
    t.equal(server.state, 'READY', `${label}: the server started`)
    t.not(server.uid, 0, `${label}: the server is not root`)
    t.equal(server.engine, ENGINE, `${label}: the ${ENGINE} engine serves`)
    for (let i = 0; i < N; i++) {
      const res = await get(t, server.port, name)
      if (res.status !== 200 || sha256(res.body) !== sha256(content)) t.fail(`${label} request ${i}: ${res.status}`)
    }
    // The server is `nobody`: a permission taken away (the file's ctime) is met by an open.
    fs.chmodSync(path.join(tree.root, name), 0o000)
    t.equal((await get(t, server.port, name)).status, 403, `${label}: chmod 000: a 403 at the next request`)
    fs.chmodSync(path.join(tree.root, name), 0o644)
    t.equal(sha256((await get(t, server.port, name)).body), sha256(content), `${label}: readable again`)
    process.kill(server.pid, 'SIGKILL') // strace then exits, its log complete
    await server.exited
    counts[label] = openat2Calls(log, name)
  }
  t.ok(counts.off >= N + 2, `without the cache, ${counts.off} openat2 calls for ${N + 2} requests`)
  // The first request's open, and the two after each chmod (a changed ctime drops the entry).
  t.ok(counts.on >= 3 && counts.on <= 6, `with it, ${counts.on} for ${N + 2} requests (the first one's, and one after each chmod)`)
})

test('a file written or truncated in place is served as it is now, at the very next request', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, tree, { validMs: 60000 })
  for (const size of [64 * KiB + 3, 2 * KiB]) { // the native path, and below the threshold
    const name = `inplace-${size}.bin`
    const file = path.join(tree.root, name)
    const first = bytes(`a${size}`, size)
    fs.writeFileSync(file, first)
    const ino = fs.statSync(file).ino
    const a = await get(t, port, name)
    t.equal(sha256(a.body), sha256(first), `${size}: first content`)
    t.equal(fdsOf(file), 1, `${size}: the cache holds the file open`)

    // The same size, other bytes, the same inode (O_TRUNC then write).
    const second = bytes(`b${size}`, size)
    fs.writeFileSync(file, second)
    t.equal(fs.statSync(file).ino, ino, 'rewritten in place')
    const b = await get(t, port, name)
    t.equal(sha256(b.body), sha256(second), `${size}: the rewritten bytes at once`)

    // Truncated: the new length, no short body.
    fs.truncateSync(file, Math.floor(size / 3))
    const c = await get(t, port, name)
    t.equal(Number(c.headers['content-length']), Math.floor(size / 3), `${size}: the truncated length`)
    t.equal(sha256(c.body), sha256(second.subarray(0, Math.floor(size / 3))), `${size}: the truncated bytes`)
    t.not(c.headers.etag, b.headers.etag, `${size}: a new ETag`)

    // Grown again: all of it, and a ranged request of the new tail.
    const tail = bytes(`c${size}`, 5000)
    fs.appendFileSync(file, tail)
    const whole = fs.readFileSync(file)
    const d = await get(t, port, name)
    t.equal(sha256(d.body), sha256(whole), `${size}: the grown file, exact`)
    const r = await get(t, port, name, { range: `bytes=${whole.length - 5000}-` })
    t.equal(r.status, 206)
    t.equal(sha256(r.body), sha256(tail), `${size}: a range of the appended bytes`)
    t.equal(fs.statSync(file).ino, ino, 'the same file throughout')
    t.equal(fdsOf(file), 1, `${size}: still the one cached descriptor`)
  }
})

test('headers as without the cache, formatted again when the file changes', async (t) => {
  const tree = buildTree(t)
  const off = await start(t, tree, false)
  const on = await start(t, tree, {})
  for (const name of ['page.html', 'big.bin', 'small.txt', 'ünïcødé-😀.txt']) {
    const target = encodeURI(name)
    const a = await get(t, off.port, target)
    await get(t, on.port, target) // fills the entry
    const b = await get(t, on.port, target) // a hit
    t.ok(await eventually(() => fdsOf(path.join(tree.root, name)) === 1, 1000), `${name}: held by the cache`)
    for (const h of ['etag', 'last-modified', 'content-type', 'content-length', 'cache-control', 'accept-ranges']) {
      t.equal(b.headers[h], a.headers[h], `${name}: ${h} as without the cache`)
    }
    t.equal(sha256(b.body), sha256(a.body))
    const cond = await get(t, on.port, target, { 'if-none-match': b.headers.etag })
    t.equal(cond.status, 304, `${name}: the cached ETag validates`)
  }
  const file = path.join(tree.root, 'page.html')
  const past = new Date('2020-01-02T03:04:05Z')
  fs.utimesSync(file, past, past) // mtime only: the size stays
  const c = await get(t, on.port, 'page.html')
  t.equal(c.headers['last-modified'], past.toUTCString(), 'Last-Modified follows an mtime change at once')
  t.equal(c.headers.etag, (await get(t, off.port, 'page.html')).headers.etag, 'and the ETag')
})

test('renamed over or away: the next request gets the new file; a directory swapped along the path: at most validMs stale', async (t) => {
  const tree = buildTree(t)
  const validMs = 1000
  const { port } = await start(t, tree, { validMs })
  const file = path.join(tree.root, 'deploy.bin')
  const v = [1, 2, 3, 4].map((i) => bytes(`deploy${i}`, 32 * KiB + i))
  const shaOf = (res) => sha256(res.body)
  fs.writeFileSync(file, v[0])
  t.equal(shaOf(await get(t, port, 'deploy.bin')), sha256(v[0]), 'v1')
  t.equal(shaOf(await get(t, port, 'deploy.bin')), sha256(v[0]), 'v1 (a hit)')

  // Renamed over: the old file's last name is gone (nlink 0, seen by the hit's fstat).
  fs.writeFileSync(file + '.tmp', v[1])
  fs.renameSync(file + '.tmp', file)
  t.equal(shaOf(await get(t, port, 'deploy.bin')), sha256(v[1]), 'renamed over: v2 at the next request')
  t.equal(shaOf(await get(t, port, 'deploy.bin')), sha256(v[1]), 'v2 (a hit)')

  // The old file renamed away, kept: its rename changed its ctime, seen by the hit's fstat.
  fs.renameSync(file, file + '.old')
  fs.writeFileSync(file + '.tmp', v[2])
  fs.renameSync(file + '.tmp', file)
  t.equal(shaOf(await get(t, port, 'deploy.bin')), sha256(v[2]), 'renamed away and another renamed in: v3 at the next request')
  t.ok(await eventually(() => fdsOf(file + '.old') === 0, 1000), 'the old file is no longer held')

  // A directory swapped along the path (a release symlink flipped): neither file changes, so
  // the path is resolved again only by the first request arriving validMs or more after the
  // open that filled the entry, which was issued between `filled` and `checked`.
  for (const [dir, content] of [['rel1', v[2]], ['rel2', v[3]]]) {
    fs.mkdirSync(path.join(tree.root, dir))
    fs.writeFileSync(path.join(tree.root, dir, 'app.bin'), content)
  }
  fs.symlinkSync('rel1', path.join(tree.root, 'current'))
  const filled = performance.now()
  t.equal(shaOf(await get(t, port, 'current/app.bin')), sha256(v[2]), 'release 1 (fills the entry)')
  const checked = performance.now()
  fs.symlinkSync('rel2', path.join(tree.root, 'current.tmp'))
  fs.renameSync(path.join(tree.root, 'current.tmp'), path.join(tree.root, 'current'))
  const swapped = performance.now()
  const stale = await get(t, port, 'current/app.bin')
  t.ok(performance.now() - filled < validMs, 'this request came within validMs of the entry\'s check')
  t.equal(shaOf(stale), sha256(v[2]), 'within validMs: release 1, whole (the open was skipped)')
  const seen = []
  for (;;) {
    const sent = performance.now()
    const sha = shaOf(await get(t, port, 'current/app.bin'))
    t.ok(sha === sha256(v[2]) || sha === sha256(v[3]), 'one release or the other, whole')
    seen.push({ sent, fresh: sha === sha256(v[3]) })
    if (sent - checked >= validMs + 200) break
    await after(50)
  }
  // The bound: a request sent at `checked` + validMs or later arrives validMs or more after
  // the check, so the path is resolved again: release 2.
  const bound = seen.filter((s) => s.sent - checked >= validMs)
  t.ok(bound.length > 0, `${bound.length} requests sent validMs or more after the check`)
  for (const s of bound) t.ok(s.fresh, `sent ${Math.round(s.sent - swapped)} ms after the swap: release 2`)
  const firstFresh = seen.find((s) => s.fresh)
  t.comment(`release 2 served from ${Math.round(firstFresh.sent - swapped)} ms after the swap (bound: ${validMs} ms after the entry's check)`)
  t.ok(await eventually(() => fdsOf(path.join(tree.root, 'rel1', 'app.bin')) === 0, 1000), 'release 1 is no longer held')
})

test('a symlink flipped out of the root is never followed, even with its target cached', async (t) => {
  const tree = buildTree(t)
  const validMs = 300
  const { port } = await start(t, tree, { validMs })
  const link = path.join(tree.root, 'flip')
  const tmp = path.join(tree.root, 'flip.tmp')
  const clean = (res) => !res.raw.includes(tree.canary.subarray(0, 24))
  const big = sha256(tree.files['big.bin'])
  const first = await get(t, port, 'flip')
  t.equal(sha256(first.body), big, 'the inside target')
  t.ok(await eventually(() => fdsOf(path.join(tree.root, 'big.bin')) === 1, 1000), 'held by the cache')
  const checked = performance.now()
  fs.symlinkSync('../outside/canary.txt', tmp)
  fs.renameSync(tmp, link)
  const within = await get(t, port, 'flip')
  t.ok(clean(within), 'no canary')
  t.ok(within.status === 404 || sha256(within.body) === big, `within validMs: the old inside target or a 404 (${within.status})`)
  await after(Math.max(0, checked + validMs - performance.now()) + 10)
  const later = await get(t, port, 'flip')
  t.equal(later.status, 404, 'after validMs the path is resolved again: outside, a 404')
  t.ok(clean(later), 'no canary')

  // Flipped back and forth while requests run.
  let running = true
  let flips = 0
  const flipper = (async () => {
    while (running) {
      fs.symlinkSync(flips % 2 === 0 ? 'big.bin' : '../outside/canary.txt', tmp)
      fs.renameSync(tmp, link)
      flips++
      await after(Math.floor(validMs / 3))
    }
  })()
  const counts = { 200: 0, 404: 0 }
  try {
    await Promise.all(Array.from({ length: 4 }, async () => {
      const until = performance.now() + 4 * validMs
      while (performance.now() < until) {
        const res = await get(t, port, 'flip')
        if (!clean(res)) t.fail('the canary')
        if (res.status === 200 && sha256(res.body) !== big) t.fail('a body that is not the inside file')
        if (res.status !== 200 && res.status !== 404) t.fail(`status ${res.status}`)
        counts[res.status]++
      }
    }))
  } finally {
    running = false
    await flipper
  }
  t.ok(counts[200] > 0 && counts[404] > 0, `${flips} flips, both states met: ${JSON.stringify(counts)}`)
})

test('the same answers as without the cache, asked twice: symlinks out, dotfiles, dot segments, directories', async (t) => {
  const tree = buildTree(t)
  const off = await start(t, tree, false, { redirect: true })
  const on = await start(t, tree, {}, { redirect: true })
  const targets = [
    'link-in', 'link-out', 'link-abs-out', 'link-dir-out/canary.txt', 'link-magic', 'dangling', 'noindex/link-up-inside',
    '.env', '.git/config', 'sub/.secret', 'sub/../small.txt', 'sub/%2e%2e/%2e%2e/canary.txt', '..%2Fcanary.txt',
    'sub', 'sub/', 'noindex/', 'with%20space.txt', '100%25.txt', 'empty.txt', 'nope', 'big.bin'
  ]
  for (const target of targets) {
    const a = await rawRequest(off.port, `/assets/${target}`)
    for (const round of ['fills', 'hits']) {
      const b = await rawRequest(on.port, `/assets/${target}`)
      t.ok(b.valid && !b.raw.includes(tree.canary.subarray(0, 24)), `${target} (${round}): valid, no canary`)
      t.equal(b.status, a.status, `${target} (${round}): ${a.status} as without the cache`)
      t.equal(sha256(b.body), sha256(a.body), `${target} (${round}): the same body`)
    }
  }
})

test('bounded: more files than max keep at most max descriptors (plus responses in flight); all closed at fastify.close() and when idle', async (t) => {
  const tree = buildTree(t)
  const max = 8
  const names = Array.from({ length: 5 * max }, (_, i) => `many/f${i}.bin`)
  fs.mkdirSync(path.join(tree.root, 'many'))
  for (const [i, n] of names.entries()) fs.writeFileSync(path.join(tree.root, n), bytes(n, 17 * KiB + i))
  const before = fdsUnder(tree.dir)
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', openFileCache: { max, validMs: 60000 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = app.server.address().port
  const root = path.join(tree.root, 'many')
  let most = 0
  for (const n of names) {
    const res = await get(t, port, n)
    if (sha256(res.body) !== sha256(fs.readFileSync(path.join(tree.root, n)))) t.fail(`${n}: bytes`)
    t.ok(await eventually(() => fdsUnder(root) <= max, 1000), `${n}: at most ${max} held (${fdsUnder(root)})`)
    most = Math.max(most, fdsUnder(root))
  }
  t.equal(most, max, `the cache filled to max (${max}) and no further`)
  // The most recent max are the ones kept: hits, not opens (the count holds still).
  const recent = names.slice(-max)
  const held = new Set(fdLinks().filter((l) => l.startsWith(root + '/')))
  t.same([...held].sort(), recent.map((n) => path.join(tree.root, n)).sort(), 'the least recently used were closed')

  // All at once: responses in flight hold their own duplicates, the cache still max.
  let peak = 0
  const sampler = setInterval(() => { peak = Math.max(peak, fdsUnder(root)) }, 1)
  await Promise.all(names.map((n) => get(t, port, n)))
  clearInterval(sampler)
  t.ok(peak <= max + names.length, `peak ${peak} <= max + in flight (${max + names.length})`)
  t.ok(await eventually(() => fdsUnder(root) === max, 1000), 'back to max once they ended')

  // A directory's descriptor is never cached (duplicates would share its read position).
  t.equal((await get(t, port, 'sub/')).status, 200)
  t.ok(await eventually(() => fdLinks().filter((l) => l === path.join(tree.root, 'sub')).length === 0, 1000), 'no descriptor of the directory held')

  await app.close()
  t.ok(await eventually(() => fdsUnder(tree.dir) === before, 1000), `fastify.close(): every descriptor of the tree closed, the cache's and the root's (${fdsUnder(tree.dir)} open, ${before} before)`)

  // inactiveMs: idle entries are closed while the server still runs.
  const idle = await start(t, tree, { max, inactiveMs: 200 })
  for (const n of names.slice(0, 4)) await get(t, idle.port, n)
  t.ok(fdsUnder(root) > 0, 'entries held')
  t.ok(await eventually(() => fdsUnder(root) === 0, 1500), 'closed after inactiveMs without a request')
})

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const Fastify = require(workerData.fastify)
const app = Fastify()
app.register(require(workerData.plugin), { root: workerData.root, prefix: '/assets/', openFileCache: { validMs: 60000 } })
app.listen({ port: 0, host: '127.0.0.1' }).then(() => parentPort.postMessage({ port: app.server.address().port }))
`

test('worker.terminate(): the cache\'s descriptors and those of responses in flight are closed by the environment\'s teardown', async (t) => {
  const tree = buildTree(t)
  const big = bytes('worker-big', 8 * MiB)
  fs.writeFileSync(path.join(tree.root, 'large.bin'), big)
  const before = fdsUnder(tree.dir)
  for (let round = 0; round < 3; round++) {
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: { root: tree.root, fastify: require.resolve('fastify'), plugin: require.resolve('fastify-zero-copy/static') }
    })
    t.teardown(() => worker.terminate())
    const { port } = await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    for (const n of ['big.bin', 'small.txt', 'sub/deep/x.bin', 'page.html']) {
      const res = await get(t, port, n)
      t.equal(sha256(res.body), sha256(tree.files[n]), `round ${round}: ${n}`)
    }
    const slow = Array.from({ length: 2 }, () => rateReader(port, '/assets/large.bin', big, { rate: 256 * KiB }))
    t.ok(await eventually(() => slow.every((r) => r.received() > 0), 10000), `round ${round}: two responses in flight`)
    t.ok(fdsUnder(tree.root) >= 5, `round ${round}: ${fdsUnder(tree.root)} descriptors of the tree: the cache's and the responses'`)
    await worker.terminate()
    for (const r of slow) r.setRate(0)
    await Promise.race([Promise.all(slow.map((r) => r.done)), after(10000)])
    t.ok(await eventually(() => fdsUnder(tree.dir) === before, 1500), `round ${round}: back to ${before} after terminate (${fdsUnder(tree.dir)})`)
  }
})
