'use strict'
// The server in a real container (test/container.js): runc runs the fixtures under Podman's
// default seccomp profile (Debian's golang-github-containers-common) and under a Docker-like
// one derived from it. Inside, io_uring is refused, and the plugin must still serve files and
// buffers natively with the classic engine (sendfile/splice, MSG_ZEROCOPY): a 1 GiB file,
// single ranges, 200 aborted downloads, a 64 MiB buffer, every byte checked. The containers
// are removed whatever happens, which the last tests check.
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const t = require('tap')
const {
  KiB, MiB, fetchChecked, getJson, eventually, steadyFds, procFds, readPartOf, seeded, compileFixture, writeSeededFile
} = require('./helpers')
const { PROFILES, PODMAN_PROFILE, loadProfile, startFixture, startContainer, runContainer, ownedTempDir, containerExists, containerState, sweepStale } = require('./container')

const GiB = 1024 * MiB
const FILE_SIZE = GiB
const BUFFER_SIZE = 64 * MiB
const THRESHOLD = 16 * KiB // the plugin's default
const FILES = '/srv/zc-files' // where the served directory is bind-mounted inside
const SEED = 'container'
const ROOT = process.getuid() === 0
// What each profile answers for io_uring: Podman's for every call it does not list, the
// Docker-like one explicitly.
const REFUSAL = { podman: 'ENOSYS', 'docker-like': 'EPERM' }
const NATIVE = ['sendZc', 'send', 'splice', 'sendfile']
const [major, minor] = os.release().split('.').map(Number)
const CACHESTAT = major > 6 || (major === 6 && minor >= 5) // Linux 6.5

if (!ROOT) {
  t.skip('needs root: runc creates namespaces and mounts')
  return
}

const sum = (o, keys) => keys.reduce((n, k) => n + o[k], 0)

/** What the server's stats say about the bodies served between two readings. */
function delta (before, after) {
  const d = { responses: {}, bytes: {}, fallbacks: {} }
  for (const k of Object.keys(after.responses)) d.responses[k] = after.responses[k] - before.responses[k]
  for (const k of Object.keys(after.bytes)) d.bytes[k] = after.bytes[k] - before.bytes[k]
  for (const [k, v] of Object.entries(after.fallbacks)) if (v !== (before.fallbacks[k] || 0)) d.fallbacks[k] = v - (before.fallbacks[k] || 0)
  return d
}

/** Stats once `count` more responses than `before` are counted (native ones count when the engine finished). */
async function statsAfter (port, before, count) {
  const total = (s) => sum(s.responses, [...NATIVE, 'stream'])
  let now = before
  await eventually(async () => {
    now = await getJson(port, '/stats')
    return total(now) - total(before) >= count && now.inFlight.sends === 0
  }, 10000)
  return delta(before, now)
}

function nativeMessage (what, d) {
  return `${what} native: expected no byte through Fastify's ordinary path, the classic engine carrying it; ` +
    `stats: ${d.bytes.stream} bytes stream, ${sum(d.bytes, NATIVE)} native ${JSON.stringify(d.bytes)}, fallbacks ${JSON.stringify(d.fallbacks)}`
}

/** Descriptors of a process that are the file `file` (same device and inode). */
function fdsOf (pid, file) {
  const { dev, ino } = fs.statSync(file)
  let n = 0
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const s = fs.statSync(`/proc/${pid}/fd/${fd}`)
      if (s.dev === dev && s.ino === ino) n++
    } catch {} // closed meanwhile
  }
  return n
}

/** GET with a Range header; resolves with { status, headers, body } (the body whole: ranges here are small). */
function getRange (port, urlPath, range) {
  return new Promise((resolve, reject) => {
    require('node:http').get({ host: '127.0.0.1', port, path: urlPath, agent: false, headers: { range } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

function readAt (file, offset, length) {
  const buf = Buffer.alloc(length)
  const fd = fs.openSync(file, 'r')
  try {
    for (let done = 0; done < length;) {
      const n = fs.readSync(fd, buf, done, length - done, offset + done)
      if (n === 0) throw new Error(`${file} ended at ${offset + done}`)
      done += n
    }
  } finally {
    fs.closeSync(fd)
  }
  return buf
}

/** Starts every server or none: one that started is stopped if another failed. */
async function startAll (t, starts) {
  const settled = await Promise.allSettled(starts)
  for (const s of settled) if (s.status === 'fulfilled') t.teardown(() => s.value.stop())
  const failed = settled.find((s) => s.status === 'rejected')
  if (failed) throw failed.reason
  return settled.map((s) => s.value)
}

const dir = ownedTempDir('files')
fs.chmodSync(dir, 0o755)
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
const bigFile = path.join(dir, 'big.bin')
const expectedBuffer = seeded(SEED, 0, BUFFER_SIZE)
let bigSha = null
let bigHead = null

t.before(async () => {
  const started = Date.now()
  bigSha = await writeSeededFile(bigFile, FILE_SIZE, SEED)
  bigHead = readAt(bigFile, 0, 16 * MiB)
  t.comment(`1 GiB file written in ${((Date.now() - started) / 1000).toFixed(1)} s`)
})

t.test('the profiles as written: io_uring not allowed by Podman\'s, the Docker-like one as derived', async (t) => {
  t.ok(fs.existsSync(PODMAN_PROFILE), `${PODMAN_PROFILE} is installed (golang-github-containers-common)`)
  const allowed = (p, name) => p.syscalls.some((r) => r.action === 'SCMP_ACT_ALLOW' && r.names.includes(name))
  const podman = loadProfile('podman')
  t.equal(podman.defaultAction, 'SCMP_ACT_ERRNO')
  t.equal(podman.defaultErrnoRet, 38, 'Podman\'s profile: ENOSYS for what it does not list')
  t.notOk(allowed(podman, 'io_uring_setup'), 'Podman\'s profile does not allow io_uring_setup')
  const docker = loadProfile('docker-like')
  t.equal(docker.defaultErrnoRet, 1, 'Docker-like: EPERM for what it does not list')
  t.ok(allowed(docker, 'cachestat'), 'Docker-like: cachestat allowed')
  t.notOk(allowed(docker, 'io_uring_setup'), 'Docker-like: io_uring_setup not allowed')
})

for (const profile of PROFILES) {
  const errno = REFUSAL[profile]

  t.test(`in a runc container with the ${profile} profile`, async (t) => {
    const started = Date.now()
    const [files, buffers] = await startAll(t, [
      startFixture({ profile, fixture: 'file-server', config: { dir: FILES, log: 'warn' }, binds: [{ source: dir, destination: FILES }] }),
      startFixture({ profile, fixture: 'app-server', config: { seed: SEED, sizes: [BUFFER_SIZE], log: 'warn' } })
    ])
    t.comment(`two containers up in ${Date.now() - started} ms`)

    t.test('the seccomp filter is on and io_uring is refused', async (t) => {
      for (const server of [files, buffers]) {
        t.equal(server.state, 'READY', `${server.id}: the fixture started (${server.message ?? ''})`)
        const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8')
        t.match(status, /^Seccomp:\s+2$/m, `${server.id}: the server runs under a seccomp filter`)
        t.match(status, new RegExp(`^NSpid:\\s+${server.pid}\\s+1$`, 'm'), `${server.id}: it is the container's process, pid 1 in its pid namespace`)
        t.equal(server.capabilities.native, true, 'the addon loaded')
        t.equal(server.capabilities.ioUring, false, 'no ring could be created')
        t.match(server.capabilities.reason, new RegExp(`^io_uring_setup failed with ${errno}\\b`), `reason: ${server.capabilities.reason}`)
      }
    })

    t.test('the profile, seen from inside by a syscall probe', async (t) => {
      const probe = compileFixture(t, 'syscall-probe')
      const run = await runContainer({ profile, argv: [probe], binds: [{ source: path.dirname(probe) }] })
      t.equal(run.code, 0, `the probe ran (stderr: ${run.stderr || 'empty'})`)
      const seen = Object.fromEntries(run.stdout.trim().split('\n').map((l) => l.split(' ')))
      for (const call of ['io_uring_setup', 'io_uring_enter', 'io_uring_register']) t.equal(seen[call], errno, `${call} refused with ${errno}`)
      t.equal(seen.quotactl_fd, profile === 'podman' ? 'ENOSYS' : 'EPERM', 'a call the profile does not list')
      if (profile === 'podman') t.equal(seen.cachestat, 'ENOSYS', 'cachestat refused (not listed)')
      else t.equal(seen.cachestat, CACHESTAT ? 'EBADF' : 'ENOSYS', 'cachestat allowed (the kernel answers)')
      t.equal(seen.sendfile, 'EBADF', 'sendfile allowed')
      t.equal(seen.splice, 'EBADF', 'splice allowed')
      t.equal(seen.setsockopt_SO_ZEROCOPY, 'ok', 'SO_ZEROCOPY can be set')
    })

    t.test('the classic engine is chosen', async (t) => {
      for (const server of [files, buffers]) {
        t.equal(server.capabilities.engine, 'classic',
          `capabilities.engine is 'classic' where io_uring is refused (got ${JSON.stringify(server.capabilities.engine)}; mode ${server.capabilities.mode})`)
      }
    })

    t.test('a 1 GiB file: exact and native', async (t) => {
      const before = await getJson(files.port, '/stats')
      const t0 = Date.now()
      const res = await fetchFile(files.port, '/file/big.bin')
      const ms = Date.now() - t0
      t.equal(res.status, 200)
      t.equal(res.headers['content-length'], String(FILE_SIZE))
      t.equal(res.length, FILE_SIZE, 'every byte arrived')
      t.equal(res.firstBad, -1, 'every byte where it belongs')
      t.equal(res.sha, bigSha, 'the body hashes as the file does')
      const d = await statsAfter(files.port, before, 1)
      t.equal(d.bytes.stream, 0, nativeMessage('the 1 GiB file', d))
      t.equal(sum(d.bytes, NATIVE), FILE_SIZE, 'native paths carried all of it')
      t.comment(`${profile}: 1 GiB in ${ms} ms (${(FILE_SIZE / MiB / (ms / 1000)).toFixed(0)} MiB/s, client checks included), ` +
        `${d.bytes.stream === 0 ? 'natively' : 'through the ordinary path'}`)
    })

    t.test('single ranges: exact, and native at or above the threshold', async (t) => {
      const N = FILE_SIZE
      const ranges = [
        [0, 0], [1000, 1999], [4096, 4096 + 64 * KiB - 1], [MiB - 100, MiB + 100 * KiB],
        [512 * MiB - 3, 512 * MiB + 2 * MiB], [N - 4 * MiB, N - 1], [N - 1, N - 1]
      ].map(([a, b]) => ({ header: `bytes=${a}-${b}`, start: a, end: b }))
      ranges.push({ header: 'bytes=-70000', start: N - 70000, end: N - 1 })
      ranges.push({ header: `bytes=${N - 300000}-`, start: N - 300000, end: N - 1 })
      const before = await getJson(files.port, '/stats')
      let small = 0
      for (const r of ranges) {
        const length = r.end - r.start + 1
        if (length < THRESHOLD) small += length
        const res = await getRange(files.port, '/file/big.bin', r.header)
        t.equal(res.status, 206, `${r.header}: 206`)
        t.equal(res.headers['content-range'], `bytes ${r.start}-${r.end}/${N}`, `${r.header}: Content-Range`)
        t.equal(res.body.length, length, `${r.header}: ${length} bytes`)
        t.ok(res.body.equals(readAt(bigFile, r.start, length)), `${r.header}: the file's bytes`)
      }
      const past = await getRange(files.port, '/file/big.bin', `bytes=${N}-`)
      t.equal(past.status, 416, 'a range past the end: 416')
      t.equal(past.headers['content-range'], `bytes */${N}`)
      const d = await statsAfter(files.port, before, ranges.length)
      t.equal(d.bytes.stream, small, nativeMessage(`the ${ranges.filter((r) => r.end - r.start + 1 >= THRESHOLD).length} ranges at or above the threshold`, d))
    })

    t.test('200 downloads aborted mid-body leave no descriptor open', async (t) => {
      const baseline = await steadyFds(files.pid)
      const t0 = Date.now()
      const COUNT = 200
      const LANES = 8
      let next = 0
      let prefixes = 0
      const bad = []
      await Promise.all(Array.from({ length: LANES }, async () => {
        for (let i = next++; i < COUNT; i = next++) {
          const at = 32 * KiB + ((i * 2654435761) % (12 * MiB)) // spread over the first 12 MiB
          const seen = await readPartOf(files.port, '/file/big.bin', at, { reset: i % 2 === 0 })
          const n = Math.min(seen.length, bigHead.length)
          if (seen.length >= at && seen.subarray(0, n).equals(bigHead.subarray(0, n))) prefixes++
          else bad.push(`download ${i}: ${seen.length} bytes seen, cut at ${at}`)
        }
      }))
      t.same(bad, [], 'every client saw a true prefix of the file before it went away')
      t.equal(prefixes, COUNT, `${COUNT} downloads cut between 32 KiB and 12 MiB, half with RST`)
      let open = -1
      t.ok(await eventually(() => (open = fdsOf(files.pid, bigFile)) === 0, 10000), `no descriptor of the file left open in the server (${open})`)
      t.ok(await eventually(() => procFds(files.pid) === baseline, 10000), `the server's fds back to ${baseline} (now ${procFds(files.pid)})`)
      const after = await getRange(files.port, '/file/big.bin', 'bytes=0-65535')
      t.ok(after.status === 206 && after.body.equals(bigHead.subarray(0, 65536)), 'the server goes on serving the file')
      t.comment(`${profile}: ${COUNT} aborted downloads in ${Date.now() - t0} ms`)
    })

    t.test('a 64 MiB buffer: exact and native', async (t) => {
      const before = await getJson(buffers.port, '/stats')
      const res = await fetchChecked(buffers.port, '/body/0', expectedBuffer)
      t.equal(res.status, 200)
      t.equal(res.length, BUFFER_SIZE, 'every byte arrived')
      t.ok(res.exact, `every byte where it belongs (first bad byte ${res.firstBad})`)
      t.equal(res.sha, buffers.shas[0], 'the body hashes as the server\'s buffer does')
      const d = await statsAfter(buffers.port, before, 1)
      t.equal(d.bytes.stream, 0, nativeMessage('the 64 MiB buffer', d))
      t.equal(sum(d.bytes, NATIVE), BUFFER_SIZE, 'native paths carried all of it')
    })

    t.test('stopped: the containers and their bundles are gone', async (t) => {
      for (const server of [files, buffers]) {
        t.ok(containerExists(server.id), `${server.id} was there`)
        await server.stop()
        t.notOk(containerExists(server.id), `${server.id}: runc knows it no more`)
        t.notOk(fs.existsSync(server.bundle), `${server.id}: bundle removed`)
        let alive = true
        try { process.kill(server.pid, 0) } catch { alive = false }
        t.notOk(alive, `${server.id}: its server process ${server.pid} is gone`)
      }
    })
  })
}

t.test('a container whose server never starts is removed', async (t) => {
  const profile = 'podman'
  // A script that exits at once, and one that never says READY.
  for (const [script, readyMs, what] of [['test/fixtures/no-such-fixture.js', 20000, 'ended'], ['test/fixtures/container-guard.js', 1500, 'no ready line']]) {
    const err = await startContainer({ profile, script, readyMs }).then(() => null, (e) => e)
    t.ok(err, `${path.basename(script)}: the start fails`)
    t.match(err.message, what, err.message.split(';')[0])
    t.notOk(containerExists(err.container.id), `${path.basename(script)}: runc knows the container no more`)
    t.notOk(fs.existsSync(err.container.bundle), `${path.basename(script)}: bundle removed`)
  }
})

for (const group of [false, true]) {
  const killed = group ? 'a test process killed with SIGKILL with its `runc run` (its process group)' : 'a test process killed with SIGKILL'
  t.test(`${killed} leaves no server running, and the next start removes what it left`, async (t) => {
    const script = `
      require(${JSON.stringify(path.join(__dirname, 'container.js'))})
        .startFixture({ profile: 'podman', fixture: 'app-server', config: {} })
        .then((s) => console.log(JSON.stringify({ id: s.id, bundle: s.bundle, pid: s.pid, port: s.port })))`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], detached: group })
    const kill = () => { try { process.kill(group ? -child.pid : child.pid, 'SIGKILL') } catch {} }
    t.teardown(() => { kill(); sweepStale() }) // also when an assertion below fails first
    const info = await new Promise((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        if (out.includes('\n')) resolve(JSON.parse(out))
      })
      child.on('exit', (code) => reject(new Error(`the starting process ended (${code}) first`)))
    })
    t.ok(await new Promise((resolve) => {
      const socket = net.connect(info.port, '127.0.0.1', () => { socket.destroy(); resolve(true) }).on('error', () => resolve(false))
    }), 'its server answers')
    kill()
    await new Promise((resolve) => child.once('exit', resolve))
    t.ok(await eventually(() => { try { process.kill(info.pid, 0); return false } catch { return true } }, 5000),
      'the server ends once the process that started it is gone')
    t.comment(`before the sweep: runc ${containerExists(info.id) ? `lists it (${containerState(info.id).status})` : 'no longer lists it'}, bundle ${fs.existsSync(info.bundle) ? 'there' : 'gone'}`)
    sweepStale()
    t.notOk(containerExists(info.id), 'runc does not list it after the next start\'s sweep')
    t.notOk(fs.existsSync(info.bundle), 'its bundle is removed')
  })
}

/**
 * GET the 1 GiB file and check it as it arrives, against the file read in 16 MiB windows (no
 * copy of it held whole): resolves with { status, headers, length, sha, firstBad }.
 */
function fetchFile (port, urlPath) {
  const crypto = require('node:crypto')
  const fd = fs.openSync(bigFile, 'r')
  const want = Buffer.alloc(16 * MiB)
  let wantStart = 0
  let wantLength = 0
  return new Promise((resolve, reject) => {
    require('node:http').get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      const hash = crypto.createHash('sha256')
      let length = 0
      let firstBad = -1
      res.on('data', (chunk) => {
        hash.update(chunk)
        for (let off = 0; off < chunk.length && firstBad < 0;) {
          const at = length + off
          if (at >= wantStart + wantLength) {
            wantStart = at
            wantLength = fs.readSync(fd, want, 0, want.length, at)
            if (wantLength === 0) { firstBad = at; break } // longer than the file
          }
          const n = Math.min(chunk.length - off, wantStart + wantLength - at)
          const got = chunk.subarray(off, off + n)
          if (!got.equals(want.subarray(at - wantStart, at - wantStart + n))) {
            for (let i = 0; i < n; i++) if (got[i] !== want[at - wantStart + i]) { firstBad = at + i; break }
          }
          off += n
        }
        length += chunk.length
      })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length, sha: hash.digest('hex'), firstBad }))
      res.on('error', reject)
    }).on('error', reject)
  }).finally(() => fs.closeSync(fd))
}
