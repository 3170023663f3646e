'use strict'
// Files on a filesystem that makes its callers wait (NFS, CIFS, FUSE behind a slow network):
// the event loop's thread must never be one of those callers. test/fixtures/slowfs.c stands
// in for such a mount: its lookups are cached by the kernel (a warm path resolves from the
// dentry cache), its attributes are not (every fstat asks it), and each read, getattr, open
// and flush it answers takes 50 ms. A server in its own process (test/fixtures/file-server.js)
// serves from it while clients download, and a small route is asked in a loop; the server's
// own perf_hooks.monitorEventLoopDelay (1 ms resolution) tells whether its loop ever waited.
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { performance } = require('node:perf_hooks')
const { test } = require('tap')
const { KiB, MiB, request, getJson, spawnFixture, steadyFds, compileFixture, writeSeededFile, tempDir, sleep, eventually } = require('./helpers')
const { mountSlowFs } = require('./slowfs')

const ROOT = process.getuid() === 0
// The loop's bounds. Its p99 under 5 ms, and its longest delay under half of one call of the
// filesystem's (50 ms): a single call of the loop's thread that waited on the filesystem
// shows as 50 ms or more. The longest delay is not held to 5 ms: with the filesystem slow,
// the server looks idle to V8, whose memory reducer then runs a full mark-compact of 6-8 ms
// on the loop (seen with --trace-gc), and what stays (5-6 ms) is the loop waiting for one of
// the two cores while the filesystem's bytes are copied; strace shows no call of the loop's
// thread over 3 ms. The local directory (the first test) stays near 5 ms at the maximum: its
// attempts measured 1.7-7.2 ms here (the first attempt of a run over 5 ms in 10 runs of 15),
// so it is held to 10 ms, well under the slow filesystem's 25 and a fifth of one of its calls.
// Its downloads take a few ms each, too few samples for a p99 other than the maximum: its p99
// is held to the same 10 ms.
const MAX_LOOP_DELAY_MS = 25
const P99_LOOP_DELAY_MS = 5
const LOCAL_LOOP_DELAY_MS = 10
const SMALL_P99_MS = 20
const SMALL_MAX_MS = 40
// Larger than fileInline (256 KiB): its head goes by sendfile when cached, the rest by the ring.
const FILES = { 'f64k.bin': 64 * KiB, 'f1m.bin': MiB, 'f16m.bin': 16 * MiB }
// Two shared cores: a loop can be kept from its core for a few ms by anything else the
// machine runs, whatever the filesystem. Up to ATTEMPTS measurements, each on files of its
// own (cold for it), and the best must be under the bound: a wait on the filesystem (50 ms
// each time) shows in every one of them, a neighbour's burst in one.
const ATTEMPTS = 3
const filesOf = (attempt) => Object.fromEntries(Object.entries(FILES).map(([name, size]) => [`a${attempt}-${name}`, size]))
const ALL_FILES = Object.assign({}, ...Array.from({ length: ATTEMPTS }, (_, i) => filesOf(i)))
// Asked once before anything is measured: the first responses of a process compile its code
// paths, which costs the loop 10 ms and more whatever the filesystem.
const WARMUP = { 'w64k.bin': 64 * KiB, 'w1m.bin': MiB, 'w4m.bin': 4 * MiB }
const SLOW = { read: 50, getattr: 50, open: 50, flush: 50 }
const CLIENTS_PER_FILE = 1 // with the small route probed: four clients on two cores
// The event loop's thread is interrupted by io_uring itself: completions for the thread that
// submitted them are task work, which the kernel signals (TIF_NOTIFY_SIGNAL), and FUSE turns
// a signal during a request into FUSE_INTERRUPT. Most FUSE filesystems, and NFS for all
// but fatal signals, answer anyway: so does slowfs here (interrupts: false). The last test
// has it answer EINTR instead.
const PATIENT = { delays: SLOW, interrupts: false }
// The server runs ahead of the clients hashing what it sends (two cores, shared): what the
// loop's delay then measures is waiting, not waiting for a core. Root may raise a priority.
const PRIORITY = ROOT ? ['nice', '-n', '-10'] : []

/** GET /small every few ms on one keep-alive connection until stop(); resolves with the latencies. */
function probeSmall (port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const latencies = []
  const failures = []
  let stopped = false
  const done = (async () => {
    while (!stopped) {
      const started = performance.now()
      try {
        const res = await request(port, '/small', { agent })
        if (res.status !== 200 || res.length !== 2) failures.push(`status ${res.status}, ${res.length} bytes`)
      } catch (err) {
        failures.push(err.code || err.message)
      }
      latencies.push(performance.now() - started)
      await sleep(5)
    }
    agent.destroy()
    const sorted = [...latencies].sort((a, b) => a - b)
    const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
    return { count: sorted.length, p99: at(0.99), max: sorted[sorted.length - 1], failures }
  })()
  return { stop () { stopped = true; return done } }
}

/** CLIENTS_PER_FILE clients per file, all at once; every body checked by SHA-256. */
async function downloadAll (t, port, files, label) {
  const names = Object.keys(files)
  const results = await Promise.all(names.flatMap((name) => Array.from({ length: CLIENTS_PER_FILE }, () => request(port, `/file/${name}`).then((res) => ({ name, res })))))
  let exact = 0
  for (const { name, res } of results) {
    if (res.status === 200 && res.length === files[name].size && res.sha === files[name].sha) exact++
    else t.fail(`${label} ${name}: status ${res.status}, ${res.length} of ${files[name].size} bytes, sha ${res.sha === files[name].sha ? 'exact' : 'wrong'}`)
  }
  t.equal(exact, results.length, `${label}: all ${results.length} bodies exact`)
}

/**
 * Serves `files` ({ name: { size, sha } } below `dir`) from a server in its own process while
 * clients download them twice (cold, then warm) and the small route is probed; checks the
 * bytes, the loop's delay, the small route's latency and the server's fds.
 */
async function serveUnderLoad (t, dir, files, { drop = false, onCold, maxBound = MAX_LOOP_DELAY_MS, p99Bound = P99_LOOP_DELAY_MS } = {}) {
  const server = await spawnFixture(t, 'file-server', { dir, drop, loopDelay: true }, { wrap: PRIORITY })
  t.equal(server.state, 'READY', server.message)
  if (drop && ROOT) t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  t.not(server.capabilities.mode, 'stream', `the native path serves (mode ${server.capabilities.mode})`)
  const warmup = Object.fromEntries(Object.keys(WARMUP).map((name) => [name, files[name]]))
  await downloadAll(t, server.port, warmup, 'warm-up')
  await downloadAll(t, server.port, warmup, 'warm-up again')
  const baseline = await steadyFds(server.pid)
  const probe = probeSmall(server.port)
  await sleep(50)
  const fits = (c, w) => Math.max(c.max, w.max) < maxBound && Math.max(c.p99, w.p99) < p99Bound
  let cold
  let warm
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    await getJson(server.port, '/loop-delay') // starts the histogram over: from here on it counts
    if (onCold) await onCold()
    const measured = Object.fromEntries(Object.keys(filesOf(attempt)).map((name) => [name, files[name]]))
    await downloadAll(t, server.port, measured, `attempt ${attempt} cold`)
    const c = await getJson(server.port, '/loop-delay')
    await downloadAll(t, server.port, measured, `attempt ${attempt} warm`)
    const w = await getJson(server.port, '/loop-delay')
    t.comment(`attempt ${attempt}: loop delay, cold: max ${c.max} ms, p99 ${c.p99} ms; warm: max ${w.max} ms, p99 ${w.p99} ms`)
    // The best attempt: the first that meets both bounds, else the one with the least maximum.
    if (fits(c, w)) {
      cold = c
      warm = w
      break
    }
    if (cold === undefined || Math.max(c.max, w.max) < Math.max(cold.max, warm.max)) {
      cold = c
      warm = w
    }
  }
  const small = await probe.stop()
  const stats = await getJson(server.port, '/stats')
  t.comment(`/small: ${small.count} requests, p99 ${small.p99.toFixed(1)} ms, max ${small.max.toFixed(1)} ms`)
  t.comment(`responses ${JSON.stringify(stats.responses)}, bytes ${JSON.stringify(stats.bytes)}, fallbacks ${JSON.stringify(stats.fallbacks)}`)
  t.same(small.failures, [], 'the small route answered every request')
  t.ok(cold.max < maxBound, `cold files: the event loop's longest delay ${cold.max} ms < ${maxBound} ms (best attempt)`)
  t.ok(warm.max < maxBound, `warm files: the event loop's longest delay ${warm.max} ms < ${maxBound} ms (best attempt)`)
  t.ok(cold.p99 < p99Bound, `cold files: the event loop's p99 delay ${cold.p99} ms < ${p99Bound} ms`)
  t.ok(warm.p99 < p99Bound, `warm files: the event loop's p99 delay ${warm.p99} ms < ${p99Bound} ms`)
  t.ok(small.p99 < SMALL_P99_MS, `/small p99 ${small.p99.toFixed(1)} ms < ${SMALL_P99_MS} ms`)
  t.ok(small.max < SMALL_MAX_MS, `/small max ${small.max.toFixed(1)} ms < ${SMALL_MAX_MS} ms`)
  const after = await steadyFds(server.pid)
  t.equal(after, baseline, `the server's fds back to baseline (${baseline}), ${after} now`)
  return { server, cold, warm, small, stats }
}

test('the same load from a local directory: the loop stays under the bound (the harness is fair)', async (t) => {
  const dir = tempDir(t, 0o755)
  const files = {}
  for (const [name, size] of Object.entries({ ...ALL_FILES, ...WARMUP })) {
    files[name] = { size, sha: await writeSeededFile(path.join(dir, name), size, name) }
  }
  spawnSync('sync') // nothing left to write back while they are served
  await serveUnderLoad(t, dir, files, { maxBound: LOCAL_LOOP_DELAY_MS, p99Bound: LOCAL_LOOP_DELAY_MS })
})

test('files from a filesystem whose read, getattr, open and flush take 50 ms: the event loop never waits for it', async (t) => {
  const slow = await mountSlowFs(t, { files: { ...ALL_FILES, ...WARMUP }, ...PATIENT })
  await serveUnderLoad(t, slow.dir, slow.files)
  const ops = await slow.stats()
  t.comment(`slowfs requests (interrupted): ${Object.keys(SLOW).map((op) => `${op} ${ops[op].requests} (${ops[op].interrupts})`).join(', ')}`)
  t.ok(ops.open.requests > 0 && ops.read.requests > 0 && ops.flush.requests > 0, 'the server went through the slow filesystem')
})

test('the same as nobody (native path, unprivileged): the event loop never waits for the filesystem', async (t) => {
  const slow = await mountSlowFs(t, { files: { ...ALL_FILES, ...WARMUP }, ...PATIENT })
  await serveUnderLoad(t, slow.dir, slow.files, { drop: true })
})

test('a local file whose head is being read in when it is asked for: the event loop does not wait for that read', async (t) => {
  // cachestat(2) counts every folio in the page cache, uptodate or not, so a head whose
  // pages are present but still being read in passes the "cached" check, and sendfile(2)
  // then waits on the event loop for the read to finish. To hold pages in that state for a
  // known time on a local disk: an ext4 image on a loop device whose backing file is on a
  // slowfs mount (direct I/O, so every block read waits on slowfs's READ, 400 ms here).
  // The file is evicted, a reader (dd) starts a sequential read of it, which puts the
  // readahead window's folios in the page cache locked, and while its READs sleep, a
  // client asks the server for the file.
  if (!ROOT) {
    t.skip('needs root: loop devices and mount')
    return
  }
  const image = await makeSlowDisk(t)
  if (image === null) return
  const { mnt, slow, files } = image
  const pageCache = compileFixture(t, 'page-cache')
  const server = await spawnFixture(t, 'file-server', { dir: mnt, loopDelay: true, options: { fileInline: 64 * KiB } }, { wrap: PRIORITY })
  t.equal(server.state, 'READY', server.message)
  const target = path.join(mnt, 'ra.bin')
  const baseline = await steadyFds(server.pid)
  // Warm the lookup so the open takes the server's fast path, then drop the file's pages.
  await request(server.port, '/file/ra.bin')
  let best = Infinity
  for (let attempt = 0; attempt < ATTEMPTS && best >= MAX_LOOP_DELAY_MS; attempt++) {
    await new Promise((resolve, reject) => spawn(pageCache, ['evict', target], { stdio: 'inherit' }).on('exit', (c) => c === 0 ? resolve() : reject(new Error(`evict ${c}`))))
    const before = await slow.stats()
    await slow.setDelay('read', 400)
    await getJson(server.port, '/loop-delay')
    const reader = spawn('dd', [`if=${target}`, 'of=/dev/null', 'bs=64k', 'count=1'], { stdio: 'ignore' })
    const readerDone = new Promise((resolve) => reader.on('exit', resolve))
    // The readahead is in flight once slowfs holds a READ asleep.
    t.ok(await eventually(async () => (await slow.stats()).asleep > 0 && (await slow.stats()).read.requests > before.read.requests, 2000),
      `attempt ${attempt}: the reader's readahead is waiting on the disk`)
    // mincore(2) counts only pages read in (uptodate): not all of the head's yet, though the
    // readahead put them all in the page cache, where cachestat counts them.
    const resident = spawnSync(pageCache, ['resident', target, '0', String(64 * KiB)], { encoding: 'utf8' }).stdout.trim()
    t.ok(Number(resident.split(' ')[0]) < 16, `attempt ${attempt}: some of the head's 16 pages are still being read in (mincore: ${resident} resident)`)
    const res = await request(server.port, '/file/ra.bin')
    const delay = await getJson(server.port, '/loop-delay')
    await readerDone
    await slow.setDelay('read', 0)
    t.equal(res.sha, files['ra.bin'].sha, `attempt ${attempt}: the file arrived exact`)
    t.comment(`attempt ${attempt}: loop delay while the head was being read in: max ${delay.max} ms`)
    best = Math.min(best, delay.max)
  }
  t.ok(best < MAX_LOOP_DELAY_MS, `the event loop's longest delay ${best} ms < ${MAX_LOOP_DELAY_MS} ms (best attempt; the read takes 400 ms)`)
  t.equal(await steadyFds(server.pid), baseline, 'the server\'s fds back to baseline')
})

/**
 * An ext4 filesystem on a loop device backed (with direct I/O) by an image on a slowfs
 * mount: a local block device whose reads take as long as slowfs's read delay. Resolves
 * with { mnt, slow, files } or null (the test is skipped, saying why).
 */
async function makeSlowDisk (t) {
  const build = tempDir(t, 0o755)
  const img = path.join(build, 'disk.img')
  fs.writeFileSync(img, Buffer.alloc(0))
  fs.truncateSync(img, 64 * MiB)
  const mkfs = spawnSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', img], { encoding: 'utf8' })
  if (mkfs.status !== 0) {
    t.skip(`mkfs.ext4 failed: ${mkfs.stderr || mkfs.error}`)
    return null
  }
  // Put the file on it through a loop device on the local image, then serve the image from slowfs.
  const seed = tempDir(t, 0o755)
  const content = path.join(seed, 'ra.bin')
  const sha = await writeSeededFile(content, 4 * MiB, 'ra.bin')
  const mnt = tempDir(t, 0o755)
  const attach = (file, extra = []) => spawnSync('losetup', ['--find', '--show', ...extra, file], { encoding: 'utf8' })
  let dev = attach(img)
  if (dev.status !== 0) {
    t.skip(`no loop device here: ${dev.stderr.trim()}`)
    return null
  }
  let loop = dev.stdout.trim()
  const sh = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`)
  }
  sh('mount', [loop, mnt])
  fs.copyFileSync(content, path.join(mnt, 'ra.bin'))
  fs.chmodSync(path.join(mnt, 'ra.bin'), 0o644)
  sh('umount', [mnt])
  sh('losetup', ['-d', loop])
  fs.renameSync(img, path.join(seed, 'disk.img'))
  fs.rmSync(content)
  const slow = await mountSlowFs(t, { backing: seed, directIo: true, interrupts: false })
  dev = attach(path.join(slow.dir, 'disk.img'), ['--direct-io=on'])
  if (dev.status !== 0) throw new Error(`losetup on slowfs: ${dev.stderr}`)
  loop = dev.stdout.trim()
  sh('mount', ['-o', 'ro', loop, mnt])
  t.teardown(() => {
    spawnSync('umount', ['-l', mnt])
    spawnSync('losetup', ['-d', loop])
  })
  return { mnt, slow, files: { 'ra.bin': { size: 4 * MiB, sha } } }
}

test('an interruptible filesystem (FUSE_INTERRUPT answered with EINTR): every file still arrives exact, none fails', async (t) => {
  // The same filesystem, answering EINTR when the kernel interrupts a request (as FUSE
  // filesystems mounted with -o intr do): a request the event loop's thread makes can be
  // interrupted by io_uring's own task-work notification, and a caller that does not retry
  // turns it into an error. Off that thread, nothing interrupts the requests.
  const slow = await mountSlowFs(t, { files: { ...FILES, ...WARMUP }, delays: SLOW, interrupts: true })
  const server = await spawnFixture(t, 'file-server', { dir: slow.dir })
  t.equal(server.state, 'READY', server.message)
  for (const round of ['cold', 'warm']) await downloadAll(t, server.port, slow.files, round)
  const ops = await slow.stats()
  const stats = await getJson(server.port, '/stats')
  t.comment(`slowfs requests (interrupted): ${Object.keys(SLOW).map((op) => `${op} ${ops[op].requests} (${ops[op].interrupts})`).join(', ')}`)
  t.comment(`fallbacks ${JSON.stringify(stats.fallbacks)}`)
})
