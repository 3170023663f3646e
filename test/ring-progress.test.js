'use strict'
// The ring makes progress on its own whatever io_uring_enter(2) answers. The server runs under
// test/fixtures/flaky-enter.c: a seccomp supervisor that fails the submitting io_uring_enter
// calls on cue (the real kernel otherwise), as `nobody` when the suite runs as root, with
// connectionTimeout 0 so that nothing but the ring can end a stalled response.
//   - EAGAIN and EBUSY are transient: the SQEs stay in the SQ, and the ring must submit them
//     again by itself (a lone response has no other request to do it).
//   - A full SQ (submits failing while many responses want room) means waiting, never a
//     body failed halfway.
//   - Any other errno breaks the ring: its responses in flight end with the connection
//     closed, later ones go by Fastify's ordinary path (fallback 'ring-broken'), nothing
//     keeps the process alive.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const {
  MiB, spawnFixture, compileFixture, getJson, fetchChecked, rateReader, eventually, seeded, tempDir, after,
  steadyFds, procFds
} = require('./helpers')

const SEED = 'ring-progress'
// The bound within which a body must complete once the submits fail for WINDOW_MS: the
// backoff's last wait (at most 100 ms) past the window, plus the transfer, with room to spare.
const WINDOW_MS = 300
const BOUND_MS = 1000

/** A server under flaky-enter, with a directory of files, and the handles to steer it. */
async function flakyServer (t, { sizes, files, options = {}, wrap = [] }) {
  const bin = compileFixture(t, 'flaky-enter')
  const dir = tempDir(t, 0o755)
  const control = path.join(dir, 'control')
  const status = path.join(dir, 'status')
  const expected = {}
  for (const [name, size] of Object.entries(files)) {
    expected[name] = seeded(SEED, name, size)
    fs.writeFileSync(path.join(dir, name), expected[name], { mode: 0o644 })
  }
  const server = await spawnFixture(t, 'app-server', {
    drop: true, seed: SEED, sizes, dir, log: 'warn', options, fastify: { connectionTimeout: 0 }
  }, { wrap: [...wrap, bin, control, status] })
  t.equal(server.state, 'READY', server.message)
  t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  t.match(fs.readFileSync(`/proc/${server.pid}/status`, 'utf8'), /^Seccomp:\s+2$/m, 'under the seccomp filter')
  t.equal(server.capabilities.ioUring, true, 'the ring opened (the setup and its probes went through)')
  let gen = 0
  return {
    ...server,
    dir,
    expected,
    bodies: sizes.map((n, i) => seeded(SEED, i, n)),
    /** Starts a new plan ('EAGAIN 300ms', 'EBADR forever', ...); returns its generation. */
    plan (line) {
      gen++
      fs.writeFileSync(control + '.tmp', `${gen} ${line}\n`)
      fs.renameSync(control + '.tmp', control)
      return String(gen)
    },
    status: () => JSON.parse(fs.readFileSync(status, 'utf8'))
  }
}

/**
 * fetchChecked, or 'pending' when no answer came within `ms`; with the time it took.
 * `vanish`: the client goes away as soon as the response's head arrives. `cutOk`: a body the
 * server cut short resolves (with `cut`) instead of failing.
 */
async function timed (port, route, expected, ms = 3000, { vanish = false, cutOk = false } = {}) {
  const started = Date.now()
  let socket = null
  const options = vanish ? { cutOk: true, onSocket: (s) => { socket = s }, onHeaders: () => socket.destroy() } : { cutOk }
  const res = await Promise.race([fetchChecked(port, route, expected, options).catch((err) => ({ error: err.message })), after(ms, 'pending')])
  return { res, ms: Date.now() - started }
}

for (const errno of ['EAGAIN', 'EBUSY']) {
  test(`io_uring_enter fails with ${errno} for ${WINDOW_MS} ms: a lone 1 MiB buffer and a lone 8 MiB file each complete exact within ${BOUND_MS} ms`, async (t) => {
    const server = await flakyServer(t, { sizes: [MiB], files: { 'big.bin': 8 * MiB } })
    for (const [route, expected] of [['/body/0', server.bodies[0]], ['/file/big.bin', server.expected['big.bin']]]) {
      const gen = server.plan(`${errno} ${WINDOW_MS}ms`)
      const { res, ms } = await timed(server.port, route, expected)
      const st = server.status()
      t.equal(st.gen, gen, 'the supervisor read the plan')
      t.ok(st.genDenied > 0, `${route}: ${st.genDenied} submits failed with ${errno} over ${st.lastDeniedMs - st.firstDeniedMs} ms`)
      t.not(res, 'pending', `${route}: answered (${ms} ms)`)
      t.ok(res !== 'pending' && res.status === 200 && res.exact, `${route}: 200 and every byte exact (${res === 'pending' ? 'pending' : `${res.length} of ${expected.length} bytes${res.error ? ', ' + res.error : ''}`})`)
      t.ok(ms < BOUND_MS, `${route}: complete in ${ms} ms, within ${BOUND_MS} ms`)
    }
    const stats = await getJson(server.port, '/stats')
    t.equal(stats.responses.stream, 0, `both bodies went by the ring (responses ${JSON.stringify(stats.responses)}, fallbacks ${JSON.stringify(stats.fallbacks)})`)
    t.equal(stats.responses.sendZc + stats.responses.send, 1, 'the buffer by SEND_ZC or SEND')
    t.equal(stats.responses.splice, 1, 'the file spliced')
    t.equal(server.stderr(), '', 'nothing logged at warn or above')
  })
}

/** The submission queue's size of the server's ring, from the kernel's fdinfo. */
function sqEntries (pid) {
  for (const n of fs.readdirSync(`/proc/${pid}/fd`)) {
    let link
    try { link = fs.readlinkSync(`/proc/${pid}/fd/${n}`) } catch { continue }
    if (!link.includes('io_uring')) continue
    const mask = /^SqMask:\s*(0x[0-9a-f]+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${n}`, 'utf8'))
    if (mask) return Number(mask[1]) + 1
  }
  return 0
}

test('a full SQ on the smallest ring (32 entries): 64 concurrent large bodies, buffers and files, all exact, none failed with EBUSY', async (t) => {
  const sizes = Array.from({ length: 8 }, (_, i) => MiB + i * 262147)
  const files = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}.bin`, 4 * MiB + i * 65537]))
  // The smallest ring, as a tight `ulimit -l` gives it (test/memlock.test.js), without
  // depending on what else the same user has locked at the time.
  const server = await flakyServer(t, { sizes, files, wrap: ['env', 'FASTIFY_ZERO_COPY_RING_ENTRIES=32'], options: { fileInline: 0 } })
  t.equal(sqEntries(server.pid), 32, 'the ring has 32 SQ entries')
  const baseline = await steadyFds(server.pid)
  // The first few submits go through, so bodies are under way when the submits start failing
  // and the SQ fills behind them. One client in eight goes away as soon as its head arrives
  // (the cork lets it go after 200 ms), which aborts bodies still waiting for room.
  const gen = server.plan(`EBUSY ${WINDOW_MS}ms after=8`)
  const routes = Array.from({ length: 64 }, (_, i) => i % 2 === 0
    ? [`/body/${(i / 2) % 8}`, seeded(SEED, (i / 2) % 8, sizes[(i / 2) % 8])]
    : [`/file/f${(i >> 1) % 8}.bin`, server.expected[`f${(i >> 1) % 8}.bin`]])
  const vanish = (i) => i % 8 === 7
  const started = Date.now()
  const results = await Promise.all(routes.map(([route, expected], i) => timed(server.port, route, expected, 10000, { vanish: vanish(i) })))
  const failures = results.flatMap(({ res }, i) => {
    if (res === 'pending') return [`${routes[i][0]}: pending after 10 s`]
    if (vanish(i) ? res.firstBad < 0 : res.status === 200 && res.exact) return []
    return [`${routes[i][0]}: status ${res.status}, ${res.length} bytes, first bad byte ${res.firstBad}${res.error ? ', ' + res.error : ''}`]
  })
  t.same(failures, [], 'every body complete and exact (the clients that went away: what came was a true prefix)')
  t.comment(`64 bodies in ${Date.now() - started} ms, the slowest ${Math.max(...results.map((r) => r.ms))} ms`)
  const st = server.status()
  t.equal(st.gen, gen)
  t.ok(st.genDenied > 0, `${st.genDenied} submits failed with EBUSY`)
  // A file's round takes up to 3 + 2 x depth (4) = 11 SQEs: a submit of more than 32 - 11
  // means the SQ had no room left for one more.
  t.ok(st.maxToSubmit > 21, `the SQ filled: a submit of ${st.maxToSubmit} of its 32 SQEs`)
  let stats
  t.ok(await eventually(async () => {
    stats = await getJson(server.port, '/stats')
    return stats.responses.sendZc + stats.responses.send + stats.responses.splice + stats.responses.stream === 64
  }), 'every body counted')
  t.equal(stats.responses.stream, 0, `every body by the ring (fallbacks ${JSON.stringify(stats.fallbacks)})`)
  t.same(stats.inFlight, { sends: 0, pinnedBytes: 0, processPinnedBytes: 0 }, 'nothing in flight')
  t.ok(await eventually(async () => await steadyFds(server.pid) === baseline, 5000), `server fds back to ${baseline} (now ${procFds(server.pid)})`)
  t.notMatch(server.stderr(), /EBUSY/, 'no body failed with EBUSY')
  t.equal(server.stderr(), '', 'nothing logged at warn or above')
})

test('a broken ring (io_uring_enter fails with EBADR from a point on): responses in flight end closed, later ones exact by the ordinary path, the process ends', async (t) => {
  const server = await flakyServer(t, { sizes: [16 * MiB, MiB], files: { 'big.bin': 32 * MiB } })
  const big = server.bodies[0]
  const file = server.expected['big.bin']
  // The native path works, and what it opened for itself is counted back.
  for (const [route, expected] of [['/body/1', server.bodies[1]], ['/file/big.bin', file]]) {
    const res = await fetchChecked(server.port, route, expected)
    t.ok(res.status === 200 && res.exact, `${route} before: exact`)
  }
  const baseline = await steadyFds(server.pid)

  // Two slow clients, so both bodies are under way when the ring breaks.
  const readers = [rateReader(server.port, '/body/0', big, { rate: 2 * MiB }), rateReader(server.port, '/file/big.bin', file, { rate: 2 * MiB })]
  t.ok(await eventually(() => readers.every((r) => r.received() > 0)), 'both bodies under way')
  const gen = server.plan('EBADR forever')
  const broke = Date.now()
  for (const r of readers) r.setRate(0) // their next submits fail
  const ended = await Promise.all(readers.map((r) => Promise.race([r.done, after(3000, 'open')])))
  ended.forEach((end, i) => {
    const what = i === 0 ? 'the 16 MiB buffer' : 'the 32 MiB file'
    t.not(end, 'open', `${what}: the connection was closed (${end === 'open' ? 'still open after 3000 ms' : `${end.closedAt - broke} ms after the break`})`)
    if (end === 'open') return
    t.equal(end.firstBad, -1, `${what}: what came is a true prefix (${end.bodyLength} bytes)`)
    t.equal(end.complete, false, `${what}: short of its Content-Length, so the client knows it is cut`)
  })
  for (const r of readers) r.socket.destroy()
  const st = server.status()
  t.equal(st.gen, gen)
  t.ok(st.genDenied > 0, `${st.genDenied} submits failed with EBADR`)

  // Later responses: exact, by Fastify's ordinary path, and the reason is counted.
  for (const [route, expected] of [['/body/1', server.bodies[1]], ['/body/0', big], ['/file/big.bin', file]]) {
    const { res, ms } = await timed(server.port, route, expected)
    t.ok(res !== 'pending' && res.status === 200 && res.exact, `${route} after the break: 200, exact (${ms} ms)`)
  }
  const stats = await getJson(server.port, '/stats')
  t.equal(stats.fallbacks['ring-broken'], 3, `the reason is counted (fallbacks ${JSON.stringify(stats.fallbacks)})`)
  t.ok(await eventually(async () => await steadyFds(server.pid) === baseline, 5000), `server fds back to ${baseline} (now ${procFds(server.pid)})`)
  t.match(server.stderr(), /EBADR/, 'the failed responses were logged with the errno')

  // Nothing of the broken ring keeps the process alive.
  const closing = Date.now()
  server.child.kill('SIGUSR2')
  const closed = await Promise.race([server.line('CLOSED'), after(5000, 'pending')])
  t.not(closed, 'pending', `app.close() resolved (${closed === 'pending' ? 'not within 5000 ms' : closed.ms + ' ms'})`)
  const exit = await Promise.race([server.exited, after(5000, 'running')])
  t.not(exit, 'running', `the process ended on its own ${Date.now() - closing} ms after SIGUSR2`)
  if (exit !== 'running') t.equal(exit.code, 0, 'exit code 0')
})

// The bound on a persistent refusal (native/uring/ring.cc, kStuckSubmitMs): io_uring_enter
// refusing every submit with EAGAIN or EBUSY for this long, with nothing consumed, breaks the
// ring.
const STUCK_MS = 3000

test(`io_uring_enter fails with EAGAIN for good: a lone 1 MiB buffer ends within ${STUCK_MS} ms and a little, cut cleanly; later bodies exact by the ordinary path; the process ends`, async (t) => {
  const server = await flakyServer(t, { sizes: [MiB], files: { 'big.bin': 8 * MiB } })
  const gen = server.plan('EAGAIN forever')
  const { res, ms } = await timed(server.port, '/body/0', server.bodies[0], STUCK_MS + 5000, { cutOk: true })
  const st = server.status()
  t.equal(st.gen, gen, 'the supervisor read the plan')
  t.ok(st.genDenied > 1, `${st.genDenied} submits failed with EAGAIN over ${st.lastDeniedMs - st.firstDeniedMs} ms`)
  t.not(res, 'pending', `answered (${ms} ms)`)
  t.ok(ms < STUCK_MS + 1500, `ended ${ms} ms after the request, within ${STUCK_MS} ms and 1500 ms`)
  if (res !== 'pending') {
    t.ok(res.cut === true && res.firstBad < 0 && res.length < MiB, `the connection was closed short of the body (${res.length} bytes, a true prefix)`)
  }
  // Later responses: exact, by Fastify's ordinary path, and the reason is counted.
  for (const [route, expected] of [['/body/0', server.bodies[0]], ['/file/big.bin', server.expected['big.bin']]]) {
    const later = await timed(server.port, route, expected)
    t.ok(later.res !== 'pending' && later.res.status === 200 && later.res.exact, `${route} after: 200, exact (${later.ms} ms)`)
  }
  const stats = await getJson(server.port, '/stats')
  t.equal(stats.fallbacks['ring-broken'], 2, `the reason is counted (fallbacks ${JSON.stringify(stats.fallbacks)})`)
  t.match(server.stderr(), /EAGAIN/, 'the failed response was logged with the errno')
  const closing = Date.now()
  server.child.kill('SIGUSR2')
  const exit = await Promise.race([server.exited, after(5000, 'running')])
  t.not(exit, 'running', `the process ended on its own ${Date.now() - closing} ms after SIGUSR2`)
})
