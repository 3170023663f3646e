#!/usr/bin/env node
'use strict'
// The torture run: `npm run torture -- --duration 90 --engine io_uring --seed 7`.
//
// One bounded, seeded run of a realistic and hostile mix against a server process
// (scripts/torture/server.js: a main app, a second app closed and restarted mid-load, two
// worker threads terminated mid-transfer and restarted), on one engine. The clients
// (scripts/torture/client.js, plain sockets) ask for buffers and files of 1 KiB to 256 MiB,
// static files through extensions, index files, pre-compressed siblings and listings, with
// ranges, HEAD, conditionals and pipelining; they cut at a random byte, stall without reading,
// read slowly, write garbage after a request and reconnect. Meanwhile files are truncated,
// renamed over and deleted, a symlink inside the root flips to a file outside and back, and
// allowedPath, setHeaders and onFile throw for some requests.
//
// What must hold (each a line of the report; any failure exits 1 with the request, the seed
// and what was seen):
//   - the server process never dies;
//   - a response read to its declared end is exact: SHA-256 and byte by byte against the bytes
//     of the range asked, of one of the versions the file had (mutable files), or it is an
//     error status; never a 200 cut short unless the connection was the victim of a close, a
//     terminate or a truncation; never a response stuck short on an open connection; one
//     exception, the documented one (README, Caveats): a file truncated in place while its
//     bytes sat in the kernel's pipes and socket buffers, whose cut folio the kernel zeroes in
//     place, may arrive complete with zeros past the cut (counted; --strict-truncation makes
//     it a failure): every other byte of it must still be the file's;
//   - never a byte from outside the root or of a name allowedPath refused, never such a name
//     in a listing; a callback that throws gives an error status;
//   - after the load: descriptors back to the baseline, nothing pinned or in flight, RSS within
//     BOUNDS.rssSlack of the baseline; the event loop's delay below BOUNDS.loopDelayMs all run
//     long; /ping answered within BOUNDS.probeMs; every close() and terminate() within
//     BOUNDS.closeMs; the process exits by itself once everything is closed, while four clients
//     that asked for 3 MiB stay connected without reading (as it does with reply.send).
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')
const { Conn } = require('./torture/client')
const C = require('./torture/content')

const { KiB, MiB } = C

// ---- options and bounds ----------------------------------------------------------------------

function arg (name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback
}
const SEED = String(arg('seed', crypto.randomBytes(4).toString('hex')))
const DURATION = Number(arg('duration', 60))
const ENGINE = arg('engine', process.env.FASTIFY_ZERO_COPY_ENGINE || 'io_uring')
const LANES = Number(arg('lanes', 10))
const STALL_LANES = Number(arg('stall-lanes', 3))
const HAMMER = Number(arg('hammer', 32)) // keep-alive clients on each worker
// Parts of the mix left out, to find which one breaks an invariant (the default leaves out none):
// throws, terminate, close, mutate, stall, refused, mistake, garbage, held (the clients held
// open at the final close).
const WITHOUT = new Set(String(arg('without', '')).split(',').filter(Boolean))
// A complete response of a file truncated in place, with zeros past the cut, is a failure too
// (what a server that copies, or one that holds back the end of each file, would show).
const STRICT_TRUNCATION = process.argv.includes('--strict-truncation')
if (!(DURATION > 0) || !['io_uring', 'classic'].includes(ENGINE) || !(LANES > 0)) {
  console.error('usage: node scripts/torture.js [--seed S] [--duration SECONDS] [--engine io_uring|classic] [--lanes N] [--stall-lanes N] [--hammer N] [--max-loop-delay MS] [--strict-truncation] [--without throws,terminate,close,mutate,stall,refused,mistake,garbage,held]')
  process.exit(2)
}
const BOUNDS = {
  loopDelayMs: Number(arg('max-loop-delay', 2000)), // the server's main thread, monitorEventLoopDelay
  probeMs: 5000, // GET /ping, one every 250 ms all run long, measured from a thread of its own
  closeMs: 10000, // fastify.close(), worker.terminate()
  exitMs: 10000, // the process's own exit once all is closed
  settleMs: 15000, // after the load, for descriptors and pinned bytes to come back
  stuckMs: 30000, // no byte of a response that is owed more, on an open connection
  fdSlack: 0,
  rssSlack: 256 * MiB
}

// ---- seeded choices --------------------------------------------------------------------------

function rngFor (label) {
  let h = crypto.createHash('sha256').update(`${SEED}:${label}`).digest().readUInt32LE(0)
  return () => { // mulberry32
    h = (h + 0x6d2b79f5) >>> 0
    let t = h
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const between = (rng, lo, hi) => lo + Math.floor(rng() * (hi - lo + 1))
function weighted (rng, items) {
  let r = rng() * items.reduce((n, it) => n + it.weight, 0)
  for (const it of items) {
    r -= it.weight
    if (r < 0) return it
  }
  return items[items.length - 1]
}

// ---- the tree --------------------------------------------------------------------------------

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fzc-torture-'))
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true })) // whatever ends the run
const rootDir = path.join(dir, 'root')
const linkInside = 'inside/target.bin'
const linkOutside = '../outside/secret.bin'
// Mutable files: their current version, whether truncated, whether deleted.
const mutable = new Map(C.FILES.filter((f) => f.kind === 'mutable').map((f) => [f.rel, { version: 0, half: false, gone: false, size: f.size }]))

function buildTree () {
  for (const f of C.FILES) {
    fs.mkdirSync(path.dirname(path.join(rootDir, f.rel)), { recursive: true })
    C.writeContent(SEED, C.contentName('root', f.rel), f.size, path.join(rootDir, f.rel))
  }
  fs.mkdirSync(path.join(dir, 'outside'))
  C.writeContent(SEED, C.contentName('outside', C.OUTSIDE.rel), C.OUTSIDE.size, path.join(dir, 'outside', C.OUTSIDE.rel))
  fs.mkdirSync(path.join(dir, 'dl'))
  for (const f of C.DL) C.writeContent(SEED, C.contentName('dl', f.rel), f.size, path.join(dir, 'dl', f.rel))
  fs.symlinkSync(linkInside, path.join(rootDir, 'link.bin'))
}

// The first bytes of everything that must never be served: refused names and the outside file.
const forbidden = []
function collectForbidden () {
  for (const f of C.FILES.filter((x) => x.kind === 'refused')) {
    forbidden.push({ what: `${f.rel} (refused by allowedPath or the dotfile policy)`, head: C.bytes(SEED, C.contentName('root', f.rel), 0, Math.min(64, f.size)) })
  }
  forbidden.push({ what: `outside/${C.OUTSIDE.rel} (outside the root)`, head: C.bytes(SEED, C.contentName('outside', C.OUTSIDE.rel), 0, 64) })
}
const refusedNames = new Set(C.FILES.filter((f) => f.kind === 'refused').map((f) => f.rel).concat(['private']))

// ---- what can be asked, and what may come back -----------------------------------------------

// A target: app ('a', 'b', 'w'), path, kind, weight, size (the largest it can be), and
// contents(headers): the versions a 2xx body may be, each { name, size } of content bytes.
const targets = []
function add (t) { targets.push({ weight: 1, rangeable: true, ...t }) }
function fileContents (rel) {
  const f = C.FILES.find((x) => x.rel === rel)
  return () => [{ name: C.contentName('root', rel), size: f.size }]
}
function mutableContents (rel) {
  const full = mutable.get(rel).size
  const out = []
  for (let v = 0; v < C.VERSIONS; v++) {
    // zeroFrom: a truncation in place to full / 2 zeroes, in the cut folio, the bytes past it
    // that pipes and socket buffers still reference (README, Caveats).
    out.push({ name: C.contentName('root', rel, v), size: full, version: `${v}`, zeroFrom: full / 2 })
    out.push({ name: C.contentName('root', rel, v), size: full / 2, version: `${v} truncated` })
  }
  return () => out
}
const sizeWeight = (n) => (n <= MiB ? 6 : n <= 4 * MiB + 16 ? 4 : n <= 16 * MiB ? 2 : n <= 64 * MiB + 16 ? 0.6 : 0.15)

function buildTargets () {
  C.MAIN_BUFFERS.forEach((n, i) => add({ app: 'a', path: `/buf/${i}`, kind: 'stable', size: n, weight: sizeWeight(n), contents: () => [{ name: C.contentName('main', String(i)), size: n }] }))
  for (const f of C.FILES.filter((x) => x.kind === 'stable')) {
    if (f.rel.startsWith('s/') || f.rel.startsWith('big/')) add({ app: 'a', path: `/file/${f.rel}`, kind: 'stable', size: f.size, weight: sizeWeight(f.size) / 2, contents: fileContents(f.rel) })
    if (!f.rel.startsWith('pc/')) add({ app: 'a', path: `/static/${f.rel}`, kind: 'stable', staticFile: true, size: f.size, weight: sizeWeight(f.size) / 2, contents: fileContents(f.rel) })
  }
  add({ app: 'a', path: '/static/page', kind: 'stable', staticFile: true, size: 40 * KiB, weight: 2, contents: fileContents('page.html') })
  add({ app: 'a', path: '/static/site/', kind: 'stable', staticFile: true, size: 20 * KiB + 3, weight: 2, contents: fileContents('site/index.html') })
  add({ app: 'a', path: '/static/pc/app.js', kind: 'stable', staticFile: true, precompressed: true, rangeable: false, size: 200 * KiB + 1, weight: 3, contents: precompressedContents })
  for (const p of ['/static/admin', '/static/admin.html', '/static/docs/', '/static/docs/index.html', '/static/docs/index', '/static/private/secret.txt', '/static/list/private-note.txt', '/static/list/private-note', '/static/list/.hidden', '/static/private/']) {
    add({ app: 'a', path: p, kind: 'refused', size: 2 * MiB, weight: 0.6, rangeable: false, contents: () => [] })
  }
  add({ app: 'a', path: '/static/list', kind: 'listing', size: KiB, weight: 1, rangeable: false, contents: () => [] })
  add({ app: 'a', path: '/static/list/', kind: 'listing', size: KiB, weight: 0.5, rangeable: false, contents: () => [] })
  add({ app: 'a', path: '/static/', kind: 'listing', size: KiB, weight: 0.5, rangeable: false, contents: () => [] })
  add({ app: 'a', path: '/static/link.bin', kind: 'link', size: MiB + 13, weight: 2, contents: fileContents(linkInside) })
  for (const rel of mutable.keys()) {
    add({ app: 'a', path: `/static/${rel}`, kind: 'mutable', size: mutable.get(rel).size, weight: 2, contents: mutableContents(rel) })
    add({ app: 'a', path: `/file/${rel}`, kind: 'mutable', size: mutable.get(rel).size, weight: 1, contents: mutableContents(rel) })
  }
  add({ app: 'a', path: '/static/pct/100%25zz.txt', kind: 'throws', size: 64 * KiB, weight: 0.7, rangeable: false, contents: () => [] })
  add({ app: 'a', path: '/dl/100%25zz.txt', kind: 'throws', size: 64 * KiB, weight: 0.7, rangeable: false, contents: () => [] })
  add({ app: 'a', path: '/static/boom/onfile.bin', kind: 'throws', size: 2 * MiB, weight: 0.7, rangeable: false, contents: () => [] })
  add({ app: 'a', path: '/dl/ok.bin', kind: 'stable', size: 3 * MiB + 1, weight: 2, contents: () => [{ name: C.contentName('dl', 'ok.bin'), size: 3 * MiB + 1 }] })
  add({ app: 'a', path: '/mistake/s/4m.bin', kind: 'mistake', size: 4 * MiB + 9, weight: 1, rangeable: false, contents: fileContents('s/4m.bin') })
  add({ app: 'a', path: '/mistake/s/300k.bin', kind: 'mistake', size: 300 * KiB + 5, weight: 0.5, rangeable: false, contents: fileContents('s/300k.bin') })
  // The second app, closed and started again during the load.
  C.MAIN_BUFFERS.slice(0, 6).forEach((n, i) => add({ app: 'b', path: `/buf/${i}`, kind: 'stable', size: n, weight: 1.5, contents: () => [{ name: C.contentName('main', String(i)), size: n }] }))
  for (const rel of ['s/1m.bin', 's/4m.bin', 's/16m.bin']) add({ app: 'b', path: `/static/${rel}`, kind: 'stable', staticFile: true, size: C.FILES.find((f) => f.rel === rel).size, weight: 1, contents: fileContents(rel) })
  add({ app: 'b', path: '/static/mut/m1.bin', kind: 'mutable', size: 2 * MiB, weight: 1, contents: mutableContents('mut/m1.bin') })
  add({ app: 'b', path: '/static/link.bin', kind: 'link', size: MiB + 13, weight: 0.5, contents: fileContents(linkInside) })
  add({ app: 'b', path: '/static/admin', kind: 'refused', size: 2 * MiB, weight: 0.5, rangeable: false, contents: () => [] })
  // The workers, terminated mid-transfer and started again.
  C.WORKER_BUFFERS.forEach((n, i) => add({ app: 'w', path: `/buf/${i}`, kind: 'stable', size: n, weight: 3, contents: () => [{ name: C.contentName('worker', String(i)), size: n }] }))
  for (const rel of ['s/1m.bin', 's/4m.bin']) add({ app: 'w', path: `/file/${rel}`, kind: 'stable', size: C.FILES.find((f) => f.rel === rel).size, weight: 1, contents: fileContents(rel) })
  const leftOut = (t) => (WITHOUT.has('throws') && t.kind === 'throws') || (WITHOUT.has('refused') && t.kind === 'refused') || (WITHOUT.has('mutate') && t.kind === 'mutable') || (WITHOUT.has('mistake') && t.kind === 'mistake')
  for (let i = targets.length - 1; i >= 0; i--) if (leftOut(targets[i])) targets.splice(i, 1)
}

function precompressedContents (headers) {
  const coding = headers['content-encoding']
  const rel = coding === 'br' ? 'pc/app.js.br' : coding === 'gzip' ? 'pc/app.js.gz' : coding === undefined ? 'pc/app.js' : null
  return rel === null ? [] : fileContents(rel)()
}

// ---- the server process ----------------------------------------------------------------------

let child
let ports
let childPid
let childExit = null // { code, signal, at } once it exited
let expectExit = false
let stderrTail = ''
let nextId = 1
const waiting = new Map()
const notes = []

function startChild () {
  return new Promise((resolve, reject) => {
    child = fork(path.join(__dirname, 'torture', 'server.js'), [], {
      execArgv: ['--expose-gc'],
      env: { ...process.env, FASTIFY_ZERO_COPY_ENGINE: ENGINE, TORTURE: JSON.stringify({ seed: SEED, dir }) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc']
    })
    const keep = (chunk) => { stderrTail = (stderrTail + chunk.toString()).slice(-8000) }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.on('error', (err) => notes.push(`the channel to the server: ${err.code || err.message}`)) // EPIPE once it died: its exit says why
    child.on('message', (msg) => {
      if (msg.type === 'ready') resolve(msg)
      else if (msg.type === 'failed') reject(new Error(`the server did not start: ${msg.error}`))
      else if (msg.type === 'note') notes.push(msg.text)
      else if (waiting.has(msg.id)) {
        waiting.get(msg.id)(msg)
        waiting.delete(msg.id)
      }
    })
    child.on('exit', (code, signal) => {
      childExit = { code, signal, at: Date.now() }
      if (!expectExit) stopping = true
      if (!expectExit) violation('process', `the server process died: exit code ${code}, signal ${signal}; its last output:\n${stderrTail.trim().split('\n').slice(-25).join('\n')}`)
      for (const [, resolve] of waiting) resolve({ ok: false, error: 'the server process exited' })
      waiting.clear()
      reject(new Error(`the server exited (code ${code}, signal ${signal}) before it was ready: ${stderrTail}`))
    })
  })
}

function rpc (cmd, fields = {}, ms = 30000) {
  if (childExit !== null || !child.connected) return Promise.resolve({ ok: false, error: 'the server process is gone' })
  const id = nextId++
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiting.delete(id)
      resolve({ ok: false, error: `no answer to ${cmd} within ${ms} ms` })
    }, ms)
    waiting.set(id, (msg) => { clearTimeout(timer); resolve(msg) })
    child.send({ cmd, id, ...fields }, (err) => { if (err && waiting.has(id)) { waiting.delete(id); clearTimeout(timer); resolve({ ok: false, error: `${cmd} not sent: ${err.code || err.message}` }) } })
  })
}

// ---- figures and violations ------------------------------------------------------------------

const figures = {
  requests: 0,
  exact: 0,
  bytesChecked: 0,
  statuses: {},
  aborts: 0,
  stalls: 0,
  slowReads: 0,
  pipelined: 0,
  garbage: 0,
  reconnects: 0,
  retries: 0,
  cutByEvents: 0,
  cutByMutation: 0,
  zeroedByTruncation: 0,
  refusedOrReset: 0,
  terminates: 0,
  closes: 0,
  mutations: { truncate: 0, rename: 0, delete: 0, restore: 0, flip: 0 },
  throwRequests: 0,
  maxProbeMs: 0,
  maxTerminateMs: 0,
  maxCloseMs: 0,
  peakFds: 0,
  peakPinned: 0,
  peakRss: 0
}
const violations = []
const violationKinds = {}
let afterDeath = 0
const started = Date.now()
const since = () => ((Date.now() - started) / 1000).toFixed(1)

function violation (kind, message, req) {
  // Once the process died, what its clients saw next is its consequence, not news.
  if (childExit !== null && !expectExit && kind !== 'process') { afterDeath++; return }
  violationKinds[kind] = (violationKinds[kind] || 0) + 1
  if (violations.length >= 10000) return // counted, not kept
  const where = req ? ` [${req.method} ${req.path} on ${req.app}:${req.port}, lane ${req.lane}, ${req.behavior}${Object.keys(req.headers).length ? `, ${JSON.stringify(req.headers)}` : ''}${req.pipeline ? `; the pipeline: ${req.pipeline()}` : ''}]` : ''
  violations.push({ t: Date.now(), kind, text: `${since()} s  ${kind}: ${message}${where}` })
  if (process.env.TORTURE_VERBOSE) console.log(`VIOLATION ${violations[violations.length - 1].text}`)
}

// ---- server events during the load -----------------------------------------------------------

const events = [] // { app, t0, t1 }: a window in which that app's connections may be cut
function addEvent (app) {
  // No request outlives BOUNDS.stuckMs without progress, nor a stall its hold: older windows go.
  while (events.length > 0 && events[0].t1 !== null && events[0].t1 < Date.now() - 120000) events.shift()
  const ev = { app, t0: Date.now(), t1: null }
  events.push(ev)
  return ev
}
function disturbed (req) {
  return events.some((e) => e.app === req.app && e.t0 <= req.t1 + 200 && (e.t1 === null ? Infinity : e.t1 + 1000) >= req.t0)
}

async function terminateWorker (rng) {
  const k = between(rng, 0, 1)
  const ev = addEvent(`w${k}`)
  const res = await rpc('terminate', { k, bound: BOUNDS.closeMs }, BOUNDS.closeMs + 20000)
  ev.t1 = Date.now()
  if (!res.ok) return violation('terminate', res.error)
  figures.terminates++
  figures.maxTerminateMs = Math.max(figures.maxTerminateMs, res.ms)
  ports = res.ports
}

async function restartB () {
  const ev = addEvent('b')
  const res = await rpc('restartB', { bound: BOUNDS.closeMs }, BOUNDS.closeMs + 20000)
  ev.t1 = Date.now()
  if (!res.ok) return violation('close', res.error)
  figures.closes++
  figures.maxCloseMs = Math.max(figures.maxCloseMs, res.ms)
  ports = res.ports
}

function mutate (rng) {
  if (rng() < 0.2) { // flip the symlink (atomically: a new link renamed over it)
    const target = fs.readlinkSync(path.join(rootDir, 'link.bin')) === linkInside ? linkOutside : linkInside
    const tmp = path.join(rootDir, `.link-${crypto.randomBytes(4).toString('hex')}`)
    fs.symlinkSync(target, tmp)
    fs.renameSync(tmp, path.join(rootDir, 'link.bin'))
    figures.mutations.flip++
    return
  }
  const rels = [...mutable.keys()]
  const rel = rels[between(rng, 0, rels.length - 1)]
  const m = mutable.get(rel)
  const file = path.join(rootDir, rel)
  const r = rng()
  if (m.gone || (r < 0.45)) { // a new version renamed over it (or back after a delete)
    m.version = (m.version + 1) % C.VERSIONS
    C.writeContent(SEED, C.contentName('root', rel, m.version), m.size, file)
    m.half = false
    figures.mutations[m.gone ? 'restore' : 'rename']++
    m.gone = false
  } else if (r < 0.8 && !m.half) { // truncated in place, to a page boundary
    fs.truncateSync(file, m.size / 2)
    m.half = true
    figures.mutations.truncate++
  } else {
    fs.unlinkSync(file)
    m.gone = true
    figures.mutations.delete++
  }
}

// ---- requests --------------------------------------------------------------------------------

function portOf (app) {
  if (app === 'a') return ports.a
  if (app === 'b') return ports.b
  return ports.w[Number(app.slice(1))]
}

/** A request for target `t` with seeded method, range, conditional, codings. */
function makeRequest (rng, t, lane, behavior, validators) {
  const app = t.app === 'w' ? `w${between(rng, 0, 1)}` : t.app
  const req = { app, port: portOf(app), path: t.path, target: t, method: 'GET', headers: {}, lane, behavior, range: null, cond: null, throws: null }
  if (behavior === 'normal' || behavior === 'pipeline' || behavior === 'reconnect') {
    if (rng() < 0.08) req.method = 'HEAD'
    const v = validators.get(`${app}${t.path}`)
    if (t.rangeable && t.kind !== 'refused' && rng() < 0.2) {
      const size = t.size
      const form = rng()
      if (form < 0.5) {
        const a = between(rng, 0, size - 1)
        const b = Math.min(size - 1, a + between(rng, 0, Math.min(size - 1 - a, 8 * MiB)))
        req.range = { a, b }
        req.headers.range = `bytes=${a}-${b}`
      } else if (form < 0.65) {
        const a = between(rng, Math.max(0, size - 8 * MiB), size - 1)
        req.range = { a, b: Infinity }
        req.headers.range = `bytes=${a}-`
      } else if (form < 0.8) {
        const n = between(rng, 1, Math.min(size, 8 * MiB))
        req.range = { suffix: n }
        req.headers.range = `bytes=-${n}`
      } else if (form < 0.9) {
        req.range = { multi: true }
        req.headers.range = `bytes=0-9,${Math.floor(size / 2)}-${Math.floor(size / 2) + 99}`
      } else {
        req.range = { past: true }
        req.headers.range = `bytes=${size + 10}-`
      }
    }
    if (v && rng() < 0.25) {
      const c = rng()
      if (c < 0.4 && v.etag) { req.cond = 'inm'; req.headers['if-none-match'] = v.etag } else if (c < 0.7 && v.lastModified) { req.cond = 'ims'; req.headers['if-modified-since'] = v.lastModified } else if (req.range && (v.etag || v.lastModified)) { req.cond = 'ifrange'; req.headers['if-range'] = rng() < 0.5 && v.lastModified ? v.lastModified : (v.etag || v.lastModified) }
    }
    if (t.staticFile && t.app === 'a' && !req.range && !req.cond && req.method === 'GET' && rng() < 0.08 && !WITHOUT.has('throws')) {
      req.throws = rng() < 0.5 ? 'allowedPath' : 'setHeaders'
      req.headers['x-torture-throw'] = req.throws
    }
  }
  if (t.precompressed) req.headers['accept-encoding'] = ['br', 'gzip', 'br;q=0, gzip', 'identity', '*', 'gzip, deflate, br'][between(rng, 0, 5)]
  return req
}

/** What a response is checked against, chosen when its head arrives. */
function installChecker (e) {
  const req = e.req
  e.firstBytes = Buffer.alloc(0)
  e.small = []
  e.smallLen = 0
  const keep = (chunk) => {
    if (e.firstBytes.length < 64) e.firstBytes = Buffer.concat([e.firstBytes, chunk.subarray(0, 64 - e.firstBytes.length)])
    if (e.smallLen < 64 * KiB) { e.small.push(chunk.subarray(0, 64 * KiB - e.smallLen)); e.smallLen += Math.min(chunk.length, 64 * KiB - e.smallLen) }
  }
  e.candidates = null
  if (e.status !== 200 && e.status !== 206) { e.sink = keep; return }
  let offset = 0
  let total = req.method === 'HEAD' ? Number(e.headers['content-length']) : e.declared
  if (e.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(e.headers['content-range'] || '')
    if (m === null) { e.badRange = `206 with Content-Range ${JSON.stringify(e.headers['content-range'])}`; e.sink = keep; return }
    offset = Number(m[1])
    total = Number(m[3])
    e.rangeSeen = { a: offset, b: Number(m[2]), total }
  }
  const all = req.target.contents(e.headers)
  const fitting = all.filter((c) => c.size === total)
  e.candidateSizes = [...new Set(all.map((c) => c.size))]
  e.candidates = fitting.map((c) => ({ c, ks: new C.Keystream(SEED, c.name, offset), firstBad: -1 }))
  e.live = e.candidates.slice()
  e.offset = offset
  e.hash = crypto.createHash('sha256')
  e.expectedHash = e.live.length === 1 ? crypto.createHash('sha256') : null
  e.sink = (chunk) => {
    keep(chunk)
    e.hash.update(chunk)
    const at = e.got - chunk.length
    for (let i = e.live.length - 1; i >= 0; i--) {
      const cand = e.live[i]
      const want = cand.ks.next(chunk.length)
      if (e.expectedHash) e.expectedHash.update(want)
      if (!want.equals(chunk)) {
        let k = 0
        while (k < chunk.length && want[k] === chunk[k]) k++
        if (cand.c.zeroFrom !== undefined) { // zeros past the cut, and nothing else, are the caveat
          let z = k
          let zeros = 0
          for (; z < chunk.length; z++) {
            if (want[z] === chunk[z]) continue
            if (chunk[z] !== 0 || offset + at + z < cand.c.zeroFrom) break
            zeros++
          }
          if (z === chunk.length) {
            cand.zeroed = (cand.zeroed || 0) + zeros
            e.expectedHash = null
            continue
          }
          k = z
        }
        cand.firstBad = at + k
        e.live.splice(i, 1)
        // What came instead, where the last version that still matched stopped matching.
        if (e.live.length === 0) e.badBytes = Buffer.from(chunk.subarray(k, k + 48))
        e.expectedHash = null
      }
    }
  }
}

/** Where the bytes a client got instead come from, if they are the bytes of anything served here. */
function locate (bad) {
  if (bad.length < 16) return 'too few bytes to say whose they are'
  const probe = bad.subarray(0, 16)
  const all = []
  for (const f of C.FILES) {
    if (f.size > 32 * MiB) continue
    const versions = f.kind === 'mutable' ? C.VERSIONS : 1
    for (let v = 0; v < versions; v++) all.push({ what: `${f.rel}${versions > 1 ? ` version ${v}` : ''}`, name: C.contentName('root', f.rel, v), size: f.size })
  }
  C.MAIN_BUFFERS.forEach((n, i) => { if (n <= 16 * MiB) all.push({ what: `main buffer ${i}`, name: C.contentName('main', String(i)), size: n }) })
  C.WORKER_BUFFERS.forEach((n, i) => all.push({ what: `worker buffer ${i}`, name: C.contentName('worker', String(i)), size: n }))
  all.push({ what: `outside/${C.OUTSIDE.rel}`, name: C.contentName('outside', C.OUTSIDE.rel), size: C.OUTSIDE.size })
  for (const c of all) {
    const at = C.bytes(SEED, c.name, 0, c.size).indexOf(probe)
    if (at >= 0) return `those are the bytes of ${c.what} at offset ${at}`
  }
  return 'they are the bytes of nothing this server serves (below 32 MiB)'
}

function forbiddenIn (first) {
  for (const f of forbidden) {
    const n = Math.min(first.length, f.head.length)
    if (n >= 16 && first.subarray(0, n).equals(f.head.subarray(0, n))) return f.what
  }
  return null
}

/** The verdict on one exchange. Returns nothing; counts or records a violation. */
function judge (req, out) {
  const t = req.target
  const e = out.entry
  figures.requests++
  if (out.protocolError) return violation('protocol', out.protocolError, req)
  if (out.stuck) return // recorded by the watchdog
  if (out.noResponse) {
    if (req.behavior === 'stall' || req.behavior === 'garbage' || disturbed(req)) { figures.refusedOrReset++; return }
    return violation('no-response', `the connection ended with no response (${out.error || 'closed'})`, req)
  }
  const status = out.status
  figures.statuses[status] = (figures.statuses[status] || 0) + 1
  // Never a refused name's or the outside file's bytes, whatever the URL and the status.
  if (status >= 200 && status < 300) {
    const leak = e.firstBytes && forbiddenIn(e.firstBytes)
    if (leak) return violation('leak', `${status} with the bytes of ${leak}`, req)
    const served = out.headers['x-torture-path'] && decodeURIComponent(out.headers['x-torture-path'])
    if (served && [...refusedNames].some((r) => served === r || served.startsWith(r + '/'))) return violation('leak', `${status} served ${served}, which allowedPath refuses`, req)
  }
  const bodyText = () => Buffer.concat(e.small || []).toString('utf8').slice(0, 300)
  const cutAllowed = disturbed(req) || req.behavior === 'garbage' || t.kind === 'mutable'
  if (req.throws || t.kind === 'throws') {
    if (status >= 200 && status < 300) return violation('callback-throw', `${status} although ${req.throws || 'a callback'} threw for this request`, req)
    return
  }
  const json = status === 200 && /json/.test(out.headers['content-type'] || '') && req.method === 'GET'
  if (json && (t.kind === 'listing' || t.kind === 'refused') && out.complete) { // a listing: no refused name in it
    let list
    try { list = JSON.parse(Buffer.concat(e.small).toString('utf8')) } catch { return violation('listing', `not JSON: ${bodyText()}`, req) }
    const names = [...(list.dirs || []), ...(list.files || [])].map((x) => (typeof x === 'string' ? x : x.name))
    const rel = req.path.replace(/^\/static\/?/, '')
    const dirOf = rel === '' || rel.endsWith('/') ? rel : rel + '/'
    const bad = names.filter((n) => refusedNames.has(dirOf + n) || n.startsWith('.'))
    if (bad.length) return violation('leak', `the listing of /${dirOf} names ${bad.join(', ')}, which allowedPath or the dotfile policy refuses`, req)
    return
  }
  if (t.kind === 'refused') return // any other answer that leaks nothing
  if (t.kind === 'listing') {
    if (status === 503 && disturbed(req)) return
    if (status !== 200) return violation('status', `listing answered ${status}: ${bodyText()}`, req)
    if (req.method !== 'HEAD' && out.complete && !json) return violation('listing', `not a JSON listing: ${out.headers['content-type']} ${bodyText()}`, req)
    return
  }
  if (t.kind === 'mistake' && status === 200 && /json/.test(out.headers['content-type'] || '')) {
    if (out.complete && bodyText() === '{"ok":true}') return
  }
  // Statuses a file or buffer may answer.
  const allowed = new Set([200])
  if (req.range) { allowed.add(206); allowed.add(416) }
  if (req.cond === 'inm' || req.cond === 'ims') allowed.add(304)
  if (t.kind === 'mutable' || t.kind === 'link') { allowed.add(404); allowed.add(403); allowed.add(500) }
  if (disturbed(req)) allowed.add(503)
  if (!allowed.has(status)) return violation('status', `${status} where ${[...allowed].join('/')} was expected: ${bodyText()}`, req)
  if (status === 416 && !req.range.past && t.kind !== 'mutable') return violation('status', `416 for a satisfiable range: ${bodyText()}`, req)
  if (status !== 200 && status !== 206) return
  if (e.badRange) return violation('range', e.badRange, req)
  if (status === 206 && req.range && !req.range.multi) {
    const total = e.rangeSeen.total
    const want = req.range.suffix ? { a: Math.max(0, total - req.range.suffix), b: total - 1 } : { a: req.range.a, b: Math.min(req.range.b, total - 1) }
    if (want.a !== e.rangeSeen.a || want.b !== e.rangeSeen.b) return violation('range', `206 with bytes ${e.rangeSeen.a}-${e.rangeSeen.b}/${total} for ${req.headers.range}`, req)
    if (req.method !== 'HEAD' && e.declared !== want.b - want.a + 1) return violation('range', `206 declares ${e.declared} bytes for ${want.a}-${want.b}`, req)
  }
  if (e.candidates.length === 0) {
    return violation('length', `${status} declares ${status === 206 ? `a total of ${e.rangeSeen.total}` : `${e.headers['content-length']}`} bytes; ${req.path} has ${e.candidateSizes.join(' or ')}`, req)
  }
  if (req.method === 'HEAD') return
  if (status === 200 && !req.cond) {
    const v = {}
    if (out.headers.etag) v.etag = out.headers.etag
    if (out.headers['last-modified']) v.lastModified = out.headers['last-modified']
    req.validators.set(`${req.app}${req.path}`, v)
  }
  const wrong = e.live.length === 0 && e.got > 0
  if (wrong) {
    const versions = e.candidates.map((c) => `${c.c.version || 'the content'}: byte ${c.firstBad}`).join(', ')
    const seen = (violationKinds['wrong-bytes'] || 0) >= 6 ? '' : ` (${locate(e.badBytes)})`
    return violation('wrong-bytes', `${status}, ${e.got} of ${e.declared} bytes read, differs from ${versions} (from offset ${e.offset})${out.complete ? ', a complete response' : ''}; it read ${e.badBytes.every((x) => x === 0) ? 'zeros' : `${JSON.stringify(e.badBytes.toString('latin1'))}${seen}`} there`, req)
  }
  if (out.complete && e.live.length > 0 && e.live.every((c) => c.zeroed > 0)) {
    const c = e.live[0]
    const what = `${status} complete with ${c.zeroed} zero bytes past the cut at ${c.c.zeroFrom} (${req.path} truncated in place during the response), every other byte the file's`
    if (STRICT_TRUNCATION) return violation('wrong-bytes', what, req)
    figures.zeroedByTruncation++
    figures.bytesChecked += e.got
    return
  }
  if (out.complete) {
    if (e.expectedHash) {
      const got = e.hash.digest('hex')
      const want = e.expectedHash.digest('hex')
      if (got !== want) return violation('wrong-bytes', `${status} complete, SHA-256 ${got} where ${want} was expected`, req)
    } else if (e.live.length > 0) {
      const c = e.live[0].c // several versions had these bytes until the end: hash the one that matched
      const want = crypto.createHash('sha256').update(C.bytes(SEED, c.name, e.offset, e.got)).digest('hex')
      const got = e.hash.digest('hex')
      if (got !== want) return violation('wrong-bytes', `${status} complete, SHA-256 ${got} where ${want} was expected`, req)
    }
    figures.exact++
    figures.bytesChecked += e.got
    return
  }
  figures.bytesChecked += e.got // a true prefix
  if (out.aborted) return
  if (out.endedByClose) return violation('protocol', `${status} without a Content-Length`, req)
  if (out.cut) {
    if (!cutAllowed) return violation('cut', `a ${status} cut short: ${e.got} of ${e.declared} bytes, then the connection ended (${out.error || 'closed by the server'})`, req)
    if (disturbed(req)) figures.cutByEvents++
    else if (t.kind === 'mutable') figures.cutByMutation++
  }
}

// ---- lanes -----------------------------------------------------------------------------------

let stopping = false
const liveConns = new Set()
function open (port) {
  const c = new Conn(port)
  liveConns.add(c)
  c.socket.once('close', () => liveConns.delete(c))
  return c
}

const BEHAVIORS = [
  { name: 'normal', weight: 55 },
  { name: 'reconnect', weight: 7 },
  { name: 'pipeline', weight: 8 },
  { name: 'abort', weight: 12 },
  { name: 'stall', weight: 4 },
  { name: 'slow', weight: 7 },
  { name: 'garbage', weight: 5 }
]
const GARBAGE = [
  Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'),
  Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'),
  Buffer.from('\r\n\r\n\0\0\0NOT HTTP AT ALL\r\n\r\n'),
  Buffer.from('POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')
]

function pickTarget (rng, behavior) {
  const fits = {
    abort: (t) => t.size >= 64 * KiB && t.kind !== 'listing',
    stall: (t) => t.size >= 4 * MiB && t.kind !== 'refused',
    slow: (t) => t.size >= 64 * KiB && t.size <= 4 * MiB + 16,
    pipeline: (t) => t.size <= 4 * MiB + 16,
    garbage: (t) => t.size >= 64 * KiB && t.size <= 16 * MiB
  }[behavior] || (() => true)
  return weighted(rng, targets.filter(fits))
}

async function exchange (conn, req, hooks) {
  req.t0 = Date.now()
  req.port = conn.port
  const entry = conn.send(req, { ...hooks, onHead: (e) => { installChecker(e); if (hooks.onHead) hooks.onHead(e) } })
  const out = await entry.done
  req.t1 = Date.now()
  return out
}

async function lane (id) {
  const rng = rngFor(`lane:${id}`)
  const keep = {} // app -> a keep-alive connection
  const validators = new Map()
  const connFor = (app) => {
    if (!keep[app] || keep[app].closed || keep[app].port !== portOf(app)) {
      if (keep[app]) keep[app].destroy()
      keep[app] = open(portOf(app))
    }
    return keep[app]
  }
  while (!stopping) {
    const behavior = weighted(rng, BEHAVIORS.filter((b) => !WITHOUT.has(b.name))).name
    const t = pickTarget(rng, behavior)
    const req = makeRequest(rng, t, id, behavior, validators)
    req.validators = validators
    if (req.port === null || req.port === undefined) { await sleep(50); continue } // restarting
    if (behavior === 'normal') {
      const reused = keep[req.app] && !keep[req.app].closed && keep[req.app].used > 0
      let out = await exchange(connFor(req.app), req, {})
      if (out.noResponse && reused && !out.stuck) { // the keep-alive connection was closed under us: retry once, as clients do
        figures.retries++
        keep[req.app] = null
        out = await exchange(connFor(req.app), req, {})
      }
      judge(req, out)
    } else if (behavior === 'reconnect') {
      figures.reconnects++
      req.headers.connection = 'close'
      const c = open(req.port)
      judge(req, await exchange(c, req, {}))
      c.destroy()
    } else if (behavior === 'pipeline') {
      const c = open(req.port)
      const reqs = [req]
      for (let n = between(rng, 1, 4); n > 0; n--) {
        const t2 = weighted(rng, targets.filter((x) => x.app === t.app && x.size <= 4 * MiB + 16))
        const r2 = makeRequest(rng, t2, id, 'pipeline', validators)
        r2.app = req.app
        r2.port = req.port
        r2.validators = validators
        reqs.push(r2)
      }
      figures.pipelined += reqs.length
      const outs = []
      const summary = () => reqs.map((r, i) => `${r.method} ${r.path}${r.headers.range ? ` (${r.headers.range})` : ''}: ${outs[i] ? `${outs[i].status || 'none'} ${outs[i].got}/${outs[i].declared}` : '?'}`).join(', ')
      for (const r of reqs) r.pipeline = summary
      outs.push(...await Promise.all(reqs.map((r) => exchange(c, r, {}))))
      // After a response that did not complete, the ones queued behind it on that connection
      // are lost with it: the first is judged, the rest are its consequence.
      const broken = outs.findIndex((o) => !o.complete)
      reqs.forEach((r, i) => { if (broken < 0 || i <= broken) judge(r, outs[i]); else figures.refusedOrReset++ })
      c.destroy()
    } else if (behavior === 'abort') {
      const c = open(req.port)
      const reset = rng() < 0.5
      const frac = rng()
      const out = await exchange(c, req, {
        onBody: (e) => {
          if (e.declared > 0 && e.got >= Math.max(1, Math.floor(frac * e.declared)) && e.remaining > 0) {
            e.aborted = true
            figures.aborts++
            c.destroy(reset)
          }
        }
      })
      judge(req, out)
    } else if (behavior === 'stall') {
      await stallOne(rng, req, between(rng, 1000, 6000))
    } else if (behavior === 'slow') {
      figures.slowReads++
      const c = open(req.port)
      const rate = between(rng, 1, 4) * MiB // bytes a second
      const out = await exchange(c, req, {
        onBody: (e, chunk) => {
          e.paused = true
          c.socket.pause()
          setTimeout(() => { e.paused = false; e.lastActivity = Date.now(); c.socket.resume() }, Math.ceil(chunk.length / rate * 1000))
        }
      })
      judge(req, out)
      c.destroy()
    } else if (behavior === 'garbage') {
      figures.garbage++
      const c = open(req.port)
      const junk = GARBAGE[between(rng, 0, GARBAGE.length - 1)]
      const out = await exchange(c, req, { onHead: () => { c.socket.write(junk) } })
      judge(req, out)
      c.destroy()
    }
  }
  for (const c of Object.values(keep)) if (c) c.destroy()
}

/** A client that asks, reads the head or nothing, and stops reading for `ms`. */
async function stallOne (rng, req, ms) {
  figures.stalls++
  const c = open(req.port)
  const early = rng() < 0.5
  const p = exchange(c, req, {
    onHead: (e) => { if (!early) { e.paused = true; c.socket.pause() } }
  })
  if (early) { c.pending[0].paused = true; c.socket.pause() }
  const timer = sleep(Math.min(ms, Math.max(0, deadline - Date.now())))
  await Promise.race([timer, p])
  c.destroy(rng() < 0.5)
  const out = await p
  out.aborted = out.aborted || !out.complete
  if (out.noResponse) return // it never read a byte: nothing to check
  figures.requests++
  if (out.status === 200 && out.entry.live && out.entry.live.length === 0 && out.entry.got > 0) violation('wrong-bytes', `a stalled client's prefix differs at ${Math.max(...out.entry.candidates.map((x) => x.firstBad))}`, req)
  else if (out.entry.got > 0) figures.bytesChecked += out.entry.got
}

/** Clients that only stall: a few connections at once, each asking for a large body. */
async function stallLane (id) {
  const rng = rngFor(`stall:${id}`)
  const validators = new Map()
  while (!stopping) {
    const n = between(rng, 2, 5)
    const long = rng() < 0.15 // past the main app's connectionTimeout (15 s): Node's own timeout ends it
    const hold = long ? 20000 : between(rng, 1000, 8000)
    const all = []
    for (let i = 0; i < n; i++) {
      const t = weighted(rng, targets.filter((x) => x.app !== 'w' && x.size >= 16 * MiB))
      const req = makeRequest(rng, t, `s${id}`, 'stall', validators)
      if (req.port == null) continue
      all.push(stallOne(rng, req, hold))
    }
    await Promise.all(all)
    await sleep(between(rng, 100, 1000))
  }
}

/**
 * Keep-alive clients that keep one worker busy with 64 KiB and 1 MiB buffers, so that a
 * terminate lands while its JavaScript and its transfers are under way.
 */
async function hammerLane (k, id) {
  const rng = rngFor(`hammer:${k}:${id}`)
  const app = `w${k}`
  const small = targets.filter((t) => t.app === 'w' && t.path.startsWith('/buf/') && t.size >= 64 * KiB && t.size <= 2 * MiB)
  let c = null
  while (!stopping) {
    const port = portOf(app)
    if (port == null) { await sleep(20); continue }
    if (c === null || c.closed || c.port !== port) { if (c) c.destroy(); c = open(port) }
    const t = small[between(rng, 0, small.length - 1)]
    const req = { app, port, path: t.path, target: t, method: 'GET', headers: {}, lane: `h${k}.${id}`, behavior: 'hammer', validators: new Map() }
    const reused = c.used > 0
    const out = await exchange(c, req, {})
    if (out.noResponse && reused && !disturbed(req)) { figures.retries++; c = null; continue }
    judge(req, out)
  }
  if (c) c.destroy()
}

// /ping on the main app every 250 ms: a small route answers meanwhile. From a thread of its own,
// so that the time measured is the server's and not this process's hashing.
const PROBE = `
const http = require('node:http')
const { parentPort, workerData } = require('node:worker_threads')
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
let stop = false
parentPort.on('message', () => { stop = true })
function ping () {
  return new Promise((resolve) => {
    const t0 = Date.now()
    const req = http.get({ host: '127.0.0.1', port: workerData.port, path: '/ping', agent }, (res) => {
      res.resume()
      res.on('end', () => resolve({ ms: Date.now() - t0, status: res.statusCode }))
      res.on('error', (err) => resolve({ ms: Date.now() - t0, error: err.code || err.message }))
    })
    req.on('error', (err) => resolve({ ms: Date.now() - t0, error: err.code || err.message }))
  })
}
;(async () => {
  while (!stop) {
    let r = await ping()
    if (r.error === 'ECONNRESET') r = await ping() // a keep-alive connection closed under it
    parentPort.postMessage(r)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  agent.destroy()
  parentPort.postMessage('done')
})()
`
function probeLane () {
  const { Worker } = require('node:worker_threads')
  const w = new Worker(PROBE, { eval: true, workerData: { port: ports.a } })
  return new Promise((resolve) => {
    const stopper = setInterval(() => { if (stopping) { clearInterval(stopper); w.postMessage('stop') } }, 100)
    w.on('message', (r) => {
      if (r === 'done') { w.terminate().then(resolve); return }
      figures.maxProbeMs = Math.max(figures.maxProbeMs, r.ms)
      if (r.status !== 200) violation('probe', `/ping answered ${r.status || r.error} after ${r.ms} ms`)
      else if (r.ms > BOUNDS.probeMs) violation('probe', `/ping took ${r.ms} ms (bound ${BOUNDS.probeMs} ms)`)
    })
    w.on('error', (err) => { violation('probe', `the probe thread failed: ${err.message}`); clearInterval(stopper); resolve() })
  })
}

/** A response owed more bytes, on an open connection, with no byte for stuckMs: stuck. */
function watchdog () {
  const now = Date.now()
  for (const c of liveConns) {
    const e = c.pending[0]
    if (!e || e.paused || c.closed) continue
    if (now - e.lastActivity > BOUNDS.stuckMs) {
      e.stuck = true
      violation('stuck', e.headers === null
        ? `no response head for ${BOUNDS.stuckMs} ms on an open connection`
        : `${e.status} stuck at ${e.got} of ${e.declared} bytes for ${BOUNDS.stuckMs} ms on an open connection (a short response on a connection left open)`, e.req)
      c.destroy()
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
let deadline = 0

// ---- the run ---------------------------------------------------------------------------------

async function sample () {
  const m = await rpc('measure', { gc: false }, 10000)
  if (!m.ok) return null
  figures.peakFds = Math.max(figures.peakFds, m.fds)
  figures.peakPinned = Math.max(figures.peakPinned, m.pinned)
  figures.peakRss = Math.max(figures.peakRss, m.rss)
  return m
}

async function main () {
  const t0 = Date.now()
  console.log(`torture: seed ${SEED}, ${DURATION} s, engine ${ENGINE}, ${LANES} lanes + ${STALL_LANES} stalling + ${HAMMER} on each worker${WITHOUT.size ? `, without ${[...WITHOUT].join(', ')}` : ''}, tree in ${dir}`)
  buildTree()
  collectForbidden()
  buildTargets()
  const ready = await startChild()
  ports = ready.ports
  childPid = ready.pid
  const caps = ready.capabilities
  console.log(`server pid ${childPid}: engine ${caps.engine}, mode ${caps.mode}, beneath ${caps.beneath}${caps.reason ? `, ${caps.reason}` : ''} (tree and server ready in ${((Date.now() - t0) / 1000).toFixed(1)} s)`)
  if (caps.engine !== ENGINE) violation('engine', `the server runs on ${caps.engine}, not ${ENGINE}: ${caps.reason}`)

  // Warm-up: every target once on each app, so that rings, roots and caches exist before the baseline.
  const warm = new Map()
  for (const t of targets) {
    if (t.size > 16 * MiB) continue
    for (const app of t.app === 'w' ? ['w0', 'w1'] : [t.app]) {
      if (childExit !== null) break
      const req = { app, port: portOf(app), path: t.path, target: t, method: 'GET', headers: t.precompressed ? { 'accept-encoding': 'br' } : {}, lane: 'warm', behavior: 'warm-up', validators: warm }
      const c = open(req.port)
      judge(req, await exchange(c, req, {}))
      c.destroy()
    }
  }
  await sleep(500)
  await rpc('measure', { gc: true })
  const base = await rpc('measure', { gc: true })
  if (!base.ok) base.fds = base.rss = base.pinned = base.sends = NaN
  await rpc('resetDelay')
  console.log(`baseline: ${base.fds} fds, ${mib(base.rss)} RSS, ${base.pinned} bytes pinned, ${base.sends} sends in flight`)

  // The load.
  deadline = Date.now() + DURATION * 1000
  const evRng = rngFor('events')
  const watch = setInterval(watchdog, 1000)
  const sampler = setInterval(sample, 1000)
  const progress = setInterval(() => console.log(`${since()} s: ${figures.requests} requests, ${figures.exact} exact, ${mib(figures.bytesChecked)} checked, ${figures.aborts} aborts, ${figures.stalls} stalls, ${figures.terminates} terminates, ${figures.closes} closes, ${violations.length ? `${Object.values(violationKinds).reduce((a, b) => a + b, 0)} VIOLATIONS` : 'no violation'}`), 10000)
  const loops = [probeLane()]
  for (let i = 0; i < LANES; i++) loops.push(lane(i))
  for (let k = 0; k < 2; k++) for (let i = 0; i < HAMMER; i++) loops.push(hammerLane(k, i))
  for (let i = 0; i < (WITHOUT.has('stall') ? 0 : STALL_LANES); i++) loops.push(stallLane(i))
  const eventLoop = (async () => {
    let nextTerminate = Date.now() + between(evRng, 1000, 3000)
    let nextClose = Date.now() + between(evRng, 3000, 6000)
    while (Date.now() < deadline && childExit === null) {
      if (!WITHOUT.has('mutate')) mutate(evRng)
      // A worker is terminated 0.3 to 1.5 s after the last one started: busy, still warming up.
      if (Date.now() >= nextTerminate && !WITHOUT.has('terminate')) { await terminateWorker(evRng); nextTerminate = Date.now() + between(evRng, 300, 1500) }
      if (Date.now() >= nextClose && !WITHOUT.has('close')) { await restartB(); nextClose = Date.now() + between(evRng, 4000, 8000) }
      await sleep(between(evRng, 100, 500))
    }
  })()
  while (Date.now() < deadline && childExit === null) await sleep(200)
  stopping = true
  await eventLoop
  await Promise.all(loops)
  clearInterval(progress)
  clearInterval(sampler)
  for (const c of liveConns) c.destroy()
  clearInterval(watch)
  const loadSeconds = (Date.now() - deadline + DURATION * 1000) / 1000

  // After the load: everything back to the baseline, within BOUNDS.settleMs.
  let end = null
  const settleStart = Date.now()
  while (childExit === null) {
    end = await rpc('measure', { gc: false }, 10000)
    if (end.ok && end.fds <= base.fds + BOUNDS.fdSlack && end.pinned === 0 && end.sends === 0) break
    if (Date.now() - settleStart > BOUNDS.settleMs) break
    await sleep(250)
  }
  const settleMs = Date.now() - settleStart
  if (childExit === null) end = { ...(await rpc('measure', { gc: true }, 10000)), settleMs }
  // Still serving, exactly: every stable target of the main app once more.
  if (childExit === null) {
    for (const t of targets.filter((x) => x.app === 'a' && x.kind === 'stable' && x.size <= 16 * MiB)) {
      const req = { app: 'a', port: ports.a, path: t.path, target: t, method: 'GET', headers: t.precompressed ? { 'accept-encoding': 'gzip' } : {}, lane: 'after', behavior: 'after', validators: warm }
      const c = open(req.port)
      const before = figures.exact
      judge(req, await exchange(c, req, {}))
      c.destroy()
      if (figures.exact <= before) violation('after', `after the load, ${t.path} was not served exactly`, req)
    }
  }
  // Close everything while a few clients that asked for 3 MiB are still connected and not
  // reading (Node closes them as idle once their response is written); the process must then
  // exit by itself, as it does with reply.send.
  let shutdown = null
  const held = []
  if (childExit === null) {
    const t = targets.find((x) => x.app === 'a' && x.path === `/buf/${C.HELD_BUFFER}`)
    for (let i = 0; i < (WITHOUT.has('held') ? 0 : 4); i++) {
      const c = open(ports.a)
      const req = { app: 'a', port: ports.a, path: t.path, target: t, method: 'GET', headers: {}, lane: 'held', behavior: 'held open at the close', validators: warm }
      held.push(c)
      exchange(c, req, {})
      c.pending[0].paused = true
      c.socket.pause()
    }
    await sleep(1000)
  }
  if (childExit === null) {
    expectExit = true
    shutdown = await rpc('shutdown', { bound: BOUNDS.closeMs }, 3 * BOUNDS.closeMs + 5000)
    if (!shutdown.ok) violation('close', shutdown.error)
    const exitBy = Date.now() + BOUNDS.exitMs
    while (childExit === null && Date.now() < exitBy) await sleep(100)
    if (childExit === null) {
      violation('exit', `the server process had not exited ${BOUNDS.exitMs} ms after every app was closed and every worker terminated (with ${held.filter((c) => !c.closed).length} of ${held.length} clients still connected, not reading): something keeps its event loop alive`)
      child.kill('SIGKILL')
      while (childExit === null) await sleep(50)
    } else if (childExit.code !== 0 || childExit.signal) {
      violation('exit', `the server process exited with code ${childExit.code}, signal ${childExit.signal}: ${stderrTail.trim().split('\n').slice(-10).join('\n')}`)
    }
  }
  for (const c of held) c.destroy()

  // The report.
  const ok = (cond) => (cond ? 'ok    ' : 'FAILED')
  console.log(`\ntorture, seed ${SEED}, engine ${ENGINE}: ${loadSeconds.toFixed(0)} s of load`)
  console.log(`  requests ${figures.requests} (${figures.exact} read whole and exact, ${figures.pipelined} pipelined, ${figures.reconnects} on a fresh connection, ${figures.retries} retried), bytes checked ${mib(figures.bytesChecked)}`)
  console.log(`  statuses ${JSON.stringify(figures.statuses)}`)
  console.log(`  aborts ${figures.aborts}, stalls ${figures.stalls}, slow reads ${figures.slowReads}, garbage ${figures.garbage}; cut by a close or terminate ${figures.cutByEvents}, by a truncation ${figures.cutByMutation}; complete with zeros past a truncation ${figures.zeroedByTruncation}${STRICT_TRUNCATION ? '' : ' (the documented caveat)'}; refused or reset with no response ${figures.refusedOrReset}`)
  console.log(`  terminates ${figures.terminates} (max ${figures.maxTerminateMs} ms), closes ${figures.closes} (max ${figures.maxCloseMs} ms), mutations ${JSON.stringify(figures.mutations)}`)
  const th = end && end.throws ? end.throws : {}
  console.log(`  callback throws: allowedPath ${th.allowedPath}, setHeaders ${th.setHeaders}, onFile ${th.onFile}`)
  console.log(`  max loop delay ${end && end.loopMaxMs !== undefined ? end.loopMaxMs.toFixed(0) : '?'} ms (p99 ${end && end.loopP99Ms !== undefined ? end.loopP99Ms.toFixed(0) : '?'} ms), max /ping ${figures.maxProbeMs} ms`)
  console.log(`  fds ${base.fds} before, ${end ? end.fds : '?'} after (peak ${figures.peakFds}); pinned ${base.pinned} before, ${end ? end.pinned : '?'} after (peak ${mib(figures.peakPinned)}); in flight ${end ? end.sends : '?'} after; RSS ${mib(base.rss)} before, ${end ? mib(end.rss) : '?'} after (peak ${mib(figures.peakRss)}); settled in ${settleMs} ms`)
  if (shutdown && shutdown.times) console.log(`  close at the end: ${JSON.stringify(shutdown.times)} ms; exit ${childExit ? `code ${childExit.code}` : '?'}`)
  if (end && end.ok) {
    if (end.fds > base.fds + BOUNDS.fdSlack) {
      // By what they are (a file's path, a pipe, a socket, an eventfd), not by number.
      const kinds = (list) => {
        const n = new Map()
        for (const x of list) {
          const what = x.replace(/^\d+ -> /, '').replace(/:\[\d+\]$/, '')
          n.set(what, (n.get(what) || 0) + 1)
        }
        return n
      }
      const was = kinds(base.fdTargets)
      const extra = [...kinds(end.fdTargets)].filter(([k, n]) => n > (was.get(k) || 0)).map(([k, n]) => `${k} ${n - (was.get(k) || 0)} more`)
      violation('fds', `${end.fds} descriptors ${BOUNDS.settleMs} ms after the load, ${base.fds} at the baseline; more than at the baseline: ${extra.join(', ')}`)
    }
    if (end.pinned !== 0 || end.sends !== 0) violation('pinned', `${end.pinned} bytes pinned and ${end.sends} sends in flight ${BOUNDS.settleMs} ms after the load`)
    if (end.rss > base.rss + BOUNDS.rssSlack) violation('rss', `RSS ${mib(end.rss)} after the load, ${mib(base.rss)} at the baseline (bound: +${mib(BOUNDS.rssSlack)})`)
    if (end.loopMaxMs > BOUNDS.loopDelayMs) violation('loop-delay', `the server's event loop was held up to ${end.loopMaxMs.toFixed(0)} ms (bound ${BOUNDS.loopDelayMs} ms)`)
  }
  for (const n of notes.slice(0, 5)) console.log(`  note: ${n.split('\n')[0]}`)
  // What clients saw in the last second before the death was seen (a refused /ping, a reset)
  // is its consequence too.
  if (childExit !== null && violationKinds.process) {
    const consequences = new Set(['no-response', 'probe', 'cut', 'stuck'])
    for (const v of violations.filter((x) => consequences.has(x.kind) && x.t >= childExit.at - 1000)) {
      violations.splice(violations.indexOf(v), 1)
      afterDeath++
      if (--violationKinds[v.kind] === 0) delete violationKinds[v.kind]
    }
  }
  const kinds = Object.entries(violationKinds)
  console.log(`\n${ok(kinds.length === 0)} ${kinds.length === 0 ? 'every invariant held' : `violations: ${kinds.map(([k, n]) => `${k} ${n}`).join(', ')}`}`)
  const listed = {}
  for (const v of violations) if ((listed[v.kind] = (listed[v.kind] || 0) + 1) <= 6) console.log(`  ${v.text}`) // the first few of each kind
  if (afterDeath > 0) console.log(`  (and ${afterDeath} failures of its clients after the server process died, not listed)`)
  fs.rmSync(dir, { recursive: true, force: true })
  if (kinds.length === 0) {
    console.log(`torture ok: seed ${SEED}, ${ENGINE}, ${loadSeconds.toFixed(0)} s, ${figures.requests} requests, ${mib(figures.bytesChecked)} checked, ${figures.aborts} aborts, ${figures.stalls} stalls, ${figures.terminates} terminates, ${figures.closes} closes, max loop delay ${end.loopMaxMs.toFixed(0)} ms`)
  } else {
    console.log(`torture FAILED: seed ${SEED}, ${ENGINE}, --duration ${DURATION} (rerun: npm run torture -- --seed ${SEED} --duration ${DURATION} --engine ${ENGINE})`)
  }
  process.exitCode = kinds.length === 0 ? 0 : 1
}

function mib (n) { return `${(n / MiB).toFixed(1)} MiB` }

process.on('SIGINT', () => {
  if (child && childExit === null) child.kill('SIGKILL')
  process.exit(130)
})

main().catch((err) => {
  console.error(`torture: the harness itself failed (seed ${SEED}): ${err && err.stack}`)
  if (child && childExit === null) child.kill('SIGKILL')
  fs.rmSync(dir, { recursive: true, force: true })
  process.exitCode = 2
})
