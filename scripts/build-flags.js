'use strict'
// Prints compiler/linker flags for binding.gyp.
//   libs:    liburing, statically when the archive exists, so the addon needs no liburing at run time
//   cflags / ldflags: sanitizer flags when ZERO_COPY_SANITIZE=1 (scripts/asan.sh)
const { execFileSync } = require('node:child_process')
const path = require('node:path')

function archive () {
  try {
    const found = execFileSync(process.env.CC || 'cc', ['-print-file-name=liburing.a'], { encoding: 'utf8' }).trim()
    return path.isAbsolute(found) ? found : null
  } catch {
    return null
  }
}

const sanitize = process.env.ZERO_COPY_SANITIZE === '1'
const what = process.argv[2]
let flags = []
if (what === 'libs') flags = [archive() || '-luring']
if (what === 'cflags' && sanitize) flags = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-g', '-O1']
if (what === 'ldflags' && sanitize) flags = ['-fsanitize=address,undefined']
process.stdout.write(flags.join(' '))
