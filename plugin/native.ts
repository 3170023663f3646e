// Loads the addon and tells what this environment's kernel can do. Each Node environment
// (main thread, worker) loads its own copy of this module and so opens its own ring.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { installHint } from './install-hint'

export interface RingStats {
  notifications: number
  copied: number
  sends: number
  pinnedBytes: number
  ops: number
}

export type DoneCallback = (error: string | null, zcBytes: number, copyBytes: number, fallbacks: number, spliceBytes: number) => void

export interface Binding {
  /** Opens the environment's ring once, with at most `maxEntries` SQ entries (0: the default). */
  open(maxEntries?: number): { ok: boolean, code: string | null, sendZc: boolean, send: boolean, splice: boolean }
  start(fd: number, body: Uint8Array, zc: boolean, slice: number, depth: number, done: DoneCallback,
    released?: (notifications: number, copied: number) => void): number
  startFile(fd: number, fileFd: number, offset: number, length: number, chunk: number, done: DoneCallback,
    released: undefined, depth: number, pollFirst: boolean, remote: boolean): number
  /** Sends the range by sendfile(2) on this thread if all of it is in the page cache; returns the bytes sent. */
  sendCached(fd: number, fileFd: number, offset: number, length: number): number
  abort(id: number): void
  progress(id: number): number
  stats(): RingStats
  setPinBudget(bytes: number): void
  /** Opens a file read-only through the ring; throws (errno code) if the ring cannot take it. */
  openFile(path: string, done: (error: string | null, fd: number) => void): void
  /**
   * Opens a file read-only at once if its lookup is all in the dentry cache (openat2 with
   * RESOLVE_CACHED): the descriptor, or -1 (then openFile); throws (errno code) for the open's own error.
   */
  openCached(path: string): number
  /** TCP_CORK on or off; false when the socket could not be corked (not TCP). */
  cork(fd: number, on: boolean): boolean
  /** The plugin's own duplicate of a caller's descriptor (throws EBADF when it is not open). */
  dup(fd: number): number
  /** A descriptor the plugin opened through libuv becomes the environment's to close at teardown. */
  adopt(fd: number): void
  /** Whether the file's filesystem may wait on a server or a daemon (NFS, CIFS, FUSE, ...). */
  isRemote(fd: number): boolean
  /**
   * Closes a descriptor the plugin owns: at once, or through the ring for a remote file; false
   * when it must be closed off this thread by the caller (a remote file, no ring).
   */
  closeFile(fd: number, remote: boolean): boolean
}

// Bits of the `fallbacks` argument of DoneCallback (native/ring.h).
export const FALLBACK_EOPNOTSUPP = 1
export const FALLBACK_ENOMEM = 2
export const FALLBACK_PIN_BUDGET = 4

export interface Probe {
  /** The ring's binding: null when no ring opened. */
  binding: Binding | null
  /** The addon, whether or not a ring opened (descriptors, the dentry-cache open). */
  addon: Binding | null
  native: boolean
  ioUring: boolean
  sendZc: boolean
  send: boolean
  splice: boolean
  reason: string | null
}

const packageRoot = path.join(__dirname, '..', '..')
let probed: Probe | undefined

function load (): { binding: Binding | null, reason: string | null } {
  if (process.platform !== 'linux') {
    return { binding: null, reason: `io_uring needs Linux; this is ${process.platform}` }
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const build = require('node-gyp-build') as (dir: string) => Binding
    return { binding: build(packageRoot), reason: null }
  } catch (err) {
    const first = String((err as Error).message).split('\n')[0]
    return {
      binding: null,
      reason: `the native addon did not load (${first}); to compile it: ${installHint()}, then run "npm rebuild fastify-zero-copy"`
    }
  }
}

function describeRingError (code: string | null): string {
  switch (code) {
    case 'ENOSYS':
      return 'io_uring_setup failed with ENOSYS: io_uring is blocked (a seccomp profile such as Docker\'s default) or not built into this kernel'
    case 'EPERM':
      return 'io_uring_setup failed with EPERM: io_uring is disabled by the kernel.io_uring_disabled sysctl or a security policy'
    case 'ENOMEM':
      return 'io_uring_setup failed with ENOMEM: even the smallest ring did not fit; unprivileged users\' rings count against RLIMIT_MEMLOCK (raise ulimit -l)'
    default:
      return `io_uring_setup failed with ${code ?? 'an unknown error'}`
  }
}

// The addon loads with this module (a process that later drops privileges may no longer
// read it); the ring opens at the first registration, in the process's final identity.
const loaded = load()

/**
 * FASTIFY_ZERO_COPY_RING_ENTRIES caps the ring's SQ (256, 128, 64 or 32 entries; the default
 * 256), for a deployment that wants the ring's locked memory small, and for tests of a full
 * SQ. Anything but a positive integer is ignored.
 */
function ringEntries (): number {
  const value = Number(process.env.FASTIFY_ZERO_COPY_RING_ENTRIES)
  return Number.isInteger(value) && value > 0 ? value : 0
}

/** Opens this environment's ring, once, and tells what it can do. */
export function probe (): Probe {
  if (probed !== undefined) return probed
  const { binding, reason } = loaded
  if (binding === null) {
    probed = { binding: null, addon: null, native: false, ioUring: false, sendZc: false, send: false, splice: false, reason }
    return probed
  }
  const ring = binding.open(ringEntries())
  if (!ring.ok) {
    probed = { binding: null, addon: binding, native: true, ioUring: false, sendZc: false, send: false, splice: false, reason: describeRingError(ring.code) }
    return probed
  }
  probed = {
    binding,
    addon: binding,
    native: true,
    ioUring: true,
    sendZc: ring.sendZc,
    send: ring.send,
    splice: ring.splice,
    reason: ring.sendZc ? null : 'the kernel does not support IORING_OP_SEND_ZC (Linux 6.0 or later)'
  }
  return probed
}

const MiB = 1024 * 1024

/**
 * Pinned SEND_ZC pages count against RLIMIT_MEMLOCK for processes without CAP_IPC_LOCK,
 * per user (DESIGN: four 1 MiB sends already fail with ENOMEM as `nobody` at 8 MiB). Half
 * the limit leaves room for the user's other processes; ENOMEM still falls back to copying.
 */
export function defaultPinBudget (): number {
  const unlimited = 64 * MiB
  try {
    const status = readFileSync('/proc/self/status', 'utf8')
    const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)
    const CAP_IPC_LOCK = 14n
    if (capEff !== null && ((BigInt('0x' + capEff[1]) >> CAP_IPC_LOCK) & 1n) === 1n) return unlimited
    const limits = readFileSync('/proc/self/limits', 'utf8')
    const memlock = /^Max locked memory\s+(\S+)/m.exec(limits)
    if (memlock === null || memlock[1] === 'unlimited') return unlimited
    return Math.floor(Number(memlock[1]) / 2)
  } catch {
    return 4 * MiB
  }
}
