'use strict'
// The drop-in: one application, written for @fastify/static, run once with it and once with
// fastify-zero-copy/static in its place (the require swapped, nothing else), the same requests
// to both. Four registrations: two roots and prefixes (decorateReply: false after the first),
// one whose allowedPath refuses a page reached by extension and an index file, one under a
// parametric prefix (`/:tenant/files/`); routes of the app's own with reply.sendFile and
// reply.download, index files, extensions, redirect, ranges, HEAD and conditionals. What must
// agree: the status, the body's bytes, and the headers a client acts on. Where the two differ
// on purpose they are asserted as such: dotfiles by default, and If-Range, compared strongly
// here (RFC 9110 13.1.5) where send takes a weak ETag as a match.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const { sha256 } = require('./helpers')
const { buildTree, rawRequest } = require('./static-tree')

/** The application, as its authors wrote it for @fastify/static. */
async function app (fastifyStatic, tree) {
  const fastify = Fastify({ logger: false })
  await fastify.register(fastifyStatic, {
    root: tree.root,
    prefix: '/assets/',
    index: ['index.html'],
    extensions: ['html'],
    redirect: true,
    maxAge: '1h',
    setHeaders (reply, file) {
      if (file.endsWith('.bin')) reply.header('x-kind', 'binary')
    }
  })
  await fastify.register(fastifyStatic, { root: tree.root2, prefix: '/second/', decorateReply: false, immutable: true, maxAge: 86400000 })
  // allowedPath with extensions and index files: it judges the name opened, not only the one asked for.
  await fastify.register(fastifyStatic, {
    root: tree.root,
    prefix: '/gated/',
    decorateReply: false,
    index: ['index.html'],
    extensions: ['html'],
    allowedPath: (pathname) => pathname !== '/page.html' && pathname !== '/sub/index.html'
  })
  // A parametric prefix: the names below start after the parameter's segment.
  await fastify.register(fastifyStatic, { root: tree.root, prefix: '/:tenant/files/', decorateReply: false, redirect: true })
  fastify.get('/own/file', (req, reply) => reply.sendFile('sub/deep/x.bin'))
  fastify.get('/own/other-root', (req, reply) => reply.sendFile('only2.txt', tree.root2))
  fastify.get('/own/download', (req, reply) => reply.download('with space.txt', 'résumé "final".txt'))
  fastify.get('/own/no-cache', (req, reply) => reply.sendFile('small.txt', { cacheControl: false, lastModified: false }))
  fastify.get('/own/json', async () => ({ ok: true }))
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  return fastify
}

const COMPARED = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'cache-control', 'last-modified', 'content-disposition', 'location', 'x-kind']

// [target, request headers]; a case that names the file's ETag gets it from a first response.
const CASES = [
  ['/assets/small.txt'],
  ['/assets/big.bin'],
  ['/assets/sub/deep/x.bin'],
  ['/assets/with%20space.txt'],
  ['/assets/100%25.txt'],
  ['/assets/%C3%BCn%C3%AFc%C3%B8d%C3%A9-%F0%9F%98%80.txt'],
  ['/assets/empty.txt'],
  ['/assets/'],
  ['/assets/sub/'],
  ['/assets/sub'],
  ['/assets/sub?x=1'],
  ['/assets/page'],
  ['/assets/link-in'],
  ['/assets/missing.txt'],
  ['/assets/noindex/'],
  ['/assets/big.bin', { range: 'bytes=0-99' }],
  ['/assets/big.bin', { range: 'bytes=-1000' }],
  ['/assets/big.bin', { range: 'bytes=300000-' }],
  ['/assets/small.txt', { range: 'bytes=1000-2000' }],
  ['/assets/big.bin', { range: 'bytes=5-1,0-3' }],
  ['/assets/big.bin', { 'if-modified-since': 'FUTURE' }],
  ['/assets/big.bin', { 'if-none-match': 'ETAG' }],
  ['/assets/big.bin', { 'if-range': 'ETAG', range: 'bytes=10-19' }, 'weak-if-range'],
  ['/assets/big.bin', { 'if-range': 'FUTURE', range: 'bytes=10-19' }],
  ['/gated/page'],
  ['/gated/page.html'],
  ['/gated/sub/'],
  ['/gated/sub'],
  ['/gated/sub/index.html'],
  ['/gated/'],
  ['/gated/small.txt'],
  ['/gated/sub/deep/x.bin'],
  ['/acme/files/small.txt'],
  ['/acme/files/big.bin', { range: 'bytes=10-99' }],
  ['/a%20b/files/sub/deep/x.bin'],
  ['/acme/files/sub'],
  ['/acme/files/sub?x=1'],
  ['/acme/files/sub/'],
  ['/acme/files/'],
  ['/acme/files/page.html'],
  ['/acme/files/missing.txt'],
  ['/acme/files/../small.txt'],
  ['/../files/small.txt'],
  ['/second/only2.txt'],
  ['/second/small.txt'],
  ['/second/big.bin'],
  ['/own/file'],
  ['/own/other-root'],
  ['/own/download'],
  ['/own/no-cache'],
  ['/own/json']
]

test('an application written for @fastify/static answers the same with fastify-zero-copy/static in its place', async (t) => {
  const tree = buildTree(t)
  const future = new Date(Date.now() + 3600e3).toUTCString()
  const servers = {
    '@fastify/static': await app(require('@fastify/static'), tree),
    'fastify-zero-copy/static': await app(require('fastify-zero-copy/static'), tree)
  }
  t.teardown(() => Promise.all(Object.values(servers).map((s) => s.close())))
  for (const method of ['GET', 'HEAD']) {
    for (const [target, given = {}, differs] of CASES) {
      const answers = {}
      for (const [name, server] of Object.entries(servers)) {
        const port = server.server.address().port
        const headers = { ...given }
        for (const h of ['if-modified-since', 'if-range']) {
          if (headers[h] === 'FUTURE') headers[h] = future
        }
        for (const h of ['if-none-match', 'if-range']) {
          if (headers[h] === 'ETAG') headers[h] = (await rawRequest(port, target)).headers.etag
        }
        answers[name] = await rawRequest(port, target, { method, headers })
      }
      const ref = answers['@fastify/static']
      const ours = answers['fastify-zero-copy/static']
      const label = `${method} ${target} ${JSON.stringify(given)}`
      t.ok(ours.valid, `${label}: a valid response`)
      if (differs === 'weak-if-range') {
        // send's ETag is weak (W/"..."): @fastify/static answers the range, this plugin the whole file.
        t.match(ref.headers.etag, /^W\//, `${label}: the ETag is weak`)
        t.equal(ref.status, 206, `${label}: @fastify/static: 206`)
        t.equal(ours.status, 200, `${label}: here 200, the whole file`)
        if (method === 'GET') t.equal(sha256(ours.body), sha256(tree.files['big.bin']), `${label}: the whole file's bytes`)
        continue
      }
      t.equal(ours.status, ref.status, `${label}: status ${ref.status}`)
      if (ref.status < 300) {
        t.equal(sha256(ours.body), sha256(ref.body), `${label}: the same bytes`)
        for (const h of COMPARED) t.equal(ours.headers[h], ref.headers[h], `${label}: ${h}`)
      } else if (ref.status === 416) {
        // The error's JSON body names each plugin's own code; what a client reads is the range.
        t.equal(ours.headers['content-range'], ref.headers['content-range'], `${label}: content-range`)
      }
      if (ref.status === 301 || ref.status === 302) t.equal(ours.headers.location, ref.headers.location, `${label}: location`)
    }
  }
  // Beyond the table: the file the app's route sends is the file on disk.
  const own = await rawRequest(servers['fastify-zero-copy/static'].server.address().port, '/own/file')
  t.equal(sha256(own.body), sha256(fs.readFileSync(path.join(tree.root, 'sub/deep/x.bin'))))
})

test('the one deliberate difference of defaults: dotfiles (@fastify/static serves .env, this plugin does not)', async (t) => {
  const tree = buildTree(t)
  const ref = await app(require('@fastify/static'), tree)
  const ours = await app(require('fastify-zero-copy/static'), tree)
  t.teardown(() => Promise.all([ref.close(), ours.close()]))
  const a = await rawRequest(ref.server.address().port, '/assets/.env')
  const b = await rawRequest(ours.server.address().port, '/assets/.env')
  t.equal(a.status, 200, '@fastify/static: .env served (its default dotfiles: allow)')
  t.equal(b.status, 404, 'fastify-zero-copy/static: a 404 (default dotfiles: ignore)')
  t.notOk(b.body.includes(tree.canary), 'not one byte of it')
})
