'use strict'
// Serves a large and a small buffer with reply.sendZeroCopy and prints what the machine can do.
//   node example/server.js          keep serving on http://127.0.0.1:3000
//   node example/server.js --once   fetch both once, check their SHA-256, print the stats, exit
const crypto = require('node:crypto')
const http = require('node:http')
const Fastify = require('fastify')
const zeroCopy = require('..')

const large = crypto.randomBytes(64 * 1024 * 1024) // 64 MiB: leaves through io_uring SEND_ZC
const small = Buffer.from('hello from the ordinary path\n') // below the threshold: reply.send

async function main () {
  const once = process.argv.includes('--once')
  const app = Fastify({ logger: { level: once ? 'warn' : 'info' } })
  await app.register(zeroCopy, { threshold: 16 * 1024 })
  app.get('/large', (req, reply) => reply.sendZeroCopy(large))
  app.get('/small', (req, reply) => reply.type('text/plain').sendZeroCopy(small))
  app.get('/stats', (req, reply) => reply.send(app.zeroCopy.stats()))

  const address = await app.listen({ port: once ? 0 : Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
  console.log('capabilities:', JSON.stringify(app.zeroCopy.capabilities, null, 2))
  if (!once) {
    console.log(`try: curl -s ${address}/large | sha256sum   (expect ${sha256(large)})`)
    return
  }
  for (const [path, body] of [['/large', large], ['/small', small]]) {
    const got = await fetchSha(address + path)
    const ok = got === sha256(body)
    console.log(`${path}: ${body.length} bytes, sha256 ${ok ? 'matches' : 'DIFFERS'}`)
    if (!ok) process.exitCode = 1
  }
  // A body is counted once the server reaped its last completion.
  while (app.zeroCopy.stats().responses.sendZc + app.zeroCopy.stats().responses.send === 0 &&
    app.zeroCopy.capabilities.mode !== 'stream') await new Promise((resolve) => setTimeout(resolve, 10))
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
