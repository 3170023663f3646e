'use strict'
// fastify-zero-copy/static's directory listings (the `list` option) against the fixture tree
// (test/static-tree.js), on real servers: @fastify/static's formats and triggers, and the
// containment it lacks: nothing the dotfile policy hides, nothing outside the root (the
// canary's directory, its names, its sizes), at any depth; descriptors back to baseline.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const fastifyStatic = require('@fastify/static')
const serveStatic = require('fastify-zero-copy/static')
const { sha256, readPartOf, fdsUnder, steadyFds, spawnFixture } = require('./helpers')
const { buildTree, rawRequest } = require('./static-tree')

/** The fixture tree, and what these tests add to it. */
function listTree (t) {
  const tree = buildTree(t)
  const put = (name, content) => {
    const file = path.join(tree.root, name)
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 })
    fs.writeFileSync(file, content, { mode: 0o644 })
    tree.files[name] = Buffer.from(content)
  }
  put('noindex/.dotdir/inner.txt', tree.canary) // a dot-directory below a listed one
  put('odd/q?x#y.txt', 'a query and a fragment in a name\n')
  put('odd/<b>&"\'.txt', 'markup in a name\n')
  put('odd/a%2Fb.txt', 'a literal %2F in a name\n')
  put('odd/sp ace/inner.txt', 'in a directory whose name has a space\n')
  fs.symlinkSync('../../outside', path.join(tree.root, 'noindex', 'escape')) // a directory out, one level down
  return tree
}

async function start (t, tree, opts = {}, setup) {
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', ...opts })
  if (setup) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: app.server.address().port }
}

/**
 * Not one byte of the canary; and in a listing (a 200), no name of anything outside the root
 * nor of a symlink leading there (a 404's message repeats the request's own URL).
 */
function clean (tree, res) {
  if (res.raw.includes(tree.canary.subarray(0, 24))) return false
  return res.status !== 200 || !/canary\.txt|secret\.txt|link-out|link-abs-out|link-dir-out|link-magic|dangling|escape/.test(res.body.toString('utf8'))
}

async function json (t, port, target, want = 200) {
  const res = await rawRequest(port, target)
  t.ok(res.valid, `${target}: valid`)
  t.equal(res.status, want, `${target}: ${want}`)
  return { res, body: res.status === 200 ? JSON.parse(res.body) : null }
}

const byName = (a, b) => a.localeCompare(b)
const ROOT_DIRS = ['noindex', 'odd', 'sub']
// What the root holds that a listing shows: dotfiles hidden, symlinks out and dangling left out.
const ROOT_FILES = ['100%.txt', 'back\\slash.txt', 'big.bin', 'Case.txt', 'empty.txt', 'flip', 'index.html', 'link-in', 'page.html',
  'small.txt', 'ünïcødé-😀.txt', 'with space.txt'].sort(byName)

test('json names: list: true lists a directory named without its slash (before its index file, as @fastify/static)', async (t) => {
  const tree = listTree(t)
  const { port } = await start(t, tree, { list: true })
  const noindex = await json(t, port, '/assets/noindex')
  t.same(noindex.body, { dirs: [], files: ['file.txt', 'link-up-inside'] }, 'the entries; the symlink out and the dot-directory left out')
  t.match(noindex.res.headers['content-type'], /^application\/json/)
  const sub = await json(t, port, '/assets/sub')
  t.same(sub.body, { dirs: ['deep'], files: ['index.html'] }, 'a directory with an index file lists at its bare name')
  const index = await rawRequest(port, '/assets/sub/')
  t.equal(index.status, 200)
  t.equal(sha256(index.body), sha256(tree.files['sub/index.html']), 'with its slash: the index file')
  await json(t, port, '/assets/noindex/', 404) // an index is configured and names has no '/'
  await json(t, port, '/assets/nope', 404)
  const file = await rawRequest(port, '/assets/small.txt')
  t.equal(sha256(file.body), sha256(tree.files['small.txt']), 'files are still files')
})

test('index: false: a directory with its slash lists (the root included)', async (t) => {
  const tree = listTree(t)
  const { port } = await start(t, tree, { list: true, index: false })
  const root = await json(t, port, '/assets/')
  t.same(root.body, { dirs: ROOT_DIRS, files: ROOT_FILES }, 'the root: sorted as @fastify/static sorts (localeCompare)')
  t.ok(clean(tree, root.res), 'nothing of outside')
  const sub = await json(t, port, '/assets/sub/')
  t.same(sub.body, { dirs: ['deep'], files: ['index.html'] })
  const odd = await json(t, port, '/assets/odd/')
  t.same(odd.body, { dirs: ['sp ace'], files: ['<b>&"\'.txt', 'a%2Fb.txt', 'q?x#y.txt'].sort(byName) })
})

test('the same names as @fastify/static for the same directories, less what leads outside the root', async (t) => {
  const tree = listTree(t)
  const list = { format: 'json', names: ['index.json'] }
  const { port } = await start(t, tree, { list }, async (app) => {
    await app.register(fastifyStatic, { root: tree.root, prefix: '/ref/', list, dotfiles: 'ignore', decorateReply: false })
  })
  for (const dir of ['', 'sub/', 'noindex/', 'odd/', 'sub/deep/']) {
    const ours = (await json(t, port, `/assets/${dir}index.json`)).body
    const ref = (await json(t, port, `/ref/${dir}index.json`)).body
    const out = new Set(['link-out', 'link-abs-out', 'link-dir-out', 'link-magic', 'escape'])
    t.same(ours, { dirs: ref.dirs.filter((n) => !out.has(n)), files: ref.files.filter((n) => !out.has(n)) }, `/${dir}: @fastify/static's listing without the entries that lead out`)
    if (dir === '') t.ok(ref.dirs.includes('link-dir-out') && ref.files.includes('link-out') && ref.files.includes('link-magic'), '@fastify/static itself lists the symlinks out')
  }
})

test('jsonFormat extended: name and stats (a symlink\'s of what it leads to); extendedFolderInfo of what a listing shows', async (t) => {
  const tree = listTree(t)
  const { port } = await start(t, tree, { list: { format: 'json', jsonFormat: 'extended', extendedFolderInfo: true }, index: false })
  const { body, res } = await json(t, port, '/assets/')
  t.ok(clean(tree, res), 'nothing of outside')
  t.same(body.dirs.map((d) => d.name), ROOT_DIRS)
  t.same(body.files.map((f) => f.name), ROOT_FILES)
  const file = (name) => body.files.find((f) => f.name === name)
  t.equal(file('big.bin').stats.size, tree.files['big.bin'].length)
  t.equal(file('empty.txt').stats.size, 0)
  t.equal(file('link-in').stats.size, tree.files['big.bin'].length, 'a symlink inside: the stats of its target')
  t.equal(file('link-in').stats.ino, fs.statSync(path.join(tree.root, 'big.bin')).ino)
  const onDisk = fs.statSync(path.join(tree.root, 'small.txt'))
  t.equal(file('small.txt').stats.mtimeMs, onDisk.mtimeMs)
  t.equal(file('small.txt').stats.mode, onDisk.mode)
  for (const f of body.files) t.notOk('extendedInfo' in f, `${f.name}: no extendedInfo on a file`)
  const dir = (name) => body.dirs.find((d) => d.name === name)
  const size = (...names) => names.reduce((n, name) => n + tree.files[name].length, 0)
  const mtime = (...names) => Math.max(...names.map((n) => fs.statSync(path.join(tree.root, n)).mtimeMs))
  t.same(dir('sub').extendedInfo, {
    totalSize: size('sub/index.html', 'sub/deep/x.bin'),
    fileCount: 1,
    totalFileCount: 2,
    folderCount: 1,
    totalFolderCount: 1,
    lastModified: mtime('sub/index.html', 'sub/deep/x.bin')
  }, 'sub: its index and deep/x.bin; sub/.secret not counted')
  t.same(dir('noindex').extendedInfo, {
    totalSize: size('noindex/file.txt', 'sub/index.html'),
    fileCount: 2,
    totalFileCount: 2,
    folderCount: 0,
    totalFolderCount: 0,
    lastModified: mtime('noindex/file.txt', 'sub/index.html')
  }, 'noindex: file.txt and the symlink inside; neither .dotdir nor the directory out (escape)')
  t.equal(dir('odd').extendedInfo.totalFolderCount, 1)
  t.equal(dir('odd').stats.size, fs.statSync(path.join(tree.root, 'odd')).size)

  const names = await start(t, tree, { list: { format: 'json', jsonFormat: 'names', extendedFolderInfo: true }, index: false })
  t.same((await json(t, names.port, '/assets/')).body, { dirs: ROOT_DIRS, files: ROOT_FILES }, 'jsonFormat names: names alone, whatever extendedFolderInfo')
})

test('dotfiles allow: dotfiles and dot-directories listed and counted (the symlinks out still not)', async (t) => {
  const tree = listTree(t)
  const { port } = await start(t, tree, { list: { format: 'json', jsonFormat: 'extended', extendedFolderInfo: true }, index: false, dotfiles: 'allow' })
  const { body } = await json(t, port, '/assets/')
  t.same(body.dirs.map((d) => d.name), ['.git', '.hidden', ...ROOT_DIRS].sort(byName))
  t.same(body.files.map((d) => d.name), ['.env', ...ROOT_FILES].sort(byName))
  t.equal(body.dirs.find((d) => d.name === 'sub').extendedInfo.totalFileCount, 3, 'sub/.secret counted')
  t.equal(body.dirs.find((d) => d.name === 'noindex').extendedInfo.totalFolderCount, 1, 'noindex/.dotdir counted, escape not')
  const noindex = (await json(t, port, '/assets/noindex/')).body
  t.same(noindex.dirs.map((d) => d.name), ['.dotdir'])
})

test('html: render(dirs, files) with href, name, stats; each href percent-encoded per segment and serving that very file', async (t) => {
  const tree = listTree(t)
  const calls = []
  const render = (dirs, files) => {
    calls.push({ dirs, files })
    const esc = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
    return '<ul>' + [...dirs, ...files].map((e) => `<li><a href="${esc(e.href)}">${esc(e.name)}</a></li>`).join('') + '</ul>'
  }
  const { port } = await start(t, tree, { list: { format: 'html', render, extendedFolderInfo: true }, index: false })
  const res = await rawRequest(port, '/assets/odd/')
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(calls.length, 1)
  const { dirs, files } = calls[0]
  t.same(dirs.map((d) => [d.name, d.href]), [['sp ace', '/assets/odd/sp%20ace']])
  t.same(files.map((f) => [f.name, f.href]).sort((a, b) => byName(a[0], b[0])), [
    ['<b>&"\'.txt', '/assets/odd/%3Cb%3E%26%22\'.txt'],
    ['a%2Fb.txt', '/assets/odd/a%252Fb.txt'],
    ['q?x#y.txt', '/assets/odd/q%3Fx%23y.txt']
  ].sort((a, b) => byName(a[0], b[0])))
  t.ok(files.every((f) => f.stats.isFile()), 'stats are fs.Stats')
  t.ok(dirs[0].stats.isDirectory())
  t.same(dirs[0].extendedInfo.totalFileCount, 1, 'extendedInfo on directories')
  t.ok(res.body.toString().includes('&#60;b&#62;&#38;&#34;&#39;.txt'), 'the page is the render\'s')
  for (const f of files) {
    const got = await rawRequest(port, f.href)
    t.equal(got.status, 200, `${f.href}: 200`)
    t.equal(sha256(got.body), sha256(tree.files[`odd/${f.name}`]), `${f.href}: the file named ${f.name}`)
  }
  const inner = await rawRequest(port, dirs[0].href + '/')
  t.equal(inner.status, 200, 'the directory\'s href (with its slash) lists it')

  const asJson = await json(t, port, '/assets/odd/?format=json')
  t.same(asJson.body.files.sort(byName), files.map((f) => f.name).sort(byName), '?format=json: the json listing')
  const root = await rawRequest(port, '/assets/')
  t.ok(clean(tree, root), 'the root page: nothing of outside')
})

test('html without render: refused at registration; ?format=html on a json listing without render: 406', async (t) => {
  const tree = listTree(t)
  const app = Fastify({ logger: false })
  await t.rejects(app.register(serveStatic, { root: tree.root, list: { format: 'html' } }).ready(), { code: 'FST_STATIC_INVALID_OPTION_VALUE', message: /list\.render.*required with html format/ })
  await app.close()
  const { port } = await start(t, tree, { list: { format: 'json' }, index: false })
  const res = await json(t, port, '/assets/noindex/?format=html', 406)
  t.equal(JSON.parse(res.res.body).code, 'FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE')
  const withRender = await start(t, tree, { list: { format: 'json', render: (dirs, files) => `<p>${files.length}</p>` }, index: false })
  const page = await rawRequest(withRender.port, '/assets/noindex/?format=html')
  t.equal(page.status, 200)
  t.equal(page.body.toString(), '<p>2</p>', 'a json listing with a render answers ?format=html')
  t.same(JSON.parse((await rawRequest(withRender.port, '/assets/noindex/')).body), { dirs: [], files: ['file.txt', 'link-up-inside'] })
  const failing = await start(t, tree, { list: { format: 'html', render: () => { throw new Error('render broke') } }, index: false })
  const broke = await rawRequest(failing.port, '/assets/noindex/')
  t.equal(broke.status, 500, 'a render that throws: the error handler\'s 500')
})

test('names: index, index.json and / list the directory when no such file exists', async (t) => {
  const tree = listTree(t)
  const render = (dirs, files) => JSON.stringify([...dirs, ...files].map((e) => e.href))
  const { port } = await start(t, tree, { list: { format: 'json', names: ['index', 'index.json', '/'], render } })
  t.same((await json(t, port, '/assets/sub/index.json')).body, { dirs: ['deep'], files: ['index.html'] }, '/sub/index.json lists /sub/')
  t.same((await json(t, port, '/assets/sub/index')).body, { dirs: ['deep'], files: ['index.html'] }, '/sub/index lists /sub/')
  t.same((await json(t, port, '/assets/index.json')).body, { dirs: ROOT_DIRS, files: ROOT_FILES }, '/index.json lists the root')
  t.same((await json(t, port, '/assets/noindex/')).body, { dirs: [], files: ['file.txt', 'link-up-inside'] }, "'/': a directory without an index file lists")
  const page = await rawRequest(port, '/assets/sub/index.json?format=html')
  t.same(JSON.parse(page.body), ['/assets/sub/deep', '/assets/sub/index.html'], 'the hrefs name the listed directory\'s entries')
  const index = await rawRequest(port, '/assets/index.html')
  t.equal(sha256(index.body), sha256(tree.files['index.html']), 'a name of `names` that is a file is the file')
  const sub = await rawRequest(port, '/assets/sub/')
  t.equal(sha256(sub.body), sha256(tree.files['sub/index.html']), 'a directory with an index file: the index')
  await json(t, port, '/assets/nope/index.json', 404)
  await json(t, port, '/assets/sub/other.json', 404)
  await json(t, port, '/assets/small.txt/index.json', 404)
})

test('CVE-2026-130811 dot-directories are never listed', async (t) => {
  const tree = listTree(t)
  for (const dotfiles of ['ignore', 'deny']) {
    const { port } = await start(t, tree, { list: { format: 'json', names: ['index.json', '/'], jsonFormat: 'extended', extendedFolderInfo: true }, dotfiles })
    const refused = dotfiles === 'deny' ? 403 : 404
    for (const target of ['/assets/.git/', '/assets/.git', '/assets/.git/index.json', '/assets/.hidden/', '/assets/%2egit/', '/assets/%2Ehidden/index.json',
      '/assets/sub/../.git/', '/assets/noindex/.dotdir/', '/assets/noindex/.dotdir', '/assets/./.git/', '/assets/.git/./']) {
      const res = await rawRequest(port, target)
      // A non-canonical path is refused (403) before the dotfile policy is asked.
      const status = /\/\.\.?\/|\/\.$/.test(target) ? 403 : refused
      t.ok(res.valid, `${dotfiles} ${target}: valid`)
      t.equal(res.status, status, `${dotfiles} ${target}: ${status}`)
      t.ok(clean(tree, res) && !/config|inner\.txt|file\.txt/.test(res.body.toString()), `${dotfiles} ${target}: no entry of it`)
    }
    // Case differs, the name does not exist (this filesystem is case-sensitive): still nothing.
    for (const target of ['/assets/.GIT/', '/assets/.Git/index.json']) t.equal((await rawRequest(port, target)).status, refused)
    for (const dir of ['/assets/index.json', '/assets/noindex/', '/assets/sub/index.json']) {
      const { body, res } = await json(t, port, dir)
      const names = [...body.dirs, ...body.files].map((e) => e.name)
      t.notOk(names.some((n) => n.startsWith('.')), `${dotfiles} ${dir}: no dot name among ${names.length}`)
      t.ok(clean(tree, res), `${dotfiles} ${dir}: no canary`)
      if (dir === '/assets/index.json') {
        // Below sub/ and noindex/ on disk: sub/.secret, noindex/.dotdir/inner.txt: not counted.
        const info = (name) => body.dirs.find((d) => d.name === name).extendedInfo
        t.same([info('sub').totalFileCount, info('sub').totalFolderCount], [2, 1], `${dotfiles}: sub/ counts index.html and deep/x.bin, not .secret`)
        t.same([info('noindex').totalFileCount, info('noindex').totalFolderCount], [2, 0], `${dotfiles}: noindex/ counts neither .dotdir nor what is in it`)
        t.equal(info('noindex').totalSize, tree.files['noindex/file.txt'].length + tree.files['sub/index.html'].length)
      }
    }
  }
})

test('CVE-2026-6410 directories outside the root are never listed', async (t) => {
  const tree = listTree(t)
  const { port } = await start(t, tree, { list: { format: 'json', names: ['index', 'index.json', '/'], jsonFormat: 'extended', extendedFolderInfo: true }, redirect: true })
  for (const target of ['/assets/link-dir-out/', '/assets/link-dir-out', '/assets/link-dir-out/index.json', '/assets/link-dir-out/dir/', '/assets/link-dir-out/dir/index',
    '/assets/noindex/escape/', '/assets/noindex/escape', '/assets/noindex/escape/index.json', '/assets/noindex/escape/dir/index.json',
    '/assets/../', '/assets/../index.json', '/assets/..%2F', '/assets/..%2Findex.json', '/assets/%2e%2e/', '/assets/sub/../../', '/assets/sub/../../outside/',
    '/assets/sub/%2e%2e/%2e%2e/outside/index.json', '/assets/..\\', '/assets/..%5C', '/assets/link-magic/', '/assets/link-out/index.json', '/assets/dangling/',
    '/assets//../index.json', '/assets/noindex/escape/../../outside/']) {
    const res = await rawRequest(port, target)
    t.ok(res.valid, `${target}: valid`)
    t.ok([301, 400, 403, 404].includes(res.status), `${target}: ${res.status}`)
    t.ok(clean(tree, res), `${target}: nothing of outside`)
    if (res.status === 301) t.match(res.headers.location, /^\/assets\//, `${target}: redirected within the prefix`)
    if (res.status === 301) {
      const next = await rawRequest(port, res.headers.location)
      t.ok(next.status === 404 || next.status === 403, `${target} -> ${res.headers.location}: ${next.status}`)
      t.ok(clean(tree, next), `${res.headers.location}: nothing of outside`)
    }
  }
  for (const dir of ['/assets/index.json', '/assets/noindex/', '/assets/noindex/index']) {
    const { body, res } = await json(t, port, dir)
    t.ok(clean(tree, res), `${dir}: no symlink out, no name or byte of outside`)
    t.ok(body.files.length + body.dirs.length > 0, `${dir}: a listing`)
  }
  // The extended information never counts the outside either: sizes are the inside's.
  const root = (await json(t, port, '/assets/index.json')).body
  const outsideBytes = fs.readdirSync(tree.outside, { recursive: true }).length
  t.ok(outsideBytes > 0)
  t.equal(root.dirs.find((d) => d.name === 'noindex').extendedInfo.totalSize, tree.files['noindex/file.txt'].length + tree.files['sub/index.html'].length)

  // symlinks: 'follow' is the application's choice; 'none' lists no symlink at all.
  const none = await start(t, tree, { list: true, index: false, symlinks: 'none' })
  const plain = (await json(t, none.port, '/assets/')).body
  t.notOk(plain.files.includes('link-in') || plain.files.includes('flip'), 'symlinks: none: no symlink listed')
  t.same((await json(t, none.port, '/assets/noindex/')).body, { dirs: [], files: ['file.txt'] })
})

test('a symlink loop inside the root: extendedFolderInfo ends, each directory counted once', async (t) => {
  const tree = listTree(t)
  fs.symlinkSync('../..', path.join(tree.root, 'sub', 'deep', 'up')) // the root, from two levels down
  fs.symlinkSync('.', path.join(tree.root, 'sub', 'self'))
  const { port } = await start(t, tree, { list: { format: 'json', jsonFormat: 'extended', extendedFolderInfo: true }, index: false })
  const started = Date.now()
  const { body } = await json(t, port, '/assets/sub/')
  t.ok(Date.now() - started < 5000, 'answered')
  t.same(body.dirs.map((d) => d.name), ['deep', 'self'])
  const deep = body.dirs.find((d) => d.name === 'deep').extendedInfo
  t.ok(deep.totalFolderCount < 20, `deep: ${deep.totalFolderCount} folders counted, not an endless walk`)
  const root = (await json(t, port, '/assets/')).body
  t.ok(root.dirs.find((d) => d.name === 'sub').extendedInfo.totalFolderCount < 20)
})

test('prefix, the encapsulation prefix and prefixAvoidTrailingSlash in the hrefs; redirect; HEAD', async (t) => {
  const tree = listTree(t)
  const seen = []
  const render = (dirs, files) => { seen.push([...dirs, ...files].map((e) => e.href)); return 'ok' }
  const app = Fastify({ logger: false })
  await app.register(async (child) => {
    await child.register(serveStatic, { root: tree.root, prefix: '/files', list: { format: 'html', render }, redirect: true })
  }, { prefix: '/v1' })
  await app.register(serveStatic, { root: tree.root, prefix: '/flat', prefixAvoidTrailingSlash: true, list: { format: 'html', render }, decorateReply: false, index: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = app.server.address().port

  const bare = await rawRequest(port, '/v1/files/noindex?x=1')
  t.equal(bare.status, 301, 'redirect: a directory without its slash redirects')
  t.equal(bare.headers.location, '/v1/files/noindex/?x=1')
  const listed = await rawRequest(port, '/v1/files/noindex/')
  t.equal(listed.status, 200, 'redirect: the directory with its slash lists (no index file)')
  t.same(seen.pop(), ['/v1/files/noindex/file.txt', '/v1/files/noindex/link-up-inside'])
  const top = await rawRequest(port, '/v1/files')
  t.equal(top.status, 301)
  t.equal(top.headers.location, '/v1/files/')
  const rootIndex = await rawRequest(port, '/v1/files/')
  t.equal(sha256(rootIndex.body), sha256(tree.files['index.html']), 'the root has an index file: it is served')

  const flat = await rawRequest(port, '/flat/noindex/')
  t.equal(flat.status, 200)
  t.same(seen.pop(), ['/flat/noindex/file.txt', '/flat/noindex/link-up-inside'])

  const getRes = await rawRequest(port, '/flat/sub/')
  const head = await rawRequest(port, '/flat/sub/', { method: 'HEAD' })
  t.equal(head.status, 200, 'HEAD lists')
  t.equal(head.headers['content-length'], String(getRes.body.length), 'HEAD: the GET\'s length')
  t.equal(head.body.length, 0, 'HEAD: no body')
})

test('allowedPath: a refused directory is not listed, a refused entry not shown nor counted', async (t) => {
  const tree = listTree(t)
  const asked = []
  const allowedPath = (pathname, root, req) => {
    asked.push(pathname)
    if (root !== tree.root || typeof req.raw.url !== 'string') throw new Error('allowedPath called without its root and request')
    return !pathname.startsWith('/sub/deep') && pathname !== '/odd/' && pathname !== '/noindex/file.txt'
  }
  const { port } = await start(t, tree, { list: { format: 'json', names: ['index.json'], jsonFormat: 'extended', extendedFolderInfo: true }, index: false, allowedPath })
  const root = (await json(t, port, '/assets/')).body
  t.same(root.dirs.map((d) => d.name), ['noindex', 'sub'], 'odd/ refused: not shown')
  t.same(root.dirs.find((d) => d.name === 'sub').extendedInfo, {
    totalSize: tree.files['sub/index.html'].length,
    fileCount: 1,
    totalFileCount: 1,
    folderCount: 0,
    totalFolderCount: 0,
    lastModified: fs.statSync(path.join(tree.root, 'sub/index.html')).mtimeMs
  }, 'sub/deep refused: not counted')
  t.same((await json(t, port, '/assets/noindex/')).body.files.map((f) => f.name), ['link-up-inside'])
  await json(t, port, '/assets/odd/', 404)
  await json(t, port, '/assets/odd/index.json', 404) // /odd/index.json is allowed, the directory it would list is not
  t.ok(asked.includes('/odd/'), 'asked about the directory a name of `names` lists')
  t.ok(asked.includes('/sub/deep/'), 'asked about a directory entry in its directory form')
})

test('bad list options: an error at registration naming the option (@fastify/static\'s for the checks it makes), no descriptor left', async (t) => {
  const tree = listTree(t)
  const before = fdsUnder(tree.dir)
  const bad = [
    [{ list: 'yes' }, /"list"/, 'FST_ZERO_COPY_INVALID_OPTION'],
    [{ list: 1 }, /"list"/, 'FST_ZERO_COPY_INVALID_OPTION'],
    [{ list: [] }, /"list"/, 'FST_ZERO_COPY_INVALID_OPTION'],
    [{ list: { format: 'xml' } }, /"list\.format"/, 'FST_STATIC_INVALID_OPTION_VALUE'],
    [{ list: { names: 'index' } }, /"list\.names"/, 'FST_STATIC_INVALID_OPTION_VALUE'],
    [{ list: { names: [1] } }, /"list\.names"/, 'FST_STATIC_INVALID_OPTION_VALUE'],
    [{ list: { jsonFormat: 'full' } }, /"list\.jsonFormat"/, 'FST_STATIC_INVALID_OPTION_VALUE'],
    [{ list: { extendedFolderInfo: 'yes' } }, /"list\.extendedFolderInfo"/, 'FST_ZERO_COPY_INVALID_OPTION'],
    [{ list: { render: '<ul>' } }, /"list\.render"/, 'FST_STATIC_INVALID_OPTION_VALUE'],
    [{ list: { format: 'html' } }, /"list\.render"/, 'FST_STATIC_INVALID_OPTION_VALUE'],
    [{ list: true, root: [tree.root, tree.root2] }, /multi-root/, 'FST_STATIC_MULTIROOT_LIST_CONFLICT']
  ]
  for (const [opts, message, code] of bad) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, { root: tree.root, ...opts }).ready(), { code, message }, JSON.stringify(opts))
    await app.close()
  }
  t.equal(fdsUnder(tree.dir), before, 'no root left open')
  for (const good of [{ list: false }, { list: true }, { list: { format: 'json' } }, { list: { format: 'html', render: () => '' } }, { list: true, root: [tree.root] }]) {
    const app = Fastify({ logger: false })
    await app.register(serveStatic, { root: tree.root, ...good }).ready()
    await app.close()
    t.pass(`${JSON.stringify(good)} accepted`)
  }
})

test('fds back to baseline after 600 listing requests with aborts', async (t) => {
  const tree = listTree(t)
  const before = fdsUnder(tree.dir)
  const { port } = await start(t, tree, { list: { format: 'json', names: ['index.json', '/'], jsonFormat: 'extended', extendedFolderInfo: true, render: () => 'x' }, index: false })
  t.equal(fdsUnder(tree.dir) - before, 1, 'the root, opened at registration')
  const baseline = await steadyFds()
  const targets = ['/assets/', '/assets/sub/', '/assets/noindex/', '/assets/index.json', '/assets/sub/index.json', '/assets/link-dir-out/', '/assets/nope/',
    '/assets/.git/', '/assets/odd/?format=html', '/assets/noindex/escape/', '/assets/small.txt']
  let aborted = 0
  for (let round = 0; round < 75; round++) {
    await Promise.all(Array.from({ length: 8 }, async (_, k) => {
      const target = targets[(round * 8 + k) % targets.length]
      if (k % 4 === 0) {
        // A client gone before (or while) its listing is written.
        await readPartOf(port, target, 1, { reset: k % 8 === 0 })
        aborted++
      } else {
        const res = await rawRequest(port, target)
        if (!res.valid) t.fail(`${target}: invalid response`)
        if (!clean(tree, res)) t.fail(`${target}: something of outside`)
      }
    }))
  }
  t.ok(aborted >= 150, `${aborted} clients went away`)
  t.equal(await steadyFds(), baseline, 'fds back to the baseline')
  t.equal(fdsUnder(tree.dir) - before, 1, 'only the root remains open')
})

test('as nobody (a process that changed its uid, whose /proc/self/fd is root\'s): listings are read', async (t) => {
  const tree = listTree(t)
  fs.mkdirSync(path.join(tree.root, 'locked'), { mode: 0o711 }) // searchable, not readable by others
  fs.chmodSync(path.join(tree.root, 'locked'), 0o711)
  fs.writeFileSync(path.join(tree.root, 'locked', 'in.txt'), 'in a directory nobody may read\n', { mode: 0o644 })
  const server = await spawnFixture(t, 'static-list-app', { root: tree.root, drop: true, options: { list: { format: 'json', names: ['index.json'], jsonFormat: 'extended' } } })
  t.equal(server.state, 'READY', server.message ?? '')
  if (process.getuid() === 0) {
    t.equal(server.uid, 65534, 'the server is nobody')
    t.equal(server.fdDirOwner, 0, 'its /proc/self/fd belongs to root (not dumpable)')
  }
  const res = await rawRequest(server.port, '/assets/noindex/index.json')
  t.equal(res.status, 200)
  t.same(JSON.parse(res.body).files.map((f) => f.name), ['file.txt', 'link-up-inside'])
  const root = await rawRequest(server.port, '/assets/index.json')
  t.ok(clean(tree, root))
  t.same(JSON.parse(root.body).dirs.map((d) => d.name), ['locked', ...ROOT_DIRS])
  if (process.getuid() === 0) {
    const locked = await rawRequest(server.port, '/assets/locked/index.json')
    t.equal(locked.status, 403, 'a directory the server may not read: 403')
    t.equal(JSON.parse(locked.body).code, 'FST_ZERO_COPY_FILE_FORBIDDEN')
    const file = await rawRequest(server.port, '/assets/locked/in.txt')
    t.equal(file.status, 200, 'its file, by name, is still served (the directory is searchable)')
  }
  server.child.kill('SIGKILL')
})

test('without /proc (a mount namespace that has none): a listing fails at registration, serving without one still works', async (t) => {
  const tree = listTree(t)
  // A mount namespace of its own (a user namespace too when not root), /proc unmounted in it.
  const userNs = process.getuid() === 0 ? [] : ['--user', '--map-root-user']
  const noProc = ['unshare', ...userNs, '--mount', '--propagation', 'private', 'sh', '-c', 'umount -l /proc && exec "$@"', 'sh']
  const listing = await spawnFixture(t, 'static-list-app', { root: tree.root, options: { list: true } }, { wrap: noProc })
  t.equal(listing.state, 'FAILED')
  t.equal(listing.code, 'FST_ZERO_COPY_INVALID_OPTION')
  t.match(listing.message, /\/proc is not mounted/)
  const plain = await spawnFixture(t, 'static-list-app', { root: tree.root, options: {} }, { wrap: noProc })
  t.equal(plain.state, 'READY', 'no listing: no need of /proc')
  const res = await rawRequest(plain.port, '/assets/small.txt')
  t.equal(sha256(res.body), sha256(tree.files['small.txt']))
  plain.child.kill('SIGKILL')
})

test('a client gone during a long extendedFolderInfo walk: the walk stops, its descriptors closed', async (t) => {
  const tree = listTree(t)
  for (let i = 0; i < 200; i++) {
    fs.mkdirSync(path.join(tree.root, 'many', `d${i}`), { recursive: true })
    for (let j = 0; j < 20; j++) fs.writeFileSync(path.join(tree.root, 'many', `d${i}`, `f${j}`), 'x')
  }
  const { port } = await start(t, tree, { list: { format: 'json', names: ['index.json'], jsonFormat: 'extended', extendedFolderInfo: true } })
  const baseline = await steadyFds()
  // Counted, not replaced: the module's calls go through node:fs's own lstat.
  const lstat = fs.lstat
  let calls = 0
  fs.lstat = function (...args) { calls++; return lstat.apply(this, args) }
  t.teardown(() => { fs.lstat = lstat })
  const full = await json(t, port, '/assets/many/index.json')
  const all = calls
  t.equal(full.body.dirs.length, 200)
  t.ok(all >= 200 * 21, `a whole walk: ${all} lstat calls`)
  calls = 0
  await new Promise((resolve) => {
    const socket = require('node:net').connect(port, '127.0.0.1', () => {
      socket.write('GET /assets/many/index.json HTTP/1.1\r\nHost: x\r\n\r\n')
      // Gone once the walk is under way (the server is this process: its calls are seen).
      const poll = () => (calls >= 50 ? socket.resetAndDestroy() : setImmediate(poll))
      poll()
    })
    socket.on('error', () => {})
    socket.on('close', resolve)
  })
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.ok(calls >= 50 && calls < all / 4, `the walk had started, and stopped when the client went away: ${calls} lstat calls of ${all}`)
  t.equal(await steadyFds(), baseline, 'fds back to the baseline')
})
