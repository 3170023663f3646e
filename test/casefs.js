'use strict'
// A case-insensitive filesystem for the tests: test/fixtures/casefs.c (a FUSE passthrough
// whose lookups ignore letter case) mounted over a backing directory the test fills.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn, spawnSync, execFileSync } = require('node:child_process')
const { compileFixture } = require('./helpers')
const { isMounted } = require('./slowfs')

/** Why a FUSE mount cannot be made here, or null. */
function fuseUnavailable () {
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is absent (no FUSE in this kernel or container)'
  return null
}

/**
 * Mounts casefs over `backing` (filled by the caller, before or after). Resolves with
 * { dir (the mount point), unmount() }; the mount is removed at teardown whatever happened,
 * and goes by itself if this process dies (the end of the daemon's stdin). Root mounts it
 * with allow_other, for servers that drop to nobody.
 */
async function mountCaseFs (t, backing) {
  let flags
  try {
    flags = execFileSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' }).trim().split(/\s+/).concat('-lpthread')
  } catch {
    throw new Error('libfuse3 is missing: install fuse3, libfuse3-dev and pkg-config (bash scripts/bootstrap.sh does)')
  }
  const binary = compileFixture(t, 'casefs', flags)
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-casefs-'))
  fs.chmodSync(top, 0o755) // a server running as nobody walks through it
  const dir = path.join(top, 'mnt')
  fs.mkdirSync(dir, { mode: 0o755 })
  const args = [backing, dir]
  if (process.getuid() === 0) args.push('--allow-other')
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  let stderr = ''
  let stdout = ''
  child.stderr.on('data', (d) => { stderr += d })
  const mounted = new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      stdout += d
      if (stdout.includes('MOUNTED\n')) resolve(true)
    })
    exited.then(() => resolve(false))
    setTimeout(resolve, 10000, false).unref()
  })

  let done = false
  const unmount = async () => {
    if (done) return
    done = true
    const run = (cmd, argv) => spawnSync(cmd, argv, { stdio: 'ignore', timeout: 5000 })
    if (isMounted(dir)) run('fusermount3', ['-u', dir])
    if (isMounted(dir)) run('fusermount3', ['-u', '-z', dir]) // busy: a server still holds a file
    child.stdin.end()
    const gone = await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000, null).unref())])
    if (gone === null) {
      child.kill('SIGKILL')
      await exited
    }
    if (isMounted(dir)) run('umount', ['-l', dir])
    if (isMounted(dir)) throw new Error(`${dir} is still mounted`)
    fs.rmSync(top, { recursive: true, force: true })
  }
  t.teardown(unmount)
  if (!(await mounted)) throw new Error(`casefs did not mount: ${stderr}`)
  for (let i = 0; i < 250 && !isMounted(dir); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  if (!isMounted(dir)) throw new Error(`casefs: ${dir} does not show in /proc/self/mountinfo`)
  return { dir, unmount }
}

module.exports = { mountCaseFs, fuseUnavailable }
