'use strict'
// Where no prebuilt addon fits, the install and capabilities.reason name the packages to add,
// by the distribution /etc/os-release names.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('tap')
const { installHint } = require('../dist/plugin/install-hint.js')

test('the packages to add, by distribution', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-hint-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const cases = [
    ['NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n', 'apk add build-base python3 linux-headers liburing-dev'],
    ['ID=debian\nVERSION_ID="11"\n', 'apt-get install g++ make python3 liburing-dev'],
    ['ID=ubuntu\nID_LIKE=debian\n', 'apt-get install g++ make python3 liburing-dev'],
    ['ID="rocky"\nID_LIKE="rhel centos fedora"\n', 'dnf install gcc-c++ make python3 liburing-devel'],
    ['ID="amzn"\nID_LIKE="fedora"\n', 'dnf install gcc-c++ make python3 liburing-devel'],
    ['ID=void\n', 'install liburing\'s development files, a C++ compiler, make and Python 3']
  ]
  cases.forEach(([text, hint], i) => {
    const file = path.join(dir, `os-release-${i}`)
    fs.writeFileSync(file, text)
    t.equal(installHint(file), hint, text.split('\n')[0])
  })
  t.equal(installHint(path.join(dir, 'missing')), 'install liburing\'s development files, a C++ compiler, make and Python 3', 'no os-release')
  t.match(installHint(), /liburing-dev/, 'this machine (Debian) gets the apt-get line')
})
