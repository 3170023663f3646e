'use strict'
// Serves a large and a small buffer and a file with reply.sendZeroCopy, and a directory with
// fastify-zero-copy/static, and prints what the machine can do.
//   node example/server.js          keep serving on http://127.0.0.1:3000
//   node example/server.js --once   fetch each once, check their SHA-256, print the stats, exit
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const Fastify = require('fastify')
// The package's own names, as an application writes them (Node resolves a package's name
// from inside it).
const zeroCopy = require('fastify-zero-copy')
const fastifyStatic = require('fastify-zero-copy/static')

const large = crypto.randomBytes(64 * 1024 * 1024) // 64 MiB: leaves through io_uring SEND_ZC
const small = Buffer.from('hello from the ordinary path\n') // below the threshold: reply.send
// A 16 MiB file (written at start, removed at exit): its cached first MiB by sendfile(2),
// the rest spliced from the page cache by io_uring.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zero-copy-example-'))
const file = path.join(dir, 'download.bin')
fs.writeFileSync(file, large.subarray(0, 16 * 1024 * 1024))
// A directory for fastify-zero-copy/static: an index page, a large file, and a dotfile it
// does not serve unless asked (dotfiles: 'ignore' by default).
const publicDir = path.join(dir, 'public')
fs.mkdirSync(path.join(publicDir, 'media'), { recursive: true })
fs.writeFileSync(path.join(publicDir, 'index.html'), '<!doctype html><title>fastify-zero-copy</title><a href="media/clip.bin">clip</a>\n')
fs.writeFileSync(path.join(publicDir, 'media', 'clip.bin'), large.subarray(16 * 1024 * 1024, 24 * 1024 * 1024))
fs.writeFileSync(path.join(publicDir, '.env'), 'SECRET=1\n')
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
  // A directory, as @fastify/static would serve it; files at or above the threshold natively.
  await app.register(fastifyStatic, { root: publicDir, prefix: '/public/', maxAge: '1h' })

  const address = await app.listen({ port: once ? 0 : Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
  console.log('capabilities:', JSON.stringify(app.zeroCopy.capabilities, null, 2))
  if (!once) {
    console.log(`try: curl -s ${address}/large | sha256sum   (expect ${sha256(large)})`)
    console.log(`     curl -s -r 0-99 ${address}/public/media/clip.bin | wc -c; curl -s ${address}/public/`)
    return
  }
  const checks = [
    ['/large', large],
    ['/small', small],
    ['/file', fs.readFileSync(file)],
    ['/public/', fs.readFileSync(path.join(publicDir, 'index.html'))],
    ['/public/media/clip.bin', fs.readFileSync(path.join(publicDir, 'media', 'clip.bin'))]
  ]
  for (const [route, body] of checks) {
    const { status, hash } = await fetchSha(address + route)
    const ok = status === 200 && hash === sha256(body)
    console.log(`${route}: ${status}, ${body.length} bytes, sha256 ${ok ? 'matches' : 'DIFFERS'}`)
    if (!ok) process.exitCode = 1
  }
  const dotfile = await fetchSha(address + '/public/.env')
  console.log(`/public/.env: ${dotfile.status} (dotfiles are not served unless asked for)`)
  if (dotfile.status !== 404) process.exitCode = 1
  // A body is counted once the server reaped its last completion: /large, /file, clip.bin.
  const native = () => { const r = app.zeroCopy.stats().responses; return r.sendZc + r.send + r.splice + r.sendfile }
  while (native() < 3 && app.zeroCopy.capabilities.mode !== 'stream') await new Promise((resolve) => setTimeout(resolve, 10))
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
      res.on('end', () => resolve({ status: res.statusCode, hash: hash.digest('hex') }))
    }).on('error', reject)
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
