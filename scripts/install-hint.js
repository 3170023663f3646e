'use strict'
// What to install so that the addon compiles here, when no prebuilt addon fits (musl, an
// architecture without one, a glibc older than 2.28): the distribution's exact packages.
// Shared by scripts/install.js and the plugin's capabilities.reason.
const fs = require('node:fs')

const hints = [
  [/\balpine\b/, 'apk add build-base python3 linux-headers liburing-dev'],
  [/\b(debian|ubuntu)\b/, 'apt-get install g++ make python3 liburing-dev'],
  [/\b(fedora|rhel|centos|rocky|almalinux|amzn)\b/, 'dnf install gcc-c++ make python3 liburing-devel']
]

function installHint (osRelease = '/etc/os-release') {
  let ids = ''
  try {
    const text = fs.readFileSync(osRelease, 'utf8')
    ids = [/^ID=(.*)$/m, /^ID_LIKE=(.*)$/m].map((re) => re.exec(text)?.[1].replace(/"/g, '') ?? '').join(' ')
  } catch {}
  const hit = hints.find(([re]) => re.test(ids))
  return hit ? hit[1] : 'install liburing\'s development files, a C++ compiler, make and Python 3'
}

module.exports = { installHint }
