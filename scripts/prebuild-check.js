'use strict'
// Checks a built addon against what the prebuilds promise: the right machine, no liburing (or
// any other library outside the C and C++ runtimes) needed at run time, and no symbol version
// above the floors: glibc 2.28 (what Node 20 itself needs; RHEL 8), and the libstdc++ of
// GCC 8 (RHEL 8's). Reads the ELF file with binutils' readelf, which reads every architecture.
//   node scripts/prebuild-check.js ARCH FILE...   prints what it found, exits 1 on a problem
const { execFileSync } = require('node:child_process')

const floors = { GLIBC: '2.28', GLIBCXX: '3.4.25', CXXABI: '1.3.11', GCC: '7.0.0' }
const machines = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' }
const runtimes = new Set(['libc.so.6', 'libm.so.6', 'libdl.so.2', 'libpthread.so.0', 'libstdc++.so.6', 'libgcc_s.so.1',
  'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1'])

function compareVersions (a, b) {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

function readelf (args, file) {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
}

/** What `file` needs at run time, and what breaks the promise for `arch`. */
function inspect (file, arch) {
  const machine = /^\s*Machine:\s*(.+)$/m.exec(readelf(['-h'], file))?.[1].trim() ?? '?'
  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  // .gnu.version_r: every symbol version the file binds to, by library.
  const versions = [...new Set([...readelf(['-V'], file).matchAll(/Name: ([A-Z]+)_([0-9][0-9.]*)\s+Flags/g)].map((m) => `${m[1]}_${m[2]}`))]
  const problems = []
  if (machine !== machines[arch]) problems.push(`machine is ${machine}, not ${machines[arch]} (${arch})`)
  for (const lib of needed) if (!runtimes.has(lib)) problems.push(`needs ${lib} at run time`)
  const highest = {}
  for (const v of versions) {
    const [, family, number] = /^([A-Z]+)_(.+)$/.exec(v)
    if (!(family in floors)) {
      problems.push(`binds to ${v}, a version family the floors do not cover`)
      continue
    }
    if (highest[family] === undefined || compareVersions(number, highest[family]) > 0) highest[family] = number
    if (compareVersions(number, floors[family]) > 0) problems.push(`binds to ${v}, above ${family}_${floors[family]}`)
  }
  return { file, arch, machine, needed, highest, problems }
}

function describe (r) {
  const highest = Object.entries(r.highest).map(([family, v]) => `${family}_${v}`).join(' ')
  return `${r.file}: ${r.machine}; needs ${r.needed.join(' ')}; highest versions ${highest}` +
    (r.problems.length ? `\n  PROBLEMS: ${r.problems.join('; ')}` : '')
}

module.exports = { inspect, describe, floors }

if (require.main === module) {
  const [arch, ...files] = process.argv.slice(2)
  if (!(arch in machines) || files.length === 0) {
    console.error('usage: node scripts/prebuild-check.js x64|arm64 FILE...')
    process.exit(2)
  }
  let failed = false
  for (const file of files) {
    const r = inspect(file, arch)
    console.log(describe(r))
    failed ||= r.problems.length > 0
  }
  process.exit(failed ? 1 : 0)
}
