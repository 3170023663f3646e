'use strict'
// Details of @fastify/static an application may lean on, each asked of @fastify/static and of
// fastify-zero-copy/static in its place (the same app, the same requests): the answers must
// agree on the status, the body's bytes and the headers named.
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const upstream = require('@fastify/static')
const ours = require('../dist/plugin/static')
const { buildTree, rawRequest, sha256 } = require('./static-tree')

const HEADERS = ['content-type', 'content-length', 'content-disposition', 'cache-control', 'vary', 'content-encoding', 'location']

/**
 * Runs `setup(fastify, plugin)` with each plugin, asks each `requests`, compares the answers.
 * `errorBodies: false`: an error's JSON body is not compared (this plugin's carry a code).
 */
async function compare (t, tree, setup, requests, { errorBodies = true } = {}) {
  const answers = []
  for (const plugin of [upstream, ours]) {
    const app = Fastify({ logger: false })
    const seen = await setup(app, plugin)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = app.server.address().port
    const got = []
    for (const r of requests) {
      const { target, method = 'GET', headers = {} } = typeof r === 'string' ? { target: r } : r
      const res = await rawRequest(port, target, { method, headers })
      const picked = {}
      for (const h of HEADERS) if (res.headers[h] !== undefined) picked[h] = res.headers[h]
      const answer = { status: res.status, headers: picked, body: sha256(res.body), seen: seen?.splice(0), code: undefined }
      if (!errorBodies && res.status >= 400) {
        answer.code = JSON.parse(res.body.toString()).code
        delete answer.body
        delete picked['content-length']
      }
      got.push(answer)
    }
    await app.close()
    answers.push(got)
  }
  requests.forEach((r, i) => {
    const name = typeof r === 'string' ? r : `${r.method ?? 'GET'} ${r.target}`
    const [theirs, mine] = [answers[0][i], answers[1][i]]
    // Only the code may differ: @fastify/static's errors from send carry none.
    t.same({ ...mine, code: undefined }, { ...theirs, code: undefined }, name)
  })
  return answers[1]
}

test('reply.download: the attachment is named by the file\'s base name, with a filename and with options', async (t) => {
  const tree = buildTree(t)
  const answers = await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, { root: tree.root, serve: false })
    app.get('/plain', (req, reply) => reply.download('index.html'))
    app.get('/slashed', (req, reply) => reply.download('/index.html'))
    app.get('/deep', (req, reply) => reply.download('sub/index.html'))
    app.get('/named', (req, reply) => reply.download('index.html', 'foo.html'))
    app.get('/opts', (req, reply) => reply.download('index.html', { cacheControl: false }))
    app.get('/both', (req, reply) => reply.download('sub/index.html', 'résumé.html', { maxAge: 1000 }))
    app.get('/undefined-name', (req, reply) => reply.download('page.html', undefined, { cacheControl: false }))
  }, ['/plain', '/slashed', '/deep', '/named', '/opts', '/both', '/undefined-name'])
  t.equal(answers[0].headers['content-disposition'], 'attachment; filename=index.html')
})

test('maxAge: any string `ms` reads', async (t) => {
  const tree = buildTree(t)
  for (const maxAge of ['1 day', '2 hours', '10 minutes', '1d', '500ms', '1.5h']) {
    const answers = await compare(t, tree, async (app, plugin) => {
      await app.register(plugin, { root: tree.root, maxAge })
      app.get('/call', (req, reply) => reply.sendFile('small.txt', { maxAge }))
    }, ['/small.txt', '/call'])
    t.match(answers[0].headers['cache-control'], /^public, max-age=\d+$/, `${maxAge}: a max-age`)
  }
})

test('payload.path in an onSend hook: the file\'s absolute path', async (t) => {
  const tree = buildTree(t)
  const answers = await compare(t, tree, async (app, plugin) => {
    const seen = []
    app.addHook('onSend', async (req, reply, payload) => {
      seen.push(payload === null || typeof payload !== 'object' ? typeof payload : payload.path ?? 'no path')
    })
    await app.register(plugin, { root: tree.root, prefix: '/static/' })
    app.get('/own', (req, reply) => reply.sendFile('sub/index.html'))
    return seen
  }, ['/static/index.html', '/static/big.bin', '/static/sub/', '/own'])
  t.same(answers[0].seen, [path.join(tree.root, 'index.html')])
})

test('preCompressed: Vary appended as @fastify/static writes it', async (t) => {
  const tree = buildTree(t)
  require('node:fs').writeFileSync(path.join(tree.root, 'small.txt.gz'), require('node:zlib').gzipSync(tree.files['small.txt']))
  await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, {
      root: tree.root,
      preCompressed: true,
      setHeaders (reply, file) {
        if (file.includes('page')) reply.header('vary', 'Origin')
      }
    })
  }, [
    { target: '/small.txt', headers: { 'accept-encoding': 'gzip' } },
    { target: '/small.txt', headers: { 'accept-encoding': 'br' } },
    { target: '/page.html', headers: { 'accept-encoding': 'gzip' } }
  ])
})

test('the routes have an errorHandler of their own', async (t) => {
  const tree = buildTree(t)
  for (const wildcard of [true, false]) {
    const handlers = []
    for (const plugin of [upstream, ours]) {
      const app = Fastify({ logger: false })
      const found = []
      app.addHook('onRoute', (route) => { if (route.url.startsWith('/static/')) found.push(typeof route.errorHandler) })
      await app.register(plugin, { root: tree.root, prefix: '/static/', wildcard })
      await app.ready()
      await app.close()
      handlers.push([...new Set(found)])
    }
    t.same(handlers[1], handlers[0], `wildcard: ${wildcard}`)
    t.same(handlers[1], ['function'], `wildcard: ${wildcard}: a function`)
  }
})

test('reply.code().type().sendFile(): the code and the type kept, GET and HEAD', async (t) => {
  const tree = buildTree(t)
  await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, { root: tree.root })
    app.get('/custom', (req, reply) => reply.code(404).type('text/html').sendFile('page.html'))
    app.get('/typed', (req, reply) => reply.type('text/plain; charset=windows-1252').sendFile('page.html', { contentType: false }))
  }, ['/custom', { target: '/custom', method: 'HEAD' }, '/typed', { target: '/typed', method: 'HEAD' }])
})

test('redirect: true with wildcard: false: a directory\'s bare name answers 301 to its slashed path, the query kept', async (t) => {
  const tree = buildTree(t)
  await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, { root: tree.root, prefix: '/static', redirect: true, wildcard: false, index: 'index.html' })
  }, ['/static?a=b', '/static', '/static/?a=b', '/static/sub?a=b', '/static/sub', '/static/sub/', { target: '/static/sub/?a=b', method: 'HEAD' }])
})

test('index: false: a directory answers as @fastify/static', async (t) => {
  const tree = buildTree(t)
  const answers = await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, { root: tree.root, prefix: '/static/', index: false })
    await app.register(plugin, { root: tree.root, prefix: '/red/', index: false, redirect: true, decorateReply: false })
  }, ['/static/sub/', '/static/sub', '/static/', '/static/small.txt', '/red/sub', '/red/sub/'], { errorBodies: false })
  t.equal(answers[0].status, 403)
  t.equal(answers[0].code, 'FST_STATIC_FORBIDDEN_PATH', 'a 403 with @fastify/static\'s code')
})

test('a parametric prefix: each request\'s own value, in its path and in a redirect', async (t) => {
  const tree = buildTree(t)
  await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, { root: tree.root, prefix: '/:tenant/assets', redirect: true })
    await app.register(plugin, { root: tree.root, prefix: '/app/:version', prefixAvoidTrailingSlash: true, decorateReply: false })
  }, ['/t1/assets/small.txt', '/t2/assets/sub/deep/x.bin', '/t1/assets/sub', '/t1/assets/sub?x=1', '/t1/assets/sub/', '/t1/assets/', '/t1/assets',
    '/t%C3%A9/assets/sub', '/app/1.2.3', '/app/1.2.3/small.txt', '/t1/other/small.txt'])
})

test('a parametric prefix whose value is empty: a redirect stays on this site', async (t) => {
  const tree = buildTree(t)
  const app = Fastify({ logger: false })
  await app.register(ours, { root: tree.root, prefix: '/:tenant/assets', redirect: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  for (const target of ['//assets/sub', '//assets', '/%2F%2Fevil/assets/sub', '/a%3Fb/assets/sub']) {
    const res = await rawRequest(app.server.address().port, target)
    if (res.status === 301) t.match(res.headers.location, /^\/(?!\/)/, `${target}: ${res.headers.location}`)
    else t.ok([400, 403, 404].includes(res.status), `${target}: ${res.status}`)
  }
})

test('wildcard: false: files under a symlinked directory inside the root get routes; one out of it, or a loop, none', async (t) => {
  const tree = buildTree(t)
  const fs = require('node:fs')
  fs.symlinkSync('sub', path.join(tree.root, 'linked'))
  fs.symlinkSync('..', path.join(tree.root, 'sub', 'loop'))
  await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, { root: tree.root, wildcard: false, globIgnore: ['sub/loop/**', 'linked/loop/**'] })
  }, ['/linked/index.html', '/linked/deep/x.bin', '/linked/', '/sub/deep/x.bin'])
  const app = Fastify({ logger: false })
  const routes = []
  app.addHook('onRoute', (route) => { routes.push(route.url) })
  await app.register(ours, { root: tree.root, wildcard: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = app.server.address().port
  t.ok(routes.includes('/linked/deep/x.bin'), 'a route through the symlinked directory')
  t.notOk(routes.some((r) => r.startsWith('/link-dir-out/')), 'none through a symlink out of the root')
  t.ok(routes.length < 200, `a loop walked once (${routes.length} routes)`)
  const out = await rawRequest(port, '/link-dir-out/canary.txt')
  t.equal(out.status, 404)
  t.notOk(out.body.includes(tree.canary), 'no canary')
  const res = await rawRequest(port, '/linked/deep/x.bin')
  t.equal(sha256(res.body), sha256(tree.files['sub/deep/x.bin']), 'the bytes through the link')
})

test('allowedPath with extensions and index: the same answers', async (t) => {
  const tree = buildTree(t)
  await compare(t, tree, async (app, plugin) => {
    await app.register(plugin, {
      root: tree.root,
      prefix: '/assets/',
      extensions: ['html', 'txt'],
      index: ['index.html'],
      allowedPath: (pathName) => !pathName.startsWith('/sub/deep') && pathName !== '/small.txt'
    })
  }, ['/assets/page', '/assets/page.html', '/assets/sub/', '/assets/', '/assets/sub/deep/x.bin', '/assets/small.txt', '/assets/with%20space', '/assets/noindex/'])
})
