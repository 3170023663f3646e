'use strict'
// What both sides of the torture run agree on without sending it to each other: the bytes of
// every body and file (seekable: AES-256-CTR keystream of a key made from the seed and the
// content's name, so any range of a 256 MiB file is made without the rest), and the tree the
// static routes serve.
const crypto = require('node:crypto')
const fs = require('node:fs')

const KiB = 1024
const MiB = 1024 * KiB
const ZEROS = Buffer.alloc(4 * MiB)

/** A stream of the content's bytes from `offset` on: next(n) gives the following n bytes. */
class Keystream {
  constructor (seed, name, offset = 0) {
    const key = crypto.createHash('sha256').update(`${seed}:${name}`).digest()
    const iv = Buffer.alloc(16)
    iv.writeBigUInt64BE(BigInt(Math.floor(offset / 16)), 8)
    this.cipher = crypto.createCipheriv('aes-256-ctr', key, iv)
    const skip = offset % 16
    if (skip > 0) this.cipher.update(ZEROS.subarray(0, skip))
  }

  next (n) {
    if (n <= ZEROS.length) return this.cipher.update(ZEROS.subarray(0, n))
    const parts = []
    for (let left = n; left > 0; left -= ZEROS.length) parts.push(this.cipher.update(ZEROS.subarray(0, Math.min(left, ZEROS.length))))
    return Buffer.concat(parts)
  }
}

function bytes (seed, name, offset, length) {
  return new Keystream(seed, name, offset).next(length)
}

/** Writes `size` bytes of content `name` to `file` (a temporary name, then a rename). */
function writeContent (seed, name, size, file) {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`
  const fd = fs.openSync(tmp, 'w')
  try {
    const ks = new Keystream(seed, name)
    for (let left = size; left > 0;) {
      const n = Math.min(left, ZEROS.length)
      fs.writeSync(fd, ks.next(n))
      left -= n
    }
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
}

// Buffers served by reply.sendZeroCopy(buffer): the main app's (1 KiB to 256 MiB) and each
// worker's (up to 16 MiB, so that a worker's restart stays cheap).
const MAIN_BUFFERS = [KiB, 9 * KiB + 7, 64 * KiB, 300 * KiB + 1, MiB, 3 * MiB, 4 * MiB + 1, 16 * MiB, 64 * MiB, 256 * MiB]
const HELD_BUFFER = 5 // 3 MiB: what loopback's socket buffers hold whole, asked by the clients held open at the end
const WORKER_BUFFERS = [KiB, 64 * KiB, MiB + 3, 4 * MiB, 16 * MiB]

// The tree beneath the static root. `kind`: 'stable' (never changes), 'refused' (allowedPath
// says no, or the dotfile policy: never served), 'throws' (a callback throws on it: an error
// status), 'mutable' (truncated, renamed over, deleted during the run).
// Sizes of mutable files are multiples of 8 KiB and a truncation halves them, so the new end
// is on a page boundary. (With large folios the kernel may still zero, beyond the new end, a
// folio that a pipe or a socket holds: a response that was sending those bytes must then not
// complete as if they were the file's.)
const FILES = [
  { rel: 's/1k.bin', size: KiB, kind: 'stable' },
  { rel: 's/9k.txt', size: 9 * KiB + 11, kind: 'stable' },
  { rel: 's/64k.bin', size: 64 * KiB, kind: 'stable' },
  { rel: 's/300k.bin', size: 300 * KiB + 5, kind: 'stable' },
  { rel: 's/1m.bin', size: MiB, kind: 'stable' },
  { rel: 's/4m.bin', size: 4 * MiB + 9, kind: 'stable' },
  { rel: 's/16m.bin', size: 16 * MiB, kind: 'stable' },
  { rel: 'big/64m.bin', size: 64 * MiB + 1, kind: 'stable' },
  { rel: 'big/256m.bin', size: 256 * MiB, kind: 'stable' },
  { rel: 'page.html', size: 40 * KiB, kind: 'stable' },
  { rel: 'site/index.html', size: 20 * KiB + 3, kind: 'stable' },
  { rel: 'docs/readme.txt', size: 2 * KiB, kind: 'stable' },
  { rel: 'pc/app.js', size: 200 * KiB + 1, kind: 'stable' },
  { rel: 'pc/app.js.gz', size: 70 * KiB + 2, kind: 'stable' },
  { rel: 'pc/app.js.br', size: 50 * KiB + 3, kind: 'stable' },
  { rel: 'inside/target.bin', size: MiB + 13, kind: 'stable' },
  { rel: 'list/a.txt', size: 100, kind: 'stable' },
  { rel: 'list/b.bin', size: 3 * MiB, kind: 'stable' },
  { rel: 'list/.hidden', size: 100, kind: 'refused' },
  { rel: 'list/private-note.txt', size: 2 * MiB, kind: 'refused' },
  { rel: 'admin.html', size: 2 * MiB, kind: 'refused' },
  { rel: 'docs/index.html', size: 2 * MiB, kind: 'refused' },
  { rel: 'private/secret.txt', size: 2 * MiB, kind: 'refused' },
  { rel: 'pct/100%zz.txt', size: 64 * KiB, kind: 'throws' }, // allowedPath's decodeURIComponent throws
  { rel: 'boom/onfile.bin', size: 2 * MiB, kind: 'throws' }, // onFile throws
  { rel: 'mut/m0.bin', size: 64 * KiB, kind: 'mutable' },
  { rel: 'mut/m1.bin', size: 2 * MiB, kind: 'mutable' },
  { rel: 'mut/m2.bin', size: 24 * MiB, kind: 'mutable' }
]
const OUTSIDE = { rel: 'secret.bin', size: MiB + 13 } // beneath outside/, the same size as the link's inside target
const DL = [{ rel: 'ok.bin', size: 3 * MiB + 1 }, { rel: '100%zz.txt', size: 64 * KiB }]
const VERSIONS = 4 // mutable files cycle through this many contents

// What allowedPath refuses (each with everything below it), compared after decodeURIComponent
// as an application would write it (which throws on a name with a stray '%').
const DENY = ['/private', '/admin.html', '/docs/index.html', '/list/private-note.txt']

function contentName (scope, rel, version = 0) {
  return version === 0 ? `${scope}:${rel}` : `${scope}:${rel}#${version}`
}

module.exports = { KiB, MiB, Keystream, bytes, writeContent, MAIN_BUFFERS, HELD_BUFFER, WORKER_BUFFERS, FILES, OUTSIDE, DL, VERSIONS, DENY, contentName }
