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

module.exports = { KiB, MiB, sha256, startServer, request, readPartOf, openFds, eventually, inFlightIsZero, zeroCopy }

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

/** Compiles a C fixture with the system compiler into a temporary directory. */
function compileFixture (t, name) {
  const { execFileSync } = require('node:child_process')
  const os = require('node:os')
  const path = require('node:path')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-fixture-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, name)
  execFileSync(process.env.CC || 'cc', ['-O2', '-Wall', '-o', out, path.join(__dirname, 'fixtures', `${name}.c`)])
  return out
}

module.exports.spawnServer = spawnServer
module.exports.compileFixture = compileFixture
