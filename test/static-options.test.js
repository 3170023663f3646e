'use strict'
// fastify-zero-copy/static, option by option and decorator by decorator, against a real tree
// (test/static-tree.js) on real servers; @fastify/static's behaviour is the reference.
const fs = require('node:fs')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { test } = require('tap')
const Fastify = require('fastify')
const serveStatic = require('fastify-zero-copy/static')
const { sha256, request, fdsUnder } = require('./helpers')
const { buildTree, rawRequest } = require('./static-tree')

async function start (t, register, { fastify } = {}) {
  const app = Fastify({ logger: false, ...fastify })
  await register(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: app.server.address().port }
}

function simple (t, tree, opts = {}, setup) {
  return start(t, async (app) => {
    await app.register(serveStatic, { root: tree.root, prefix: '/assets/', ...opts })
    if (setup) await setup(app)
  })
}

async function get (t, port, target, want, opts) {
  const res = await rawRequest(port, target, opts)
  t.ok(res.valid, `${target}: valid`)
  if (typeof want === 'number') {
    t.equal(res.status, want, `${target}: ${want}`)
  } else {
    t.equal(res.status, 200, `${target}: 200`)
    t.equal(sha256(res.body), sha256(want), `${target}: the file's bytes`)
  }
  return res
}

test('registers the core plugin when the app has not; the large file goes by the native path', async (t) => {
  const tree = buildTree(t)
  const { app, port } = await simple(t, tree)
  t.ok(app.zeroCopy, 'app.zeroCopy is there')
  const res = await get(t, port, '/assets/big.bin', tree.files['big.bin'])
  t.equal(res.headers['content-length'], String(tree.files['big.bin'].length))
  const stats = app.zeroCopy.stats()
  if (app.zeroCopy.capabilities.mode !== 'stream') {
    t.equal(stats.responses.stream, 0, 'nothing went by Node')
    t.ok(stats.bytes.splice + stats.bytes.sendfile >= tree.files['big.bin'].length, 'the file went by splice or sendfile')
  }
  await get(t, port, '/assets/small.txt', tree.files['small.txt'])
})

test('names with spaces, % and unicode; empty files; HEAD; ranges; conditionals', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree)
  await get(t, port, '/assets/with%20space.txt', tree.files['with space.txt'])
  await get(t, port, '/assets/100%25.txt', tree.files['100%.txt'])
  await get(t, port, '/assets/' + encodeURIComponent('ünïcødé-😀.txt'), tree.files['ünïcødé-😀.txt'])
  const empty = await get(t, port, '/assets/empty.txt', tree.files['empty.txt'])
  t.equal(empty.headers['content-length'], '0')
  const head = await rawRequest(port, '/assets/big.bin', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers['content-length'], String(tree.files['big.bin'].length))
  t.equal(head.body.length, 0, 'HEAD: no body')
  const part = await rawRequest(port, '/assets/big.bin', { headers: { range: 'bytes=1000-200999' } })
  t.equal(part.status, 206)
  t.equal(part.headers['content-range'], `bytes 1000-200999/${tree.files['big.bin'].length}`)
  t.equal(sha256(part.body), sha256(tree.files['big.bin'].subarray(1000, 201000)))
  const again = await rawRequest(port, '/assets/big.bin', { headers: { 'if-none-match': part.headers.etag } })
  t.equal(again.status, 304)
  await get(t, port, '/assets/nope.txt', 404)
  await get(t, port, '/assets/dangling', 404)
})

test('root: a file: URL; an array (the first root that has the name wins)', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, async (app) => {
    await app.register(serveStatic, { root: [pathToFileURL(tree.root), tree.root2], prefix: '/assets/' })
  })
  await get(t, port, '/assets/small.txt', tree.files['small.txt'])
  await get(t, port, '/assets/only2.txt', fs.readFileSync(path.join(tree.root2, 'only2.txt')))
})

test('root: checked at registration', async (t) => {
  const tree = buildTree(t)
  // @fastify/static's codes (test/static-names.test.js checks its messages).
  for (const [root, code] of [[undefined, 'FST_STATIC_INVALID_OPTION'], ['relative/dir', 'FST_STATIC_INVALID_OPTION'],
    [path.join(tree.root, 'small.txt'), 'FST_STATIC_INVALID_OPTION'], [[tree.root, tree.root], 'FST_STATIC_INVALID_OPTION'], [[], 'FST_STATIC_INVALID_OPTION']]) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, { root }).ready(), { code }, `root ${JSON.stringify(root)}: ${code}`)
    await app.close()
  }
  // A later root that fails closes the ones opened before it.
  const before = fdsUnder(tree.dir)
  for (let i = 0; i < 3; i++) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, { root: [tree.root, tree.root2, path.join(tree.root, 'small.txt')] }).ready(), { code: 'FST_STATIC_INVALID_OPTION' })
    await app.close()
    const bad = Fastify({ logger: false })
    await t.rejects(bad.register(serveStatic, { root: [tree.root, tree.root2], prefix: '//evil' }).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION' })
    t.equal(fdsUnder(tree.dir), before, 'no root descriptor left by a bad prefix, before close()')
    await bad.close()
  }
  t.equal(fdsUnder(tree.dir), before, 'no root descriptor left by a failed registration')
  // As @fastify/static: a root that does not exist is a warning, and a 404 for every request.
  const { port } = await simple(t, { root: path.join(tree.dir, 'missing') })
  await get(t, port, '/assets/small.txt', 404)
})

test('prefix, prefixAvoidTrailingSlash, and an encapsulation prefix', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, async (app) => {
    await app.register(serveStatic, { root: tree.root, prefix: '/a' })
    await app.register(serveStatic, { root: tree.root2, prefix: '/b', prefixAvoidTrailingSlash: true, decorateReply: false })
    await app.register(async (child) => {
      await child.register(serveStatic, { root: tree.root, prefix: '/files/', decorateReply: false })
    }, { prefix: '/v1' })
  })
  await get(t, port, '/a/small.txt', tree.files['small.txt'])
  await get(t, port, '/b/only2.txt', fs.readFileSync(path.join(tree.root2, 'only2.txt')))
  await get(t, port, '/v1/files/sub/index.html', tree.files['sub/index.html'])
  await get(t, port, '/v1/files/../small.txt', 403)
})

test('two registrations with two roots and prefixes (decorateReply: false on the second) beside routes of the app', async (t) => {
  const tree = buildTree(t)
  const { app, port } = await start(t, async (app) => {
    await app.register(serveStatic, { root: tree.root, prefix: '/one/' })
    await app.register(serveStatic, { root: tree.root2, prefix: '/two/', decorateReply: false })
    app.get('/own', (req, reply) => reply.sendFile('small.txt'))
    app.get('/json', async () => ({ ok: true }))
  })
  await get(t, port, '/one/small.txt', tree.files['small.txt'])
  await get(t, port, '/two/small.txt', fs.readFileSync(path.join(tree.root2, 'small.txt')))
  await get(t, port, '/own', tree.files['small.txt'])
  const json = await request(port, '/json')
  t.equal(json.status, 200)
  t.ok(app.hasReplyDecorator('sendFile'))
})

test('decorateReply: false leaves no decorators; serve: false registers no route', async (t) => {
  const tree = buildTree(t)
  const { app, port } = await start(t, async (app) => {
    await app.register(serveStatic, { root: tree.root, serve: false })
    app.get('/x', (req, reply) => reply.sendFile('sub/index.html'))
  })
  await get(t, port, '/small.txt', 404)
  await get(t, port, '/x', tree.files['sub/index.html'])
  t.ok(app.hasReplyDecorator('download'))
  const bare = Fastify({ logger: false })
  await bare.register(serveStatic, { root: tree.root, decorateReply: false })
  await bare.ready()
  t.notOk(bare.hasReplyDecorator('sendFile'))
  t.notOk(bare.hasReplyDecorator('download'))
  await bare.close()
})

test('schemaHide, constraints, logLevel reach the route', async (t) => {
  const tree = buildTree(t)
  const routes = []
  const { port } = await start(t, async (app) => {
    app.addHook('onRoute', (r) => routes.push(r))
    await app.register(serveStatic, { root: tree.root, prefix: '/h/', constraints: { host: 'files.example' }, logLevel: 'warn' })
    await app.register(serveStatic, { root: tree.root2, prefix: '/s/', schemaHide: false, decorateReply: false })
  })
  const h = routes.find((r) => r.url === '/h/*' && r.method.includes('GET'))
  t.equal(h.schema.hide, true, 'hidden by default')
  t.equal(h.logLevel, 'warn')
  t.equal(routes.find((r) => r.url === '/s/*').schema.hide, false)
  await get(t, port, '/h/small.txt', 404)
  await get(t, port, '/h/small.txt', tree.files['small.txt'], { headers: { host: 'files.example' } })
})

test('setHeaders: called with the reply (as @fastify/static 10), the file\'s absolute path and its stat', async (t) => {
  const tree = buildTree(t)
  const calls = []
  const { port } = await simple(t, tree, {
    setHeaders: (reply, file, stat) => {
      calls.push({ file, size: stat.size })
      reply.header('x-served', 'yes')
      reply.raw.setHeader('x-raw', 'too') // what a callback written for 9 (which passed reply.raw) does
    }
  })
  const res = await get(t, port, '/assets/sub/', tree.files['sub/index.html'])
  t.equal(res.headers['x-served'], 'yes')
  t.equal(res.headers['x-raw'], 'too')
  t.same(calls, [{ file: path.join(tree.root, 'sub/index.html'), size: tree.files['sub/index.html'].length }])
  const app = Fastify({ logger: false })
  await t.rejects(app.register(serveStatic, { root: tree.root, setHeaders: 'no' }).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION' })
  await app.close()
})

test('redirect: false serves a directory\'s index without a slash; true redirects', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree)
  await get(t, port, '/assets/sub', tree.files['sub/index.html'])
  await get(t, port, '/assets/noindex', 404)
  await get(t, port, '/assets/noindex/', 404)
  await get(t, port, '/assets/', tree.files['index.html'])
  const r = await simple(t, tree, { redirect: true, prefix: '/r/', decorateReply: false })
  const res = await rawRequest(r.port, '/r/sub/deep?q=1')
  t.equal(res.status, 301)
  t.equal(res.headers.location, '/r/sub/deep/?q=1')
})

test('wildcard: false: a route per file found at registration, one per directory with an index', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree, { wildcard: false, redirect: true })
  await get(t, port, '/assets/small.txt', tree.files['small.txt'])
  await get(t, port, '/assets/sub/deep/x.bin', tree.files['sub/deep/x.bin'])
  await get(t, port, '/assets/sub/', tree.files['sub/index.html'])
  // redirect: true, as @fastify/static: the bare name is a 301 to the slashed one.
  const bare = await rawRequest(port, '/assets/sub?q=1')
  t.equal(bare.status, 301)
  t.equal(bare.headers.location, '/assets/sub/?q=1')
  await get(t, port, '/assets/link-in', tree.files['big.bin'])
  await get(t, port, '/assets/link-out', 404)
  await get(t, port, '/assets/.env', 404)
  fs.writeFileSync(path.join(tree.root, 'later.txt'), 'added after registration\n')
  await get(t, port, '/assets/later.txt', 404)
  // A file replaced by a symlink out after registration: its route opens beneath the root still.
  fs.rmSync(path.join(tree.root, 'page.html'))
  fs.symlinkSync('../outside/canary.txt', path.join(tree.root, 'page.html'))
  await get(t, port, '/assets/page.html', 404)
})

test('allowedPath: called with the resolved path, the root and the request', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree, { allowedPath: (p, root, req) => root === tree.root && req.headers['x-ok'] === '1' && p === '/small.txt' })
  await get(t, port, '/assets/small.txt', 404)
  await get(t, port, '/assets/small.txt', tree.files['small.txt'], { headers: { 'x-ok': '1' } })
  await get(t, port, '/assets/sub/', 404, { headers: { 'x-ok': '1' } })
})

test('index: false, a name, an array', async (t) => {
  const tree = buildTree(t)
  const none = await simple(t, tree, { index: false })
  await get(t, none.port, '/assets/', 403) // as @fastify/static (send): a directory asked for as one
  await get(t, none.port, '/assets/sub', 404)
  const one = await simple(t, tree, { index: 'page.html', prefix: '/p/', decorateReply: false })
  await get(t, one.port, '/p/', tree.files['page.html'])
  const list = await simple(t, tree, { index: ['missing.html', 'index.html'], prefix: '/l/', decorateReply: false })
  await get(t, list.port, '/l/sub/', tree.files['sub/index.html'])
})

test('dotfiles: ignore (the default: 404), deny (403), allow', async (t) => {
  const tree = buildTree(t)
  const def = await simple(t, tree)
  await get(t, def.port, '/assets/.env', 404)
  const deny = await simple(t, tree, { dotfiles: 'deny', prefix: '/d/', decorateReply: false })
  await get(t, deny.port, '/d/.env', 403)
  await get(t, deny.port, '/d/.git/config', 403)
  const allow = await simple(t, tree, { dotfiles: 'allow', prefix: '/a/', decorateReply: false })
  const res = await rawRequest(allow.port, '/a/.env')
  t.equal(res.status, 200, 'allowed: a dotfile under the root is served')
  t.equal(sha256(res.body), sha256(tree.canary))
})

test('extensions: tried in order for a name without one', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree, { extensions: ['htm', 'html'] })
  await get(t, port, '/assets/page', tree.files['page.html'])
  await get(t, port, '/assets/nope', 404)
})

test('acceptRanges, cacheControl, maxAge, immutable, contentType, etag, lastModified', async (t) => {
  const tree = buildTree(t)
  const def = await simple(t, tree)
  const d = await get(t, def.port, '/assets/small.txt', tree.files['small.txt'])
  t.equal(d.headers['accept-ranges'], 'bytes')
  t.equal(d.headers['cache-control'], 'public, max-age=0')
  t.equal(d.headers['content-type'], 'text/plain; charset=utf-8')
  t.match(d.headers.etag, /^W\/"/)
  t.ok(d.headers['last-modified'])
  const off = await simple(t, tree, { prefix: '/o/', decorateReply: false, acceptRanges: false, cacheControl: false, contentType: false, etag: false, lastModified: false })
  const o = await rawRequest(off.port, '/o/big.bin', { headers: { range: 'bytes=0-9' } })
  t.equal(o.status, 200, 'acceptRanges: false ignores Range')
  t.equal(sha256(o.body), sha256(tree.files['big.bin']))
  for (const h of ['accept-ranges', 'cache-control', 'content-type', 'etag', 'last-modified']) t.notOk(o.headers[h], `no ${h}`)
  const age = await simple(t, tree, { prefix: '/m/', decorateReply: false, maxAge: '1d', immutable: true })
  const m = await get(t, age.port, '/m/small.txt', tree.files['small.txt'])
  t.equal(m.headers['cache-control'], 'public, max-age=86400, immutable')
  const ms = await simple(t, tree, { prefix: '/n/', decorateReply: false, maxAge: 5000 })
  t.equal((await get(t, ms.port, '/n/small.txt', tree.files['small.txt'])).headers['cache-control'], 'public, max-age=5')
})

test('symlinks: none follows none; follow follows every one (the application\'s choice)', async (t) => {
  const tree = buildTree(t)
  const none = await simple(t, tree, { symlinks: 'none' })
  await get(t, none.port, '/assets/link-in', 404)
  await get(t, none.port, '/assets/small.txt', tree.files['small.txt'])
  const follow = await simple(t, tree, { symlinks: 'follow', prefix: '/f/', decorateReply: false })
  const res = await rawRequest(follow.port, '/f/link-out')
  t.equal(res.status, 200)
  t.equal(sha256(res.body), sha256(tree.canary))
  await get(t, follow.port, '/f/../canary.txt', 403)
})

test('reply.sendFile(name), (name, root), (name, options), (name, root, options)', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree, {}, (app) => {
    app.get('/a', (req, reply) => reply.sendFile('sub/deep/x.bin'))
    app.get('/b', (req, reply) => reply.sendFile('only2.txt', tree.root2))
    app.get('/c', (req, reply) => reply.sendFile('small.txt', { maxAge: '2h', immutable: true }))
    app.get('/d', (req, reply) => reply.sendFile('small.txt', tree.root2, { cacheControl: false }))
    app.get('/e', (req, reply) => reply.sendFile('../canary.txt'))
    app.get('/f', (req, reply) => reply.sendFile('.env'))
    app.get('/g', (req, reply) => reply.sendFile('.env', { dotfiles: 'allow' }))
    app.get('/h', async (req, reply) => reply.sendFile('big.bin'))
    app.get('/i', (req, reply) => reply.code(404).sendFile('small.txt'))
    app.get('/j', (req, reply) => reply.sendFile('small.txt', 'relative'))
  })
  await get(t, port, '/a', tree.files['sub/deep/x.bin'])
  await get(t, port, '/b', fs.readFileSync(path.join(tree.root2, 'only2.txt')))
  t.equal((await get(t, port, '/c', tree.files['small.txt'])).headers['cache-control'], 'public, max-age=7200, immutable')
  const d = await get(t, port, '/d', fs.readFileSync(path.join(tree.root2, 'small.txt')))
  t.notOk(d.headers['cache-control'])
  await get(t, port, '/e', 403)
  await get(t, port, '/f', 404)
  await get(t, port, '/g', tree.canary)
  await get(t, port, '/h', tree.files['big.bin'])
  const i = await rawRequest(port, '/i')
  t.equal(i.status, 404, 'a status set by the handler is kept')
  t.equal(sha256(i.body), sha256(tree.files['small.txt']))
  await get(t, port, '/j', 500)
})

test('reply.download(name), (name, filename), (name, options)', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree, {}, (app) => {
    app.get('/a', (req, reply) => reply.download('sub/deep/x.bin'))
    app.get('/b', (req, reply) => reply.download('small.txt', 'résumé "final".txt'))
    app.get('/c', (req, reply) => reply.download('only2.txt', { root: tree.root2 }))
  })
  const a = await get(t, port, '/a', tree.files['sub/deep/x.bin'])
  t.equal(a.headers['content-disposition'], 'attachment; filename=x.bin', 'the base name, as @fastify/static 10 writes it')
  const b = await get(t, port, '/b', tree.files['small.txt'])
  t.equal(b.headers['content-disposition'], 'attachment; filename="r?sum? \\"final\\".txt"; filename*=UTF-8\'\'r%C3%A9sum%C3%A9%20%22final%22.txt')
  const c = await get(t, port, '/c', fs.readFileSync(path.join(tree.root2, 'only2.txt')))
  t.equal(c.headers['content-disposition'], 'attachment; filename=only2.txt') // a token: unquoted, as the content-disposition package writes it
})

test('list, preCompressed and globIgnore: a value of the wrong type is refused at registration', async (t) => {
  const tree = buildTree(t)
  for (const opt of [{ list: 'yes' }, { preCompressed: 'yes' }, { globIgnore: 5 }]) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, { root: tree.root, ...opt }).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION' })
    await app.close()
  }
})

test('the ESM entry', async (t) => {
  const mod = await import('fastify-zero-copy/static')
  t.equal(mod.default, serveStatic)
  t.equal(mod.fastifyStatic, serveStatic)
})

test('onFile (as @fastify/static 10): the chosen file\'s absolute path and stat, awaited, after allowedPath; a throw or a rejection refuses it', async (t) => {
  const tree = buildTree(t)
  const seen = []
  const { port } = await simple(t, tree, {
    allowedPath: (p) => p !== '/page.html',
    onFile: async (file, stat) => {
      seen.push([file, stat.size])
      await new Promise((resolve) => setTimeout(resolve, 5))
      if (file.endsWith('small.txt')) throw Object.assign(new Error('refused by onFile'), { statusCode: 403 })
    }
  }, async (app) => {
    app.get('/call', (req, reply) => reply.sendFile('sub/index.html', { onFile () { throw new Error('per call') } }))
  })
  await get(t, port, '/assets/big.bin', tree.files['big.bin'])
  await get(t, port, '/assets/sub/', tree.files['sub/index.html'])
  const refused = await get(t, port, '/assets/small.txt', 403)
  t.match(refused.body.toString(), /refused by onFile/)
  await get(t, port, '/assets/page.html', 404) // allowedPath first: onFile not called
  await get(t, port, '/call', 500)
  t.same(seen, [
    [path.join(tree.root, 'big.bin'), tree.files['big.bin'].length],
    [path.join(tree.root, 'sub/index.html'), tree.files['sub/index.html'].length],
    [path.join(tree.root, 'small.txt'), tree.files['small.txt'].length]
  ])
  const app = Fastify({ logger: false })
  await t.rejects(app.register(serveStatic, { root: tree.root, onFile: 'no' }).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION' })
  await app.close()
})

test('a file named with a trailing slash is not there (404, as send answers ENOTDIR)', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree)
  await get(t, port, '/assets/small.txt/', 404)
  await get(t, port, '/assets/big.bin/', 404)
  await get(t, port, '/assets/sub/', tree.files['sub/index.html'])
})

test('serveDotFiles (wildcard: false: routes for dot paths, the policy still decides) and suppressWarning', async (t) => {
  const tree = buildTree(t)
  const { port } = await simple(t, tree, { wildcard: false, dotfiles: 'allow' })
  await get(t, port, '/assets/.env', 404) // no route: as @fastify/static 10 without serveDotFiles
  const dot = await simple(t, tree, { wildcard: false, dotfiles: 'allow', serveDotFiles: true })
  await get(t, dot.port, '/assets/.hidden/file.txt', fs.readFileSync(path.join(tree.root, '.hidden/file.txt')))
  const ignored = await simple(t, tree, { wildcard: false, serveDotFiles: true })
  await get(t, ignored.port, '/assets/.env', 404) // a route, but 'ignore' (the default) hides it
  for (const suppressWarning of [false, true]) {
    const lines = []
    const stream = { write (line) { lines.push(JSON.parse(line)) } }
    const app = Fastify({ logger: { level: 'warn', stream } })
    await app.register(serveStatic, { root: path.join(tree.dir, 'missing'), suppressWarning })
    await app.ready()
    t.equal(lines.filter((l) => /must exist/.test(l.msg)).length, suppressWarning ? 0 : 1, `suppressWarning ${suppressWarning}`)
    await app.close()
  }
  const app = Fastify({ logger: false })
  await t.rejects(app.register(serveStatic, { root: tree.root, serveDotFiles: 'yes' }).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION' })
  await app.close()
})
