'use strict'
// fastify-zero-copy/static's preCompressed: the `.br`, `.gz` (and `.deflate`) sibling the
// request's Accept-Encoding takes, sent with Content-Encoding and Vary, from a tree of real
// brotli and gzip files made here with node:zlib; bytes checked by SHA-256 and by
// decompressing them back to the original; a property test of containment with siblings, and
// a sibling flipped out of the root while requests run. @fastify/static's behaviour is the
// reference.
const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')
const { test } = require('tap')
const fc = require('fast-check')
const Fastify = require('fastify')
const serveStatic = require('fastify-zero-copy/static')
const { KiB, sha256, tempDir, fdsUnder, spawnFixture, getJson, nativeFileBytes, assertEngine, readPartOf, eventually, inFlightIsZero } = require('./helpers')
const { bytes, rawRequest } = require('./static-tree')

const BR = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } }

/**
 * root/ (served) and outside/ (its files hold a canary no response may carry):
 *   big.js          300 KiB of noise: its .br/.gz/.deflate stay above the native threshold
 *   text.html       compressible: its .br and .gz are small (the ordinary path)
 *   gz-only.css     a .gz sibling only; plain.txt none
 *   dir/index.html  and its .br; page.html and its .br (for `extensions`)
 *   out.txt         .br a symlink out of the root (relative), .gz there; abs.txt: .br an
 *                   absolute symlink out, nothing else; in.js: .br a symlink inside the root
 *   odd.txt         .br a directory, .gz a file
 *   .secret.txt     a dotfile with a .br sibling; .d/x.txt a file in a dot-directory, .br too
 *                   (their content `secret`, not the canary: `dotfiles: 'allow'` serves them)
 */
function buildPrecompressed (t) {
  const dir = tempDir(t, 0o755)
  const root = path.join(dir, 'root')
  const outside = path.join(dir, 'outside')
  const canary = Buffer.from(`CANARY-${sha256(String(Math.random())).slice(0, 32)}-CANARY\n`)
  // The dotfiles' content: served only where the policy allows it.
  const secret = Buffer.from(`SECRET-${sha256(String(Math.random())).slice(0, 32)}-SECRET\n`)
  const files = {}
  const put = (base, name, content, mtime) => {
    const file = path.join(base, name)
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 })
    fs.writeFileSync(file, content, { mode: 0o644 })
    if (mtime !== undefined) fs.utimesSync(file, mtime, mtime)
    if (base === root) files[name] = content
    return content
  }
  // Each sibling a different mtime from its file: its validators are its own.
  const variants = (name, content, which = ['br', 'gz', 'deflate']) => {
    put(root, name, content, new Date('2026-01-01T00:00:00Z'))
    if (which.includes('br')) put(root, name + '.br', zlib.brotliCompressSync(content, BR), new Date('2026-02-01T00:00:00Z'))
    if (which.includes('gz')) put(root, name + '.gz', zlib.gzipSync(content), new Date('2026-03-01T00:00:00Z'))
    if (which.includes('deflate')) put(root, name + '.deflate', zlib.deflateSync(content), new Date('2026-04-01T00:00:00Z'))
  }
  const lines = []
  for (let i = 0; i < 6000; i++) lines.push(`<p>line ${i % 40}: the same words again and again</p>`)
  variants('big.js', bytes('precompressed-big', 300 * KiB + 11))
  variants('text.html', Buffer.from(lines.join('\n')), ['br', 'gz'])
  variants('gz-only.css', Buffer.from('body { color: red }\n'.repeat(50)), ['gz'])
  put(root, 'plain.txt', Buffer.from('no siblings here\n'))
  variants('dir/index.html', Buffer.from('<h1>dir index</h1>\n'.repeat(40)), ['br'])
  variants('page.html', Buffer.from('<p>page</p>\n'.repeat(40)), ['br'])
  put(outside, 'canary', canary)
  put(outside, 'canary.br', canary)
  variants('out.txt', Buffer.from('out.txt, the file itself\n'), ['gz'])
  fs.symlinkSync('../outside/canary.br', path.join(root, 'out.txt.br'))
  put(root, 'abs.txt', Buffer.from('abs.txt, the file itself\n'))
  fs.symlinkSync(path.join(outside, 'canary.br'), path.join(root, 'abs.txt.br'))
  put(root, 'in.js', files['big.js'])
  fs.symlinkSync('big.js.br', path.join(root, 'in.js.br'))
  variants('odd.txt', Buffer.from('odd.txt\n'), ['gz'])
  fs.mkdirSync(path.join(root, 'odd.txt.br'))
  variants('.secret.txt', secret, ['br'])
  variants('.d/x.txt', secret, ['br'])
  return { dir, root, outside, canary, secret, files }
}

async function start (t, tree, opts = {}, setup) {
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', preCompressed: true, ...opts })
  if (setup) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: app.server.address().port }
}

const DECODE = { br: zlib.brotliDecompressSync, gzip: zlib.gunzipSync, deflate: zlib.inflateSync }
const SUFFIX = { br: '.br', gzip: '.gz', deflate: '.deflate' }

/**
 * GETs `target` accepting `accept` (undefined: no Accept-Encoding) and checks that the answer
 * is `name` in `coding` (null: the file itself): status, headers, the stored bytes exactly,
 * and those bytes decoded back to the file. Returns the response.
 */
async function expectVariant (t, port, tree, target, accept, name, coding, { headers = {}, vary = true } = {}) {
  const all = { ...headers }
  if (accept !== undefined) all['accept-encoding'] = accept
  const res = await rawRequest(port, target, { headers: all })
  const label = `${target} (${accept === undefined ? 'no Accept-Encoding' : JSON.stringify(accept)})`
  t.ok(res.valid, `${label}: valid HTTP`)
  t.equal(res.status, 200, `${label}: 200`)
  t.equal(res.headers['content-encoding'], coding ?? undefined, `${label}: Content-Encoding ${coding}`)
  if (vary) t.equal(res.headers.vary, 'accept-encoding', `${label}: Vary: accept-encoding (as @fastify/static writes it)`)
  const stored = coding === null ? tree.files[name] : fs.readFileSync(path.join(tree.root, name + SUFFIX[coding]))
  t.equal(res.headers['content-length'], String(stored.length), `${label}: Content-Length of the bytes sent`)
  t.equal(sha256(res.body), sha256(stored), `${label}: the ${coding ?? 'uncompressed'} file's bytes`)
  if (coding !== null) t.equal(sha256(DECODE[coding](res.body)), sha256(tree.files[name]), `${label}: decodes to ${name}`)
  t.notOk(res.body.includes(tree.canary), `${label}: no canary`)
  return res
}

test('Accept-Encoding with q-values picks the sibling; each decodes to the file; a large .br goes natively', async (t) => {
  const tree = buildPrecompressed(t)
  const { app, port } = await start(t, tree)
  const before = app.zeroCopy.stats()
  const res = await expectVariant(t, port, tree, '/assets/big.js', 'gzip, deflate, br', 'big.js', 'br')
  t.equal(res.headers['content-type'], 'application/javascript; charset=utf-8', 'the type of big.js, not of .br')
  const after = app.zeroCopy.stats()
  const brLength = fs.statSync(path.join(tree.root, 'big.js.br')).size
  t.ok(brLength > 256 * KiB, `the .br is ${brLength} bytes`)
  if (app.zeroCopy.capabilities.mode !== 'stream') {
    t.equal(after.responses.stream, before.responses.stream, 'the .br did not go by Node')
    t.equal(nativeFileBytes(after) - nativeFileBytes(before), brLength, 'the .br went by the native path, every byte')
    assertEngine(t, app.zeroCopy.capabilities, after, 1)
  }

  await expectVariant(t, port, tree, '/assets/big.js', 'br;q=0.5, gzip;q=1', 'big.js', 'gzip')
  await expectVariant(t, port, tree, '/assets/big.js', 'br;q=0.5, gzip;q=0.5', 'big.js', 'br') // a tie: the server's order
  await expectVariant(t, port, tree, '/assets/big.js', 'br;q=0, gzip', 'big.js', 'gzip')
  await expectVariant(t, port, tree, '/assets/big.js', 'br;q=0', 'big.js', null)
  await expectVariant(t, port, tree, '/assets/big.js', 'br;q=0.000, gzip;q=0', 'big.js', null)
  await expectVariant(t, port, tree, '/assets/big.js', 'identity', 'big.js', null)
  await expectVariant(t, port, tree, '/assets/big.js', undefined, 'big.js', null)
  await expectVariant(t, port, tree, '/assets/big.js', '', 'big.js', null)
  await expectVariant(t, port, tree, '/assets/big.js', 'compress, x-unknown', 'big.js', null)
  await expectVariant(t, port, tree, '/assets/big.js', 'deflate', 'big.js', 'deflate')
  await expectVariant(t, port, tree, '/assets/big.js', 'GZIP', 'big.js', 'gzip')
  // `*` stands for gzip, as in @fastify/static; where gzip is named, `*` adds nothing.
  await expectVariant(t, port, tree, '/assets/big.js', '*', 'big.js', 'gzip')
  await expectVariant(t, port, tree, '/assets/big.js', '*, *', 'big.js', 'gzip')
  await expectVariant(t, port, tree, '/assets/big.js', 'br;q=0, *', 'big.js', 'gzip')
  await expectVariant(t, port, tree, '/assets/big.js', 'br;q=0.1, *', 'big.js', 'gzip')
  await expectVariant(t, port, tree, '/assets/big.js', 'gzip;q=0, *', 'big.js', null)
  await expectVariant(t, port, tree, '/assets/big.js', '*;q=0', 'big.js', null)

  // A small compressed sibling goes by the core's ordinary path, as any small file does.
  const small = app.zeroCopy.stats()
  await expectVariant(t, port, tree, '/assets/text.html', 'br', 'text.html', 'br')
  await expectVariant(t, port, tree, '/assets/text.html', 'gzip', 'text.html', 'gzip')
  const smallAfter = app.zeroCopy.stats()
  t.ok(fs.statSync(path.join(tree.root, 'text.html.br')).size < 16 * KiB, 'text.html.br is small')
  t.equal(smallAfter.fallbacks['below-threshold'] - (small.fallbacks['below-threshold'] ?? 0), 2, 'both went by the ordinary path (below the threshold)')
})

test('missing siblings: .br missing -> .gz; none -> the file, still with Vary', async (t) => {
  const tree = buildPrecompressed(t)
  const { port } = await start(t, tree)
  await expectVariant(t, port, tree, '/assets/gz-only.css', 'gzip, deflate, br', 'gz-only.css', 'gzip')
  await expectVariant(t, port, tree, '/assets/gz-only.css', 'br', 'gz-only.css', null)
  const plain = await expectVariant(t, port, tree, '/assets/plain.txt', 'gzip, deflate, br', 'plain.txt', null)
  t.equal(plain.headers['content-type'], 'text/plain; charset=utf-8')
  await expectVariant(t, port, tree, '/assets/text.html', 'deflate, gzip;q=0.2', 'text.html', 'gzip') // no .deflate: the next one taken
  // A sibling that is a directory is not a representation of the file.
  await expectVariant(t, port, tree, '/assets/odd.txt', 'br, gzip', 'odd.txt', 'gzip')
  // The file itself must be there: a sibling alone is nothing to negotiate.
  fs.unlinkSync(path.join(tree.root, 'gz-only.css'))
  const gone = await rawRequest(port, '/assets/gz-only.css', { headers: { 'accept-encoding': 'gzip' } })
  t.equal(gone.status, 404)
})

test('validators are the sibling\'s; ranges, HEAD and conditionals on the compressed bytes', async (t) => {
  const tree = buildPrecompressed(t)
  const { port } = await start(t, tree)
  const brFile = path.join(tree.root, 'big.js.br')
  const br = fs.readFileSync(brFile)
  const brStat = fs.statSync(brFile)
  const full = await expectVariant(t, port, tree, '/assets/big.js', 'br', 'big.js', 'br')
  t.equal(full.headers.etag, `W/"${brStat.size.toString(16)}-${brStat.mtime.getTime().toString(16)}"`, 'ETag of the .br')
  t.equal(full.headers['last-modified'], brStat.mtime.toUTCString(), 'Last-Modified of the .br')
  const plain = await expectVariant(t, port, tree, '/assets/big.js', 'identity', 'big.js', null)
  t.not(plain.headers.etag, full.headers.etag, 'each representation its own ETag')

  const part = await rawRequest(port, '/assets/big.js', { headers: { 'accept-encoding': 'br', range: 'bytes=1000-200999' } })
  t.equal(part.status, 206)
  t.equal(part.headers['content-encoding'], 'br')
  t.equal(part.headers.vary, 'accept-encoding')
  t.equal(part.headers['content-range'], `bytes 1000-200999/${br.length}`, 'the range is of the compressed bytes')
  t.equal(sha256(part.body), sha256(br.subarray(1000, 201000)))
  const tail = await rawRequest(port, '/assets/big.js', { headers: { 'accept-encoding': 'gzip', range: 'bytes=-100' } })
  t.equal(tail.status, 206)
  t.equal(tail.headers['content-encoding'], 'gzip')
  const gz = fs.readFileSync(path.join(tree.root, 'big.js.gz'))
  t.equal(sha256(tail.body), sha256(gz.subarray(gz.length - 100)))

  const bad = await rawRequest(port, '/assets/big.js', { headers: { 'accept-encoding': 'br', range: `bytes=${br.length + 10}-` } })
  t.equal(bad.status, 416)
  t.equal(bad.headers['content-encoding'], undefined, 'an error body is not br-encoded')
  t.equal(bad.headers['content-range'], `bytes */${br.length}`)
  t.doesNotThrow(() => JSON.parse(bad.body.toString()), 'the 416 body is plain JSON')

  const head = await rawRequest(port, '/assets/big.js', { method: 'HEAD', headers: { 'accept-encoding': 'br' } })
  t.equal(head.status, 200)
  t.equal(head.headers['content-encoding'], 'br')
  t.equal(head.headers['content-length'], String(br.length))
  t.equal(head.headers.vary, 'accept-encoding')
  t.equal(head.body.length, 0, 'HEAD: no body')

  const cached = await rawRequest(port, '/assets/big.js', { headers: { 'accept-encoding': 'br', 'if-none-match': full.headers.etag } })
  t.equal(cached.status, 304)
  t.equal(cached.body.length, 0)
  t.equal(cached.headers.vary, 'accept-encoding', 'a 304 varies as its 200 would')
  t.equal(cached.headers.etag, full.headers.etag)
  t.equal(cached.headers['content-encoding'], undefined)
  // The .br's tag does not match the .gz, nor the file's the .br.
  await expectVariant(t, port, tree, '/assets/big.js', 'gzip', 'big.js', 'gzip', { headers: { 'if-none-match': full.headers.etag } })
  await expectVariant(t, port, tree, '/assets/big.js', 'br', 'big.js', 'br', { headers: { 'if-none-match': plain.headers.etag } })
  const since = await rawRequest(port, '/assets/big.js', { headers: { 'accept-encoding': 'br', 'if-modified-since': brStat.mtime.toUTCString() } })
  t.equal(since.status, 304)
  const range304 = await rawRequest(port, '/assets/big.js', { headers: { 'accept-encoding': 'br', range: 'bytes=0-9', 'if-range': plain.headers['last-modified'] } })
  t.equal(range304.status, 200, 'If-Range with the file\'s date, not the .br\'s: the whole .br')
  t.equal(sha256(range304.body), sha256(br))
})

test('index files and extensions: index.html.br for a directory, page.html.br for /page', async (t) => {
  const tree = buildPrecompressed(t)
  const { port } = await start(t, tree, { extensions: ['html'] })
  const res = await expectVariant(t, port, tree, '/assets/dir/', 'gzip, br', 'dir/index.html', 'br')
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8', 'the type of index.html')
  await expectVariant(t, port, tree, '/assets/dir', 'gzip, br', 'dir/index.html', 'br')
  await expectVariant(t, port, tree, '/assets/dir/', 'gzip', 'dir/index.html', null)
  await expectVariant(t, port, tree, '/assets/page', 'br', 'page.html', 'br')
  await expectVariant(t, port, tree, '/assets/page.html', 'br', 'page.html', 'br')

  const redirecting = await start(t, tree, { redirect: true })
  const moved = await rawRequest(redirecting.port, '/assets/dir', { headers: { 'accept-encoding': 'br' } })
  t.equal(moved.status, 301)
  t.equal(moved.headers.location, '/assets/dir/')
  await expectVariant(t, redirecting.port, tree, '/assets/dir/', 'br', 'dir/index.html', 'br')
})

test('a sibling that is a symlink out of the root is not served: the next choice, or the file', async (t) => {
  const tree = buildPrecompressed(t)
  const { port } = await start(t, tree)
  await expectVariant(t, port, tree, '/assets/out.txt', 'br', 'out.txt', null)
  await expectVariant(t, port, tree, '/assets/out.txt', 'br, gzip;q=0.5', 'out.txt', 'gzip')
  await expectVariant(t, port, tree, '/assets/abs.txt', 'br, gzip', 'abs.txt', null)
  await expectVariant(t, port, tree, '/assets/abs.txt', '*', 'abs.txt', null)
  // One that stays inside is served, as any symlink inside the root is.
  await expectVariant(t, port, tree, '/assets/in.js', 'br', 'big.js', 'br')
  // Asked for by name, the symlink out is a 404 as ever.
  const direct = await rawRequest(port, '/assets/out.txt.br')
  t.equal(direct.status, 404)
  t.notOk(direct.body.includes(tree.canary))
  // symlinks: 'none' follows no symlink at all, siblings included.
  const strict = await start(t, tree, { symlinks: 'none' })
  await expectVariant(t, strict.port, tree, '/assets/in.js', 'br', 'in.js', null)
})

test('the dotfiles policy applies to the siblings too', async (t) => {
  const tree = buildPrecompressed(t)
  const ignore = await start(t, tree)
  const deny = await start(t, tree, { dotfiles: 'deny' })
  const allow = await start(t, tree, { dotfiles: 'allow' })
  for (const target of ['/assets/.secret.txt', '/assets/.d/x.txt', '/assets/.secret.txt.br']) {
    const a = await rawRequest(ignore.port, target, { headers: { 'accept-encoding': 'br' } })
    t.equal(a.status, 404, `${target}: ignore: 404`)
    const b = await rawRequest(deny.port, target, { headers: { 'accept-encoding': 'br' } })
    t.equal(b.status, 403, `${target}: deny: 403`)
    for (const r of [a, b]) {
      t.notOk(r.body.includes(tree.secret), `${target}: not the dotfile`)
      t.notOk(r.body.includes(fs.readFileSync(path.join(tree.root, '.secret.txt.br'))), `${target}: not its .br`)
      t.equal(r.headers['content-encoding'], undefined)
    }
  }
  await expectVariant(t, allow.port, tree, '/assets/.secret.txt', 'br', '.secret.txt', 'br')
  await expectVariant(t, allow.port, tree, '/assets/.d/x.txt', 'br', '.d/x.txt', 'br')
})

test('preCompressed off: no sibling, no Vary; a bad value refused at registration', async (t) => {
  const tree = buildPrecompressed(t)
  for (const opts of [{}, { preCompressed: false }]) {
    const app = Fastify({ logger: false })
    await app.register(serveStatic, { root: tree.root, prefix: '/assets/', ...opts })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const res = await rawRequest(app.server.address().port, '/assets/big.js', { headers: { 'accept-encoding': 'br, gzip' } })
    t.equal(res.status, 200)
    t.equal(res.headers['content-encoding'], undefined, `${JSON.stringify(opts)}: the file itself`)
    t.equal(res.headers.vary, undefined, `${JSON.stringify(opts)}: no Vary`)
    t.equal(sha256(res.body), sha256(tree.files['big.js']))
    await app.close()
  }
  for (const value of ['yes', 1, null]) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, { root: tree.root, preCompressed: value }).ready(), { code: 'FST_ZERO_COPY_INVALID_OPTION' }, `preCompressed ${JSON.stringify(value)}`)
    await app.close()
  }
})

test('sendFile, download, wildcard: false, several roots, setHeaders and a Vary of its own', async (t) => {
  const tree = buildPrecompressed(t)
  const root2 = path.join(tree.dir, 'root2')
  fs.mkdirSync(root2)
  fs.writeFileSync(path.join(root2, 'plain.txt'), 'the second root\n')
  fs.writeFileSync(path.join(root2, 'plain.txt.br'), zlib.brotliCompressSync(Buffer.from('the second root\n')))
  fs.writeFileSync(path.join(root2, 'two.txt'), 'only in the second root\n')
  fs.writeFileSync(path.join(root2, 'two.txt.gz'), zlib.gzipSync(Buffer.from('only in the second root\n')))
  const seen = []
  const { port } = await start(t, tree, {
    root: [tree.root, root2],
    setHeaders (reply, file, stat) {
      seen.push([file, stat.size])
      if (file.endsWith('page.html.br')) reply.header('vary', 'Origin')
    }
  }, async (app) => {
    app.get('/send', (req, reply) => reply.sendFile('big.js'))
    app.get('/download', (req, reply) => reply.download('dir/index.html', 'home.html'))
  })
  await expectVariant(t, port, tree, '/send', 'br', 'big.js', 'br')
  const dl = await expectVariant(t, port, tree, '/download', 'br', 'dir/index.html', 'br')
  t.equal(dl.headers['content-disposition'], 'attachment; filename=home.html')
  t.same(seen.slice(0, 2), [[path.join(tree.root, 'big.js.br'), fs.statSync(path.join(tree.root, 'big.js.br')).size],
    [path.join(tree.root, 'dir/index.html.br'), fs.statSync(path.join(tree.root, 'dir/index.html.br')).size]], 'setHeaders sees the file sent and its stat')
  const own = await expectVariant(t, port, tree, '/assets/page.html', 'br', 'page.html', 'br', { vary: false })
  t.equal(own.headers.vary, 'Origin, accept-encoding', 'a Vary set by setHeaders is kept')
  // The first root that has the file wins, and its siblings are the ones looked for.
  await expectVariant(t, port, tree, '/assets/plain.txt', 'br', 'plain.txt', null)
  const two = await rawRequest(port, '/assets/two.txt', { headers: { 'accept-encoding': 'gzip' } })
  t.equal(two.headers['content-encoding'], 'gzip')
  t.equal(zlib.gunzipSync(two.body).toString(), 'only in the second root\n')

  const fixed = await start(t, tree, { wildcard: false, prefix: '/fixed/' })
  await expectVariant(t, fixed.port, tree, '/fixed/big.js', 'gzip', 'big.js', 'gzip')
  await expectVariant(t, fixed.port, tree, '/fixed/dir/', 'br', 'dir/index.html', 'br')
})

test('no descriptor left behind: 300 requests across the choices, with aborts, then close', async (t) => {
  const tree = buildPrecompressed(t)
  const app = Fastify({ logger: false })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', preCompressed: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = app.server.address().port
  const accepts = ['br', 'gzip', 'deflate', 'identity', 'br;q=0, gzip', '*']
  const targets = ['/assets/big.js', '/assets/out.txt', '/assets/abs.txt', '/assets/odd.txt', '/assets/dir/', '/assets/plain.txt', '/assets/.secret.txt']
  let n = 0
  for (let round = 0; round < 7; round++) {
    await Promise.all(targets.flatMap((target) => accepts.map(async (accept) => {
      n++
      const res = await rawRequest(port, target, { headers: { 'accept-encoding': accept } })
      if (!res.valid || res.body.includes(tree.canary)) t.fail(`${target} ${accept}: ${res.status}`)
    })))
  }
  // Clients that go away in the middle of a large .br.
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve, reject) => {
      const net = require('node:net')
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /assets/big.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n'))
      socket.once('data', () => { socket.resetAndDestroy(); resolve() })
      socket.on('error', reject)
    })
  }
  await readPartOf(port, '/assets/text.html', 10, { reset: true })
  t.ok(await eventually(() => inFlightIsZero(app)), 'every send completed')
  t.comment(`${n} requests, ${fdsUnder(tree.dir)} descriptors under the tree while open`)
  await app.close()
  t.equal(fdsUnder(tree.dir), 0, 'no descriptor under the tree after close')
})

test('as an unprivileged user: the .br by the native path', async (t) => {
  const tree = buildPrecompressed(t)
  const server = await spawnFixture(t, 'static-precompressed-app', { root: tree.root, drop: true })
  t.equal(server.state, 'READY')
  const who = await getJson(server.port, '/whoami')
  if (process.getuid() === 0) t.equal(who.uid, 65534, 'the server runs as nobody')
  else t.not(who.uid, 0)
  await expectVariant(t, server.port, tree, '/assets/big.js', 'br, gzip', 'big.js', 'br')
  await expectVariant(t, server.port, tree, '/assets/out.txt', 'br', 'out.txt', null)
  const stats = await getJson(server.port, '/stats')
  const brLength = fs.statSync(path.join(tree.root, 'big.js.br')).size
  if (who.capabilities.mode !== 'stream') {
    t.equal(nativeFileBytes(stats), brLength, 'the .br went natively')
    assertEngine(t, who.capabilities, stats, 1)
  }
})

/** Every regular file under `dir` (symlinks not followed), by SHA-256. */
function shasUnder (dir) {
  const out = new Set()
  const visit = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) visit(path.join(d, e.name))
      else if (e.isFile()) out.add(sha256(fs.readFileSync(path.join(d, e.name))))
    }
  }
  visit(dir)
  return out
}

const piece = fc.constantFrom(
  '..', '.', '', '%2e%2e', '%2f', '%5c', '%00', '%c0%ae', 'big.js', 'big.js.br', 'big.js.gz', 'out.txt', 'out.txt.br', 'abs.txt',
  'abs.txt.br', 'in.js', 'odd.txt', 'odd.txt.br', 'dir', 'index.html', 'index.html.br', 'page', 'page.html', '.secret.txt',
  '.secret.txt.br', '.d', 'x.txt', 'outside', 'canary', 'canary.br', 'root', '%2ebr', '.br', '.gz', 'BIG.JS.BR'
)
const rawPath = fc.tuple(
  fc.constantFrom('/assets/', '/assets', '/assets//', '/assets/../', '/'),
  fc.array(piece, { minLength: 0, maxLength: 6 }),
  fc.array(fc.constantFrom('/', '//', '\\', '/./', '%2f', ''), { minLength: 6, maxLength: 6 })
).map(([head, parts, seps]) => head + parts.map((p, i) => (i === 0 ? '' : seps[i]) + p).join(''))
// Half of them names that exist, so that many answers are files and their siblings.
const target = fc.oneof(rawPath, fc.constantFrom('big.js', 'out.txt', 'abs.txt', 'in.js', 'odd.txt', 'gz-only.css', 'text.html', 'dir/', 'dir', 'page', '.secret.txt').map((n) => '/assets/' + n))
const acceptEncoding = fc.array(fc.tuple(fc.constantFrom('br', 'gzip', 'deflate', 'identity', '*', 'BR', 'x-gzip', ''), fc.constantFrom('', ';q=0', ';q=0.5', ';q=1', ';q=abc')), { maxLength: 4 })
  .map((list) => list.map(([c, q]) => c + q).join(', '))

test('property: generated raw paths and Accept-Encodings never yield the canary; every body a file of the root, decodable', async (t) => {
  const tree = buildPrecompressed(t)
  const { port } = await start(t, tree, { redirect: true, extensions: ['html'] })
  const shas = shasUnder(tree.root)
  const counts = {}
  await fc.assert(fc.asyncProperty(target, acceptEncoding, async (url, accept) => {
    const res = await rawRequest(port, url, { headers: { 'accept-encoding': accept } })
    if (!res.valid) throw new Error(`${url} (${accept}): not a valid HTTP response`)
    if (res.body.includes(tree.canary)) throw new Error(`${url} (${accept}): the canary leaked`)
    if (res.status !== 200) return
    const coding = res.headers['content-encoding'] ?? 'none'
    counts[coding] = (counts[coding] ?? 0) + 1
    if (!shas.has(sha256(res.body))) throw new Error(`${url} (${accept}): a body that is no file of the root`)
    if (coding !== 'none' && !shas.has(sha256(DECODE[coding](res.body)))) throw new Error(`${url} (${accept}): does not decode to a file of the root`)
  }), { numRuns: 800 })
  t.ok(counts.br > 0 && counts.gzip > 0 && counts.none > 0, `brotli, gzip and plain bodies were served: ${JSON.stringify(counts)}`)
})

test('a .br sibling flipped out of the root and back while requests run: never the canary', async (t) => {
  const tree = buildPrecompressed(t)
  const { port } = await start(t, tree)
  fs.writeFileSync(path.join(tree.root, 'flip.js'), tree.files['big.js'])
  const link = path.join(tree.root, 'flip.js.br')
  const tmp = path.join(tree.root, 'flip.js.br.tmp')
  const br = fs.readFileSync(path.join(tree.root, 'big.js.br'))
  let flips = 0
  let running = true
  const flipper = (async () => {
    while (running) {
      // Replaced atomically (rename over the link): the name is always one of the two.
      fs.symlinkSync(flips % 2 === 0 ? '../outside/canary.br' : 'big.js.br', tmp)
      fs.renameSync(tmp, link)
      flips++
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  const counts = { br: 0, plain: 0 }
  try {
    await Promise.all(Array.from({ length: 6 }, async () => {
      for (let i = 0; i < 60; i++) {
        const res = await rawRequest(port, '/assets/flip.js', { headers: { 'accept-encoding': 'br' } })
        if (!res.valid || res.status !== 200 || res.body.includes(tree.canary)) t.fail(`status ${res.status}, valid ${res.valid}`)
        if (res.headers['content-encoding'] === 'br') {
          counts.br++
          if (sha256(res.body) !== sha256(br)) t.fail('the .br inside, exact')
        } else {
          counts.plain++
          if (sha256(res.body) !== sha256(tree.files['big.js'])) t.fail('the file itself, exact')
        }
      }
    }))
  } finally {
    running = false
    await flipper
  }
  t.ok(flips > 30, `${flips} flips`)
  t.ok(counts.br > 0 && counts.plain > 0, `both states were met: ${JSON.stringify(counts)}`)
})

test('the addon answers a miss beneath the root as -errno when asked to (quiet), thrown otherwise', async (t) => {
  // Misses are the common answer here (a file without siblings costs one per coding taken):
  // quiet, the failed lookup is returned rather than built into an exception.
  const tree = buildPrecompressed(t)
  const binding = require('node-gyp-build')(path.join(__dirname, '..'))
  const { BENEATH_FILE, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS } = require('../dist/plugin/native.js')
  const flags = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
  const rootFd = binding.openRoot(tree.root)
  t.teardown(() => binding.closeFile(rootFd, false, -1))
  // Looked up once here, so that the dentry cache holds each answer (a negative entry for the miss).
  for (const name of ['plain.txt', 'plain.txt.br']) fs.existsSync(path.join(tree.root, name))
  const hit = binding.openBeneathCached(rootFd, 'plain.txt', BENEATH_FILE, flags, true)
  t.ok(hit >= 0, 'a file: its descriptor')
  t.equal(sha256(fs.readFileSync(`/proc/self/fd/${hit}`)), sha256(tree.files['plain.txt']))
  binding.closeFile(hit, false, -1)
  t.equal(binding.openBeneathCached(rootFd, 'plain.txt.br', BENEATH_FILE, flags, true), -2, 'missing: -ENOENT')
  t.throws(() => binding.openBeneathCached(rootFd, 'plain.txt.br', BENEATH_FILE, flags), { code: 'ENOENT' }, 'not quiet: thrown')
  t.throws(() => binding.openBeneathCached(rootFd, 'plain.txt.br', BENEATH_FILE, flags, false), { code: 'ENOENT' }, 'quiet false: thrown')
})
