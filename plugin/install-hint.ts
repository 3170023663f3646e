// What to install so that the addon compiles here, when no prebuilt addon fits (musl, an
// architecture without one): the distribution's exact packages, by /etc/os-release.
// capabilities.reason and the install script (scripts/install.js) both say it.
import { readFileSync } from 'node:fs'

const hints: Array<[RegExp, string]> = [
  [/\balpine\b/, 'apk add build-base python3 linux-headers liburing-dev'],
  [/\b(debian|ubuntu)\b/, 'apt-get install g++ make python3 liburing-dev'],
  [/\b(fedora|rhel|centos|rocky|almalinux|amzn)\b/, 'dnf install gcc-c++ make python3 liburing-devel']
]

export const genericHint = 'install liburing\'s development files, a C++ compiler, make and Python 3'

export function installHint (osRelease = '/etc/os-release'): string {
  let ids = ''
  try {
    const text = readFileSync(osRelease, 'utf8')
    ids = [/^ID=(.*)$/m, /^ID_LIKE=(.*)$/m].map((re) => re.exec(text)?.[1].replace(/"/g, '') ?? '').join(' ')
  } catch {}
  const hit = hints.find(([re]) => re.test(ids))
  return hit !== undefined ? hit[1] : genericHint
}
