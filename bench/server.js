'use strict'
// One benchmark server on 127.0.0.1, on a free port.
//
//   node bench/server.js KIND SIZE [--slice N] [--depth N] [--threshold N] [--port N]
//   BENCH_KIND=zc-send_zc BENCH_SIZE=1m node bench/server.js
//
// KIND: zc-auto                           the plugin with its defaults (mode auto, whenCopied stream)
//       zc-send_zc | zc-send | zc-stream   the plugin in that mode, every body by it (whenCopied keep)
//       zc-auto-classic | zc-file-classic   zc-auto, zc-file on the classic engine (engine: 'classic':
//                                           sendfile and MSG_ZEROCOPY, no io_uring); zc-auto and zc-file
//                                           take the plugin's default engine ('auto': io_uring where a
//                                           ring opens, so classic inside a container that refuses it)
//       fastify-send                        no plugin, GET /body -> reply.send(buf)
//       zc-file                             the plugin, GET /body -> reply.sendZeroCopy({ path: FILE })
//       fastify-static                      @fastify/static, GET /body -> reply.sendFile(FILE)
//       fastify-sendfile                    the ceiling: Fastify, corked headers, sendfile(2) on the main thread
//                                           (bench/native/sendfile.c, built by run.js; its path in
//                                           BENCH_SENDFILE_ADDON). Not a product: it blocks the loop.
// SIZE: bytes ("262144", "256k", "4m"). The body is bench/body.js's deterministic buffer,
//       built once at start; the file kinds serve --file FILE instead (written by run.js).
//
// Prints "READY <port>" on stdout once listening. GET /__stats answers the plugin's stats
// (null for fastify-send) plus the server's own error counters, as JSON; SIGUSR2 prints the
// same JSON on stdout as "STATS <json>". SIGTERM/SIGINT close the server and exit.
const { makeBody, parseSize } = require('./body')

const fs = require('node:fs')
const path = require('node:path')

const KINDS = ['zc-auto', 'zc-auto-classic', 'zc-send_zc', 'zc-send', 'zc-stream', 'fastify-send', 'zc-file', 'zc-file-classic', 'fastify-static', 'fastify-sendfile']

function parseArgs (argv, env) {
  const opts = {
    kind: env.BENCH_KIND,
    size: env.BENCH_SIZE,
    slice: env.BENCH_SLICE,
    depth: env.BENCH_DEPTH,
    threshold: env.BENCH_THRESHOLD,
    port: env.BENCH_PORT ?? '0',
    file: env.BENCH_FILE
  }
  const positional = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const m = /^--(slice|depth|threshold|port|kind|size|file)(?:=(.*))?$/.exec(a)
    if (m !== null) {
      const value = m[2] ?? argv[++i]
      if (value === undefined) throw new Error(`${a} needs a value`)
      opts[m[1]] = value
    } else if (a.startsWith('--')) {
      throw new Error(`unknown option ${a}`)
    } else {
      positional.push(a)
    }
  }
  if (positional[0] !== undefined) opts.kind = positional[0]
  if (positional[1] !== undefined) opts.size = positional[1]
  if (!KINDS.includes(opts.kind)) throw new Error(`kind must be one of ${KINDS.join(', ')}; got ${opts.kind}`)
  if (opts.size === undefined) throw new Error('body size missing')
  return {
    kind: opts.kind,
    size: parseSize(opts.size),
    slice: opts.slice === undefined ? undefined : parseSize(opts.slice),
    depth: opts.depth === undefined ? undefined : Number(opts.depth),
    threshold: opts.threshold === undefined ? undefined : parseSize(opts.threshold),
    port: Number(opts.port),
    file: opts.file
  }
}

async function main () {
  let args
  try {
    args = parseArgs(process.argv.slice(2), process.env)
  } catch (err) {
    process.stderr.write(`server.js: ${err.message}\n`)
    process.exit(2)
  }
  // The '-classic' kinds are their base kind on the classic engine.
  const classic = args.kind.endsWith('-classic')
  const kind = classic ? args.kind.slice(0, -'-classic'.length) : args.kind
  const engine = classic ? { engine: 'classic' } : {}
  const isFile = kind === 'zc-file' || kind === 'fastify-static' || kind === 'fastify-sendfile'
  if (isFile && args.file === undefined) throw new Error(`${args.kind} needs --file`)
  const body = isFile ? null : makeBody(args.size)
  const fastify = require('fastify')({ logger: false })
  const server = { errors: 0, lastError: null, clientErrors: 0, lastClientError: null }
  let sendfileWaits = null // the ceiling kind: times sendfile(2) found the socket full

  // Runs only when a request fails, so costs nothing on the measured path.
  fastify.addHook('onError', async (request, reply, error) => {
    server.errors++
    server.lastError = `${error.code ?? ''} ${error.message}`.trim()
  })
  fastify.server.on('clientError', (err) => {
    server.clientErrors++
    server.lastClientError = `${err.code ?? ''} ${err.message}`.trim()
  })

  const zc = args.kind.startsWith('zc-')
  if (kind === 'zc-file') {
    const options = process.env.BENCH_FILE_CHUNK === undefined ? { ...engine } : { ...engine, fileChunk: parseSize(process.env.BENCH_FILE_CHUNK) }
    if (args.depth !== undefined) options.depth = args.depth
    await fastify.register(require(process.env.BENCH_PLUGIN || '..'), options)
    const file = { path: path.resolve(args.file) }
    fastify.get('/body', (request, reply) => reply.sendZeroCopy(file))
  } else if (kind === 'fastify-static') {
    await fastify.register(require('@fastify/static'), { root: path.dirname(path.resolve(args.file)), serve: false })
    const name = path.basename(args.file)
    fastify.get('/body', (request, reply) => reply.sendFile(name))
  } else if (kind === 'fastify-sendfile') {
    const native = require(process.env.BENCH_SENDFILE_ADDON ?? path.join(__dirname, 'results', 'tmp', 'sendfile.node'))
    const file = path.resolve(args.file)
    sendfileWaits = () => native.waits()
    fastify.get('/body', (request, reply) => {
      // What the plugin does per request, minus everything it does to stay off the main thread:
      // open, fstat, the same headers (corked, as the plugin's are), then the kernel's cheapest
      // path on the calling thread.
      const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
      try {
        const stat = fs.fstatSync(fd)
        reply.hijack()
        const res = reply.raw
        const socketFd = res.socket._handle.fd
        native.cork(socketFd, true) // the headers leave with the body's first bytes, as nginx's do
        res.writeHead(200, {
          'accept-ranges': 'bytes',
          'cache-control': 'public, max-age=0',
          'last-modified': stat.mtime.toUTCString(),
          etag: `W/"${stat.size.toString(16)}-${stat.mtime.getTime().toString(16)}"`,
          'content-type': 'application/octet-stream',
          'content-length': stat.size
        })
        res.flushHeaders()
        const sent = native.sendfile(socketFd, fd, 0, stat.size)
        native.cork(socketFd, false)
        if (sent === stat.size) res.end()
        else res.destroy()
      } finally {
        fs.closeSync(fd)
      }
    })
  } else if (zc) {
    // BENCH_PLUGIN: the package root to load (bench/run.js passes its release snapshot).
    const plugin = require(process.env.BENCH_PLUGIN || '..')
    const mode = kind.slice(3)
    const options = mode === 'auto' ? { ...engine } : { ...engine, mode, whenCopied: 'keep' }
    if (args.slice !== undefined) options.sliceSize = args.slice
    if (args.depth !== undefined) options.depth = args.depth
    if (args.threshold !== undefined) options.threshold = args.threshold
    await fastify.register(plugin, options)
    fastify.get('/body', (request, reply) => {
      reply.sendZeroCopy(body)
    })
  } else {
    fastify.get('/body', (request, reply) => {
      reply.header('content-type', 'application/octet-stream')
      reply.send(body)
    })
  }

  const snapshot = () => ({
    kind: args.kind,
    size: args.size,
    pid: process.pid,
    capabilities: zc ? fastify.zeroCopy.capabilities : null,
    stats: zc ? fastify.zeroCopy.stats() : null,
    server: sendfileWaits === null ? server : { ...server, sendfileWaits: sendfileWaits() }
  })
  fastify.get('/__stats', (request, reply) => {
    reply.send(snapshot())
  })
  process.on('SIGUSR2', () => {
    process.stdout.write(`STATS ${JSON.stringify(snapshot())}\n`)
  })

  let closing = false
  const close = () => {
    if (closing) return
    closing = true
    // Keep-alive clients (wrk) are gone by now; don't wait on idle sockets.
    fastify.server.closeAllConnections?.()
    fastify.close().then(() => process.exit(0), (err) => {
      process.stderr.write(`server.js: close failed: ${err.stack}\n`)
      process.exit(1)
    })
  }
  process.on('SIGTERM', close)
  process.on('SIGINT', close)

  await fastify.listen({ host: '127.0.0.1', port: args.port })
  process.stdout.write(`READY ${fastify.server.address().port}\n`)
}

main().catch((err) => {
  process.stderr.write(`server.js: ${err.stack}\n`)
  process.exit(1)
})
