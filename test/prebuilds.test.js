'use strict'
// The prebuilt addons of the npm tarball, where they are meant to run: the linux-arm64 one in
// an arm64 Node (under qemu-user, and under qemu-system on an arm64 kernel, where io_uring
// runs), the linux-x64 one in a Debian 11 root (glibc 2.31) with this machine's Node. Each
// is driven directly by test/fixtures/addon-driver.js, which serves a body over loopback TCP
// through every native path that opens and checks it by SHA-256.
// scripts/platforms.sh makes the roots, cached; this file is the platform tier (`npm run
// test:platforms`, with test/package.test.js), not part of `npm test`.
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const tap = require('tap')
const { test } = tap

const root = path.join(__dirname, '..')
const driver = path.join(__dirname, 'fixtures', 'addon-driver.js')
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-prebuilds-'))
fs.chmodSync(work, 0o755)  // the Debian 11 run binds a folder of it as its own root's /zc
tap.teardown(() => fs.rmSync(work, { recursive: true, force: true }))

const cache = execFileSync('bash', [path.join(root, 'scripts', 'platforms.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()

// One tarball, as `npm pack` makes it (its prepack builds both prebuilds), unpacked.
const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' })
const packInfo = JSON.parse(out.slice(out.indexOf('[')))[0]
const unpacked = path.join(work, 'unpacked')
fs.mkdirSync(unpacked)
execFileSync('tar', ['-xzf', path.join(work, packInfo.filename), '-C', unpacked])
function prebuilt (arch) {
  const dir = path.join(unpacked, 'package', 'prebuilds', `linux-${arch}`)
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : []
  return files.map((f) => path.join(dir, f))
}

function readelf (args, file) {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
}

/** The highest GLIBC_ version among the symbols `file` imports (from the symbol table, not the version section the build checks). */
function highestGlibc (file) {
  const versions = [...readelf(['--dyn-syms'], file).matchAll(/ UND \S+@GLIBC_([0-9.]+)/g)].map((m) => m[1])
  return versions.sort((a, b) => {
    const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)]
    return (x[0] - y[0]) || ((x[1] ?? 0) - (y[1] ?? 0)) || ((x[2] ?? 0) - (y[2] ?? 0))
  }).pop()
}

function parseResult (t, text, what) {
  const line = text.split(/\r?\n/).find((l) => l.includes('ZC-RESULT '))
  t.ok(line, `${what}: the driver reported (output: ${text.slice(-600)})`)
  return line ? JSON.parse(line.slice(line.indexOf('ZC-RESULT ') + 10).trim()) : {}
}

/** A folder holding the driver and `addon` (as addon.node). */
function runDir (name, addon) {
  const dir = path.join(work, name)
  fs.mkdirSync(dir, { mode: 0o755 })
  fs.copyFileSync(driver, path.join(dir, 'addon-driver.js'))
  fs.copyFileSync(addon, path.join(dir, 'addon.node'))
  return dir
}

/** Runs the driver on `addon` in the Debian 11 root, with this machine's Node bound in. */
function inBullseye (name, addon) {
  const dir = runDir(name, addon)
  const bullseye = path.join(cache, 'bullseye')
  const script = 'mount --bind "$1" "$2/usr/local/bin/node" && mount --bind "$3" "$2/zc" && ' +
    'exec env -i PATH=/usr/bin:/bin /usr/sbin/chroot "$2" /usr/local/bin/node /zc/addon-driver.js /zc/addon.node'
  // A private mount namespace: the binds vanish with the process. Without root, a user
  // namespace in which this user is root.
  const unshare = process.getuid() === 0 ? ['-m'] : ['-r', '-m']
  return spawnSync('unshare', [...unshare, 'sh', '-c', script, 'sh', process.execPath, bullseye, dir], { encoding: 'utf8', timeout: 120000 })
}

test('npm pack: prebuilds for linux-x64 and linux-arm64 that need no liburing and no glibc above 2.28', async (t) => {
  for (const [arch, machine] of [['x64', 'Advanced Micro Devices X86-64'], ['arm64', 'AArch64']]) {
    t.ok(packInfo.files.some((f) => f.path.startsWith(`prebuilds/linux-${arch}/`) && f.path.endsWith('.node')), `the tarball lists prebuilds/linux-${arch}/`)
    const files = prebuilt(arch)
    t.equal(files.length, 1, `one linux-${arch} binary`)
    for (const file of files) {
      t.match(readelf(['-h'], file), new RegExp(`Machine:\\s+${machine}`), `${path.basename(file)} is ${machine}`)
      const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
      t.notOk(needed.some((lib) => /uring/.test(lib)), `linux-${arch} needs no liburing at run time (NEEDED: ${needed.join(' ')})`)
      const highest = highestGlibc(file)
      t.ok(highest !== undefined && Number(highest.split('.')[0]) === 2 && Number(highest.split('.')[1]) <= 28, `linux-${arch}: highest glibc symbol version is GLIBC_${highest}`)
      t.comment(`linux-${arch}: NEEDED ${needed.join(' ')}; highest GLIBC_${highest}; ${fs.statSync(file).size} bytes`)
    }
  }
})

test('the build check refuses a binary bound to a glibc symbol above 2.28', async (t) => {
  // fstat from glibc 2.33 on: the very call the addon used to make.
  const src = path.join(work, 'newer.c')
  const lib = path.join(work, 'newer.so')
  fs.writeFileSync(src, '#include <sys/stat.h>\nint size_of(int fd) { struct stat st; return fstat(fd, &st) == 0 ? (int)st.st_size : -1; }\n')
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', lib, src])
  const res = spawnSync(process.execPath, [path.join(root, 'scripts', 'prebuild-check.js'), 'x64', lib], { encoding: 'utf8' })
  t.equal(res.status, 1, 'the check fails')
  t.match(res.stdout, /binds to GLIBC_2\.33, above GLIBC_2\.28/)
  // And the Debian 11 root really has the older glibc: the same library does not load there.
  const run = inBullseye('newer', lib)
  const result = parseResult(t, run.stdout + run.stderr, 'Debian 11')
  t.match(result.loadError, /GLIBC_2\.33' not found/, 'glibc 2.31 refuses it')
})

test('linux-x64 prebuild in a Debian 11 root (glibc 2.31): loads and serves through every native path', async (t) => {
  const [addon] = prebuilt('x64')
  const run = inBullseye('bullseye', addon)
  const result = parseResult(t, run.stdout + run.stderr, 'Debian 11')
  t.equal(run.status, 0, 'the driver exited 0')
  t.equal(result.glibc, '2.31', 'the C library is Debian 11\'s')
  t.equal(result.node, process.version, 'this machine\'s Node')
  t.equal(result.loaded, true, 'the prebuild loaded')
  t.equal(result.ring?.ok, true, `the ring opened (${JSON.stringify(result.ring)})`)
  t.same(result.native, ['send_zc', 'splice', 'classic_zc', 'classic_sendfile', 'sendfile'], 'SEND_ZC, splice, the classic engine\'s MSG_ZEROCOPY and sendfile, and the cached head\'s sendfile each served')
  t.ok(result.engines?.send_zc?.zcBytes > 0, `SEND_ZC carried ${result.engines?.send_zc?.zcBytes} bytes`)
  for (const [name, e] of Object.entries(result.engines ?? {})) t.equal(e.exact, true, `${name}: 4 MiB exact`)
  t.comment(JSON.stringify(result))
})

test('linux-arm64 prebuild under qemu-user in Debian 12\'s arm64 Node 18: loads; what the ring and sendfile do there', async (t) => {
  const [addon] = prebuilt('arm64')
  const node = path.join(cache, 'arm64-node')
  const dir = runDir('qemu-user', addon)
  // env -i: tap's process tracking puts its own loaders into NODE_OPTIONS of every child.
  const run = spawnSync('env', ['-i', `PATH=${process.env.PATH}`, 'qemu-aarch64-static', '-L', node, path.join(node, 'usr', 'bin', 'node'),
    path.join(dir, 'addon-driver.js'), path.join(dir, 'addon.node')], { encoding: 'utf8', timeout: 120000 })
  const result = parseResult(t, run.stdout + run.stderr, 'qemu-user')
  t.equal(run.status, 0, 'the driver exited 0: every path that opened served exactly')
  t.equal(result.arch, 'arm64')
  t.match(result.node, /^v18\./)
  t.equal(result.loaded, true, 'the prebuild loaded')
  if (result.ring?.ok) {
    t.ok(result.native.length > 0, `io_uring passed through qemu-user and served: ${result.native}`)
  } else {
    // qemu-user 7.2 implements neither io_uring_setup nor cachestat ("Unsupported syscall:
    // 425", "451"): the plugin would take Fastify's ordinary path and say so.
    t.equal(result.ring?.code, 'ENOSYS', 'io_uring_setup: ENOSYS from qemu-user')
    t.ok(result.engines.sendfile.unavailable, 'sendCached sends nothing: cachestat is ENOSYS too')
  }
  // What the plugin does there: the classic engine, made of calls qemu-user passes through
  // (epoll, send, sendfile; the file's turns on the disk threads, cachestat being ENOSYS).
  t.equal(result.classic?.ok, true, `the classic engine opened (${JSON.stringify(result.classic)})`)
  t.ok(result.native.includes('classic_sendfile'), `the classic engine served the file natively (${result.native})`)
  t.ok(result.native.includes('classic_zc') || result.native.includes('classic_send'), `the classic engine served the buffer natively (${result.native})`)
  t.comment(JSON.stringify(result))
})

test('linux-arm64 prebuild on an arm64 Linux 6.1 kernel (qemu-system): loads and serves through io_uring', async (t) => {
  const [addon] = prebuilt('arm64')
  const vm = path.join(cache, 'arm64-vm')
  const dir = runDir('vm', addon)
  fs.mkdirSync(path.join(dir, 'zc'))
  for (const f of ['addon-driver.js', 'addon.node']) fs.renameSync(path.join(dir, f), path.join(dir, 'zc', f))
  fs.writeFileSync(path.join(dir, 'init'), [
    '#!/bin/busybox sh',
    '/bin/busybox mount -t proc proc /proc',
    '/bin/busybox mount -t devtmpfs dev /dev',
    '/bin/busybox ip link set lo up',
    '/usr/bin/node /zc/addon-driver.js /zc/addon.node /tmp',
    'echo "ZC-EXIT $?"',
    '/bin/busybox poweroff -f',
    ''
  ].join('\n'), { mode: 0o755 })
  // The cached initramfs (Node, busybox), then this run's archive: init, driver, addon.
  const initrd = path.join(work, 'initrd')
  fs.copyFileSync(path.join(vm, 'base.cpio'), initrd)
  fs.appendFileSync(initrd, execFileSync('sh', ['-c', 'find . | cpio -o -H newc -R 0:0 --quiet'], { cwd: dir, maxBuffer: 64 << 20 }))
  const started = Date.now()
  const run = spawnSync('qemu-system-aarch64', ['-M', 'virt', '-cpu', 'cortex-a72', '-smp', '2', '-m', '1536', '-nographic', '-no-reboot', '-nic', 'none',
    '-kernel', path.join(vm, 'vmlinuz'), '-initrd', initrd, '-append', 'console=ttyAMA0 rdinit=/init quiet panic=-1'],
  { encoding: 'utf8', timeout: 240000, stdio: ['ignore', 'pipe', 'pipe'] })
  const text = run.stdout + run.stderr
  const result = parseResult(t, text, 'qemu-system')
  t.match(text, /ZC-EXIT 0/, 'the driver exited 0 in the machine')
  t.equal(result.arch, 'arm64')
  t.match(result.kernel, /-arm64$/, `an arm64 kernel (${result.kernel})`)
  t.equal(result.loaded, true, 'the prebuild loaded')
  t.equal(result.ring?.ok, true, `the ring opened (${JSON.stringify(result.ring)})`)
  t.ok(result.native?.includes('send_zc') && result.native?.includes('splice'), `SEND_ZC and splice served (${result.native})`)
  t.ok(result.native?.includes('classic_sendfile'), `the classic engine served too (${result.native})`)
  t.ok(result.engines?.send_zc?.zcBytes > 0, `SEND_ZC carried ${result.engines?.send_zc?.zcBytes} bytes`)
  for (const [name, e] of Object.entries(result.engines ?? {})) if (e.bytes !== undefined) t.equal(e.exact, true, `${name}: 4 MiB exact`)
  t.comment(`${((Date.now() - started) / 1000).toFixed(1)} s in the machine: ${JSON.stringify(result)}`)
})
