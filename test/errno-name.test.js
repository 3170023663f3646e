'use strict'
// The addon names errno values with its own table (glibc's strerrorname_np is newer than the
// prebuilds' glibc floor). On this machine's glibc, both must agree for every value.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')

const root = path.join(__dirname, '..')

test('the errno table names every value as glibc does, and E<number> where glibc has no name', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-errno-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const bin = path.join(dir, 'errno-names')
  execFileSync('c++', ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-o', bin,
    path.join(__dirname, 'fixtures', 'errno-names.cc'), path.join(root, 'native', 'errno_name.cc')])
  const rows = execFileSync(bin, { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(' '))
  t.equal(rows.length, 4095)
  const named = rows.filter(([, , glibc]) => glibc !== '-')
  t.ok(named.length >= 130, `glibc names ${named.length} values`)
  const differ = rows.filter(([err, ours, glibc]) => ours !== (glibc === '-' ? `E${err}` : glibc))
  t.same(differ, [], 'no value named differently')
  const byValue = Object.fromEntries(rows.map(([err, ours]) => [err, ours]))
  t.equal(byValue[os.constants.errno.EAGAIN], 'EAGAIN', 'EAGAIN, not EWOULDBLOCK')
  t.equal(byValue[os.constants.errno.EOPNOTSUPP], 'EOPNOTSUPP', 'EOPNOTSUPP, not ENOTSUP')
  t.equal(byValue[512], 'E512', 'a kernel-internal value (ERESTARTSYS) has no public name')
})
