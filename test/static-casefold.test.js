'use strict'
// CVE-2026-90982: on a case-insensitive filesystem, @fastify/static's allowedPath and dotfile
// checks decided on the request's spelling while the filesystem served the file under
// another: `/PRIVATE/x` past an allowedPath that refuses `/private/x`. Here the tree is on a
// real case-insensitive mount (test/fixtures/casefs.c, FUSE: this kernel has no casefold
// tmpfs or ext4, and no vfat), and the answer must be the same whatever the case of the
// letters: allowedPath, the dotfile policy and setHeaders see the names the directories
// store, and no response carries a byte of the canary.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const serveStatic = require('fastify-zero-copy/static')
const { KiB, sha256, tempDir, spawnFixture, getJson, nativeFileBytes, eventually } = require('./helpers')
const { rawRequest, bytes } = require('./static-tree')
const { mountCaseFs, fuseUnavailable } = require('./casefs')

const unavailable = fuseUnavailable()

/** The backing tree: public files, a private directory and dotfiles holding the canary. */
function buildBacking (t) {
  const dir = tempDir(t, 0o755)
  const backing = path.join(dir, 'backing')
  const canary = Buffer.from(`CANARY-${crypto.randomBytes(16).toString('hex')}-CANARY\n`)
  const files = {}
  const put = (name, content) => {
    const file = path.join(backing, name)
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 })
    fs.writeFileSync(file, content, { mode: 0o644 })
    files[name] = content
  }
  put('public/a.txt', Buffer.from('public a\n'))
  put('public/big.bin', bytes('casefold-big', 300 * KiB + 3)) // above the threshold
  put('Mixed/Doc.TXT', Buffer.from('mixed-case names\n'))
  put('page.html', Buffer.from('<p>page</p>\n'))
  put('index.html', Buffer.from('<p>index</p>\n'))
  put('private/x', canary)
  put('private/Deep/Y.txt', canary)
  put('docs/Secret.txt', canary)
  put('docs/open.txt', Buffer.from('docs, open\n'))
  put('.env', canary)
  put('.git/config', canary)
  put('.Hidden/file', canary)
  put('.Well-Known/ok.txt', Buffer.from('a dot-directory the application allows\n'))
  fs.writeFileSync(path.join(dir, 'canary.txt'), canary)
  return { dir, backing, canary, files }
}

/** What an application writes: exact comparisons, letter case included. */
function denies (p) {
  return p === '/private' || p.startsWith('/private/') || p === '/docs/Secret' || p === '/docs/Secret.txt' ||
    p === '/.git' || p.startsWith('/.git/') || p === '/.env'
}

async function fixture (t) {
  const tree = buildBacking(t)
  const mount = await mountCaseFs(t, tree.backing)
  // A symlink out of the root, beside the canary the mount's parent holds.
  fs.symlinkSync(path.join('..', '..', 'canary.txt'), path.join(tree.backing, 'public', 'Link-Out'))
  fs.copyFileSync(path.join(tree.dir, 'canary.txt'), path.join(path.dirname(mount.dir), 'canary.txt'))
  t.ok(fs.readFileSync(path.join(mount.dir, 'PRIVATE', 'X')).equals(tree.canary), 'the mount folds case: /PRIVATE/X opens private/x')
  return { ...tree, root: mount.dir }
}

async function serve (t, opts, setup) {
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { prefix: '/assets/', ...opts })
  if (setup) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: app.server.address().port }
}

function checker (t, tree, port) {
  return async (target, want, opts) => {
    const res = await rawRequest(port, target, opts)
    t.ok(res.valid, `${target}: a valid response`)
    t.notOk(res.raw.includes(tree.canary.subarray(0, 40)), `${target}: no byte of the canary`)
    if (typeof want === 'number') {
      t.equal(res.status, want, `${target}: ${want}`)
    } else {
      t.equal(res.status, 200, `${target}: 200`)
      t.equal(sha256(res.body), sha256(want), `${target}: the file's bytes`)
    }
    return res
  }
}

test('CVE-2026-90982 letter case on a case-insensitive filesystem', { skip: unavailable ?? false }, async (t) => {
  const tree = await fixture(t)

  t.test('allowedPath sees the stored spelling: /private/x is not reached as /PRIVATE/x or /Private/X', async (t) => {
    const seen = []
    const headers = []
    const { app, port } = await serve(t, {
      root: tree.root,
      extensions: ['txt'],
      allowedPath: (p) => { seen.push(p); return !denies(p) },
      setHeaders: (res, file) => { headers.push(file) }
    }, (app) => {
      app.get('/send/*', (req, reply) => reply.sendFile(req.params['*']))
    })
    const get = checker(t, tree, port)
    for (const target of ['/assets/private/x', '/assets/PRIVATE/x', '/assets/Private/X', '/assets/pRiVaTe/x', '/assets/PRIVATE/%58',
      '/assets/%50RIVATE/x', '/assets/PRIVATE/DEEP/y.TXT',
      '/assets/PRIVATE/', '/assets/PRIVATE', '/assets/docs/secret.TXT', '/assets/DOCS/SECRET', '/assets/Docs/secret',
      '/send/PRIVATE/X', '/send/Private/deep/Y.TXT']) {
      await get(target, 404)
    }
    // Non-canonical spellings are refused before any name is looked up.
    for (const target of ['/assets/public/../PRIVATE/x', '/assets//PRIVATE//X', '/assets/./Private/./x']) await get(target, 403)
    // Spelled any way, the other files are the same files.
    await get('/assets/public/a.txt', tree.files['public/a.txt'])
    await get('/assets/PUBLIC/A.TXT', tree.files['public/a.txt'])
    await get('/assets/mixed/doc.txt', tree.files['Mixed/Doc.TXT'])
    await get('/assets/MIXED/DOC', tree.files['Mixed/Doc.TXT']) // an extension found in another case
    await get('/assets/DOCS/Open', tree.files['docs/open.txt'])
    await get('/send/Public/A.txt', tree.files['public/a.txt'])
    await get('/assets/PUBLIC/LINK-OUT', 404) // the stored symlink, and it leads out of the root
    const big = await get('/assets/Public/BIG.BIN', tree.files['public/big.bin'])
    t.equal(big.headers['content-length'], String(tree.files['public/big.bin'].length))
    // The engine counts a body once it has finished with it, which may follow the client's last byte.
    t.ok(await eventually(() => nativeFileBytes(app.zeroCopy.stats()) >= tree.files['public/big.bin'].length), 'the large file went by the native path from the FUSE mount')

    // Every path allowedPath was asked about is spelled as the directories store it.
    const stored = new Set()
    const walk = (rel) => {
      for (const e of fs.readdirSync(path.join(tree.backing, rel), { withFileTypes: true })) {
        const name = rel === '' ? e.name : `${rel}/${e.name}`
        stored.add('/' + name)
        if (e.isDirectory()) walk(name)
      }
    }
    walk('')
    // (a name found by its extension, `/Mixed/Doc` for Mixed/Doc.TXT, shows without it)
    const strays = seen.filter((p) => !stored.has(p.replace(/\/$/, '')) && ![...stored].some((s) => s.toLowerCase() === p.toLowerCase() + '.txt' && s.startsWith(p)))
    t.same(strays, [], `allowedPath saw only stored spellings (${seen.length} calls)`)
    t.ok(seen.includes('/private/x'), 'allowedPath was asked about /private/x')
    t.notOk(seen.some((p) => /PRIVATE|Private|pRiVaTe/.test(p)), 'never about another spelling of /private')
    t.same([...new Set(headers)].sort(), [path.join(tree.root, 'Mixed/Doc.TXT'), path.join(tree.root, 'docs/open.txt'),
      path.join(tree.root, 'public/a.txt'), path.join(tree.root, 'public/big.bin')].sort(), 'setHeaders saw the stored paths')
  })

  t.test('dotfiles: .ENV, .Git/config, .HIDDEN/file hidden by the default policy, 403 with deny', async (t) => {
    const targets = ['/assets/.env', '/assets/.ENV', '/assets/.Env', '/assets/.git/config', '/assets/.GIT/config', '/assets/.Git/CONFIG',
      '/assets/.hidden/file', '/assets/.HIDDEN/FILE', '/assets/%2EENV', '/assets/%2egit/Config']
    const ignoring = checker(t, tree, (await serve(t, { root: tree.root })).port)
    for (const target of targets) await ignoring(target, 404)
    await ignoring('/assets/public/../.ENV', 403) // non-canonical: refused before the policy is asked
    await ignoring('/assets/', tree.files['index.html'])
    await ignoring('/assets/PAGE.HTML', tree.files['page.html'])
    const denying = checker(t, tree, (await serve(t, { root: tree.root, dotfiles: 'deny' })).port)
    for (const target of targets) await denying(target, 403)
    // Allowed dotfiles with an allowedPath that refuses some by their stored names.
    const allowing = checker(t, tree, (await serve(t, { root: tree.root, dotfiles: 'allow', allowedPath: (p) => !denies(p) })).port)
    for (const target of ['/assets/.ENV', '/assets/.Env', '/assets/.GIT/config', '/assets/.Git/CONFIG', '/assets/.git/config']) await allowing(target, 404)
    await allowing('/assets/.WELL-KNOWN/OK.TXT', tree.files['.Well-Known/ok.txt'])
  })

  t.test('a root given per call (reply.sendFile(name, root)) is probed and mapped the same way', async (t) => {
    const seen = []
    const { port } = await serve(t, { root: tree.backing, serve: false, allowedPath: (p, root) => { seen.push(p); return !denies(p) } }, (app) => {
      app.get('/call/*', (req, reply) => reply.sendFile(req.params['*'], tree.root))
    })
    const get = checker(t, tree, port)
    await get('/call/PRIVATE/X', 404)
    await get('/call/Private/deep/y.txt', 404)
    await get('/call/.ENV', 404)
    await get('/call/PUBLIC/A.txt', tree.files['public/a.txt'])
    t.same(seen, ['/private/x', '/private/Deep/Y.txt', '/public/a.txt'], 'allowedPath saw the stored spellings')
  })

  t.test('listings: allowedPath and the listing see the stored names (a directory listed by a names trigger too)', async (t) => {
    const seen = []
    const { port } = await serve(t, {
      root: tree.root,
      list: { format: 'json', names: ['index.json'] },
      allowedPath: (p) => { seen.push(p); return !denies(p) }
    })
    const get = checker(t, tree, port)
    for (const target of ['/assets/PRIVATE/index.json', '/assets/Private/index.json', '/assets/PRIVATE/DEEP/index.json', '/assets/private/index.json', '/assets/PRIVATE']) {
      const res = await get(target, 404)
      t.notOk(/Deep|"x"/.test(res.body.toString()), `${target}: no name from private/`)
    }
    const listed = await get('/assets/PUBLIC/index.json', 200)
    t.same(JSON.parse(listed.body).files.sort(), ['a.txt', 'big.bin'], 'the public directory, by its stored names (the symlink out not shown)')
    const root = JSON.parse((await get('/assets/index.json', 200)).body)
    t.notOk(root.dirs.includes('private'), 'private/ is not in the root\'s listing: allowedPath refuses it')
    t.ok(seen.includes('/private/'), 'allowedPath was asked about /private/, as stored')
    t.notOk(seen.some((p) => /PRIVATE|Private/.test(p)), 'and never about another spelling')
  })

  t.test('the same tree on a case-sensitive filesystem: another spelling is not there (control)', async (t) => {
    const get = checker(t, tree, (await serve(t, { root: tree.backing, allowedPath: (p) => !denies(p) })).port)
    await get('/assets/public/a.txt', tree.files['public/a.txt'])
    await get('/assets/PUBLIC/A.TXT', 404)
    await get('/assets/PRIVATE/x', 404)
  })

  t.test('from a server running as nobody', async (t) => {
    const server = await spawnFixture(t, 'static-server', { drop: true, static: { root: tree.root, prefix: '/assets/' }, deny: ['/private', '/docs/Secret.txt'] })
    t.equal(server.state, 'READY', server.message ?? 'the server is up')
    if (process.getuid() === 0) t.equal(server.uid, 65534, 'the server is nobody')
    const get = checker(t, tree, server.port)
    for (const target of ['/assets/private/x', '/assets/PRIVATE/x', '/assets/Private/X', '/assets/Docs/SECRET.txt', '/assets/.ENV', '/assets/.Git/config']) await get(target, 404)
    await get('/assets/PUBLIC/BIG.bin', tree.files['public/big.bin'])
    let stats
    await eventually(async () => nativeFileBytes(stats = await getJson(server.port, '/stats')) === tree.files['public/big.bin'].length)
    t.equal(nativeFileBytes(stats), tree.files['public/big.bin'].length, 'the large file by the native path')
  })
})
