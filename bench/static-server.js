'use strict'
// One directory server for bench/static.js on 127.0.0.1, on a free port.
//
//   node bench/static-server.js KIND --root DIR [--options JSON] [--plugin-options JSON] [--core-options JSON]
//
// KIND: zc-static           fastify-zero-copy/static on the io_uring engine (engine: 'io_uring', so
//                           a machine without a ring fails loudly instead of measuring classic)
//       zc-static-classic   the same on the classic engine (engine: 'classic')
//       fastify-static      @fastify/static
//       fastify-ceiling     a bare Fastify route answering every file's bytes from a Map in memory
//                           (reply.send(buffer)): the ceiling of any Fastify server here
//       fastify-open        a bare Fastify route that opens, stats, reads and closes the file on
//                           every request (synchronously: the tree is cached) and sends it as a
//                           Buffer with the headers a static server sends: no containment, no
//                           conditionals, no ranges, no fallback. The floor of a Fastify server
//                           that touches the file per request, not a peer (it would block on a
//                           disk, and serves what any path names)
// Both directory plugins get { root: DIR, prefix: '/' } and --options (the same for both);
// --plugin-options go to fastify-zero-copy/static only (say { "openFileCache": ... }), and
// --core-options to the core plugin, registered first with the kind's engine. BENCH_PLUGIN:
// the package root to load (bench/static.js passes its release snapshot; default the checkout).
//
// Prints "READY <port>" once listening. GET /__stats answers the plugin's stats (null for
// @fastify/static) and the server's error counters; SIGTERM/SIGINT close the server and exit.
const path = require('node:path')

const KINDS = ['zc-static', 'zc-static-classic', 'fastify-static', 'fastify-ceiling', 'fastify-open']

function parseArgs (argv) {
  const o = { options: {}, pluginOptions: {}, coreOptions: {} }
  const json = (name, text) => {
    try {
      const v = JSON.parse(text)
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
      return v
    } catch (err) {
      throw new Error(`${name}: ${err.message}`)
    }
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--root') o.root = path.resolve(value())
    else if (a === '--options') o.options = json(a, value())
    else if (a === '--plugin-options') o.pluginOptions = json(a, value())
    else if (a === '--core-options') o.coreOptions = json(a, value())
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`)
    else if (o.kind === undefined) o.kind = a
    else throw new Error(`unexpected argument ${a}`)
  }
  if (!KINDS.includes(o.kind)) throw new Error(`kind must be one of ${KINDS.join(', ')}; got ${o.kind}`)
  if (o.root === undefined) throw new Error('--root missing')
  return o
}

/**
 * Every file of the tree read into memory at start, with its Content-Type: what a request then
 * costs is Fastify's own, the least any Fastify server serving these bytes can spend.
 */
function ceiling (fastify, root) {
  const fs = require('node:fs')
  const mime = require('mime')
  const bodies = new Map()
  const walk = (dir, prefix) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name)
      if (e.isDirectory()) walk(full, `${prefix}${e.name}/`)
      else if (e.isFile()) bodies.set(`${prefix}${e.name}`, { body: fs.readFileSync(full), type: mime.getType(e.name) ?? 'application/octet-stream' })
    }
  }
  walk(root, '/')
  fastify.get('/*', (request, reply) => {
    const hit = bodies.get(request.url)
    if (hit === undefined) reply.code(404).send()
    else reply.type(hit.type).send(hit.body)
  })
}

/** Opens the file per request: the least a Fastify route serving files from disk spends. */
function openPerRequest (fastify, root) {
  const fs = require('node:fs')
  const mime = require('mime')
  fastify.get('/*', (request, reply) => {
    let fd
    try {
      fd = fs.openSync(path.join(root, request.url), 'r')
    } catch {
      reply.code(404).send()
      return
    }
    try {
      const stat = fs.fstatSync(fd)
      const body = Buffer.allocUnsafe(stat.size)
      fs.readSync(fd, body, 0, stat.size, 0)
      reply.header('accept-ranges', 'bytes')
      reply.header('cache-control', 'public, max-age=0')
      reply.header('last-modified', stat.mtime.toUTCString())
      reply.header('etag', `W/"${stat.size.toString(16)}-${stat.mtime.getTime().toString(16)}"`)
      reply.type(mime.getType(request.url) ?? 'application/octet-stream').send(body)
    } finally {
      fs.closeSync(fd)
    }
  })
}

async function main () {
  let args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`static-server.js: ${err.message}\n`)
    process.exit(2)
  }
  const fastify = require('fastify')({ logger: false })
  const server = { errors: 0, lastError: null, clientErrors: 0, lastClientError: null }
  fastify.addHook('onError', async (request, reply, error) => {
    server.errors++
    server.lastError = `${error.code ?? ''} ${error.message}`.trim()
  })
  fastify.server.on('clientError', (err) => {
    server.clientErrors++
    server.lastClientError = `${err.code ?? ''} ${err.message}`.trim()
  })
  const zc = args.kind.startsWith('zc-')
  const common = { root: args.root, prefix: '/', ...args.options }
  if (zc) {
    const pkg = process.env.BENCH_PLUGIN || path.join(__dirname, '..')
    const engine = args.kind === 'zc-static-classic' ? 'classic' : 'io_uring'
    await fastify.register(require(pkg), { ...args.coreOptions, engine })
    await fastify.register(require(path.join(pkg, 'dist', 'plugin', 'static', 'index.js')), { ...common, ...args.pluginOptions })
  } else if (args.kind === 'fastify-ceiling') {
    ceiling(fastify, args.root)
  } else if (args.kind === 'fastify-open') {
    openPerRequest(fastify, args.root)
  } else {
    await fastify.register(require('@fastify/static'), common)
  }
  fastify.get('/__stats', (request, reply) => {
    reply.send({
      kind: args.kind,
      pid: process.pid,
      capabilities: zc ? fastify.zeroCopy.capabilities : null,
      stats: zc ? fastify.zeroCopy.stats() : null,
      server
    })
  })

  let closing = false
  const close = () => {
    if (closing) return
    closing = true
    fastify.server.closeAllConnections?.()
    fastify.close().then(() => process.exit(0), (err) => {
      process.stderr.write(`static-server.js: close failed: ${err.stack}\n`)
      process.exit(1)
    })
  }
  process.on('SIGTERM', close)
  process.on('SIGINT', close)

  await fastify.listen({ host: '127.0.0.1', port: 0 })
  process.stdout.write(`READY ${fastify.server.address().port}\n`)
}

main().catch((err) => {
  process.stderr.write(`static-server.js: ${err.stack}\n`)
  process.exit(1)
})
