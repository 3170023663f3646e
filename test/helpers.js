'use strict'
// Real servers on loopback, real clients, bytes checked by SHA-256.
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const Fastify = require('fastify')
const zeroCopy = require('..')

const KiB = 1024
const MiB = 1024 * KiB
// The plugin's default fileInline: the most a response's cached head sends by sendfile on the loop.
const FILE_INLINE = 256 * KiB

function sha256 (buf) {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

/** Starts Fastify with the plugin on 127.0.0.1; `setup(app)` adds routes and hooks. */
async function startServer (t, { options, fastify, setup } = {}) {
  const app = Fastify({ logger: false, ...fastify })
  await app.register(zeroCopy, options)
  if (setup) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: app.server.address().port }
}

/**
 * GET (or another method) over node:http; resolves with status, headers, length and SHA-256.
 * A new connection per request unless an agent is given.
 */
function request (port, path, { agent = false, method = 'GET', headers } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent, headers }, (res) => {
      const hash = crypto.createHash('sha256')
      let length = 0
      res.on('data', (chunk) => { hash.update(chunk); length += chunk.length })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length, sha: hash.digest('hex') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * Opens a raw connection, sends one GET, reads the headers and `bodyBytes` body bytes, then
 * closes (`reset`: with RST). Resolves with the body bytes it saw.
 */
function readPartOf (port, path, bodyBytes, { reset = false } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let head = Buffer.alloc(0)
    const body = []
    let bodyLength = -1 // -1 until the header ends
    let done = false
    const finish = () => {
      if (done) return
      done = true
      if (reset) socket.resetAndDestroy()
      else socket.destroy()
      resolve(Buffer.concat(body))
    }
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`))
    socket.on('data', (chunk) => {
      if (bodyLength < 0) {
        head = Buffer.concat([head, chunk])
        const at = head.indexOf('\r\n\r\n')
        if (at < 0) return
        chunk = head.subarray(at + 4)
        bodyLength = 0
      }
      body.push(chunk)
      bodyLength += chunk.length
      if (bodyLength >= bodyBytes) finish()
    })
    socket.on('error', (err) => { if (!done) { done = true; reject(err) } })
    socket.on('close', finish)
  })
}

function openFds () {
  return fs.readdirSync('/proc/self/fd').length
}

/** Polls `check` until it returns true or `ms` pass; resolves with the last answer. */
async function eventually (check, ms = 5000) {
  const until = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() > until) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function inFlightIsZero (app) {
  const { inFlight } = app.zeroCopy.stats()
  return inFlight.sends === 0 && inFlight.pinnedBytes === 0
}

module.exports = { KiB, MiB, FILE_INLINE, sha256, startServer, request, readPartOf, openFds, eventually, inFlightIsZero, zeroCopy }

/**
 * Starts test/fixtures/server.js in a child process (through `wrap`, a command prefix) and
 * resolves with its READY or FAILED line; the child is killed at teardown.
 */
function spawnServer (t, config, { wrap = [] } = {}) {
  const { spawn } = require('node:child_process')
  const path = require('node:path')
  const script = path.join(__dirname, 'fixtures', 'server.js')
  const argv = [...wrap, process.execPath, script]
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ZC_FIXTURE: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => child.kill('SIGKILL'))
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    child.stderr.on('data', (d) => { err += d })
    child.stdout.on('data', (d) => {
      out += d
      const line = /^(READY|FAILED) (.*)$/m.exec(out)
      if (line) resolve({ child, state: line[1], ...JSON.parse(line[2]) })
    })
    child.on('exit', (code) => reject(new Error(`fixture exited with ${code}: ${err}`)))
  })
}

/**
 * Compiles a C fixture with the system compiler into a temporary directory; `flags` follow
 * the source (libraries: e.g. the words of `pkg-config --cflags --libs fuse3`).
 */
function compileFixture (t, name, flags = []) {
  const { execFileSync } = require('node:child_process')
  const os = require('node:os')
  const path = require('node:path')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-fixture-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, name)
  execFileSync(process.env.CC || 'cc', ['-O2', '-Wall', '-o', out, path.join(__dirname, 'fixtures', `${name}.c`), ...flags])
  return out
}

module.exports.spawnServer = spawnServer
module.exports.compileFixture = compileFixture

// ---------------------------------------------------------------------------------------
// Reliability tests: child-process fixtures watched from outside, streaming clients that
// check every byte against the expected body, and /proc readings.

const { seeded, tagged, ownerAt } = require('./fixtures/bodies')

/**
 * Starts a fixture script (test/fixtures/<name>.js) with config in env ZC_FIXTURE, through
 * `wrap` (a command prefix), with `nodeArgs`. Resolves with the READY/FAILED line's fields and
 * { child, stderr(), line(word), exited }: `line` waits for a later line starting with `word`,
 * `exited` resolves with { code, signal } (the child is SIGKILLed at teardown if still there).
 */
function spawnFixture (t, name, config, { wrap = [], nodeArgs = [] } = {}) {
  const { spawn } = require('node:child_process')
  const path = require('node:path')
  const script = path.join(__dirname, 'fixtures', `${name}.js`)
  const argv = [...wrap, process.execPath, ...nodeArgs, script]
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ZC_FIXTURE: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  if (t) t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let out = ''
  let err = ''
  const waiters = []
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  child.stderr.on('data', (d) => { err += d })
  child.stdout.on('data', (d) => {
    out += d
    for (const w of waiters.splice(0)) {
      const m = new RegExp(`^${w.word} (.*)$`, 'm').exec(out)
      if (m) w.resolve(JSON.parse(m[1]))
      else waiters.push(w)
    }
  })
  const line = (word) => new Promise((resolve, reject) => {
    const m = new RegExp(`^${word} (.*)$`, 'm').exec(out)
    if (m) return resolve(JSON.parse(m[1]))
    waiters.push({ word, resolve })
    exited.then(({ code, signal }) => reject(new Error(`fixture ended (${code ?? signal}) before ${word}: ${err}`)))
  })
  const handle = { child, exited, line, stderr: () => err, stdout: () => out }
  return Promise.race([line('READY'), line('FAILED').then((v) => ({ failed: v }))])
    .then((v) => v.failed ? { ...handle, state: 'FAILED', ...v.failed } : { ...handle, state: 'READY', ...v })
}

/** GET and parse JSON, on a connection of its own. */
function getJson (port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => { try { resolve(JSON.parse(text)) } catch (err) { reject(err) } })
      res.on('error', reject)
    }).on('error', reject)
  })
}

/** Open fds of another process (or this one). */
function procFds (pid = process.pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length
}

/** Resident set size of a process, in bytes. */
function procRss (pid = process.pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : NaN
}

/**
 * GET `path` and check the body as it arrives against `expected` (a Buffer), chunk by chunk,
 * with no concatenation: resolves with { status, headers, length, sha, exact, firstBad, vanished }.
 * `exact`: every byte equals expected at its offset (and, when not vanished, all of it came);
 * `firstBad`: the offset of the first wrong byte, or -1; `badBytes`: the 16-byte block there.
 * `vanishAt`: after that many body bytes the client goes away (`reset`: with RST, else FIN),
 * and calls `onVanish()` right after. `agent` as for http.request (default: a connection of its own).
 * `cutOk`: a body the server cuts short resolves (with `cut: true`) instead of rejecting.
 * `onHeaders()` is called when the response's head arrived.
 */
function fetchChecked (port, path, expected, { agent = false, vanishAt = -1, reset = false, onVanish, onSocket, onHeaders, cutOk = false } = {}) {
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (fn, v) => { if (!settled) { settled = true; fn(v) } }
    const req = http.request({ host: '127.0.0.1', port, path, agent }, (res) => {
      if (onHeaders) onHeaders()
      const hash = crypto.createHash('sha256')
      let length = 0
      let firstBad = -1
      let badBytes = null
      const result = (vanished, cut = false) => ({
        cut,
        badBytes,
        status: res.statusCode,
        headers: res.headers,
        length,
        sha: hash.digest('hex'),
        firstBad,
        vanished,
        exact: firstBad < 0 && (vanished ? length <= expected.length : length === expected.length)
      })
      res.on('data', (chunk) => {
        if (settled) return
        if (firstBad < 0) {
          const want = expected.subarray(length, length + chunk.length)
          if (want.length !== chunk.length || !want.equals(chunk)) {
            for (let i = 0; i < chunk.length; i++) {
              if (length + i >= expected.length || chunk[i] !== expected[length + i]) { firstBad = length + i; break }
            }
            // The 16-byte block around the first wrong byte, for a diagnosis (bodies.ownerAt).
            const from = Math.max(0, firstBad - (firstBad % 16) - length)
            badBytes = Buffer.from(chunk.subarray(from, from + 16))
          }
        }
        hash.update(chunk)
        length += chunk.length
        if (vanishAt >= 0 && length >= vanishAt) {
          const socket = res.socket
          if (reset && socket && !socket.destroyed) socket.resetAndDestroy()
          else req.destroy()
          settle(resolve, result(true))
          if (onVanish) onVanish()
        }
      })
      res.on('end', () => { if (!settled) settle(resolve, result(false)) })
      const cut = (err) => {
        if (settled) return
        if (cutOk) settle(resolve, result(false, true))
        else settle(reject, err)
      }
      res.on('error', cut)
      res.on('aborted', () => cut(new Error(`${path}: the server cut the body at ${length}`)))
    })
    if (onSocket) req.on('socket', onSocket)
    req.on('error', (err) => {
      // A parse error is never a cut: bytes that are not an HTTP response reached this client.
      if (cutOk && !String(err.code).startsWith('HPE_')) settle(resolve, { cut: true, status: 0, length: 0, firstBad: -1, exact: false, error: err.code })
      else settle(reject, err)
    })
    req.end()
  })
}

/**
 * A client reading one response on a raw socket at `rate` bytes/s (0: as fast as it can; it
 * can be changed later with setRate, or paused with setRate(-1)). Resolves `done` with
 * { head, bodyLength, sha, exact, complete, closedAt, endedAt } when the server closes the connection or `closeAfterBody`.
 */
function rateReader (port, path, expected, { rate = 0, closeAfterBody = true } = {}) {
  const socket = net.connect(port, '127.0.0.1')
  let headText = null
  let head = Buffer.alloc(0)
  const hash = crypto.createHash('sha256')
  let bodyLength = 0
  let firstBad = -1
  let contentLength = -1
  let budgetStart = 0
  let budgetBytes = 0
  let timer = null
  let completedAt = 0
  const state = { socket, received: () => bodyLength }
  const schedule = () => {
    if (timer) { clearTimeout(timer); timer = null }
    if (rate < 0) { socket.pause(); return }
    if (rate === 0) { socket.resume(); return }
    const dueMs = budgetStart + (budgetBytes / rate) * 1000 - Date.now()
    if (dueMs <= 0) { socket.resume(); return }
    socket.pause()
    timer = setTimeout(() => { timer = null; socket.resume() }, dueMs)
  }
  state.setRate = (r) => {
    rate = r
    budgetStart = Date.now()
    budgetBytes = 0
    schedule()
  }
  state.done = new Promise((resolve) => {
    const finish = () => {
      if (timer) clearTimeout(timer)
      resolve({
        head: headText,
        contentLength,
        bodyLength,
        sha: hash.digest('hex'),
        firstBad,
        complete: contentLength >= 0 && bodyLength === contentLength,
        exact: firstBad < 0 && bodyLength === expected.length,
        completedAt,
        closedAt: Date.now()
      })
    }
    socket.on('close', finish)
  })
  socket.on('connect', () => {
    budgetStart = Date.now()
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
  })
  socket.on('data', (chunk) => {
    budgetBytes += chunk.length
    if (headText === null) {
      head = Buffer.concat([head, chunk])
      const at = head.indexOf('\r\n\r\n')
      if (at < 0) return
      headText = head.subarray(0, at).toString('latin1')
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(headText)
      contentLength = m ? Number(m[1]) : -1
      chunk = head.subarray(at + 4)
      head = null
    }
    if (firstBad < 0 && chunk.length > 0) {
      const want = expected.subarray(bodyLength, bodyLength + chunk.length)
      if (want.length !== chunk.length || !want.equals(chunk)) {
        for (let i = 0; i < chunk.length; i++) {
          if (bodyLength + i >= expected.length || chunk[i] !== expected[bodyLength + i]) { firstBad = bodyLength + i; break }
        }
      }
    }
    hash.update(chunk)
    bodyLength += chunk.length
    if (contentLength >= 0 && bodyLength >= contentLength && completedAt === 0) {
      completedAt = Date.now()
      if (closeAfterBody) socket.end()
    }
    schedule()
  })
  socket.on('error', () => {})
  return state
}

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A fresh directory in os.tmpdir() (0755 where a server running as nobody reads it), removed at teardown. */
function tempDir (t, mode = 0o700) {
  const os = require('node:os')
  const path = require('node:path')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-files-'))
  fs.chmodSync(dir, mode)
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Targets of a process's open fds ('pipe:[n]', 'socket:[n]', paths). */
function fdLinks (pid = process.pid) {
  const out = []
  for (const n of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { out.push(fs.readlinkSync(`/proc/${pid}/fd/${n}`)) } catch {} // closed meanwhile
  }
  return out
}

/** How many of a process's open fds are files below `dir`. */
function fdsUnder (dir, pid) {
  return fdLinks(pid).filter((l) => l.startsWith(dir + '/')).length
}

/** Fastify logger options that collect the JSON lines in `lines`. */
function logCapture () {
  const { Writable } = require('node:stream')
  const lines = []
  const stream = new Writable({ write (chunk, enc, cb) { lines.push(JSON.parse(chunk)); cb() } })
  return { lines, logger: { level: 'info', stream } }
}

Object.assign(module.exports, { spawnFixture, getJson, procFds, procRss, fetchChecked, rateReader, sleep, seeded, tagged, ownerAt, fdLinks, fdsUnder, logCapture, tempDir })

/** Resolves with `value` after `ms`, without keeping the process alive (for Promise.race). */
function after (ms, value) {
  return new Promise((resolve) => setTimeout(resolve, ms, value).unref())
}

module.exports.after = after

/**
 * A process's fd count once it held still for half a second: the server side of a finished
 * request is closed a moment after the client saw its end.
 */
async function steadyFds (pid = process.pid) {
  let last = -1
  let same = 0
  for (let i = 0; i < 100 && same < 5; i++) {
    const now = procFds(pid)
    same = now === last ? same + 1 : 0
    last = now
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return last
}

module.exports.steadyFds = steadyFds

// ---------------------------------------------------------------------------------------
// Large files and memory watched from outside (test/file-memory.test.js).

/**
 * Writes `size` bytes of AES-256-CTR keystream (no repeated block: a misplaced chunk shows)
 * to `file`, mode 0644, in 8 MiB pieces; resolves with its SHA-256. The same bytes for the
 * same `seed` in every process.
 */
async function writeSeededFile (file, size, seed = 'file') {
  const key = crypto.createHash('sha256').update(`file:${seed}`).digest()
  const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const hash = crypto.createHash('sha256')
  const zeros = Buffer.alloc(8 * MiB)
  const handle = await fs.promises.open(file, 'w', 0o644)
  try {
    for (let done = 0; done < size;) {
      const n = Math.min(zeros.length, size - done)
      const piece = cipher.update(zeros.subarray(0, n))
      hash.update(piece)
      await handle.write(piece, 0, piece.length, done)
      done += n
    }
  } finally {
    await handle.close()
  }
  await fs.promises.chmod(file, 0o644) // whatever the umask
  return hash.digest('hex')
}

/** Reads a file once from end to end (so it is in the page cache); resolves with its length. */
async function readWhole (file) {
  const handle = await fs.promises.open(file, 'r')
  const buffer = Buffer.allocUnsafe(8 * MiB)
  let total = 0
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, total)
      if (bytesRead === 0) return total
      total += bytesRead
    }
  } finally {
    await handle.close()
  }
}

/** Peak RSS (VmHWM) of a process, in bytes. */
function procHwm (pid = process.pid) {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : NaN
}

/** Resets a process's VmHWM to its current RSS (clear_refs 5); false where not allowed. */
function resetPeakRss (pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/**
 * Samples a process's RSS every `ms`; stop() ends it and returns { samples, peak, count }.
 * The timer keeps going while other threads of this process work (the clients of
 * parallelDownloads run in workers).
 */
function sampleRss (pid, ms = 50) {
  const samples = []
  const take = () => {
    try {
      samples.push({ at: Date.now(), rss: procRss(pid) })
    } catch {
      // the process is gone: stop() reports what was seen
    }
  }
  take()
  const timer = setInterval(take, ms)
  return {
    stop () {
      clearInterval(timer)
      take()
      return { samples, count: samples.length, peak: Math.max(...samples.map((s) => s.rss)) }
    }
  }
}

// A GET on a raw socket (Connection: close), the head parsed here: node:http's parser costs
// about as much CPU as the SHA-256 at these rates, and 16 clients share the cores with the
// server. Everything after the head until the server closes is the body.
const DOWNLOAD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const net = require('node:net')
const crypto = require('node:crypto')
const { port, path } = workerData
parentPort.once('message', () => {
  const started = Date.now()
  const hash = crypto.createHash('sha256')
  let head = Buffer.alloc(0)
  let status = 0
  let headers = null
  let length = 0
  let firstByte = 0
  let failed = null
  const socket = net.connect(port, '127.0.0.1')
  socket.on('connect', () => socket.write('GET ' + path + ' HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n'))
  socket.on('data', (chunk) => {
    if (headers === null) {
      head = Buffer.concat([head, chunk])
      const at = head.indexOf('\\r\\n\\r\\n')
      if (at < 0) return
      firstByte = Date.now()
      const lines = head.subarray(0, at).toString('latin1').split('\\r\\n')
      status = Number(/^HTTP\\/1\\.1 (\\d{3})/.exec(lines[0])?.[1] ?? 0)
      headers = {}
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      chunk = head.subarray(at + 4)
      head = null
    }
    hash.update(chunk)
    length += chunk.length
  })
  socket.on('error', (err) => { failed = err })
  socket.on('close', () => {
    const ended = Date.now()
    if (headers === null) parentPort.postMessage({ error: 'no response head' + (failed ? ': ' + failed.message : ''), started, ended })
    else parentPort.postMessage({ status, headers, length, sha: hash.digest('hex'), error: failed ? failed.message : undefined, started, firstByte, ended })
  })
})
parentPort.postMessage('ready')
`

/**
 * `count` clients, each in a worker thread of its own (so their SHA-256 work is spread over
 * the cores and this thread stays free to sample), each GETting `path` on a connection of its
 * own (Connection: close; the body is what follows the head until the close). All are started
 * together once every worker is ready; `onStart()` is called right before. Resolves with one
 * { status, headers, length, sha, started, firstByte, ended } per client; `error` is set when
 * the connection failed (with no head: only { error, started, ended }).
 */
async function parallelDownloads (port, path, count, { onStart } = {}) {
  const { Worker } = require('node:worker_threads')
  const workers = Array.from({ length: count }, () => new Worker(DOWNLOAD_WORKER, { eval: true, workerData: { port, path } }))
  try {
    await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
    })))
    const results = workers.map((w) => new Promise((resolve) => {
      w.once('message', resolve)
      w.once('error', (err) => resolve({ error: String(err.message) }))
      w.once('exit', (code) => resolve({ error: `worker exited with ${code}` }))
    }))
    if (onStart) onStart()
    for (const w of workers) w.postMessage('go')
    return await Promise.all(results)
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

Object.assign(module.exports, { writeSeededFile, readWhole, procHwm, resetPeakRss, sampleRss, parallelDownloads })

// ---------------------------------------------------------------------------------------
// The engine under test. The native-path tests run twice in `npm test`: on the default
// engine (io_uring here) and with FASTIFY_ZERO_COPY_ENGINE=classic (scripts/test-engines.sh),
// which every registration and every child-process fixture inherits. Where the two engines
// report different figures the tests ask these, so each assertion stays exact on each engine.

const ENGINE = process.env.FASTIFY_ZERO_COPY_ENGINE === 'classic' ? 'classic' : 'io_uring'
const CLASSIC = ENGINE === 'classic'

/**
 * The stats key a file response the engine carried counts under: `splice` when the ring took
 * part, `sendfile` on the classic engine (it sends files by sendfile throughout).
 */
const FILE_PATH = CLASSIC ? 'sendfile' : 'splice'

/**
 * The { splice, sendfile } figures (responses or bytes) expected of file bodies of which
 * `head` went by sendfile on the event loop and `rest` by the engine.
 */
function fileSplit (head, rest) {
  return CLASSIC ? { splice: 0, sendfile: head + rest } : { splice: rest, sendfile: head }
}

/**
 * The file bytes (or responses, with `key` 'responses') the native path carried: splice plus
 * sendfile. On the classic engine nothing may count as spliced: any such figure gives NaN,
 * which no comparison accepts.
 */
function nativeFileBytes (stats, key = 'bytes') {
  const { splice, sendfile } = stats[key]
  if (CLASSIC && splice !== 0) return NaN
  return splice + sendfile
}

/** capabilities.reason when the engine under test serves with its zero-copy send. */
const ENGINE_REASON = CLASSIC ? 'engine "classic" was configured' : null

/**
 * Asserts that the engine under test is the one serving: capabilities.engine, and (given
 * stats) that it carried `responses` bodies (at least one when not given) and the other none.
 */
function assertEngine (t, capabilities, stats, responses) {
  t.equal(capabilities.engine, ENGINE, `the ${ENGINE} engine serves`)
  if (stats === undefined) return
  const other = CLASSIC ? 'io_uring' : 'classic'
  if (responses === undefined) t.ok(stats.engines[ENGINE].responses > 0, `the ${ENGINE} engine carried ${stats.engines[ENGINE].responses} bodies`)
  else t.equal(stats.engines[ENGINE].responses, responses, `the ${ENGINE} engine carried ${responses} bodies`)
  t.same(stats.engines[other], { responses: 0, bytes: 0 }, `the ${other} engine carried none`)
}

Object.assign(module.exports, { ENGINE, CLASSIC, FILE_PATH, fileSplit, nativeFileBytes, ENGINE_REASON, assertEngine })
