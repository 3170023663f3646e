// A small file body read on the event loop's thread when the kernel has all of it cached.
//
// Through a stream, such a body costs a hand-off to libuv's pool and back, a stream with its
// listeners, and a pipe; through the ring, a hand-off to io_uring's workers. Its pages already
// in the page cache, one preadv2(RWF_NOWAIT) copies it here without waiting on anything, and
// Fastify sends it as a Buffer: headers and body in one write, nothing to clean up after.
// RWF_NOWAIT answers EAGAIN for a page not cached (or still being read), so this thread never
// waits for a device; a remote filesystem's read may still ask its server, so its files never
// come here. Whatever is not read whole here goes the way it went before.
import type { Descriptors } from './native'
import type { OpenFile } from './file'

/**
 * The largest body read here, in bytes: a bound on the time one copy holds the loop (some
 * 20 us for 256 KiB here), whatever the threshold is set to. Only bodies Node's path carries
 * come here (below the threshold, TLS, HTTP/2, inject): above the threshold the native path
 * costs less even for a cached file (measured from 24 KiB up: bench/README.md, "Small files
 * read on the loop").
 */
export const LOOP_READ_MAX = 256 * 1024

/**
 * `length` bytes of `file` from `offset` if the page cache holds all of them, else null (the
 * ordinary path then reads them, and meets the file's end or error itself). A file that ended
 * early (cut since its stat) is null too: its body must not go out shorter than the
 * Content-Length already set, and the ordinary path reports the change as it does elsewhere.
 */
export function readCachedBody (addon: Descriptors | null, file: OpenFile, offset: number, length: number): Buffer | null {
  if (addon === null || file.remote || length <= 0 || length > LOOP_READ_MAX) return null
  const buffer = Buffer.allocUnsafe(length)
  return addon.readCached(file.fd, buffer, offset) === length ? buffer : null
}
