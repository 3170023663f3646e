'use strict'
// A slow network filesystem for the tests: test/fixtures/slowfs.c mounted in a temporary
// directory, serving seeded files whose every operation can be made to take its time.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn, spawnSync, execFileSync } = require('node:child_process')
const { compileFixture, writeSeededFile } = require('./helpers')

/** Whether `dir` is a mount point now (/proc/self/mountinfo's fifth field). */
function isMounted (dir) {
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => unescape(line.split(' ')[4] ?? '') === dir)
}

function fuseFlags () {
  try {
    return execFileSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' }).trim().split(/\s+/).concat('-lpthread')
  } catch {
    throw new Error('libfuse3 is missing: install fuse3, libfuse3-dev and pkg-config (bash scripts/bootstrap.sh does)')
  }
}

/**
 * Mounts a slowfs serving `files` ({ name: size }: AES-CTR bytes seeded by the name, see
 * writeSeededFile), or the files already in `backing`, with `delays` ({ read: 50, ... } in ms);
 * `interrupts: false`: requests the kernel interrupts sleep on (else they fail with EINTR);
 * `syncRead`, `directIo`, `entryTimeout`, `attrTimeout`: see test/fixtures/slowfs.c.
 * Resolves with { dir (the mount point), files: { name: { path, size, sha } }, pid,
 * setDelay(op, ms), stats(), unmount(), isMounted() }.
 * The mount is removed at teardown whatever happened (fusermount3 -u, then -u -z, then the
 * daemon is killed and the mount detached), and the filesystem unmounts itself if this
 * process dies (the end of its stdin). Root mounts it with allow_other, for servers that
 * drop to nobody.
 */
async function mountSlowFs (t, { files = {}, backing: given = null, delays = {}, entryTimeout = 3600, attrTimeout = 0, syncRead = false, directIo = false, interrupts = true }) {
  const binary = compileFixture(t, 'slowfs', fuseFlags())
  const root = process.getuid() === 0
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-slowfs-'))
  fs.chmodSync(top, 0o755) // a server running as nobody walks through it
  const backing = given ?? path.join(top, 'backing')
  const dir = path.join(top, 'mnt')
  if (given === null) fs.mkdirSync(backing, { mode: 0o755 })
  fs.mkdirSync(dir, { mode: 0o755 })
  const described = {}
  for (const [name, size] of Object.entries(files)) {
    described[name] = { path: path.join(dir, name), size, sha: await writeSeededFile(path.join(backing, name), size, name) }
  }
  const args = [backing, dir, '--entry-timeout', String(entryTimeout), '--attr-timeout', String(attrTimeout)]
  for (const [op, ms] of Object.entries(delays)) args.push('--delay', `${op}=${ms}`)
  if (syncRead) args.push('--sync-read')
  if (directIo) args.push('--direct-io')
  if (!interrupts) args.push('--ignore-interrupts')
  if (root) args.push('--allow-other')
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  // Answers to commands arrive in order, one line each.
  let pending = ''
  const lines = []
  const waiting = []
  child.stdout.on('data', (d) => {
    pending += d
    let at
    while ((at = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, at)
      pending = pending.slice(at + 1)
      if (waiting.length > 0) waiting.shift()(line)
      else lines.push(line)
    }
  })
  const nextLine = () => new Promise((resolve, reject) => {
    if (lines.length > 0) return resolve(lines.shift())
    waiting.push(resolve)
    exited.then(({ code, signal }) => reject(new Error(`slowfs ended (${code ?? signal}): ${stderr}`)))
  })
  let queue = Promise.resolve()
  const command = (text) => {
    const answer = queue.then(() => { child.stdin.write(text + '\n'); return nextLine() })
    queue = answer.catch(() => {})
    return answer
  }

  let unmounted = false
  const unmount = async () => {
    if (unmounted) return
    unmounted = true
    const run = (cmd, argv) => spawnSync(cmd, argv, { stdio: 'ignore', timeout: 5000 })
    if (isMounted(dir)) run('fusermount3', ['-u', dir])
    if (isMounted(dir)) run('fusermount3', ['-u', '-z', dir]) // busy: a server still holds a file
    child.stdin.end() // the daemon unmounts (lazily) and exits by itself
    const gone = await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000, null))])
    if (gone === null) {
      child.kill('SIGKILL')
      await exited
    }
    if (isMounted(dir)) run('umount', ['-l', dir]) // a killed daemon leaves its mount behind
    if (isMounted(dir)) throw new Error(`${dir} is still mounted`)
    fs.rmSync(top, { recursive: true, force: true })
  }
  t.teardown(unmount)

  const first = await Promise.race([nextLine(), new Promise((resolve) => setTimeout(resolve, 10000, 'TIMEOUT'))])
  if (first !== 'MOUNTED') throw new Error(`slowfs did not mount (${first}): ${stderr}`)
  for (let i = 0; i < 250 && !isMounted(dir); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  if (!isMounted(dir)) throw new Error(`slowfs: ${dir} does not show in /proc/self/mountinfo`)

  return {
    dir,
    files: described,
    pid: child.pid,
    async setDelay (op, ms) {
      const answer = await command(`delay ${op} ${ms}`)
      if (answer !== 'OK') throw new Error(`slowfs: delay ${op} ${ms}: ${answer}`)
    },
    async stats () {
      const answer = await command('stats')
      if (!answer.startsWith('STATS ')) throw new Error(`slowfs: stats: ${answer}`)
      return JSON.parse(answer.slice(6))
    },
    unmount,
    isMounted: () => isMounted(dir)
  }
}

module.exports = { mountSlowFs, isMounted }
