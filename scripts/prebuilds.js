'use strict'
// Release step (npm pack / npm publish run it as `prepack`): builds the prebuilt addon for this
// platform with prebuildify (Node-API, so one binary serves Node 20 and later; liburing linked
// statically by binding.gyp), unless one newer than the native sources is already there.
// node-gyp-build loads prebuilds/<platform>-<arch>/*.node before trying build/.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const sources = ['binding.gyp', 'scripts/build-flags.js', ...fs.readdirSync(path.join(root, 'native')).map((f) => `native/${f}`)]
const newestSource = Math.max(...sources.map((f) => fs.statSync(path.join(root, f)).mtimeMs))
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)
const built = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : []
if (built.length > 0 && built.every((f) => fs.statSync(path.join(dir, f)).mtimeMs > newestSource)) {
  console.log(`prebuilds: ${path.relative(root, dir)} is up to date`)
  process.exit(0)
}
if (process.env.ZERO_COPY_SANITIZE === '1') {
  console.error('prebuilds: refusing to build a release binary with sanitizers (unset ZERO_COPY_SANITIZE)')
  process.exit(1)
}
fs.rmSync(dir, { recursive: true, force: true })
const bin = require.resolve('prebuildify/bin.js')
const res = spawnSync(process.execPath, [bin, '--napi', '--strip', '--tag-libc'], { cwd: root, stdio: 'inherit' })
process.exit(res.status ?? 1)
