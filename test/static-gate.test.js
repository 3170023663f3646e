'use strict'
// fastify-zero-copy/static's one gate: every name opened or listed (the request's, an
// `extensions` candidate, an index file, a pre-compressed sibling, a listing's entries, a name
// under a root given per call) is judged by allowedPath and the dotfile policy as the name
// that is opened; an application callback that throws or rejects is that request's error; a
// registration that fails closes the roots it opened.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const serveStatic = require('fastify-zero-copy/static')
const { sha256, spawnFixture, tempDir, fdLinks } = require('./helpers')
const { rawRequest, bytes } = require('./static-tree')

/** A tree: public and refused pages reached by extension and as index files, siblings, a second root. */
function gateTree (t) {
  const dir = tempDir(t, 0o755)
  const files = {}
  const put = (name, content) => {
    const file = path.join(dir, name)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, content)
    files[name] = content
  }
  put('root/admin.html', Buffer.from('<h1>ADMIN ONLY</h1>\n'))
  put('root/public.html', Buffer.from('<p>public</p>\n'))
  put('root/docs/index.html', Buffer.from('<h1>DOCS ONLY</h1>\n'))
  put('root/open/index.html', Buffer.from('<h1>open</h1>\n'))
  put('root/dotindex/.start.html', Buffer.from('<h1>DOTTED INDEX</h1>\n'))
  put('root/big.bin', bytes('gate-big', 300 * 1024 + 3)) // above the threshold: the native path
  put('root/app.js', Buffer.from('console.log("plain")\n'))
  put('root/app.js.gz', Buffer.from('REFUSED SIBLING'))
  put('root/lib.js', Buffer.from('console.log("lib")\n'))
  put('root/lib.js.br', Buffer.from('ALLOWED SIBLING'))
  put('root2/admin.html', Buffer.from('<h1>ADMIN ONLY 2</h1>\n'))
  put('root2/ok.txt', Buffer.from('ok in the second root\n'))
  return { dir, root: path.join(dir, 'root'), root2: path.join(dir, 'root2'), files }
}

async function serve (t, opts, setup) {
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { prefix: '/s/', ...opts })
  if (setup) setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return app.server.address().port
}

async function expect (t, port, target, want, headers) {
  const res = await rawRequest(port, target, { headers })
  t.ok(res.valid, `${target}: a valid response`)
  if (typeof want === 'number') {
    t.equal(res.status, want, `${target}: ${want}`)
  } else {
    t.equal(res.status, 200, `${target}: 200`)
    t.equal(sha256(res.body), sha256(want), `${target}: the file's bytes`)
  }
  return res
}

test('allowedPath judges every name opened: extensions, index files, siblings, per-call roots', async (t) => {
  const tree = gateTree(t)
  const refused = new Set(['/admin.html', '/docs/index.html', '/app.js.gz'])
  const seen = []
  const allowedPath = (p, root) => {
    seen.push(`${root === tree.root ? 1 : 2}:${p}`)
    return !refused.has(p)
  }
  const port = await serve(t, { root: tree.root, extensions: ['html'], preCompressed: true, allowedPath }, (app) => {
    app.get('/call/*', (req, reply) => reply.sendFile(req.params['*'], tree.root2, { extensions: ['html'] }))
    app.get('/call-index/', (req, reply) => reply.sendFile('docs/'))
  })
  await expect(t, port, '/s/admin', 404) // `/admin` allowed, `/admin.html` refused
  await expect(t, port, '/s/admin.html', 404)
  await expect(t, port, '/s/docs/', 404) // `/docs/` allowed, `/docs/index.html` refused
  await expect(t, port, '/s/docs/index.html', 404)
  await expect(t, port, '/call-index/', 404)
  await expect(t, port, '/call/admin', 404) // under the per-call root too
  await expect(t, port, '/call/ok.txt', tree.files['root2/ok.txt'])
  await expect(t, port, '/s/public', tree.files['root/public.html'])
  await expect(t, port, '/s/open/', tree.files['root/open/index.html'])
  await expect(t, port, '/s/big.bin', tree.files['root/big.bin'])
  // A refused sibling is passed over: the file itself, as allowed, identity.
  const plain = await expect(t, port, '/s/app.js', tree.files['root/app.js'], { 'accept-encoding': 'gzip' })
  t.equal(plain.headers['content-encoding'], undefined, 'the refused .gz is not sent')
  const br = await expect(t, port, '/s/lib.js', tree.files['root/lib.js.br'], { 'accept-encoding': 'br' })
  t.equal(br.headers['content-encoding'], 'br', 'an allowed sibling is sent')
  for (const name of ['1:/admin.html', '1:/docs/index.html', '2:/admin.html', '1:/app.js.gz', '1:/lib.js.br']) {
    t.ok(seen.includes(name), `allowedPath was asked about ${name}`)
  }
})

test('the dotfile policy judges index files as the names opened', async (t) => {
  const tree = gateTree(t)
  const port = await serve(t, { root: tree.root, index: ['.start.html', 'index.html'] })
  await expect(t, port, '/s/dotindex/', 404)
  await expect(t, port, '/s/open/', tree.files['root/open/index.html'])
  const allowing = await serve(t, { root: tree.root, index: ['.start.html'], dotfiles: 'allow' })
  await expect(t, allowing, '/s/dotindex/', tree.files['root/dotindex/.start.html'])
})

test('application callbacks that throw or reject are the request\'s error, never the process\'s', async (t) => {
  const tree = gateTree(t)
  fs.writeFileSync(path.join(tree.root2, '100%zz.txt'), 'percent\n')
  fs.writeFileSync(path.join(tree.root, '100%zz.txt'), 'percent\n')
  fs.writeFileSync(path.join(tree.root, 'headers-throw.txt'), 'x\n')
  fs.writeFileSync(path.join(tree.root, 'onfile-rejects.txt'), 'x\n')
  fs.writeFileSync(path.join(tree.root, 'headers-reject.txt'), 'x\n')
  fs.writeFileSync(path.join(tree.root, 'async-refused.txt'), 'x\n')
  fs.writeFileSync(path.join(tree.root, 'onfile-throws.txt'), 'x\n')
  fs.writeFileSync(path.join(tree.root2, 'teapot.txt'), 'x\n')
  fs.mkdirSync(path.join(tree.root, 'listed'))
  fs.writeFileSync(path.join(tree.root, 'listed', 'teapot.txt'), 'x\n')
  fs.mkdirSync(path.join(tree.root, 'listed-async'))
  fs.writeFileSync(path.join(tree.root, 'listed-async', 'async-refused.txt'), 'x\n')
  fs.mkdirSync(path.join(tree.root, 'rendered'))
  fs.writeFileSync(path.join(tree.root, 'rendered', 'render-throws.txt'), 'x\n')
  const server = await spawnFixture(t, 'static-callbacks-app', { root: tree.root, root2: tree.root2 })
  t.equal(server.state, 'READY', server.message)
  const cases = [
    // allowedPath's URIError through reply.sendFile with a root given per call: its first
    // request (the root opened off the loop), then again (the root already open).
    ['/dl/100%25zz.txt', 500],
    ['/dl/100%25zz.txt', 500],
    ['/dl-async/100%25zz.txt', 500],
    ['/dl/teapot.txt', 418],
    ['/dl-onfile/ok.txt', 418],
    ['/assets/100%25zz.txt', 500],
    ['/assets/teapot', 418],
    ['/assets/headers-throw.txt', 500],
    ['/assets/onfile-rejects.txt', 500],
    ['/assets/headers-reject.txt', 418], // a setHeaders that returns a promise is awaited
    ['/assets/async-refused.txt', 500], // a promise from allowedPath is no permission
    ['/assets/onfile-throws.txt', 500],
    ['/assets/listed/', 418], // an entry of a listing
    ['/assets/listed-async/', 500], // a promise from allowedPath about an entry
    ['/assets/rendered/', 418], // list.render
    ['/late-bad-options', 500],
    ['/late-bad-name', 500],
    ['/dl/ok.txt', tree.files['root2/ok.txt']],
    ['/assets/public', tree.files['root/public.html']]
  ]
  for (const [target, want] of cases) {
    const res = await rawRequest(server.port, target)
    t.equal(server.child.exitCode, null, `${target}: the process is up`)
    if (typeof want === 'number') t.equal(res.status, want, `${target}: ${want}`)
    else t.equal(sha256(res.body), sha256(want), `${target}: served`)
  }
  const last = await rawRequest(server.port, '/dl/ok.txt')
  t.equal(last.status, 200, 'still serving after all of them')
  t.equal(server.child.exitCode, null, 'the process never ended')
})

test('a registration that fails after opening its roots closes them', async (t) => {
  const tree = gateTree(t)
  const held = () => fdLinks().filter((l) => l === tree.root || l === tree.root2).length
  const before = held()
  for (const [label, opts, taken] of [
    ['wildcard: false, a file\'s route already taken', { wildcard: false }, '/s/public.html'],
    ['wildcard: true, the prefix\'s route already taken', {}, '/s/*'],
    ['two roots, an index route already taken', { root: [tree.root, tree.root2], wildcard: false }, '/s/open/']
  ]) {
    const app = Fastify({ logger: false })
    app.get(taken, () => 'taken')
    let code = null
    try {
      await app.register(serveStatic, { root: tree.root, prefix: '/s/', ...opts })
      await app.ready()
    } catch (err) {
      code = err.code
    }
    t.equal(code, 'FST_ERR_DUPLICATED_ROUTE', `${label}: the registration failed`)
    t.equal(held(), before, `${label}: no descriptor of a root is left open`)
    await app.close().catch(() => {})
  }
})
