'use strict'
// Serves a large and a small buffer and a file with reply.sendZeroCopy and prints what the
// machine can do.
//   node example/server.js          keep serving on http://127.0.0.1:3000
//   node example/server.js --once   fetch each once, check their SHA-256, print the stats, exit
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const Fastify = require('fastify')
const zeroCopy = require('..')

const large = crypto.randomBytes(64 * 1024 * 1024) // 64 MiB: leaves through io_uring SEND_ZC
const small = Buffer.from('hello from the ordinary path\n') // below the threshold: reply.send
// A 16 MiB file (written at start, removed at exit): its cached first MiB by sendfile(2),
// the rest spliced from the page cache by io_uring.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zero-copy-example-'))
const file = path.join(dir, 'download.bin')
fs.writeFileSync(file, large.subarray(0, 16 * 1024 * 1024))
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))

async function main () {
  const once = process.argv.includes('--once')
  const app = Fastify({ logger: { level: once ? 'warn' : 'info' } })
  await app.register(zeroCopy, { threshold: 16 * 1024 })
  app.get('/large', (req, reply) => reply.sendZeroCopy(large))
  app.get('/small', (req, reply) => reply.type('text/plain').sendZeroCopy(small))
  // Ranges, ETag and conditional requests as @fastify/send gives them: try curl -r 0-99.
  app.get('/file', (req, reply) => reply.sendZeroCopy({ path: file }))
  app.get('/stats', (req, reply) => reply.send(app.zeroCopy.stats()))

  const address = await app.listen({ port: once ? 0 : Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
  console.log('capabilities:', JSON.stringify(app.zeroCopy.capabilities, null, 2))
  if (!once) {
    console.log(`try: curl -s ${address}/large | sha256sum   (expect ${sha256(large)})`)
    return
  }
  for (const [route, body] of [['/large', large], ['/small', small], ['/file', fs.readFileSync(file)]]) {
    const got = await fetchSha(address + route)
    const ok = got === sha256(body)
    console.log(`${route}: ${body.length} bytes, sha256 ${ok ? 'matches' : 'DIFFERS'}`)
    if (!ok) process.exitCode = 1
  }
  // A body is counted once the server reaped its last completion.
  const native = () => { const r = app.zeroCopy.stats().responses; return r.sendZc + r.send + r.splice + r.sendfile }
  while (native() < 2 && app.zeroCopy.capabilities.mode !== 'stream') await new Promise((resolve) => setTimeout(resolve, 10))
  console.log('stats:', JSON.stringify(app.zeroCopy.stats(), null, 2))
  await app.close()
}

function sha256 (buf) {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

function fetchSha (url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const hash = crypto.createHash('sha256')
      res.on('data', (d) => hash.update(d))
      res.on('end', () => resolve(hash.digest('hex')))
    }).on('error', reject)
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
