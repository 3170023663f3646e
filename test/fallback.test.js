'use strict'
// Where the native path cannot serve, everything still answers exactly and says why.
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { MiB, sha256, startServer, request, spawnServer, compileFixture, eventually } = require('./helpers')

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
  t.match(app.zeroCopy.capabilities.reason, /stream/)
  t.equal((await request(port, '/')).sha, sha256(body))
  const stats = app.zeroCopy.stats()
  t.same(stats.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 1 })
  t.same(stats.fallbacks, { 'mode-stream': 1 })
})

test('mode "send": io_uring SEND, counted as send', async (t) => {
  const body = crypto.randomBytes(4 * MiB)
  const { app, port } = await startServer(t, {
    options: { mode: 'send' },
    setup (app) { app.get('/', (req, reply) => reply.sendZeroCopy(body)) }
  })
  t.equal(app.zeroCopy.capabilities.mode, 'send')
  t.equal((await request(port, '/')).sha, sha256(body))
  t.ok(await eventually(() => app.zeroCopy.stats().responses.send === 1))
  t.same(app.zeroCopy.stats().bytes, { sendZc: 0, send: 4 * MiB, splice: 0, sendfile: 0, stream: 0 })
})

test('an addon that cannot load: the ordinary path, and the reason names what is missing', async (t) => {
  // A real copy of the package without build/ or prebuilds/, so node-gyp-build finds nothing.
  const root = path.join(__dirname, '..')
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-noaddon-'))
  t.teardown(() => fs.rmSync(copy, { recursive: true, force: true }))
  fs.cpSync(path.join(root, 'dist'), path.join(copy, 'dist'), { recursive: true })
  fs.copyFileSync(path.join(root, 'package.json'), path.join(copy, 'package.json'))
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'))
  const server = await spawnServer(t, { pkg: copy, sizes: [MiB, 8 * MiB] })
  t.equal(server.state, 'READY')
  t.equal(server.capabilities.native, false)
  t.equal(server.capabilities.mode, 'stream')
  t.match(server.capabilities.reason, /native addon did not load.*liburing-dev/)
  const stats = await fetchAll(t, server, 2)
  t.same(stats.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 2 })
  t.same(stats.fallbacks, { 'native-unavailable': 2 })
})

for (const errno of ['ENOSYS', 'EPERM']) {
  test(`io_uring_setup refused with ${errno} by a seccomp filter: the ordinary path, with the reason`, async (t) => {
    const deny = compileFixture(t, 'deny-io-uring')
    const server = await spawnServer(t, { sizes: [MiB, 8 * MiB] }, { wrap: [deny, errno] })
    t.equal(server.state, 'READY')
    t.equal(server.capabilities.native, true, 'the addon loaded')
    t.equal(server.capabilities.ioUring, false, 'but no ring could be created')
    t.equal(server.capabilities.mode, 'stream')
    t.match(server.capabilities.reason, new RegExp(`io_uring_setup failed with ${errno}`))
    const stats = await fetchAll(t, server, 2)
    t.same(stats.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 2 })

    const forced = await spawnServer(t, { options: { mode: 'send_zc' } }, { wrap: [deny, errno] })
    t.equal(forced.state, 'FAILED', 'a forced native mode fails at registration')
    t.equal(forced.code, 'FST_ZERO_COPY_MODE_UNAVAILABLE')
    t.match(forced.message, new RegExp(errno))
  })
}
