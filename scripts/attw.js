'use strict'
// `npm run test:attw`: the package as npm would publish it, checked by @arethetypeswrong/cli
// for every entry (`.`, `./static`) under node10, node16 from CommonJS and from ESM, and
// bundler resolution. Packed with --ignore-scripts: prepack builds the release prebuilds,
// which the declarations do not depend on (the TypeScript build, dist/, must exist).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const cli = require.resolve('@arethetypeswrong/cli/package.json', { paths: [ROOT] })
const bin = path.join(path.dirname(cli), require(cli).bin.attw)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fzc-attw-'))
try {
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (pack.status !== 0) throw new Error(`npm pack failed (${pack.status})`)
  const tarball = path.join(dir, JSON.parse(pack.stdout)[0].filename)
  const run = spawnSync(process.execPath, [bin, tarball, ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exitCode = run.status ?? 1
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
