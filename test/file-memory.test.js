'use strict'
// Requirement: server RSS growth below 64 MiB while 16 clients download a 1 GiB file at once.
//
// A server in its own process (test/fixtures/file-app.js) serves a 1 GiB file from the page
// cache with reply.sendZeroCopy({ path }): the ring splices it (page cache -> pipe -> socket),
// so no byte of it should pass through the server's memory. 16 clients, each in a worker
// thread of this process (their SHA-256 work must not starve the RSS sampler or the server),
// download the whole file at the same time on connections of their own; the server's VmRSS
// is sampled every 50 ms, and its VmHWM (reset after the baseline) catches a peak between
// samples. Every download must be exactly the file (length and SHA-256), all 16 in flight
// together, the peak growth over the baseline (taken after a warm-up download) below 64 MiB,
// and the stats must show that the bytes went through splice.
//
// Two variants: the server as `nobody` (when this suite runs as root; otherwise as the
// current, already unprivileged, user), and as the current user. The first is never root,
// so the requirement is not only shown with root's privileges (no RLIMIT_MEMLOCK, no
// fs.pipe-user-pages-soft limit).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const t = require('tap')
const {
  MiB, spawnFixture, getJson, eventually, sleep, procRss, procHwm, resetPeakRss, sampleRss,
  writeSeededFile, readWhole, parallelDownloads, ENGINE, FILE_PATH, nativeFileBytes
} = require('./helpers')

const GiB = 1024 * MiB
const SIZE = GiB
const CLIENTS = 16
const LIMIT = 64 * MiB
const SAMPLE_MS = 50

const mib = (n) => (n / MiB).toFixed(1)

// In os.tmpdir() itself (world-searchable, sticky), mode 0644: `nobody` can open it.
const file = path.join(os.tmpdir(), `zc-file-memory-${process.pid}-${crypto.randomBytes(4).toString('hex')}.bin`)
let fileSha = null

const removeFile = () => fs.rmSync(file, { force: true })
process.on('exit', removeFile) // also when the run is cut short
t.teardown(removeFile)

t.before(async () => {
  const started = Date.now()
  fileSha = await writeSeededFile(file, SIZE, 'file-memory')
  const read = await readWhole(file) // into the page cache (it is there after the write; now surely)
  if (read !== SIZE) throw new Error(`${file}: read ${read} bytes back, wrote ${SIZE}`)
  t.comment(`1 GiB file ${file} written and read back in ${((Date.now() - started) / 1000).toFixed(1)} s, sha256 ${fileSha.slice(0, 16)}...`)
})

function check (t, res, what) {
  if (res.error !== undefined) {
    t.fail(`${what}: ${res.error}`)
    return false
  }
  const ok = res.status === 200 && res.length === SIZE && res.sha === fileSha && res.headers['content-length'] === String(SIZE)
  if (!ok) t.fail(`${what}: status ${res.status}, content-length ${res.headers['content-length']}, ${res.length} bytes, sha256 ${res.sha}`)
  return ok
}

async function variant (t, { drop }) {
  const server = await spawnFixture(t, 'file-app', { drop, log: 'warn' })
  t.equal(server.state, 'READY', 'the server started')
  if (server.state !== 'READY') return
  const pid = server.pid
  if (drop) {
    t.not(server.uid, 0, `the server runs as uid ${server.uid}, not root`)
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    t.equal(BigInt('0x' + /^CapEff:\s*(\S+)/m.exec(status)[1]), 0n, 'and has no capabilities')
  }
  t.not(server.capabilities.mode, 'stream', `the native path is on (mode ${server.capabilities.mode})`)
  const url = `/file?path=${encodeURIComponent(file)}`

  // Warm-up: one whole download through the same path, so the baseline is a server that
  // has served this route (code compiled, pools and the ring's first allocations made).
  const [warm] = await parallelDownloads(server.port, url, 1)
  t.ok(check(t, warm, 'warm-up download'), 'warm-up download exact')
  t.ok(await eventually(async () => (await getJson(server.port, '/stats')).responses[FILE_PATH] === 1), 'the warm-up went native')
  await sleep(300)
  const baseline = procRss(pid)
  const hwmReset = resetPeakRss(pid)

  let sampler = null
  const started = Date.now()
  const results = await parallelDownloads(server.port, url, CLIENTS, { onStart: () => { sampler = sampleRss(pid, SAMPLE_MS) } })
  const elapsed = (Date.now() - started) / 1000
  const { peak, count } = sampler.stop()
  const hwm = hwmReset ? procHwm(pid) : NaN

  let exact = 0
  results.forEach((res, i) => { if (check(t, res, `client ${i}`)) exact++ })
  t.equal(exact, CLIENTS, `all ${CLIENTS} downloads are exactly the 1 GiB file (length and SHA-256)`)
  const ok = results.filter((r) => r.error === undefined)
  const lastFirstByte = Math.max(...ok.map((r) => r.firstByte))
  const firstEnd = Math.min(...ok.map((r) => r.ended))
  t.ok(ok.length === CLIENTS && lastFirstByte < firstEnd,
    `all ${CLIENTS} were receiving at once (last first byte ${lastFirstByte - started} ms, first end ${firstEnd - started} ms after the start)`)
  t.ok(count >= 10, `${count} RSS samples`)

  const growth = peak - baseline
  t.ok(growth < LIMIT, `peak RSS growth ${mib(growth)} MiB (sampled every ${SAMPLE_MS} ms) < ${mib(LIMIT)} MiB`)
  if (hwmReset) {
    t.ok(hwm - baseline < LIMIT, `VmHWM growth ${mib(hwm - baseline)} MiB < ${mib(LIMIT)} MiB`)
  } else {
    t.comment('VmHWM could not be reset (no permission on clear_refs); the sampled peak is the figure')
  }

  let stats
  t.ok(await eventually(async () => {
    stats = await getJson(server.port, '/stats')
    return stats.responses[FILE_PATH] === CLIENTS + 1
  }), `${CLIENTS} + 1 responses carried by the engine`)
  t.equal(nativeFileBytes(stats), (CLIENTS + 1) * SIZE, 'every byte of them went through splice, or sendfile (a cached head, or the classic engine)')
  t.equal(server.capabilities.engine, ENGINE, `the ${ENGINE} engine serves`)
  t.equal(stats.engines[ENGINE].bytes, (CLIENTS + 1) * SIZE, `the ${ENGINE} engine carried every byte`)
  t.equal(stats.responses.stream, 0, 'none took Fastify\'s ordinary path')
  t.equal(stats.bytes.stream, 0)
  t.equal(stats.responses.sendZc + stats.responses.send, 0, 'none was sent from memory')
  t.same(stats.fallbacks, {}, 'no fallback of any kind')
  t.equal(server.stderr(), '', 'the server logged nothing at warn or above')

  const gb = (CLIENTS * SIZE) / 1e9
  t.comment(`server uid ${server.uid}: ${CLIENTS} x 1 GiB in ${elapsed.toFixed(1)} s (${(gb / elapsed).toFixed(2)} GB/s); ` +
    `RSS baseline ${mib(baseline)} MiB, sampled peak ${mib(peak)} MiB (+${mib(growth)} MiB, ${count} samples)` +
    (hwmReset ? `, VmHWM ${mib(hwm)} MiB (+${mib(hwm - baseline)} MiB)` : '') +
    `; spliced ${stats.responses.splice} responses, ${stats.bytes.splice} bytes (${stats.bytes.sendfile} by sendfile)`)
}

const self = process.getuid() === 0 ? 'root' : `uid ${process.getuid()}`

t.test('16 clients download a 1 GiB file at once from an unprivileged server: RSS grows < 64 MiB', (t) => variant(t, { drop: true }))
t.test(`the same with the server as this process's user (${self})`, (t) => variant(t, { drop: false }))
