'use strict'
// Where the native path cannot serve, everything still answers exactly and says why.
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { MiB, sha256, startServer, request, spawnServer, compileFixture, eventually, assertEngine } = require('./helpers')

async function fetchAll (t, server, count) {
  for (let i = 0; i < count; i++) {
    const res = await request(server.port, `/body/${i}`, { agent: false })
    t.equal(res.status, 200)
    t.equal(res.sha, server.shas[i], `body ${i} exact`)
  }
  return (await fetchJson(server.port, '/stats'))
}

async function fetchJson (port, p) {
  const http = require('node:http')
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve(JSON.parse(text)))
    }).on('error', reject)
  })
}

test('mode "stream": every body through Fastify, and capabilities say why', async (t) => {
  const body = crypto.randomBytes(4 * MiB)
  const { app, port } = await startServer(t, {
    options: { mode: 'stream' },
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  t.equal(app.zeroCopy.capabilities.mode, 'stream')
  t.equal(app.zeroCopy.capabilities.engine, null, 'no engine serves')
  t.match(app.zeroCopy.capabilities.reason, /stream/)
  t.equal((await request(port, '/')).sha, sha256(body))
  const stats = app.zeroCopy.stats()
  t.same(stats.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 1 })
  t.same(stats.fallbacks, { 'mode-stream': 1 })
  t.same(stats.engines, { io_uring: { responses: 0, bytes: 0 }, classic: { responses: 0, bytes: 0 } })
})

test('mode "send": the engine\'s copying send, counted as send', async (t) => {
  const body = crypto.randomBytes(4 * MiB)
  const { app, port } = await startServer(t, {
    options: { mode: 'send' },
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  t.equal(app.zeroCopy.capabilities.mode, 'send')
  t.equal((await request(port, '/')).sha, sha256(body))
  t.ok(await eventually(() => app.zeroCopy.stats().responses.send === 1))
  t.same(app.zeroCopy.stats().bytes, { sendZc: 0, send: 4 * MiB, splice: 0, sendfile: 0, stream: 0 })
  assertEngine(t, app.zeroCopy.capabilities, app.zeroCopy.stats(), 1)
})

test('an addon that cannot load: the ordinary path, and the reason names what is missing', async (t) => {
  // A real copy of the package without build/ or prebuilds/, so node-gyp-build finds nothing.
  const root = path.join(__dirname, '..')
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-noaddon-'))
  t.teardown(() => fs.rmSync(copy, { recursive: true, force: true }))
  fs.cpSync(path.join(root, 'dist'), path.join(copy, 'dist'), { recursive: true })
  fs.copyFileSync(path.join(root, 'package.json'), path.join(copy, 'package.json'))
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'))
  // Without the environment's default engine: a forced engine without the addon fails instead.
  const server = await spawnServer(t, { pkg: copy, sizes: [MiB, 8 * MiB] }, { wrap: ['env', '-u', 'FASTIFY_ZERO_COPY_ENGINE'] })
  t.equal(server.state, 'READY')
  t.equal(server.capabilities.native, false)
  t.equal(server.capabilities.engine, null)
  t.equal(server.capabilities.mode, 'stream')
  t.match(server.capabilities.reason, /native addon did not load.*liburing-dev/)
  const stats = await fetchAll(t, server, 2)
  t.same(stats.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 2 })
  t.same(stats.fallbacks, { 'native-unavailable': 2 })
})

// The engine is what the machine allows here: the environment's default must not decide it.
const denied = (deny, errno) => ['env', '-u', 'FASTIFY_ZERO_COPY_ENGINE', deny, errno]

for (const errno of ['ENOSYS', 'EPERM']) {
  test(`io_uring_setup refused with ${errno} by a seccomp filter: the classic engine, with the reason; forcing io_uring fails`, async (t) => {
    const deny = compileFixture(t, 'deny-io-uring')
    const server = await spawnServer(t, { sizes: [MiB, 8 * MiB] }, { wrap: denied(deny, errno) })
    t.equal(server.state, 'READY')
    t.equal(server.capabilities.native, true, 'the addon loaded')
    t.equal(server.capabilities.ioUring, false, 'but no ring could be created')
    t.equal(server.capabilities.engine, 'classic', "'auto' took the classic engine")
    t.equal(server.capabilities.mode, 'send_zc', 'with MSG_ZEROCOPY')
    t.match(server.capabilities.reason, new RegExp(`io_uring_setup failed with ${errno}`))
    const stats = await fetchAll(t, server, 2)
    t.equal(stats.responses.stream + stats.bytes.stream, 0, 'no stream bytes: both bodies native')
    t.equal(stats.responses.sendZc + stats.responses.send, 2)
    t.same(stats.engines, { io_uring: { responses: 0, bytes: 0 }, classic: { responses: 2, bytes: 9 * MiB } })

    const classic = await spawnServer(t, { options: { engine: 'classic', mode: 'send_zc' } }, { wrap: denied(deny, errno) })
    t.equal(classic.state, 'READY', 'engine "classic" with mode "send_zc" registers')
    t.equal(classic.capabilities.engine, 'classic')

    for (const options of [{ engine: 'io_uring' }, { engine: 'io_uring', mode: 'send' }]) {
      const forced = await spawnServer(t, { options }, { wrap: denied(deny, errno) })
      t.equal(forced.state, 'FAILED', `${JSON.stringify(options)} fails at registration`)
      t.equal(forced.code, 'FST_ZERO_COPY_MODE_UNAVAILABLE')
      t.match(forced.message, new RegExp(`engine "io_uring" is not available on this machine: io_uring_setup failed with ${errno}`))
    }

    const streamed = await spawnServer(t, { sizes: [MiB, 8 * MiB], options: { mode: 'stream' } }, { wrap: denied(deny, errno) })
    t.equal(streamed.state, 'READY')
    t.equal(streamed.capabilities.mode, 'stream')
    t.equal(streamed.capabilities.engine, null)
    const s = await fetchAll(t, streamed, 2)
    t.same(s.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 2 }, "mode 'stream': Fastify's ordinary path")
    t.same(s.fallbacks, { 'mode-stream': 2 })
  })
}
