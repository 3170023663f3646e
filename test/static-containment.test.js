'use strict'
// fastify-zero-copy/static's containment: whatever the raw request path, no byte of a file
// outside the root; every answer a valid HTTP response. The advisories of @fastify/static
// each have a named test; a fast-check property throws thousands of generated raw paths at
// both engines; a symlink is flipped out and back while requests run; fds come back.
const fs = require('node:fs')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { test } = require('tap')
const fc = require('fast-check')
const Fastify = require('fastify')
const zeroCopy = require('..')
const serveStatic = require('fastify-zero-copy/static')
const { sha256, readPartOf, fdsUnder, steadyFds, compileFixture } = require('./helpers')
const { buildTree, rawRequest, checkRerun, CONTAINMENT_TESTS } = require('./static-tree')

// Run again without the addon (test/static-noaddon.test.js): files opened in user space, no
// engine to choose, and no descriptor held for a root.
const USERSPACE = process.env.ZC_EXPECT_BENEATH === 'userspace'

async function start (t, tree, opts = {}, { engine, setup } = {}) {
  const app = Fastify({ logger: false })
  if (engine !== undefined && !USERSPACE) await app.register(zeroCopy, { engine })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', ...opts })
  if (setup) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  // Run again under a seccomp filter (the last tests): every server here opens by the walk.
  if (process.env.ZC_EXPECT_BENEATH) t.equal(app.zeroCopy.capabilities.beneath, process.env.ZC_EXPECT_BENEATH, `opens beneath the root by ${process.env.ZC_EXPECT_BENEATH}`)
  return { app, port: app.server.address().port }
}

/** No byte sequence of the canary (its marker) in the whole response, head included. */
function clean (tree, res) {
  return !res.raw.includes(tree.canary.subarray(0, 24)) && sha256(res.body) !== sha256(tree.canary)
}

async function expectRefused (t, tree, port, target, statuses = [403, 404]) {
  const res = await rawRequest(port, target)
  t.ok(res.valid, `${target}: a valid HTTP response`)
  t.ok(statuses.includes(res.status), `${target}: ${res.status} (one of ${statuses})`)
  t.ok(clean(tree, res), `${target}: no byte of the canary`)
  return res
}

/** The error code of a JSON error response, or what the body is instead. */
function codeOf (res) {
  try {
    return JSON.parse(res.body.toString()).code
  } catch {
    return `not an error: ${JSON.stringify(res.body.subarray(0, 40).toString())}`
  }
}

test('CVE-2026-6414: an encoded %2F is a character of a name, never a separator', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, tree)
  await expectRefused(t, tree, port, '/assets/sub%2Findex.html', [404])
  await expectRefused(t, tree, port, '/assets/sub%2findex.html', [404])
  await expectRefused(t, tree, port, '/assets/..%2Fcanary.txt', [404])
  await expectRefused(t, tree, port, '/assets/..%2F..%2Foutside%2Fcanary.txt', [404])
  await expectRefused(t, tree, port, '/assets/..%5Ccanary.txt', [404])
  await expectRefused(t, tree, port, '/assets/..\\canary.txt', [404])
  const ok = await rawRequest(port, '/assets/back%5Cslash.txt')
  t.equal(ok.status, 200, 'a backslash (%5C) names the file whose name holds one')
  t.equal(sha256(ok.body), sha256(tree.files['back\\slash.txt']))
})

test('CVE-2026-15074: `..` and %2E%2E are refused (403), below the prefix as above it', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, tree)
  await expectRefused(t, tree, port, '/assets/../canary.txt', [403])
  await expectRefused(t, tree, port, '/assets/sub/../../canary.txt', [403])
  await expectRefused(t, tree, port, '/assets/sub/%2E%2E/%2E%2E/canary.txt', [403])
  await expectRefused(t, tree, port, '/assets/sub/%2e%2e/%2e%2e/outside/canary.txt', [403])
  await expectRefused(t, tree, port, '/assets/sub/deep/../../../canary.txt', [403])
  await expectRefused(t, tree, port, '/assets/%252e%252e/canary.txt', [404]) // decoded once: a name `%2e%2e`
  // A `..` that would stay below the prefix is not canonical either: refused, not resolved.
  await expectRefused(t, tree, port, '/assets/sub/%2e%2e/small.txt', [403])
})

test('CVE-2026-7120: `//` and `/./` are refused (403) before allowedPath is asked', async (t) => {
  const tree = buildTree(t)
  const seen = []
  const { port } = await start(t, tree, {
    allowedPath: (pathname) => {
      seen.push(pathname)
      return !pathname.startsWith('/sub/')
    }
  })
  for (const target of ['/assets//sub/index.html', '/assets/./sub/index.html', '/assets/.//sub//./index.html', '/assets/%2E/sub/index.html', '/assets/small.txt/../sub/index.html']) {
    await expectRefused(t, tree, port, target, [403])
  }
  t.same(seen, [], 'allowedPath was never asked about a non-canonical path')
  const res = await rawRequest(port, '/assets/small.txt')
  t.equal(res.status, 200, 'what allowedPath allows is served')
})

test('non-canonical request paths (`//`, `/./`, `..`, a trailing `/.`) are refused with 403 before resolution: a guard route is not bypassed', async (t) => {
  const tree = buildTree(t)
  const seen = []
  const { port } = await start(t, tree, { allowedPath: (pathname) => { seen.push(pathname); return true } }, {
    setup (app) {
      // The application's guard: the router sends /assets/sub/... here, and a spelling it
      // does not match (`/assets//sub/...`) must not reach the file through the wildcard.
      app.all('/assets/sub/*', async (req, reply) => reply.code(401).send('guarded'))
      app.get('/own/:name', (req, reply) => reply.sendFile(Buffer.from(req.params.name, 'base64url').toString()))
    }
  })
  const guarded = await rawRequest(port, '/assets/sub/index.html')
  t.equal(guarded.status, 401, 'the canonical path meets the guard')
  for (const target of ['/assets//sub/index.html', '/assets/./sub/index.html', '/assets/%2e/sub/index.html', '/assets/%2E/sub/index.html',
    '/assets/small.txt/../sub/index.html', '/assets/x/%2e%2e/sub/index.html', '/assets/.//sub//./index.html', '/assets/x/%2e%2e/small.txt',
    '/assets/small.txt/.', '/assets/small.txt/%2e', '/assets//small.txt', '/assets//sub/', '/assets/./']) {
    const res = await expectRefused(t, tree, port, target, [403])
    t.equal(codeOf(res), 'FST_STATIC_FORBIDDEN_PATH', `${target}: @fastify/static's code`)
  }
  // reply.sendFile's name, as @fastify/static: a name from a URL is refused in the same forms.
  for (const name of ['sub/./index.html', 'sub//index.html', 'x/../small.txt', 'small.txt/.', './small.txt']) {
    const res = await expectRefused(t, tree, port, '/own/' + Buffer.from(name).toString('base64url'), [403])
    t.equal(codeOf(res), 'FST_STATIC_FORBIDDEN_PATH', `sendFile(${JSON.stringify(name)}): @fastify/static's code`)
  }
  t.same(seen, [], 'allowedPath was never asked: refused before any resolution')
  const ok = await rawRequest(port, '/assets/small.txt')
  t.equal(ok.status, 200, 'a canonical path is served')
  t.equal(sha256(ok.body), sha256(tree.files['small.txt']))
  const own = await rawRequest(port, '/own/' + Buffer.from('sub/index.html').toString('base64url'))
  t.equal(own.status, 200, 'a canonical sendFile name is served')
  t.equal(sha256(own.body), sha256(tree.files['sub/index.html']))
})

test('CVE-2026-90982: names differing in letter case: the dotfile policy and allowedPath see what is opened', async (t) => {
  const tree = buildTree(t)
  const seen = []
  const { port } = await start(t, tree, { allowedPath: (p) => { seen.push(p); return p !== '/Case.txt' } })
  for (const target of ['/assets/.ENV', '/assets/.Env', '/assets/.GIT/config', '/assets/%2EGit/config', '/assets/.HIDDEN/file.txt']) {
    await expectRefused(t, tree, port, target, [404])
  }
  await expectRefused(t, tree, port, '/assets/Case.txt', [404])
  // This filesystem is case-sensitive: another spelling is another name, and allowedPath is
  // asked about exactly the name the kernel then opens (no fold between the two).
  await expectRefused(t, tree, port, '/assets/CASE.TXT', [404])
  t.ok(seen.includes('/CASE.TXT'), 'allowedPath was asked about the spelling that was opened')
})

test('CVE-2026-130811: dot-directories and dotfiles are not served (dotfiles: ignore by default)', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, tree)
  for (const target of ['/assets/.env', '/assets/.git/config', '/assets/.git/', '/assets/.hidden/file.txt', '/assets/sub/.secret', '/assets/%2egit/config']) {
    await expectRefused(t, tree, port, target, [404])
  }
  await expectRefused(t, tree, port, '/assets/sub/../.env', [403]) // non-canonical: refused before the policy is asked
})

test('CVE-2026-6410: directories outside the root are not reached through symlinks', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, tree, { redirect: true })
  for (const target of ['/assets/link-dir-out/canary.txt', '/assets/link-dir-out/dir/secret.txt', '/assets/link-dir-out/', '/assets/link-dir-out/index.html', '/assets/link-out', '/assets/link-abs-out', '/assets/link-magic', '/assets/dangling']) {
    await expectRefused(t, tree, port, target, [404])
  }
  const res = await rawRequest(port, '/assets/link-in')
  t.equal(res.status, 200, 'a symlink that stays inside is served')
  t.equal(sha256(res.body), sha256(tree.files['big.bin']))
  const up = await rawRequest(port, '/assets/noindex/link-up-inside')
  t.equal(up.status, 200, 'a relative symlink climbing within the root is served')
  t.equal(sha256(up.body), sha256(tree.files['sub/index.html']))
})

test('CVE-2021-22963, CVE-2021-22964: redirects never leave the site', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, tree, { redirect: true, prefix: '/assets' })
  const targets = ['/assets//example.com/%2e%2e/sub', '/assets/%2F%2Fexample.com', '/assets//\\example.com/../sub', '/assets/sub?x=//example.com',
    '/assets/%5C%5Cexample.com/%2e%2e/sub', '/assets', '/assets?//example.com', '/assets/.%2F/sub']
  for (const target of targets) {
    const res = await rawRequest(port, target)
    t.ok(res.valid, `${target}: valid`)
    if (res.status === 301) {
      const location = res.headers.location
      t.match(location, /^\/[^/\\]/, `${target}: Location ${location} is a path of this site`)
      t.notMatch(location, /^\/\/|^\/\\|^[a-z]+:/i, `${target}: not protocol-relative, not absolute`)
    } else {
      t.ok([400, 403, 404].includes(res.status), `${target}: ${res.status}`)
    }
  }
  const sub = await rawRequest(port, '/assets/sub?a=1')
  t.equal(sub.status, 301)
  t.equal(sub.headers.location, '/assets/sub/?a=1', 'a directory redirects to itself with a slash, query kept')
  const bare = await rawRequest(port, '/assets')
  t.equal(bare.status, 301)
  t.equal(bare.headers.location, '/assets/')
})

/** Raw request paths: pieces that have broken path checks somewhere, in any order. */
const piece = fc.constantFrom(
  '..', '.', '', '%2e', '%2E', '%2e%2e', '%2E%2e', '.%2e', '%252e%252e', '%25', '%2f', '%2F', '%5c', '%5C', '\\', '..\\',
  '%00', '%c0%ae', '%c0%ae%c0%ae', '%c0%af', '%e0%80%ae', '%f0%80%80%ae', '%uff0e', '%ef%bc%8e', '%c1%9c',
  'link-out', 'link-abs-out', 'link-dir-out', 'link-magic', 'dangling', 'flip', 'outside', 'canary.txt', 'CANARY.TXT', 'Canary.txt',
  'sub', 'SUB', 'Sub', 'deep', '.env', '.ENV', '.git', 'config', 'root', 'root2', 'index.html', 'small.txt', 'big.bin',
  '%2e%2e%2f', '..%2f', '..%252f', '%2e%2e%5c', '..;', ';', '%3b', '?', '#', '%23', '%3f', ':', '~', '%7e', '*'
)
const rawPath = fc.tuple(
  fc.constantFrom('/assets/', '/assets', '/assets//', '/assets/./', '/assets/../', '//assets/', '/ASSETS/', '/assets%2f', '/'),
  fc.array(piece, { minLength: 0, maxLength: 8 }),
  fc.array(fc.constantFrom('/', '//', '\\', '/./', '%2f'), { minLength: 8, maxLength: 8 })
).map(([head, parts, seps]) => head + parts.map((p, i) => (i === 0 ? '' : seps[i]) + p).join(''))

for (const engine of ['io_uring', 'classic']) {
  test(`property (${engine}): generated raw paths never yield a byte of the canary`, async (t) => {
    const tree = buildTree(t)
    const { port } = await start(t, tree, { redirect: true }, { engine })
    let served = 0
    await fc.assert(fc.asyncProperty(rawPath, async (target) => {
      const res = await rawRequest(port, target)
      if (!res.valid) throw new Error(`${target}: not a valid HTTP response: ${JSON.stringify(res.raw.subarray(0, 80).toString('latin1'))}`)
      if (!clean(tree, res)) throw new Error(`${target}: the canary leaked`)
      if (res.status === 200) {
        served++
        // Whatever was served is a file of the root, byte for byte.
        const sha = sha256(res.body)
        if (!Object.values(tree.files).some((b) => sha256(b) === sha)) throw new Error(`${target}: a body that is no file of the root`)
      }
      if (res.status === 301 && !/^\/[^/\\]/.test(res.headers.location)) throw new Error(`${target}: redirect to ${res.headers.location}`)
    }), { numRuns: 2000 })
    t.ok(served > 0, `some generated paths name files of the root (${served} served)`)
  })
}

test('a symlink flipped out of the root and back while requests run: never the canary', async (t) => {
  const tree = buildTree(t)
  const { port } = await start(t, tree)
  const link = path.join(tree.root, 'flip')
  const tmp = path.join(tree.root, 'flip.tmp')
  let flips = 0
  let running = true
  const flipper = (async () => {
    while (running) {
      // Atomic replacement (rename over the link): the name is always one of the two.
      fs.symlinkSync(flips % 2 === 0 ? '../outside/canary.txt' : 'big.bin', tmp)
      fs.renameSync(tmp, link)
      flips++
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  const counts = { 200: 0, 404: 0 }
  try {
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 100; i++) {
        const res = await rawRequest(port, '/assets/flip')
        t.ok(res.valid && clean(tree, res), 'valid, no canary') || t.fail(`status ${res.status}`)
        if (res.status === 200) t.equal(sha256(res.body), sha256(tree.files['big.bin']), 'the inside file, exact')
        else t.equal(res.status, 404)
        counts[res.status] = (counts[res.status] ?? 0) + 1
      }
    }))
  } finally {
    running = false
    await flipper
  }
  t.ok(flips > 50, `${flips} flips`)
  t.ok(counts[200] > 0 && counts[404] > 0, `both states were met: ${JSON.stringify(counts)}`)
})

test('fds back to baseline after 1,000 requests with aborts; roots closed at fastify.close()', async (t) => {
  const tree = buildTree(t)
  const before = fdsUnder(tree.dir)
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { root: [tree.root, tree.root2], prefix: '/assets/' })
  await app.register(serveStatic, { root: tree.outside, serve: false, decorateReply: false })
  // A root given per call that is not one of the first registration's: opened once, kept.
  app.get('/call-root', (req, reply) => reply.sendFile('dir/secret.txt', tree.outside))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = app.server.address().port
  t.equal(fdsUnder(tree.dir) - before, USERSPACE ? 0 : 3, 'one descriptor per root, opened at registration')
  t.equal((await rawRequest(port, '/call-root')).status, 200, 'a root given per call opens once')
  const baseline = await steadyFds()
  const names = ['big.bin', 'sub/deep/x.bin', 'small.txt', 'nope', 'link-out', 'sub/', '.env', 'only2.txt', 'link-in']
  let aborted = 0
  for (let round = 0; round < 125; round++) {
    await Promise.all(Array.from({ length: 8 }, async (_, k) => {
      const name = names[(round + k) % names.length]
      if (k % 3 === 0 && (name === 'big.bin' || name === 'link-in')) {
        await readPartOf(port, `/assets/${name}`, 1000, { reset: k % 2 === 0 })
        aborted++
      } else if (k === 7) {
        const res = await rawRequest(port, '/call-root')
        if (res.status !== 200) t.fail(`/call-root: ${res.status}`)
      } else {
        const res = await rawRequest(port, `/assets/${name}`)
        if (!res.valid) t.fail(`${name}: invalid response`)
      }
    }))
  }
  t.ok(aborted > 50, `${aborted} clients went away mid-body`)
  t.equal(await steadyFds(), baseline, 'fds back to the baseline')
  t.equal(fdsUnder(tree.dir) - before, USERSPACE ? 0 : 4, 'only the roots (and the one root given per call) remain open')
  await app.close()
  t.equal(fdsUnder(tree.dir), before, 'every root descriptor closed at fastify.close()')
})

// openat2 refused (a kernel before 5.6, gVisor, a container profile): this whole file again
// in a child process under a seccomp filter, so that every test above (the advisories, the
// property on both engines, the flip, the fds) holds by the walk (native/beneath.cc), with
// each server checked to be using it. Not within that run itself.
if (!process.env.ZC_EXPECT_BENEATH) {
  test('openat2 works here: its servers open beneath the root by openat2', async (t) => {
    const tree = buildTree(t)
    const { app } = await start(t, tree)
    t.equal(app.zeroCopy.capabilities.beneath, 'openat2')
  })
  // Each errno and each engine once (test/static-walk.test.js has all four, as nobody).
  for (const [errno, engine] of [['ENOSYS', 'io_uring'], ['EPERM', 'classic']]) {
    test(`openat2 refused with ${errno} by a seccomp filter (${engine} engine): every test of this file holds by the walk`, async (t) => {
      const deny = compileFixture(t, 'deny-openat2')
      const run = await new Promise((resolve) => {
        execFile(deny, [errno, process.execPath, __filename], {
          env: { ...process.env, ZC_EXPECT_BENEATH: 'walk', FASTIFY_ZERO_COPY_ENGINE: engine },
          maxBuffer: 64 * 1024 * 1024
        }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : err.code, stdout, stderr }))
      })
      checkRerun(t, run, {
        opener: 'walk',
        how: 'by the walk',
        names: [...CONTAINMENT_TESTS, 'property (io_uring)', 'property (classic)']
      })
    })
  }
}
