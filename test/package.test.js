'use strict'
// The npm tarball, installed the way a user installs it: into a fresh project, on a PATH with
// no compiler, make or Python, so only a prebuilt addon can give the native path.
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const tap = require('tap')
const { test } = tap

const root = path.join(__dirname, '..')
// `npm pack` runs `prepack`, which builds the prebuilt addon when the sources changed; one
// tarball serves every test below.
const packDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-pack-'))
let packed
function packOnce () {
  packed ??= pack(packDir)
  return packed
}
tap.teardown(() => fs.rmSync(packDir, { recursive: true, force: true }))

/** A bin directory with node, npm and a shell, and nothing that compiles. */
function barePath (dir) {
  const bin = path.join(dir, 'bin')
  fs.mkdirSync(bin)
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim())
  fs.writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 })
  for (const tool of ['sh', 'env']) fs.symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), path.join(bin, tool))
  return bin
}

function pack (dir) {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' })
  const info = JSON.parse(out.slice(out.indexOf('[')))[0]
  return { tarball: path.join(dir, info.filename), files: info.files.map((f) => f.path) }
}

/** Installs `tarball` and fastify into a new project under `dir`, with only `bin` on PATH. */
function install (t, dir, tarball, bin) {
  const project = path.join(dir, 'consumer')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  const env = { HOME: process.env.HOME, PATH: bin, npm_config_cache: path.join(os.homedir(), '.npm'), npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' }
  const res = spawnSync(path.join(bin, 'npm'), ['install', '--no-package-lock', '--prefer-offline', '--foreground-scripts', tarball, 'fastify@5'], { cwd: project, env, encoding: 'utf8' })
  t.equal(res.status, 0, `npm install succeeds (stderr: ${res.stderr.slice(-400)})`)
  return { project, env, output: res.stdout + res.stderr }
}

const serverSource = `
const crypto = require('node:crypto')
const http = require('node:http')
const Fastify = require('fastify')
const zeroCopy = require('fastify-zero-copy')
const body = crypto.randomBytes(8 * 1024 * 1024)
;(async () => {
  const app = Fastify()
  await app.register(zeroCopy)
  app.get('/', (req, reply) => reply.sendZeroCopy(body))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const sha = await new Promise((resolve, reject) => http.get({ port: app.server.address().port, host: '127.0.0.1', path: '/' }, (res) => {
    const h = crypto.createHash('sha256'); res.on('data', (d) => h.update(d)); res.on('end', () => resolve(h.digest('hex')))
  }).on('error', reject))
  for (let i = 0; i < 100 && app.zeroCopy.stats().responses.sendZc + app.zeroCopy.stats().responses.stream === 0; i++) await new Promise((r) => setTimeout(r, 20))
  console.log(JSON.stringify({ capabilities: app.zeroCopy.capabilities, exact: sha === crypto.createHash('sha256').update(body).digest('hex'), stats: app.zeroCopy.stats() }))
  await app.close()
})()
`

function runServer (t, project, env) {
  fs.writeFileSync(path.join(project, 'server.cjs'), serverSource)
  const res = spawnSync(process.execPath, ['server.cjs'], { cwd: project, env, encoding: 'utf8' })
  t.equal(res.status, 0, `the server ran (stderr: ${res.stderr.slice(-400)})`)
  return JSON.parse(res.stdout.trim().split('\n').pop())
}

test('the tarball holds what a user needs, and only that', async (t) => {
  const { files } = packOnce()
  t.ok(files.includes('dist/plugin/index.js'), 'CommonJS entry')
  t.ok(files.includes('plugin/esm.mjs'), 'ES module entry')
  t.ok(files.includes('types/index.d.ts'), 'types')
  t.ok(files.some((f) => /^prebuilds\/linux-x64\/.*\.node$/.test(f)), 'a prebuilt addon for linux-x64')
  t.ok(files.some((f) => /^prebuilds\/linux-arm64\/.*\.node$/.test(f)), 'a prebuilt addon for linux-arm64')
  // Every source binding.gyp compiles, and the headers beside them: a machine without a
  // prebuild builds from these.
  const gyp = fs.readFileSync(path.join(__dirname, '..', 'binding.gyp'), 'utf8')
  const sources = JSON.parse(gyp.replace(/#.*$/gm, '')).targets[0].sources
  const missing = sources.filter((f) => !files.includes(f))
  t.same(missing, [], `native sources for a local build (${sources.length} files)`)
  t.ok(files.includes('binding.gyp') && files.includes('native/engine.h') && files.includes('native/uring/ring.h') && files.includes('native/classic/classic.h'), 'binding.gyp and the headers')
  t.ok(files.includes('README.md') && files.includes('LICENSE'))
  t.ok(files.includes('dist/plugin/static/index.js') && files.includes('plugin/static/esm.mjs') && files.includes('types/static.d.ts'), 'the fastify-zero-copy/static entries')
  const stray = files.filter((f) => /^(test|bench|example|\.ci)\//.test(f) || f.startsWith('build/') || (f.endsWith('.ts') && f !== 'types/index.d.ts' && f !== 'types/static.d.ts'))
  t.same(stray, [], 'no tests, benchmarks, build tree or TypeScript sources')
})

test('installed with no compiler on PATH, the prebuilt addon serves through SEND_ZC', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-install-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const bin = barePath(dir)
  for (const tool of ['cc', 'gcc', 'g++', 'make', 'python3']) t.notOk(fs.existsSync(path.join(bin, tool)), `no ${tool}`)
  const { tarball } = packOnce()
  const { project, env } = install(t, dir, tarball, bin)
  t.notOk(fs.existsSync(path.join(project, 'node_modules', 'fastify-zero-copy', 'build')), 'nothing was compiled')
  const prebuilt = path.join(project, 'node_modules', 'fastify-zero-copy', 'prebuilds', `${process.platform}-${process.arch}`)
  for (const file of fs.readdirSync(prebuilt)) {
    const libs = execFileSync('ldd', [path.join(prebuilt, file)], { encoding: 'utf8' })
    t.notMatch(libs, /liburing/, `${file} needs no liburing at run time (linked statically)`)
  }
  const result = runServer(t, project, env)
  t.equal(result.capabilities.mode, 'send_zc')
  t.equal(result.exact, true, '8 MiB body exact')
  t.equal(result.stats.responses.sendZc, 1)
})

test('without the prebuilt and with no compiler: the install succeeds, the fallback answers and says what is missing', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-noprebuild-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const bin = barePath(dir)
  // The same tarball, repacked without prebuilds/.
  const { tarball } = packOnce()
  const unpacked = path.join(dir, 'unpacked')
  fs.mkdirSync(unpacked)
  execFileSync('tar', ['-xzf', tarball, '-C', unpacked])
  fs.rmSync(path.join(unpacked, 'package', 'prebuilds'), { recursive: true, force: true })
  const stripped = path.join(dir, 'stripped.tgz')
  execFileSync('tar', ['-czf', stripped, '-C', unpacked, 'package'])
  const { project, env, output } = install(t, dir, stripped, bin)
  t.match(output, /could not be built/, 'the install script says the native path is missing (npm shows it with --foreground-scripts)')
  const result = runServer(t, project, env)
  t.equal(result.capabilities.mode, 'stream')
  t.match(result.capabilities.reason, /native addon did not load.*liburing-dev/)
  t.equal(result.exact, true, '8 MiB body exact through the ordinary path')
  t.equal(result.stats.responses.stream, 1)
})

test('import and require both work, and the types resolve from both under tsc --strict', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-consumer-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const bin = barePath(dir)
  const { tarball } = packOnce()
  const { project, env } = install(t, dir, tarball, bin)
  fs.writeFileSync(path.join(project, 'esm.mjs'), `
import zeroCopy, { fastifyZeroCopy } from 'fastify-zero-copy'
import { createRequire } from 'node:module'
const required = createRequire(import.meta.url)('fastify-zero-copy')
console.log(typeof zeroCopy, zeroCopy === fastifyZeroCopy, zeroCopy === required, required.default === required)
`)
  const run = spawnSync(process.execPath, ['esm.mjs'], { cwd: project, env, encoding: 'utf8' })
  t.equal(run.stdout.trim(), 'function true true true', `ESM and CJS give the same plugin (${run.stderr.slice(-300)})`)

  const consumerTs = `
import Fastify from 'fastify'
import zeroCopy, { type ZeroCopyStats } from 'fastify-zero-copy'
const app = Fastify()
app.register(zeroCopy, { threshold: 1 << 16 })
app.get('/', (req, reply) => reply.sendZeroCopy(Buffer.alloc(1)))
const stats: ZeroCopyStats = app.zeroCopy.stats()
const mode: 'send_zc' | 'send' | 'stream' = app.zeroCopy.capabilities.mode
export { stats, mode }
`
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  for (const [kind, module, file] of [['esm', 'nodenext', 'index.mts'], ['cjs', 'nodenext', 'index.cts'], ['cjs-node10', 'commonjs', 'index.ts']]) {
    const sub = path.join(project, kind)
    fs.mkdirSync(sub)
    fs.writeFileSync(path.join(sub, file), kind === 'cjs' ? consumerTs.replace("import zeroCopy, { type ZeroCopyStats } from 'fastify-zero-copy'", "import zeroCopy = require('fastify-zero-copy')\ntype ZeroCopyStats = zeroCopy.ZeroCopyStats") : consumerTs)
    const args = [tsc, '--strict', '--noEmit', '--skipLibCheck', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), '--module', module, ...(module === 'commonjs' ? ['--moduleResolution', 'node10', '--esModuleInterop'] : []), path.join(sub, file)]
    const res = spawnSync(process.execPath, args, { cwd: project, encoding: 'utf8' })
    t.equal(res.status, 0, `tsc --strict (${kind}): ${res.stdout.slice(-600)}`)
  }
})
