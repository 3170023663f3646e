'use strict'
// Release step (npm pack / npm publish run it as `prepack`): builds the prebuilt addons with
// prebuildify, one Node-API binary per platform (so one serves Node 20 and later), liburing
// linked statically by scripts/build-flags.js:
//   prebuilds/linux-x64    with the host compiler
//   prebuilds/linux-arm64  with Debian's aarch64-linux-gnu cross compiler and liburing-dev:arm64
//                          (scripts/platforms.sh installs both)
// Each build happens in a copy of the native sources (the checkout's build/ stays as it is),
// then scripts/prebuild-check.js checks it (no liburing needed at run time, no glibc symbol
// version above 2.28) and only a binary that passes lands in prebuilds/. A platform whose
// binary is newer than every native source is not rebuilt.
//   ZERO_COPY_PREBUILD_ARCHS: which to build, comma-separated (default x64,arm64 on x64 Linux)
// node-gyp-build loads prebuilds/<platform>-<arch>/*.node when no local build/ exists.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { inspect, describe } = require('./prebuild-check')

const root = path.join(__dirname, '..')
const nodePrefix = path.dirname(path.dirname(process.execPath))
const toolchains = {
  x64: { triple: 'x86_64-linux-gnu', env: {} },
  arm64: {
    triple: 'aarch64-linux-gnu',
    env: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-g++', AR: 'aarch64-linux-gnu-ar' },
    strip: 'aarch64-linux-gnu-strip'
  }
}

function fail (message) {
  console.error(`prebuilds: ${message}`)
  process.exit(1)
}

if (process.env.ZERO_COPY_SANITIZE === '1') fail('refusing to build a release binary with sanitizers (unset ZERO_COPY_SANITIZE)')
if (process.platform !== 'linux') fail(`the prebuilds are made on Linux, not ${process.platform}`)

const archs = (process.env.ZERO_COPY_PREBUILD_ARCHS ?? (process.arch === 'x64' ? 'x64,arm64' : process.arch)).split(',').filter(Boolean)
for (const arch of archs) {
  if (!(arch in toolchains)) fail(`no toolchain known for ${arch}`)
  if (arch !== process.arch && process.arch !== 'x64') fail(`cross builds are made on x64 hosts (this is ${process.arch})`)
}

const sources = ['binding.gyp', 'scripts/build-flags.js', 'scripts/prebuilds.js', 'scripts/prebuild-check.js',
  ...fs.readdirSync(path.join(root, 'native')).map((f) => `native/${f}`)]
const newestSource = Math.max(...sources.map((f) => fs.statSync(path.join(root, f)).mtimeMs))

function hasTool (name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

/** A throwaway copy of what node-gyp reads; node_modules is linked for node-addon-api. */
function stage (arch) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `zc-prebuild-${arch}-`))
  for (const f of ['package.json', 'binding.gyp', 'scripts/build-flags.js']) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true })
    fs.copyFileSync(path.join(root, f), path.join(dir, f))
  }
  fs.cpSync(path.join(root, 'native'), path.join(dir, 'native'), { recursive: true })
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'))
  return dir
}

function build (arch) {
  const out = path.join(root, 'prebuilds', `linux-${arch}`)
  const built = fs.existsSync(out) ? fs.readdirSync(out).filter((f) => f.endsWith('.node')) : []
  if (built.length > 0 && built.every((f) => fs.statSync(path.join(out, f)).mtimeMs > newestSource)) {
    console.log(`prebuilds: ${path.relative(root, out)} is up to date`)
    return
  }
  const tc = toolchains[arch]
  for (const tool of Object.values(tc.env)) {
    if (!hasTool(tool)) fail(`${tool} is missing for the linux-${arch} prebuild: run scripts/platforms.sh as root (Debian's g++-${tc.triple} and liburing-dev:${arch})`)
  }
  if (arch !== process.arch && !fs.existsSync(`/usr/lib/${tc.triple}/liburing.a`)) {
    fail(`/usr/lib/${tc.triple}/liburing.a is missing: run scripts/platforms.sh as root (Debian's liburing-dev:${arch})`)
  }
  const dir = stage(arch)
  try {
    // Node-API headers are the same for every Node version: this Node's own serve, so nothing
    // is downloaded (without a target, prebuildify asks node-gyp for the newest Node's headers).
    const args = [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc', '--arch', arch,
      '--target', `node@${process.version}`, '--cwd', dir, '--out', dir]
    if (tc.strip) args.push('--strip-bin', tc.strip)
    const env = { ...process.env, ...tc.env }
    if (fs.existsSync(path.join(nodePrefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = nodePrefix
    console.log(`prebuilds: building linux-${arch}`)
    const res = spawnSync(process.execPath, args, { cwd: dir, stdio: 'inherit', env })
    if (res.status !== 0) fail(`the linux-${arch} build failed`)
    const made = path.join(dir, 'prebuilds', `linux-${arch}`)
    const files = fs.readdirSync(made).filter((f) => f.endsWith('.node'))
    if (files.length === 0) fail(`the linux-${arch} build made no .node file`)
    for (const f of files) {
      const report = inspect(path.join(made, f), arch)
      console.log(`prebuilds: ${describe(report)}`)
      if (report.problems.length > 0) fail(`linux-${arch}/${f} would not load where the prebuilds promise it does`)
    }
    fs.rmSync(out, { recursive: true, force: true })
    fs.mkdirSync(out, { recursive: true })
    for (const f of files) fs.copyFileSync(path.join(made, f), path.join(out, f))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

for (const arch of archs) build(arch)
