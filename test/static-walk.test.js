'use strict'
// The walk (native/beneath.cc): where openat2 is refused, fastify-zero-copy/static resolves a
// path beneath its root one component at a time with O_NOFOLLOW, every symlink read and
// checked. Here openat2 works, so the walk is compared with it directly, path by path (the
// addon's openBeneath with its `walk` flag: a classic disk thread either way); then servers
// with openat2 refused by a seccomp filter (ENOSYS, EPERM) serve contained by the walk.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { test } = require('tap')
const fc = require('fast-check')
const { sha256, steadyFds, compileFixture, spawnFixture, readPartOf } = require('./helpers')
const { buildTree, rawRequest } = require('./static-tree')

const { addon, CLASSIC, MODES, openBeneath, compare, compareAll } = require('./fixtures/walk-compare')
const NO_MAGICLINKS = 0x02
const BENEATH = 0x08

/** The fixture tree and, in its root, symlinks for every case the walk decides. */
function walkTree (t) {
  const tree = buildTree(t)
  const { root } = tree
  const link = (target, name) => fs.symlinkSync(target, path.join(root, name))
  link('loop-b', 'loop-a')
  link('loop-a', 'loop-b')
  link('self-loop', 'self-loop')
  // c0 -> c1 -> ... -> c40 -> small.txt: c0 is 41 links (ELOOP), c1 40 (the kernel's limit).
  for (let i = 0; i <= 40; i++) link(i === 40 ? 'small.txt' : `c${i + 1}`, `c${i}`)
  link('sub', 'link-dir-in')
  link('sub/', 'link-dir-slash')
  link('small.txt/', 'link-file-slash')
  link('.', 'link-dot')
  link('..', 'link-dotdot')
  link('..', 'sub/link-up')
  link('../..', 'sub/deep/link-up2')
  link('../small.txt', 'sub/link-root-small')
  link('../link-dir-in/deep', 'sub/link-chain-in')
  link('../root/small.txt', 'link-up-out') // out and back in: still refused beneath the root
  link(path.join(root, 'small.txt'), 'link-abs-in')
  link('/proc/self/fd/0', 'link-proc')
  link('link-dir-out/dir', 'link-via-out')
  link('deep/../../small.txt', 'sub/link-dots')
  link('x'.repeat(256), 'link-long-name')
  execFileSync('mkfifo', [path.join(root, 'fifo')])
  fs.mkdirSync(path.join(root, 'a/b/c/d'), { recursive: true })
  const put = (name, content, mode = 0o644) => {
    fs.writeFileSync(path.join(root, name), content, { mode })
    tree.files[name] = Buffer.from(content)
  }
  put('a/b/c/d/e.txt', 'deep\n')
  // What `nobody` may not do: search a directory, read one, read a file; and the kernel's
  // fs.protected_symlinks rule for symlinks in a sticky world-writable directory.
  for (const dir of ['noexec', 'noread', 'sticky']) fs.mkdirSync(path.join(root, dir))
  put('noexec/f.txt', 'in a directory nobody may not search\n')
  put('noread/f.txt', 'in a directory nobody may search but not read\n')
  put('secret.txt', 'root only\n', 0o600)
  fs.chmodSync(path.join(root, 'noexec'), 0o644)
  fs.chmodSync(path.join(root, 'noread'), 0o311)
  link('noexec/../small.txt', 'link-noexec-up')
  link('noexec/.', 'link-noexec-dot')
  link('../small.txt', 'sticky/rootlink')
  link('../sub', 'sticky/dirlink')
  link('../small.txt', 'sticky/ownlink')
  fs.lchownSync(path.join(root, 'sticky/ownlink'), 65534, 65534)
  fs.chownSync(path.join(root, 'sticky'), 1234, 1234)
  fs.chmodSync(path.join(root, 'sticky'), 0o1777)
  return tree
}

const NAMES = [
  'small.txt', 'big.bin', 'sub', 'deep', 'x.bin', 'index.html', 'noindex', 'file.txt', 'a', 'b', 'c', 'd', 'e.txt',
  '..', '.', '', 'nope', 'root', 'outside', 'canary.txt', 'fifo',
  'link-in', 'link-out', 'link-abs-out', 'link-abs-in', 'link-dir-out', 'link-magic', 'link-proc', 'dangling', 'flip',
  'link-dir-in', 'link-dir-slash', 'link-file-slash', 'link-dot', 'link-dotdot', 'link-up', 'link-up2', 'link-up-inside',
  'link-root-small', 'link-chain-in', 'link-up-out', 'link-via-out', 'link-dots', 'link-long-name',
  'loop-a', 'self-loop', 'c0', 'c1', 'c39',
  'noexec', 'noread', 'f.txt', 'secret.txt', 'sticky', 'rootlink', 'ownlink', 'dirlink', 'link-noexec-up', 'link-noexec-dot'
]
const generated = fc.record({
  lead: fc.constantFrom('', '', '', '/', './', '//'),
  parts: fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 7 }),
  trail: fc.constantFrom('', '', '', '/', '/.', '//', '/..'),
  kind: fc.constantFrom(0, 1),
  mode: fc.constantFrom(...Object.keys(MODES))
}).map(({ lead, parts, trail, kind, mode }) => ({ rel: lead + parts.join('/') + trail, kind, mode }))

const NAMED = [
  'small.txt', 'sub/index.html', 'sub/', 'sub/.', 'sub/..', '.', './', '..', '../root/small.txt', 'sub/../..', 'small.txt/',
  'small.txt/.', 'small.txt/..', 'nope/..', 'link-in', 'link-in/', 'link-out', 'link-abs-out', 'link-abs-in', 'link-magic',
  'link-proc', 'link-dir-out/canary.txt', 'link-dir-out', 'link-dir-in/deep/x.bin', 'link-dir-slash', 'link-dir-slash/',
  'link-file-slash', 'link-dot/small.txt', 'link-dotdot/root/small.txt', 'sub/link-up/small.txt', 'sub/deep/link-up2/big.bin',
  'sub/link-up/..', 'sub/link-root-small', 'sub/link-chain-in/x.bin', 'sub/link-chain-in/..', 'link-up-out', 'link-via-out',
  'sub/link-dots', 'noindex/link-up-inside', 'dangling', 'dangling/', 'loop-a', 'loop-a/x', 'self-loop', 'c0', 'c1', 'c1/',
  'c39', 'fifo', 'link-long-name', 'x'.repeat(256), 'a/b/c/d/e.txt', 'a/b/c/d/../../../../small.txt',
  'a/b/c/d/../../../../../small.txt', '/etc/passwd', '//small.txt', 'sub//deep///x.bin', 'a/'.repeat(300) + 'x',
  'a/..'.repeat(1000) + '/small.txt', 'x'.repeat(4095), 'x'.repeat(4096),
  'noexec', 'noexec/', 'noexec/.', 'noexec/..', 'noexec/f.txt', 'link-noexec-up', 'link-noexec-dot', 'noread', 'noread/', 'noread/.',
  'noread/f.txt', 'noread/../small.txt', 'secret.txt', 'sticky/rootlink', 'sticky/ownlink', 'sticky/dirlink', 'sticky/dirlink/',
  'sticky/dirlink/index.html', 'sticky/rootlink/'
]

/** The cases compared: every named path in both kinds and every symlink mode, then generated ones. */
function cases () {
  const out = []
  for (const rel of NAMED) for (const kind of [0, 1]) for (const mode of Object.keys(MODES)) out.push({ rel, kind, mode })
  return out.concat(fc.sample(generated, 6000))
}

test('the walk answers as openat2 does, path by path: named cases and generated paths, both kinds, every symlink mode', async (t) => {
  const tree = walkTree(t)
  t.ok(addon.open(0, CLASSIC).ok, 'the classic engine opened (its disk threads run both opens)')
  t.equal(addon.beneathMode(), 'openat2', 'openat2 works on this machine: the walk is compared with it')
  const dirfd = addon.openRoot(tree.root)
  t.teardown(() => addon.closeFile(dirfd, false))
  const baseline = await steadyFds()
  const { diffs, outcomes } = await compareAll(dirfd, cases())
  t.same(diffs, [], 'no path where the walk and openat2 differ')
  // Every way an open can end was met (so the comparison covered them).
  for (const code of ['opened', 'ENOENT', 'ENOTDIR', 'EXDEV', 'ELOOP', 'ENAMETOOLONG']) t.ok(outcomes[code] > 0, `${code}: ${outcomes[code]} times`)
  t.comment(`outcomes: ${JSON.stringify(outcomes)}`)
  t.equal(await steadyFds(), baseline, 'every intermediate descriptor closed')
})

test('as nobody, the walk answers as openat2 does: search and read permissions, symlinks in a sticky world-writable directory', async (t) => {
  const tree = walkTree(t)
  const file = path.join(tree.dir, 'cases.json')
  fs.writeFileSync(file, JSON.stringify(cases()), { mode: 0o644 })
  const child = await spawnFixture(t, 'walk-compare', { root: tree.root, cases: file, drop: true })
  t.equal(child.state, 'READY')
  const done = await child.line('DONE')
  t.equal(done.uid, 65534, 'compared as nobody')
  t.equal(done.mode, 'openat2', 'openat2 works in that process too')
  t.same(done.diffs, [], 'no path where the walk and openat2 differ')
  for (const code of ['opened', 'EACCES', 'ENOENT', 'ENOTDIR', 'EXDEV', 'ELOOP']) t.ok(done.outcomes[code] > 0, `${code}: ${done.outcomes[code]} times`)
  t.equal(done.fds[1], done.fds[0], 'every intermediate descriptor closed')
  t.comment(`outcomes: ${JSON.stringify(done.outcomes)}; fs.protected_symlinks here: ${fs.readFileSync('/proc/sys/fs/protected_symlinks', 'utf8').trim()}`)
})

test('across mounts: a nosymfollow mount (ELOOP at any symlink on it), a bind mount, `..` from a mount\'s root', async (t) => {
  const tree = walkTree(t)
  const nsf = path.join(tree.root, 'nsf')
  const bind = path.join(tree.root, 'bind')
  fs.mkdirSync(nsf)
  fs.mkdirSync(bind)
  const rels = ['nsf', 'nsf/', 'nsf/f.txt', 'nsf/l', 'nsf/l/', 'nsf/dl/f.txt', 'nsf/dl', 'nsf/..', 'nsf/../small.txt', 'nsf/up/small.txt',
    'bind', 'bind/canary.txt', 'bind/dir/secret.txt', 'bind/..', 'bind/../small.txt', 'bind/dir/../..', 'bind/../..', 'link-bind/canary.txt']
  fs.symlinkSync('bind', path.join(tree.root, 'link-bind'))
  const list = []
  for (const rel of rels) for (const kind of [0, 1]) for (const mode of Object.keys(MODES)) list.push({ rel, kind, mode })
  const file = path.join(tree.dir, 'cases.json')
  fs.writeFileSync(file, JSON.stringify(list), { mode: 0o644 })
  // In a mount namespace of its own, gone with the process: a tmpfs mounted nosymfollow, and
  // the directory outside the root bound inside it (a mount the application made is inside).
  const setup = `mount -t tmpfs -o nosymfollow none ${nsf} && echo in > ${nsf}/f.txt && ln -s ../small.txt ${nsf}/l && ln -s . ${nsf}/dl && ` +
    `ln -s .. ${nsf}/up && mount --bind ${tree.outside} ${bind} && exec "$@"`
  const child = await spawnFixture(t, 'walk-compare', { root: tree.root, cases: file }, { wrap: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', setup, 'sh'] })
  t.equal(child.state, 'READY')
  const done = await child.line('DONE')
  t.same(done.diffs, [], 'no path where the walk and openat2 differ')
  t.ok(done.outcomes.ELOOP > 0 && done.outcomes.opened > 0, `outcomes: ${JSON.stringify(done.outcomes)}`)
  t.equal(done.fds[1], done.fds[0], 'every intermediate descriptor closed')
})

test('the walk answers as openat2 does beneath /proc: magic links refused (ELOOP), ordinary ones followed', async (t) => {
  t.ok(addon.open(0, CLASSIC).ok)
  const baseline = await steadyFds()
  for (const dir of ['/proc', '/proc/self']) {
    const dirfd = addon.openRoot(dir)
    const rels = dir === '/proc'
      ? ['self/status', 'self', 'self/', 'mounts', 'self/cwd', 'self/cwd/', 'self/root/etc/passwd', 'self/fd/0', 'self/exe', 'self/ns/net', 'self/fd', 'self/task/..', 'self/..']
      : ['status', 'cwd', 'root', 'root/', 'fd/0', 'fd/1', 'exe', 'ns/net', 'ns/', 'fd/', 'fdinfo/0', '..', 'task/../status']
    for (const rel of rels) {
      for (const kind of [0, 1]) {
        for (const mode of Object.keys(MODES)) {
          const r = await compare(dirfd, rel, kind, MODES[mode])
          t.equal(r.walk, r.kernel, `${dir}: ${rel} (kind ${kind}, ${mode}): ${r.kernel}`)
        }
      }
    }
    addon.closeFile(dirfd, false)
  }
  t.equal(await steadyFds(), baseline, 'every descriptor closed')
})

test('the walk refuses resolve bits it does not implement, and a root by the walk is the directory', async (t) => {
  t.ok(addon.open(0, CLASSIC).ok)
  const tree = buildTree(t)
  const dirfd = addon.openRoot(tree.root)
  t.teardown(() => addon.closeFile(dirfd, false))
  for (const resolve of [BENEATH, BENEATH | NO_MAGICLINKS | 0x01, BENEATH | NO_MAGICLINKS | 0x10]) {
    const r = await openBeneath(dirfd, 'small.txt', 0, resolve, true)
    t.equal(r.err, 'EINVAL', `resolve ${resolve}: EINVAL`)
  }
  const r = await compare(-100, tree.root, 1, NO_MAGICLINKS) // how a root is opened in walk mode
  t.equal(r.walk, r.kernel, 'an absolute root path from the working directory, as openat2 opens it')
  // The one deliberate difference: the walk holds a descriptor per directory level, fewer than 256.
  const deep = (n) => Array(n).fill('d').join('/')
  fs.mkdirSync(path.join(tree.root, deep(257)), { recursive: true })
  fs.writeFileSync(path.join(tree.root, deep(255), 'f'), 'at 255\n')
  fs.writeFileSync(path.join(tree.root, deep(256), 'f'), 'at 256\n')
  const at255 = await compare(dirfd, deep(255) + '/f', 0, MODES.inside)
  t.equal(at255.walk, at255.kernel, 'a file 255 directories deep: the same file')
  const at256 = await compare(dirfd, deep(256) + '/f', 0, MODES.inside)
  t.match(at256.kernel, /^\d+:\d+$/, 'openat2 opens a file 256 directories deep')
  t.equal(at256.walk, 'ENAMETOOLONG', 'the walk refuses it: ENAMETOOLONG')
})

// ---------------------------------------------------------------------------------------
// Servers with openat2 refused: the walk serves every open.

const ADVISORY = [
  // target, statuses: from test/static-containment.test.js, one advisory each
  ['/assets/sub%2Findex.html', [404]], ['/assets/..%2Fcanary.txt', [404]], ['/assets/..%2F..%2Foutside%2Fcanary.txt', [404]],
  ['/assets/..%5Ccanary.txt', [404]], ['/assets/..\\canary.txt', [404]], // CVE-2026-6414
  ['/assets/../canary.txt', [403]], ['/assets/sub/../../canary.txt', [403]], ['/assets/sub/%2E%2E/%2E%2E/canary.txt', [403]],
  ['/assets/sub/deep/../../../canary.txt', [403]], ['/assets/%252e%252e/canary.txt', [404]], ['/assets/sub/%2e%2e/small.txt', [403]], // CVE-2026-15074
  ['/assets/.ENV', [404]], ['/assets/.GIT/config', [404]], ['/assets/CASE.TXT', [404]], // CVE-2026-90982
  ['/assets/.env', [404]], ['/assets/.git/config', [404]], ['/assets/.hidden/file.txt', [404]], ['/assets/sub/.secret', [404]],
  ['/assets/%2egit/config', [404]], ['/assets/sub/../.env', [403]], // CVE-2026-130811 (the last non-canonical: 403)
  ['/assets/link-dir-out/canary.txt', [404]], ['/assets/link-dir-out/dir/secret.txt', [404]], ['/assets/link-dir-out/', [404]],
  ['/assets/link-dir-out/index.html', [404]], ['/assets/link-out', [404]], ['/assets/link-abs-out', [404]],
  ['/assets/link-magic', [404]], ['/assets/dangling', [404]] // CVE-2026-6410
]
const SERVED = { '/assets/small.txt': 'small.txt', '/assets/big.bin': 'big.bin', '/assets/link-in': 'big.bin', '/assets/sub/': 'sub/index.html', '/assets/noindex/link-up-inside': 'sub/index.html', '/assets/back%5Cslash.txt': 'back\\slash.txt', '/assets/sub/deep/x.bin': 'sub/deep/x.bin' }

function clean (tree, res) {
  return !res.raw.includes(tree.canary.subarray(0, 24)) && sha256(res.body) !== sha256(tree.canary)
}

const piece = fc.constantFrom(
  '..', '.', '', '%2e', '%2e%2e', '%2E%2e', '.%2e', '%252e%252e', '%2f', '%2F', '%5c', '\\', '%00', '%c0%ae', '%c0%af',
  'link-out', 'link-abs-out', 'link-dir-out', 'link-magic', 'dangling', 'flip', 'outside', 'canary.txt', 'CANARY.TXT',
  'sub', 'SUB', 'deep', '.env', '.git', 'config', 'root', 'index.html', 'small.txt', 'big.bin', 'link-in', 'noindex', 'link-up-inside'
)
const rawPath = fc.tuple(
  fc.constantFrom('/assets/', '/assets', '/assets//', '/assets/./', '/assets/../', '//assets/', '/'),
  fc.array(piece, { minLength: 0, maxLength: 7 }),
  fc.array(fc.constantFrom('/', '//', '\\', '/./', '%2f'), { minLength: 7, maxLength: 7 })
).map(([head, parts, seps]) => head + parts.map((p, i) => (i === 0 ? '' : seps[i]) + p).join(''))

/** Everything the containment tests check, against a server on `port` (a child under seccomp). */
async function contained (t, tree, server) {
  const { port, pid } = server
  for (const [target, statuses] of ADVISORY) {
    const res = await rawRequest(port, target)
    if (!(res.valid && statuses.includes(res.status) && clean(tree, res))) t.fail(`${target}: ${res.status}, valid ${res.valid}`)
  }
  t.pass(`${ADVISORY.length} advisory cases refused, no byte of the canary`)
  for (const [target, name] of Object.entries(SERVED)) {
    const res = await rawRequest(port, target)
    t.equal(res.status, 200, `${target} served`)
    t.equal(sha256(res.body), sha256(tree.files[name]), `${target}: ${name}, exact (SHA-256)`)
  }
  let served = 0
  await fc.assert(fc.asyncProperty(rawPath, async (target) => {
    const res = await rawRequest(port, target)
    if (!res.valid) throw new Error(`${target}: not a valid HTTP response`)
    if (!clean(tree, res)) throw new Error(`${target}: the canary leaked`)
    if (res.status === 200) {
      served++
      const sha = sha256(res.body)
      if (!Object.values(tree.files).some((b) => sha256(b) === sha)) throw new Error(`${target}: a body that is no file of the root`)
    }
  }), { numRuns: 800 })
  t.ok(served > 0, `generated raw paths: none leaked (${served} of 800 served a file of the root)`)

  // The flip: a symlink turned out of the root and back while requests run.
  const link = path.join(tree.root, 'flip')
  const tmp = path.join(tree.root, 'flip.tmp')
  let flips = 0
  let running = true
  const flipper = (async () => {
    while (running) {
      fs.symlinkSync(flips % 2 === 0 ? '../outside/canary.txt' : 'big.bin', tmp)
      fs.renameSync(tmp, link)
      flips++
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  const counts = {}
  try {
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 50; i++) {
        const res = await rawRequest(port, '/assets/flip')
        if (!res.valid || !clean(tree, res)) t.fail(`flip: ${res.status}, the canary or an invalid response`)
        if (res.status === 200 && sha256(res.body) !== sha256(tree.files['big.bin'])) t.fail('flip: a 200 that is not big.bin')
        counts[res.status] = (counts[res.status] ?? 0) + 1
      }
    }))
  } finally {
    running = false
    await flipper
  }
  t.ok(counts[200] > 0 && counts[404] > 0 && counts[200] + counts[404] === 400, `the flip (${flips} flips): ${JSON.stringify(counts)}, never the canary`)

  // 1,000 requests, some clients gone mid-body: the server's descriptors come back.
  const baseline = await steadyFds(pid)
  const names = ['big.bin', 'sub/deep/x.bin', 'small.txt', 'nope', 'link-out', 'sub/', '.env', 'link-in', 'link-dir-out/canary.txt']
  let aborted = 0
  for (let round = 0; round < 125; round++) {
    await Promise.all(Array.from({ length: 8 }, async (_, k) => {
      const name = names[(round + k) % names.length]
      if (k % 3 === 0 && (name === 'big.bin' || name === 'link-in')) {
        await readPartOf(port, `/assets/${name}`, 1000, { reset: k % 2 === 0 })
        aborted++
      } else {
        const res = await rawRequest(port, `/assets/${name}`)
        if (!res.valid || !clean(tree, res)) t.fail(`${name}: ${res.status}`)
      }
    }))
  }
  t.ok(aborted > 50, `${aborted} of 1,000 clients went away mid-body`)
  t.equal(await steadyFds(pid), baseline, 'the server\'s descriptors back to the baseline')
}

for (const errno of ['ENOSYS', 'EPERM']) {
  for (const engine of ['io_uring', 'classic']) {
    test(`openat2 refused with ${errno}, ${engine} engine, as nobody: the walk serves, contained`, async (t) => {
      const tree = walkTree(t)
      const deny = compileFixture(t, 'deny-openat2')
      const server = await spawnFixture(t, 'static-walk-app', { root: tree.root, drop: true }, {
        wrap: ['env', `FASTIFY_ZERO_COPY_ENGINE=${engine}`, deny, errno]
      })
      t.equal(server.state, 'READY', 'the static server started')
      t.match(fs.readFileSync(`/proc/${server.pid}/status`, 'utf8'), /^Seccomp:\s+2$/m, 'under a seccomp filter')
      t.not(server.uid, 0, 'not root')
      t.equal(server.capabilities.beneath, 'walk', 'capabilities.beneath: the walk')
      t.equal(server.capabilities.engine, engine, `the ${engine} engine serves`)
      t.equal(server.walkLogs, 1, 'the walk was logged once, at registration')
      await contained(t, tree, server)
      const stats = JSON.parse((await rawRequest(server.port, '/stats')).body)
      t.ok(stats.responses.splice + stats.responses.sendfile > 0, `large files went natively (${JSON.stringify(stats.responses)})`)
    })
  }
}
