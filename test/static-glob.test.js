'use strict'
// globIgnore with wildcard: false: the files its patterns name get no route (a 404), every
// other file is served; patterns as glob reads them for @fastify/static (minimatch, dotfiles
// matched by `*`, `/**` skipping a whole directory, braces).
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const serveStatic = require('fastify-zero-copy/static')
const { sha256 } = require('./helpers')
const { buildTree, rawRequest } = require('./static-tree')

async function serve (t, opts) {
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { prefix: '/assets/', wildcard: false, ...opts })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return app.server.address().port
}

async function expect (t, port, name, want) {
  const res = await rawRequest(port, '/assets/' + name.split('/').map(encodeURIComponent).join('/'))
  t.ok(res.valid, `${name}: a valid response`)
  if (typeof want === 'number') {
    t.equal(res.status, want, `${name}: ${want}`)
  } else {
    t.equal(res.status, 200, `${name}: 200`)
    t.equal(sha256(res.body), sha256(want), `${name}: the file's bytes`)
  }
}

test('globIgnore: one pattern; the ignored file is a 404, the others are served', async (t) => {
  const tree = buildTree(t)
  const port = await serve(t, { root: tree.root, globIgnore: '*.txt' })
  for (const name of ['small.txt', 'empty.txt', 'with space.txt', '100%.txt', 'Case.txt']) await expect(t, port, name, 404)
  // `*` stays within a segment: a .txt below a directory is still routed.
  await expect(t, port, 'noindex/file.txt', tree.files['noindex/file.txt'])
  await expect(t, port, 'big.bin', tree.files['big.bin'])
  await expect(t, port, 'page.html', tree.files['page.html'])
  await expect(t, port, 'sub/', tree.files['sub/index.html'])
})

test('globIgnore: ** across directories, a directory skipped whole, braces', async (t) => {
  const tree = buildTree(t)
  const port = await serve(t, { root: tree.root, globIgnore: ['**/big.bin', 'noindex/**', '{page,index}.html', 'sub/{deep,none}/**'] })
  await expect(t, port, 'big.bin', 404)
  await expect(t, port, 'sub/deep/x.bin', 404)
  await expect(t, port, 'noindex/file.txt', 404)
  await expect(t, port, 'page.html', 404)
  await expect(t, port, 'index.html', 404)
  await expect(t, port, '', 404) // its index is ignored: no route for the directory either
  await expect(t, port, 'sub/index.html', tree.files['sub/index.html'])
  await expect(t, port, 'sub/', tree.files['sub/index.html'])
  await expect(t, port, 'small.txt', tree.files['small.txt'])
  await expect(t, port, 'ünïcødé-😀.txt', tree.files['ünïcødé-😀.txt'])
  // A symlink is matched by its own name, not its target's.
  await expect(t, port, 'link-in', tree.files['big.bin'])
})

test('globIgnore: patterns match dotfiles (dotfiles allowed and routed), as glob parses its ignore patterns', async (t) => {
  const tree = buildTree(t)
  const port = await serve(t, { root: tree.root, dotfiles: 'allow', serveDotFiles: true, globIgnore: ['*', '.git/**'] })
  await expect(t, port, '.env', 404) // `*` matches a leading dot here
  await expect(t, port, 'small.txt', 404)
  await expect(t, port, '.git/config', 404)
  await expect(t, port, '.hidden/file.txt', tree.canary) // allowed, not ignored: served
  await expect(t, port, 'sub/.secret', tree.canary)
  await expect(t, port, 'sub/deep/x.bin', tree.files['sub/deep/x.bin'])
})

test('globIgnore: an absolute pattern matches the file\'s absolute path; two roots each their own', async (t) => {
  const tree = buildTree(t)
  const port = await serve(t, { root: [tree.root, tree.root2], globIgnore: [path.join(tree.root, 'small.txt'), '**/only2.txt'] })
  // The first root's small.txt is ignored: the name falls to the second root, as with glob.
  await expect(t, port, 'small.txt', fs.readFileSync(path.join(tree.root2, 'small.txt')))
  await expect(t, port, 'only2.txt', 404)
  await expect(t, port, 'page.html', tree.files['page.html'])
})

test('globIgnore: an empty array ignores nothing; with wildcard on it has no effect (as @fastify/static)', async (t) => {
  const tree = buildTree(t)
  const port = await serve(t, { root: tree.root, globIgnore: [] })
  await expect(t, port, 'small.txt', tree.files['small.txt'])
  const wild = await serve(t, { root: tree.root, wildcard: true, globIgnore: ['*.txt'] })
  await expect(t, wild, 'small.txt', tree.files['small.txt'])
})

test('globIgnore: a bad type fails registration with FST_ZERO_COPY_INVALID_OPTION', async (t) => {
  const tree = buildTree(t)
  for (const bad of [42, true, {}, [1], ['ok', null], [''], ['a\0b'], () => '*']) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, { root: tree.root, wildcard: false, globIgnore: bad }).ready(),
      { code: 'FST_ZERO_COPY_INVALID_OPTION', statusCode: 500 }, `globIgnore ${typeof bad === 'function' ? 'function' : JSON.stringify(bad)}`)
    await app.close()
  }
})

test('globIgnore with symlinks: only names beneath the root get routes (no link out, magic, dangling or loop), and each request still opens beneath the root', async (t) => {
  const tree = buildTree(t)
  fs.symlinkSync('..', path.join(tree.root, 'sub', 'loop')) // re-enters the root
  fs.mkdirSync(path.join(tree.root, 'a'))
  fs.mkdirSync(path.join(tree.root, 'b'))
  fs.symlinkSync('../b', path.join(tree.root, 'a', 'to-b')) // a and b enter each other
  fs.symlinkSync('../a', path.join(tree.root, 'b', 'to-a'))
  fs.writeFileSync(path.join(tree.root, 'b', 'in-b.bin'), tree.files['big.bin'])
  const app = Fastify({ logger: false })
  const routes = []
  app.addHook('onRoute', (route) => { if (route.method.includes('GET')) routes.push(route.url) })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', wildcard: false, globIgnore: ['*.txt'] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = app.server.address().port
  for (const name of ['link-out', 'link-abs-out', 'link-magic', 'dangling']) t.notOk(routes.includes('/assets/' + name), `${name}: no route`)
  t.notOk(routes.some((r) => r.startsWith('/assets/link-dir-out/')), 'nothing through a directory link out of the root')
  t.notOk(routes.some((r) => r.startsWith('/assets/sub/loop/')), 'a link back to the root is not entered')
  t.ok(routes.length < 100, `the loops are walked once (${routes.length} routes)`)
  t.notOk(routes.includes('/assets/small.txt'), 'the ignored name has no route')
  for (const name of ['link-in', 'flip', 'b/in-b.bin', 'a/to-b/in-b.bin', 'noindex/link-up-inside']) {
    t.ok(routes.includes('/assets/' + name), `${name}: a route`)
  }
  await expect(t, port, 'a/to-b/in-b.bin', tree.files['big.bin'])
  await expect(t, port, 'noindex/link-up-inside', tree.files['sub/index.html'])
  await expect(t, port, 'link-out', 404)
  // A routed name turned into a link out after registration: the open beneath the root refuses it.
  await expect(t, port, 'flip', tree.files['big.bin'])
  fs.unlinkSync(path.join(tree.root, 'flip'))
  fs.symlinkSync(path.join(tree.outside, 'canary.txt'), path.join(tree.root, 'flip'))
  const res = await rawRequest(port, '/assets/flip')
  t.equal(res.status, 404, 'the flipped name: 404')
  t.notOk(res.body.includes(tree.canary), 'no canary')
})
