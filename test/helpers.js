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

/** GET (or another method) over node:http; resolves with status, headers, length and SHA-256. */
function request (port, path, { agent, method = 'GET', headers } = {}) {
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
