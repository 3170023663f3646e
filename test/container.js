'use strict'
// A server in a real container: runc (Debian's) runs a script of this checkout as the
// container's process, under a real default seccomp profile, and the test talks to it on the
// host's loopback (the container keeps the host's network namespace).
//
//   profile 'podman'       /usr/share/containers/seccomp.json (Debian's
//                          golang-github-containers-common), translated for this machine:
//                          unknown calls fail with ENOSYS, io_uring among them
//   profile 'docker-like'  the same rules with Docker's differences: unknown calls fail with
//                          EPERM, io_uring_setup/enter/register refused with EPERM, cachestat
//                          allowed
//
// The bundle: `runc spec`, an empty root with rbind mounts of the system's directories, /tmp
// and the checkout (same paths inside), `binds` at their own paths; no network or cgroup
// namespace, no /sys, no resources or rlimits. The container and its bundle are removed by
// stop(), by the exit of this process, or, if this process was killed, by the next start
// (containers are named after the process that made them). The container's node ends when
// its stdin closes (test/fixtures/container-guard.js), so even a killed test leaves no server.
const { spawn, execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const PODMAN_PROFILE = '/usr/share/containers/seccomp.json'
const PROFILES = ['podman', 'docker-like']
const ID_PREFIX = 'zc-test-'
const BUNDLE_PREFIX = 'zc-bundle-'
const EPERM = 1
const SYSTEM_DIRS = ['/usr', '/lib', '/lib64', '/bin', '/sbin', '/etc', '/tmp']
const IO_URING = ['io_uring_setup', 'io_uring_enter', 'io_uring_register']

// Go's architecture names (the profile's `includes.arches`) and libseccomp's, for this machine.
const ARCH = { x64: { go: ['amd64'], scmp: 'SCMP_ARCH_X86_64' }, arm64: { go: ['arm64'], scmp: 'SCMP_ARCH_AARCH64' } }[process.arch]

function runcBinary () {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin']) {
    if (fs.existsSync(path.join(dir, 'runc'))) return path.join(dir, 'runc')
  }
  throw new Error('runc is not installed (scripts/bootstrap.sh installs it: apt-get install runc)')
}

function kernelAtLeast (version) {
  const have = os.release().split(/[.-]/).map(Number)
  const want = String(version).split('.').map(Number)
  for (let i = 0; i < want.length; i++) {
    if ((have[i] || 0) !== want[i]) return (have[i] || 0) > want[i]
  }
  return true
}

/**
 * A containers-common (or Docker) profile as the OCI `linux.seccomp` for this machine and a
 * container holding `caps`: a rule applies only where its `includes` hold (this
 * architecture, capabilities the container has, the running kernel) and its `excludes` do
 * not. Actions, arguments and errnoRet are kept.
 */
function translateProfile (profile, caps) {
  if (!ARCH) throw new Error(`no seccomp translation for ${process.arch}`)
  const arch = profile.archMap.find((a) => a.architecture === ARCH.scmp)
  const syscalls = []
  for (const rule of profile.syscalls) {
    const inc = rule.includes || {}
    const exc = rule.excludes || {}
    if (inc.arches && !inc.arches.some((a) => ARCH.go.includes(a))) continue
    if (inc.caps && !inc.caps.every((c) => caps.includes(c))) continue
    if (inc.minKernel && !kernelAtLeast(inc.minKernel)) continue
    if (exc.arches && exc.arches.some((a) => ARCH.go.includes(a))) continue
    if (exc.caps && exc.caps.some((c) => caps.includes(c))) continue
    if (exc.minKernel && kernelAtLeast(exc.minKernel)) continue
    const out = { names: rule.names, action: rule.action }
    if (rule.errnoRet !== undefined) out.errnoRet = rule.errnoRet
    if (rule.args && rule.args.length > 0) out.args = rule.args
    syscalls.push(out)
  }
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined && { defaultErrnoRet: profile.defaultErrnoRet }),
    architectures: [arch.architecture, ...(arch.subArchitectures || [])],
    syscalls
  }
}

/** The profile as installed, or the Docker-like one derived from it; throws if it is not there. */
function loadProfile (name) {
  if (!PROFILES.includes(name)) throw new Error(`profile must be one of ${PROFILES.join(', ')}; got ${name}`)
  if (!fs.existsSync(PODMAN_PROFILE)) {
    throw new Error(`${PODMAN_PROFILE} is missing (scripts/bootstrap.sh installs it: apt-get install golang-github-containers-common)`)
  }
  const profile = JSON.parse(fs.readFileSync(PODMAN_PROFILE, 'utf8'))
  if (name === 'podman') return profile
  // Docker's default profile: EPERM for what it does not list, io_uring refused with EPERM
  // (moby 25.0), cachestat allowed (25.0.3).
  const syscalls = profile.syscalls.map((rule) => rule.action === 'SCMP_ACT_ALLOW'
    ? { ...rule, names: rule.names.filter((n) => !IO_URING.includes(n)) }
    : rule).filter((rule) => rule.names.length > 0)
  syscalls.push({ names: ['cachestat'], action: 'SCMP_ACT_ALLOW' })
  syscalls.push({ names: IO_URING, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM })
  return { ...profile, defaultErrnoRet: EPERM, syscalls }
}

/** The OCI seccomp section of a profile for this machine and runc's default capabilities. */
function seccompFor (name, caps) {
  return translateProfile(loadProfile(name), caps)
}

function bindMount (source, destination = source) {
  return { destination, type: 'bind', source, options: ['rbind', 'rw'] }
}

/**
 * Writes a bundle in a fresh directory: `args` run as the container's process with `env`,
 * under `profile`, with the checkout and `binds` ([{ source, destination? }]) mounted.
 */
function writeBundle ({ dir, profile, args, env, binds = [] }) {
  const runc = runcBinary()
  execFileSync(runc, ['spec'], { cwd: dir })
  const specFile = path.join(dir, 'config.json')
  const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'))
  fs.mkdirSync(path.join(dir, 'rootfs'))
  spec.root = { path: 'rootfs', readonly: true }
  spec.process.terminal = false
  spec.process.args = args
  spec.process.env = env
  spec.process.cwd = ROOT
  spec.process.rlimits = []
  spec.hostname = 'zc-container'
  // Host network (the server listens on the host's loopback) and cgroups (hybrid here: a new
  // cgroup namespace cannot be set up).
  spec.linux.namespaces = spec.linux.namespaces.filter((ns) => ns.type !== 'network' && ns.type !== 'cgroup')
  delete spec.linux.resources
  spec.mounts = spec.mounts.filter((m) => m.destination !== '/sys' && m.destination !== '/sys/fs/cgroup')
  const extra = [...SYSTEM_DIRS, ROOT, path.dirname(process.execPath)].filter((d) => fs.existsSync(d))
  for (const d of extra) spec.mounts.push(bindMount(d))
  for (const b of binds) spec.mounts.push(bindMount(b.source, b.destination))
  spec.linux.seccomp = seccompFor(profile, spec.process.capabilities.bounding)
  fs.writeFileSync(specFile, JSON.stringify(spec, null, 2))
  return spec
}

function runcQuiet (args) {
  try {
    return execFileSync(runcBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  } catch {
    return null
  }
}

/** runc's state of a container (its host pid, status, bundle), or null when there is none. */
function containerState (id) {
  const out = runcQuiet(['state', id])
  return out === null ? null : JSON.parse(out)
}

function pidAlive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

/** Removes the container and its bundle, synchronously (also from an 'exit' listener). */
function removeSync (id, bundle) {
  runcQuiet(['kill', id, 'KILL'])
  runcQuiet(['delete', '-f', id])
  if (bundle !== null) fs.rmSync(bundle, { recursive: true, force: true })
}

/**
 * What a killed run of this module left behind: its containers (runc still lists one whose
 * `runc run` was killed too) and its bundles, named after the process that made them.
 */
function sweepStale () {
  const owner = (name) => new RegExp(`^(?:${ID_PREFIX}|${BUNDLE_PREFIX})(\\d+)-`).exec(name)
  const stale = (name) => { const m = owner(name); return m !== null && !pidAlive(Number(m[1])) }
  let list = []
  try { list = JSON.parse(runcQuiet(['list', '--format', 'json']) || 'null') || [] } catch {}
  for (const c of list) if (stale(c.id)) removeSync(c.id, null)
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (stale(name)) fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true })
  }
}

const live = new Map() // id -> bundle, removed at this process's exit if stop() never ran
let exitHooked = false
function hookExit () {
  if (exitHooked) return
  exitHooked = true
  process.on('exit', () => { for (const [id, bundle] of live) removeSync(id, bundle) })
  // Turns a termination signal (a runner ending an overrunning test file, Ctrl-C) into an
  // exit, so the listener above runs.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.once(signal, () => process.exit(128 + os.constants.signals[signal]))
  }
}

/** The fixtures' protocol: `READY {json}` or `FAILED {json}` on a line of stdout. */
function fixtureLine (stdout) {
  const m = /^(READY|FAILED) (.*)$/m.exec(stdout)
  return m === null ? null : { state: m[1], ...JSON.parse(m[2]) }
}

/**
 * Creates and starts a container running `argv` with `env` under `profile`; returns
 * { id, bundle, child (the `runc run` process, its stdio piped), stop() }. stop() is
 * idempotent and resolves once the container and its bundle are gone.
 */
async function launch ({ profile, argv, env = [], binds = [] }) {
  hookExit()
  sweepStale()
  const id = `${ID_PREFIX}${process.pid}-${crypto.randomBytes(4).toString('hex')}`
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), `${BUNDLE_PREFIX}${process.pid}-`))
  live.set(id, bundle)
  let child = null
  let stopping = null
  const running = () => child !== null && child.exitCode === null && child.signalCode === null
  const stop = () => {
    stopping ??= (async () => {
      if (running()) {
        child.stdin.end() // a fixture's guard ends the server on its own
        // `runc run` ends with its container's process; until the container exists (a stop
        // right after the start), a kill finds nothing, so it is repeated.
        const exited = new Promise((resolve) => child.once('exit', resolve))
        for (let i = 0; i < 100 && running(); i++) {
          runcQuiet(['kill', id, 'KILL'])
          await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 100))])
        }
      }
      removeSync(id, bundle)
      live.delete(id)
    })()
    return stopping
  }
  try {
    writeBundle({ dir: bundle, profile, args: argv, env: [`PATH=${process.env.PATH || '/usr/bin:/bin'}`, 'HOME=/tmp', ...env], binds })
    child = spawn(runcBinary(), ['run', '--bundle', bundle, id], { stdio: ['pipe', 'pipe', 'pipe'] })
  } catch (err) {
    await stop()
    throw err
  }
  child.stdin.on('error', () => {}) // the container went away first
  return { id, bundle, child, stop }
}

/**
 * Runs `argv` in a container under `profile` until it ends (at most `ms`); resolves with
 * { code, stdout, stderr }. The container is removed whatever happens.
 */
async function runContainer ({ profile, argv, env = [], binds = [], ms = 20000 }) {
  const c = await launch({ profile, argv, env, binds })
  let stdout = ''
  let stderr = ''
  c.child.stdout.on('data', (d) => { stdout += d })
  c.child.stderr.on('data', (d) => { stderr += d })
  try {
    const code = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`container ${c.id} (${profile}): ${argv.join(' ')} still running after ${ms} ms`)), ms)
      c.child.on('exit', (code, signal) => { clearTimeout(timer); resolve(code ?? signal) })
      c.child.on('error', (err) => { clearTimeout(timer); reject(err) })
    })
    return { code, stdout, stderr }
  } finally {
    await c.stop()
  }
}

/**
 * Runs `script` (a file of this checkout, or under `binds`) with node inside a container
 * (through `wrap`, a command prefix that execs it, such as `taskset -c 0`) and
 * resolves once `parseReady(stdout so far)` returns something (default: the fixtures'
 * READY/FAILED line; `config` goes in env ZC_FIXTURE). Resolves with that answer's fields and
 * { id, bundle, pid (the host's pid of the container's node), containerPid (its pid inside,
 * the fixture's `pid`), stderr(), stdout(), stop() }. If the process ends or `readyMs` passes
 * first, the container is removed and the promise rejects (err.container: { id, bundle }).
 */
async function startContainer ({ profile, script, args = [], nodeArgs = [], wrap = [], config = {}, env = {}, binds = [], readyMs = 20000, parseReady = fixtureLine }) {
  const guard = path.join(__dirname, 'fixtures', 'container-guard.js')
  const c = await launch({
    profile,
    argv: [...wrap, process.execPath, '--require', guard, ...nodeArgs, path.resolve(ROOT, script), ...args],
    env: [`ZC_FIXTURE=${JSON.stringify(config)}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)],
    binds
  })
  let stdout = ''
  let stderr = ''
  c.child.stderr.on('data', (d) => { stderr += d })
  const fail = (why) => {
    const err = new Error(`container ${c.id} (${profile}, ${path.basename(script)}): ${why}; stderr: ${stderr.trim() || '(empty)'}`)
    err.container = { id: c.id, bundle: c.bundle }
    return err
  }
  try {
    const ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(fail(`no ready line within ${readyMs} ms; stdout: ${stdout.trim() || '(empty)'}`)), readyMs)
      c.child.stdout.on('data', (d) => {
        stdout += d
        const answer = parseReady(stdout)
        if (answer != null) { clearTimeout(timer); resolve(answer) }
      })
      c.child.on('error', (err) => { clearTimeout(timer); reject(fail(`runc: ${err.message}`)) })
      c.child.on('exit', (code, signal) => { clearTimeout(timer); reject(fail(`ended (${code ?? signal}) before its ready line; stdout: ${stdout.trim() || '(empty)'}`)) })
    })
    const state = containerState(c.id)
    if (state === null || !(state.pid > 0)) throw fail('runc reports no process')
    return { ...ready, containerPid: ready.pid, pid: state.pid, id: c.id, bundle: c.bundle, child: c.child, stderr: () => stderr, stdout: () => stdout, stop: c.stop }
  } catch (err) {
    await c.stop()
    throw err
  }
}

/**
 * A fresh directory in os.tmpdir() for files a container serves, named so that the sweep
 * removes it if this process is killed before its own cleanup (a 1 GiB file must not stay).
 */
function ownedTempDir (label) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${BUNDLE_PREFIX}${process.pid}-${label}-`))
}

/** A fixture of test/fixtures (e.g. 'file-server', 'app-server') in a container; see startContainer. */
function startFixture ({ fixture, ...options }) {
  return startContainer({ script: path.join('test', 'fixtures', `${fixture}.js`), ...options })
}

/** Whether a container of that id is known to runc. */
function containerExists (id) {
  return containerState(id) !== null
}

module.exports = { PROFILES, PODMAN_PROFILE, ID_PREFIX, loadProfile, seccompFor, startContainer, startFixture, runContainer, ownedTempDir, containerExists, containerState, sweepStale }
