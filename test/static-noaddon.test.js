'use strict'
// fastify-zero-copy/static where the native addon cannot load (macOS, Windows, a build that
// failed): each server runs in a child process with test/fixtures/no-addon.js preloaded, so
// the addon's load throws as dlopen does there. It must register, serve the tree exact through
// Fastify's path, and stay beneath its root as user space can (open-userspace.ts), saying so
// once in its log. Then test/static-containment.test.js runs whole in that mode.
const fs = require('node:fs')
const path = require('node:path')
const { execFile, execFileSync } = require('node:child_process')
const { test } = require('tap')
const fc = require('fast-check')
const { sha256, spawnFixture, steadyFds, procFds } = require('./helpers')
const { buildTree, rawRequest, checkRerun, CONTAINMENT_TESTS } = require('./static-tree')

const NO_ADDON = path.join(__dirname, 'fixtures', 'no-addon.js')
const WARNING = /^fastify-zero-copy\/static: files are opened beneath the root in user space/

// Without the environment's default engine: a forced engine fails registration without the addon.
const UNSET_ENGINE = ['env', '-u', 'FASTIFY_ZERO_COPY_ENGINE']

function serve (t, root, opts = {}, extra = {}) {
  return spawnFixture(t, 'static-noaddon', { root, opts, ...extra }, { wrap: UNSET_ENGINE, nodeArgs: ['--require', NO_ADDON] })
}

function url (name) {
  return '/assets/' + name.split('/').map(encodeURIComponent).join('/')
}

/** No byte of the canary anywhere in the response. */
function clean (tree, res) {
  return !res.raw.includes(tree.canary.subarray(0, 24)) && sha256(res.body) !== sha256(tree.canary)
}

async function refused (t, tree, port, target, statuses = [403, 404]) {
  const res = await rawRequest(port, target)
  t.ok(res.valid && statuses.includes(res.status), `${target}: ${res.status}, one of ${statuses}`)
  t.ok(clean(tree, res), `${target}: no byte of the canary`)
}

/** The tree of test/static-tree.js, with symlinked directories inside and out of the root. */
function tree (t) {
  const tr = buildTree(t)
  fs.symlinkSync('sub', path.join(tr.root, 'link-dir-in'))
  fs.symlinkSync('../outside/dir', path.join(tr.root, 'sub', 'link-dir-up-out'))
  execFileSync('mkfifo', [path.join(tr.root, 'fifo')]) // opened without blocking, then not a file
  return tr
}

test('without the addon: /static registers, in user space, with one warning', async (t) => {
  const tr = tree(t)
  const server = await serve(t, tr.root)
  t.equal(server.state, 'READY', `registered${server.state === 'READY' ? '' : ': ' + server.message}`)
  t.equal(server.capabilities.native, false, 'the addon did not load')
  t.match(server.capabilities.reason, /native addon did not load .*hidden by test\/fixtures\/no-addon\.js/, 'by the real failure path')
  t.equal(server.capabilities.beneath, 'userspace', 'capabilities.beneath says user space')
  t.equal(server.capabilities.mode, 'stream', "bodies take Fastify's path")

  // Every file of the tree, exact; dotfiles left to the policy below.
  const port = server.port
  for (const [name, content] of Object.entries(tr.files)) {
    if (name.split('/').some((s) => s.startsWith('.'))) continue
    const res = await rawRequest(port, url(name))
    t.equal(res.status, 200, `${name}: 200`)
    t.equal(sha256(res.body), sha256(content), `${name}: exact`)
  }
  const big = tr.files['big.bin']
  const range = await rawRequest(port, '/assets/big.bin', { headers: { range: 'bytes=1000-70999' } })
  t.equal(range.status, 206, 'a range: 206')
  t.equal(range.headers['content-range'], `bytes 1000-70999/${big.length}`)
  t.equal(sha256(range.body), sha256(big.subarray(1000, 71000)), 'the range, exact')
  const head = await rawRequest(port, '/assets/big.bin', { method: 'HEAD' })
  t.equal(head.status, 200, 'HEAD: 200')
  t.equal(head.headers['content-length'], String(big.length), 'HEAD: the length')
  t.equal(head.body.length, 0, 'HEAD: no body')
  const etag = head.headers.etag
  t.ok(etag, 'an ETag')
  const again = await rawRequest(port, '/assets/big.bin', { headers: { 'if-none-match': etag } })
  t.equal(again.status, 304, 'If-None-Match: 304')
  t.equal(again.body.length, 0, '304: no body')
  const dir = await rawRequest(port, '/assets/sub/')
  t.equal(sha256(dir.body), sha256(tr.files['sub/index.html']), 'a directory: its index file')

  // `..`, raw and encoded: never the files beside the root.
  for (const target of ['/assets/../canary.txt', '/assets/%2e%2e/canary.txt', '/assets/%2E%2E%2Fcanary.txt', '/assets/..%2F..%2Foutside%2Fcanary.txt',
    '/assets/sub/../../outside/canary.txt', '/assets/..%5Ccanary.txt', '/assets/sub/%2e%2e/%2e%2e/canary.txt']) {
    await refused(t, tr, port, target)
  }
  // Symlinks out of the root, to a file and through a directory; /proc's magic link.
  for (const name of ['link-out', 'link-abs-out', 'link-dir-out/canary.txt', 'link-dir-out/dir/secret.txt', 'link-magic', 'sub/link-dir-up-out/secret.txt', 'dangling']) {
    await refused(t, tr, port, url(name), [404])
  }
  // Symlinks within the root: followed ('inside', the default).
  const inside = await rawRequest(port, '/assets/link-dir-in/index.html')
  t.equal(sha256(inside.body), sha256(tr.files['sub/index.html']), 'a symlinked directory inside the root: served')
  const up = await rawRequest(port, '/assets/noindex/link-up-inside')
  t.equal(sha256(up.body), sha256(tr.files['sub/index.html']), 'a symlink up and back inside the root: served')
  await refused(t, tr, port, '/assets/fifo', [404])
  // The dotfile policy (ignore).
  for (const name of ['.env', '.git/config', '.hidden/file.txt', 'sub/.secret']) await refused(t, tr, port, url(name), [404])

  const log = await (await fetch(`http://127.0.0.1:${port}/__log`)).json()
  const warned = log.filter((l) => l.level === 40 && WARNING.test(l.msg))
  t.equal(warned.length, 1, 'the warning, once, after all those requests')
  t.match(warned[0].msg, /RESOLVE_BENEATH/, 'it says what is lost')
  t.match(warned[0].msg, /containment: 'kernel'/, 'and how to refuse to start without it')
  t.same(server.warnings.filter((m) => WARNING.test(m)).length, 1, 'logged at registration')
  t.equal(procFds(server.child.pid), await steadyFds(server.child.pid), 'steady descriptors')
})

test('without the addon: symlinks "none" follows none, "follow" every one', async (t) => {
  const tr = tree(t)
  const none = await serve(t, tr.root, { symlinks: 'none' })
  t.equal(none.state, 'READY')
  for (const name of ['link-in', 'link-dir-in/index.html', 'noindex/link-up-inside', 'link-out', 'link-dir-out/canary.txt']) {
    await refused(t, tr, none.port, url(name), [404])
  }
  const plain = await rawRequest(none.port, '/assets/sub/deep/x.bin')
  t.equal(sha256(plain.body), sha256(tr.files['sub/deep/x.bin']), '"none": a name without symlinks is served')

  const follow = await serve(t, tr.root, { symlinks: 'follow' })
  const out = await rawRequest(follow.port, '/assets/link-out')
  t.equal(out.status, 200, '"follow": the application\'s choice, a symlink out is followed')
  t.equal(sha256(out.body), sha256(tr.canary))
  await refused(t, tr, follow.port, '/assets/../canary.txt') // never `..`
})

test('without the addon: dotfiles "deny" and "allow"; allowedPath on extension candidates', async (t) => {
  const tr = tree(t)
  const deny = await serve(t, tr.root, { dotfiles: 'deny' })
  await refused(t, tr, deny.port, '/assets/.env', [403])
  await refused(t, tr, deny.port, '/assets/.git/config', [403])
  const allow = await serve(t, tr.root, { dotfiles: 'allow' })
  const env = await rawRequest(allow.port, '/assets/.env')
  t.equal(env.status, 200, '"allow": a dotfile inside the root is served')

  const ext = await serve(t, tr.root, { extensions: ['html'] }, { deny: ['/page.html'] })
  await refused(t, tr, ext.port, '/assets/page', [404]) // page.html refused: not reached as `page`
  await refused(t, tr, ext.port, '/assets/page.html', [404])
  const open = await serve(t, tr.root, { extensions: ['html'] }, { deny: [] })
  const page = await rawRequest(open.port, '/assets/page')
  t.equal(sha256(page.body), sha256(tr.files['page.html']), 'allowed: `page` is page.html')
})

test('without the addon: containment "kernel" refuses to start (FST_ZERO_COPY_STATIC_UNCONTAINED)', async (t) => {
  const tr = tree(t)
  const server = await serve(t, tr.root, { containment: 'kernel' })
  t.equal(server.state, 'FAILED')
  t.equal(server.code, 'FST_ZERO_COPY_STATIC_UNCONTAINED')
  t.match(server.message, /containment "kernel" was configured and the native addon did not load/)
  const bad = await serve(t, tr.root, { containment: 'maybe' })
  t.equal(bad.code, 'FST_ZERO_COPY_INVALID_OPTION')
})

// ---------------------------------------------------------------------------------------
// The user-space open against openat2, path by path, in this process (the addon loads here):
// what the request path can hand it (names without `.`, `..` or empty segments), both kinds,
// every symlink mode. The same file opened, or both "not there" (NOT_FOUND: a 404).

const addon = require('node-gyp-build')(path.join(__dirname, '..'))
const { UserSpaceOpener } = require('../dist/plugin/static/open-userspace')
const { NOT_FOUND } = require('../dist/plugin/static/open')
const CLASSIC = 1
const MODES = { inside: 0x08 | 0x02, none: 0x08 | 0x02 | 0x04, follow: 0x02 }

function compareTree (t) {
  const tr = tree(t)
  const link = (target, name) => fs.symlinkSync(target, path.join(tr.root, name))
  link('loop-b', 'loop-a')
  link('loop-a', 'loop-b')
  link(path.join(tr.root, 'small.txt'), 'link-abs-in')
  link('/proc/self/fd/0', 'link-proc')
  link('..', 'sub/link-up')
  link('../root/small.txt', 'link-up-out')
  link('sub/', 'link-dir-slash')
  link('.', 'link-dot')
  link('small.txt/', 'link-file-slash')
  link('../..', 'sub/deep/link-up2')
  link('deep/../../small.txt', 'sub/link-dots')
  link('small.txt/../sub', 'link-file-dotdot')
  // c0 -> c1 -> ... -> c40 -> small.txt: c0 is 41 links (ELOOP), c1 40 (the kernel's limit).
  for (let i = 0; i <= 40; i++) link(i === 40 ? 'small.txt' : `c${i + 1}`, `c${i}`)
  return tr
}

const NAMES = ['small.txt', 'big.bin', 'sub', 'deep', 'x.bin', 'index.html', 'noindex', 'file.txt', 'nope', 'root', 'outside',
  'canary.txt', 'dir', 'secret.txt', 'fifo', 'link-in', 'link-out', 'link-abs-out', 'link-abs-in', 'link-dir-out', 'link-dir-in',
  'link-magic', 'link-proc', 'dangling', 'flip', 'link-up', 'link-up-out', 'link-dir-up-out', 'link-up-inside', 'link-dir-slash',
  'link-dot', 'loop-a', 'x'.repeat(256), 'link-file-slash', 'link-file-dotdot', 'link-up2', 'link-dots', 'c0', 'c1', 'c39']

function nativeOpen (dirfd, rel, kind, flags) {
  return new Promise((resolve) => {
    try {
      addon.openBeneath(dirfd, rel, kind, flags, (err, fd) => resolve(err === null ? { fd } : { err }), CLASSIC)
    } catch (err) {
      resolve({ err: err.code })
    }
  })
}

function userOpen (opener, dirfd, rel, kind, flags) {
  return new Promise((resolve) => opener.openBeneath(dirfd, rel, kind, flags, (err, fd) => resolve(err === null ? { fd } : { err })))
}

/** What an open came to: the file's dev:ino, "absent" (a 404), or another errno. */
function outcome (r, identity) {
  if (r.err !== undefined) return NOT_FOUND.has(r.err) ? 'absent' : r.err
  const st = identity(r.fd)
  return `${st.dev}:${st.ino}`
}

test('the user-space open answers as openat2 does, path by path (the same file, or a 404)', async (t) => {
  const tr = compareTree(t)
  t.ok(addon.open(0, CLASSIC).ok, 'the classic engine opened (its disk threads run the native opens)')
  const dirfd = addon.openRoot(tr.root)
  t.teardown(() => addon.closeFile(dirfd, false))
  const opener = new UserSpaceOpener()
  const handle = opener.openRoot(tr.root)
  const named = []
  for (const rel of ['small.txt', 'sub', 'sub/index.html', 'link-in', 'link-dir-in/deep/x.bin', 'noindex/link-up-inside', 'link-out',
    'link-abs-out', 'link-abs-in', 'link-dir-out/canary.txt', 'sub/link-up/small.txt', 'sub/link-up/sub/link-up/big.bin', 'link-up-out',
    'link-dot/small.txt', 'link-dir-slash/index.html', 'loop-a', 'dangling', 'fifo', 'small.txt/x', 'sub/link-dir-up-out/secret.txt',
    'link-file-slash', 'sub/deep/link-up2/small.txt', 'sub/link-dots', 'c0', 'c1', 'c39', 'link-dot/link-dot/link-in', 'link-file-dotdot', 'link-file-dotdot/index.html']) {
    for (const kind of [0, 1]) for (const mode of Object.keys(MODES)) named.push({ rel, kind, mode })
  }
  const generated = fc.sample(fc.record({
    parts: fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 5 }),
    kind: fc.constantFrom(0, 1),
    mode: fc.constantFrom(...Object.keys(MODES))
  }).map(({ parts, kind, mode }) => ({ rel: parts.join('/'), kind, mode })), 3000)
  const baseline = await steadyFds()
  const diffs = []
  const outcomes = {}
  for (const { rel, kind, mode } of [...named, ...generated]) {
    const kernel = await nativeOpen(dirfd, rel, kind, MODES[mode])
    const user = await userOpen(opener, handle, rel, kind, MODES[mode])
    const a = outcome(kernel, (fd) => fs.fstatSync(fd))
    const b = outcome(user, (fd) => kind === 1 ? fs.statSync(opener.dirPath(fd)) : fs.fstatSync(fd))
    if (kernel.fd !== undefined) addon.closeFile(kernel.fd, false)
    if (user.fd !== undefined) {
      if (!opener.closeFile(user.fd)) fs.closeSync(user.fd)
    }
    const key = a.includes(':') ? 'opened' : a
    outcomes[key] = (outcomes[key] ?? 0) + 1
    // /proc magic links: the kernel refuses them in every mode (RESOLVE_NO_MAGICLINKS); user
    // space resolves them as paths, so with 'follow' (any target) they lead where they point.
    if (a !== b && !(mode === 'follow' && /link-magic|link-proc/.test(rel))) diffs.push({ rel, kind, mode, kernel: a, user: b })
  }
  t.same(diffs, [], 'no path where the user-space open and openat2 differ')
  t.ok(outcomes.opened > 100 && outcomes.absent > 100, `both outcomes met: ${JSON.stringify(outcomes)}`)
  t.equal(await steadyFds(), baseline, 'every descriptor closed')
  t.equal(opener.heldDirectories, 1, 'only the root\'s handle is held')
  // Names the request path never gives (it resolves dot segments first): refused all the same.
  for (const rel of ['..', '../outside/canary.txt', 'sub/../..', './small.txt', 'sub//index.html', '/etc/passwd', 'a\0b']) {
    const r = await userOpen(opener, handle, rel.replace('\\0', '\0'), 0, MODES.follow)
    t.equal(r.err, 'EXDEV', `${JSON.stringify(rel)}: refused lexically, whatever the symlink mode`)
  }
})

/** Runs a whole test file with the addon's load failing (ZC_EXPECT_BENEATH: files that check it). */
function runWithoutAddon (file) {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--require', NO_ADDON, path.join(__dirname, file)], {
      env: { ...process.env, ZC_EXPECT_BENEATH: 'userspace', FASTIFY_ZERO_COPY_ENGINE: '' },
      maxBuffer: 64 * 1024 * 1024
    }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : err.code, stdout, stderr }))
  })
}

test('without the addon: every test of static-containment.test.js holds in user space', async (t) => {
  const run = await runWithoutAddon('static-containment.test.js')
  checkRerun(t, run, {
    opener: 'userspace',
    how: 'in user space',
    names: [...CONTAINMENT_TESTS, 'property']
  })
})

// The gate (allowedPath, dotfiles, every candidate) and the app run with @fastify/static and
// with this plugin in its place: the same answers without the addon.
for (const file of ['static-gate.test.js', 'static-dropin.test.js']) {
  test(`without the addon: every test of ${file} passes`, async (t) => {
    const run = await runWithoutAddon(file)
    t.same(run.stdout.split('\n').filter((l) => /^\s*not ok /.test(l)), [], 'no assertion failed')
    t.equal(run.code, 0, `the run passed${run.code === 0 ? '' : ': ' + run.stderr.slice(-2000)}`)
    const top = run.stdout.match(/^ok \d+ - .*$/mg) ?? []
    const plan = /^1\.\.(\d+)$/m.exec(run.stdout)
    t.ok(plan !== null && top.length === Number(plan[1]) && top.length > 0, `every test of the plan ran and passed: ${top.length}`)
    t.notMatch(run.stdout, /# (SKIP|TODO)/, 'none skipped')
  })
}
