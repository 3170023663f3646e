// Loads the addon and tells what this environment's kernel can do. Each Node environment
// (main thread, worker) loads its own copy of this module and so opens its own ring.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { installHint } from './install-hint'

export interface EngineStats {
  notifications: number
  copied: number
  sends: number
  pinnedBytes: number
  /** Pinned by every environment of the process together: what pinBudget bounds. */
  processPinnedBytes: number
  ops: number
}

export type EngineName = 'io_uring' | 'classic'

export type DoneCallback = (error: string | null, zcBytes: number, copyBytes: number, fallbacks: number, spliceBytes: number, zcNext: number) => void

/** The addon itself (native/addon.cc): engine calls take the engine's kind last (0 io_uring, 1 classic). */
interface Addon {
  open(maxEntries: number, kind: number): { ok: boolean, code: string | null, engine: EngineName | null, sendZc: boolean, send: boolean, splice: boolean }
  start(fd: number, body: Uint8Array, zc: boolean, slice: number, depth: number, done: DoneCallback,
    released: ((notifications: number, copied: number) => void) | undefined, zcNext: number, kind: number): number
  startFile(fd: number, fileFd: number, offset: number, length: number, chunk: number, done: DoneCallback,
    released: ((notifications: number, copied: number) => void) | undefined, depth: number, pollFirst: boolean, remote: boolean, kind: number): number
  sendCached(fd: number, fileFd: number, offset: number, length: number): number
  readCached(fileFd: number, buffer: Uint8Array, offset: number): number
  abort(id: number, kind: number): void
  progress(id: number, kind: number): number
  stats(kind: number): EngineStats
  setPinBudget(bytes: number, kind: number): void
  openFile(path: string, done: (error: string | null, fd: number) => void, kind: number): void
  openCached(path: string): number
  cork(fd: number, on: boolean): boolean
  dup(fd: number): number
  adopt(fd: number): void
  isRemote(fd: number): boolean
  closeFile(fd: number, remote: boolean, kind: number): boolean
  openRoot(path: string): number
  openBeneathCached(dirfd: number, path: string, kind: number, resolve: number, quiet?: boolean): number
  openBeneath(dirfd: number, path: string, kind: number, resolve: number, done: (error: string | null, fd: number) => void, engineKind: number, walk?: boolean): void
  beneathMode(): BeneathMode
}

/**
 * One engine of this environment with the addon's calls bound to it: what body.ts and file.ts
 * use, whichever engine it is (the interface both engines implement, native/engine.h).
 */
export interface Binding {
  readonly engine: EngineName
  start(fd: number, body: Uint8Array, zc: boolean, slice: number, depth: number, done: DoneCallback,
    released: ((notifications: number, copied: number) => void) | undefined, zcNext: number): number
  startFile(fd: number, fileFd: number, offset: number, length: number, chunk: number, done: DoneCallback,
    released: ((notifications: number, copied: number) => void) | undefined, depth: number, pollFirst: boolean, remote: boolean): number
  /** Sends the range by sendfile(2) on this thread if all of it is in the page cache; returns the bytes sent. */
  sendCached(fd: number, fileFd: number, offset: number, length: number): number
  abort(id: number): void
  progress(id: number): number
  stats(): EngineStats
  setPinBudget(bytes: number): void
  /** Opens a file read-only off this thread: the ring's workers, or the classic engine's disk threads. */
  openFile: ((path: string, done: (error: string | null, fd: number) => void) => void) | null
  /** TCP_CORK on or off; false when the socket could not be corked (not TCP). */
  cork(fd: number, on: boolean): boolean
}

/** The addon's calls on descriptors, whichever engine (if any) serves. */
export interface Descriptors {
  /**
   * Opens a file read-only at once if its lookup is all in the dentry cache (openat2 with
   * RESOLVE_CACHED) and it is on a local filesystem: the descriptor, or -1 (then another
   * open); throws (errno code) for the open's own error.
   */
  openCached(path: string): number
  /**
   * Fills `buffer` from the local file at `offset` on this thread if every page is in the page
   * cache (preadv2 with RWF_NOWAIT): the bytes read, fewer where the file ends; -1 when a read
   * would wait for the device (or failed): then the ordinary read.
   */
  readCached(fd: number, buffer: Uint8Array, offset: number): number
  /** The plugin's own duplicate of a caller's descriptor (throws EBADF when it is not open). */
  dup(fd: number): number
  /** A descriptor the plugin opened through libuv becomes the environment's to close at teardown. */
  adopt(fd: number): void
  /** Whether the file's filesystem may wait on a server or a daemon (NFS, CIFS, FUSE, ...). */
  isRemote(fd: number): boolean
  /**
   * Closes a descriptor the plugin owns: at once, or off this thread by the engine for a
   * remote file; false when the caller must close it off this thread (a remote file, no engine).
   */
  closeFile(fd: number, remote: boolean): boolean
  /** An O_PATH descriptor of a root directory: by openat2, or by the walk where it is refused (throws the errno). */
  openRoot(path: string): number
  /**
   * Opens beneath `dirfd` at once if the lookup is cached and local: the descriptor, or -1;
   * throws the open's errno, or (quiet) returns it as -errno, below -1.
   */
  openBeneathCached(dirfd: number, path: string, kind: BeneathKind, resolve: number, quiet?: boolean): number
  /**
   * Opens beneath `dirfd` off this thread: the ring's IORING_OP_OPENAT2, else a classic disk
   * thread (the classic engine opens for that alone when no engine serves); throws when
   * neither can take it.
   */
  openBeneath(dirfd: number, path: string, kind: BeneathKind, resolve: number, done: (error: string | null, fd: number) => void): void
  /** How this process opens beneath a root: openat2, or the walk where openat2 is refused (native/beneath.h). */
  readonly beneathMode: BeneathMode
  /** The path a directory opened beneath a root is read through (listings, letter case). */
  dirPath(fd: number): string
}

/**
 * 'openat2' where the kernel answers it; 'walk' where it is refused (a component at a time,
 * O_NOFOLLOW, every symlink checked); 'userspace' without the addon (static/open-userspace.ts).
 */
export type BeneathMode = 'openat2' | 'walk' | 'userspace'

/** What an open beneath a root opens: a file to serve, or a directory (a root given per call). */
export type BeneathKind = 0 | 1
export const BENEATH_FILE = 0
export const BENEATH_DIRECTORY = 1

/** openat2's RESOLVE_* bits (linux/openat2.h). */
export const RESOLVE_NO_XDEV = 0x01
export const RESOLVE_NO_MAGICLINKS = 0x02
export const RESOLVE_NO_SYMLINKS = 0x04
export const RESOLVE_BENEATH = 0x08
export const AT_FDCWD = -100

// Bits of the `fallbacks` argument of DoneCallback (native/ring.h).
export const FALLBACK_EOPNOTSUPP = 1
export const FALLBACK_ENOMEM = 2
export const FALLBACK_PIN_BUDGET = 4

export interface Probe {
  /** The engine that serves: null when none could be had. */
  binding: Binding | null
  /** The addon's descriptor calls, whether or not an engine opened; null without the addon. */
  addon: Descriptors | null
  engine: EngineName | null
  native: boolean
  /** How files are opened beneath a static root; null without the addon. */
  beneath: BeneathMode | null
  ioUring: boolean
  sendZc: boolean
  send: boolean
  splice: boolean
  reason: string | null
}

const packageRoot = path.join(__dirname, '..', '..')
const probed = new Map<EngineChoice, Probe>()

function load (): { binding: Addon | null, reason: string | null } {
  if (process.platform !== 'linux') {
    return { binding: null, reason: `io_uring needs Linux; this is ${process.platform}` }
  }
  try {
    const build = require('node-gyp-build') as (dir: string) => Addon
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

export type EngineChoice = 'auto' | EngineName

const KIND: Record<EngineName, number> = { io_uring: 0, classic: 1 }

function bind (addon: Addon, engine: EngineName): Binding {
  const kind = KIND[engine]
  return {
    engine,
    start: (fd, body, zc, slice, depth, done, released, zcNext) => addon.start(fd, body, zc, slice, depth, done, released, zcNext, kind),
    startFile: (fd, fileFd, offset, length, chunk, done, released, depth, pollFirst, remote) =>
      addon.startFile(fd, fileFd, offset, length, chunk, done, released, depth, pollFirst, remote, kind),
    sendCached: (fd, fileFd, offset, length) => addon.sendCached(fd, fileFd, offset, length),
    abort: (id) => addon.abort(id, kind),
    progress: (id) => addon.progress(id, kind),
    stats: () => addon.stats(kind),
    setPinBudget: (bytes) => addon.setPinBudget(bytes, kind),
    openFile: (path, done) => addon.openFile(path, done, kind),
    cork: (fd, on) => addon.cork(fd, on)
  }
}

function descriptors (addon: Addon, engine: EngineName | null): Descriptors {
  const kind = engine === null ? -1 : KIND[engine]
  const beneathMode = addon.beneathMode()
  return {
    beneathMode,
    dirPath: (fd) => `/proc/self/fd/${fd}`,
    openCached: (path) => addon.openCached(path),
    readCached: (fd, buffer, offset) => addon.readCached(fd, buffer, offset),
    dup: (fd) => addon.dup(fd),
    adopt: (fd) => addon.adopt(fd),
    isRemote: (fd) => addon.isRemote(fd),
    closeFile: (fd, remote) => addon.closeFile(fd, remote, kind),
    openRoot: (path) => addon.openRoot(path),
    openBeneathCached: (dirfd, path, k, resolve, quiet) => addon.openBeneathCached(dirfd, path, k, resolve, quiet === true),
    openBeneath: (dirfd, path, k, resolve, done) => {
      // In walk mode the ring's IORING_OP_OPENAT2 is not used (native/uring/ring.cc): the walk
      // runs on a classic disk thread.
      if (kind === KIND.io_uring && beneathMode === 'openat2') {
        try {
          addon.openBeneath(dirfd, path, k, resolve, done, kind)
          return
        } catch (err) {
          // A kernel without IORING_OP_OPENAT2, a full or broken ring: a disk thread opens it.
          if ((err as NodeJS.ErrnoException).code === 'EBADF') throw err
        }
      }
      if (!classicOpen) classicOpen = addon.open(0, KIND.classic).ok
      if (!classicOpen) throw Object.assign(new Error('no engine can open beneath a root'), { code: 'ENXIO' })
      addon.openBeneath(dirfd, path, k, resolve, done, KIND.classic)
    }
  }
}

let classicOpen = false

/**
 * Opens this environment's engine for `choice`, once per choice, and tells what it can do:
 * 'auto' takes the io_uring ring where one opens, else the classic engine; a named engine is
 * that one or none.
 */
export function probe (choice: EngineChoice = 'auto'): Probe {
  const known = probed.get(choice)
  if (known !== undefined) return known
  const result = probeOnce(choice)
  probed.set(choice, result)
  return result
}

function probeOnce (choice: EngineChoice): Probe {
  const { binding: addon, reason } = loaded
  const none = { binding: null, engine: null, native: false, beneath: null, ioUring: false, sendZc: false, send: false, splice: false }
  if (addon === null) return { ...none, addon: null, reason }
  const beneath = addon.beneathMode()
  let ringReason = 'engine "classic" was configured'
  const ioUring = false
  if (choice !== 'classic') {
    const ring = addon.open(ringEntries(), KIND.io_uring)
    if (ring.ok) {
      return {
        binding: bind(addon, 'io_uring'),
        addon: descriptors(addon, 'io_uring'),
        engine: 'io_uring',
        native: true,
        beneath,
        ioUring: true,
        sendZc: ring.sendZc,
        send: ring.send,
        splice: ring.splice,
        reason: ring.sendZc ? null : 'the kernel does not support IORING_OP_SEND_ZC (Linux 6.0 or later)'
      }
    }
    ringReason = describeRingError(ring.code)
    if (choice === 'io_uring') return { ...none, native: true, beneath, addon: descriptors(addon, null), reason: ringReason }
  }
  const classic = addon.open(0, KIND.classic)
  if (!classic.ok) {
    return { ...none, native: true, beneath, ioUring, addon: descriptors(addon, null), reason: `${ringReason}; the classic engine failed too (${classic.code ?? 'unknown'})` }
  }
  return {
    binding: bind(addon, 'classic'),
    addon: descriptors(addon, 'classic'),
    engine: 'classic',
    native: true,
    beneath,
    ioUring,
    sendZc: classic.sendZc,
    send: classic.send,
    splice: classic.splice,
    reason: ringReason
  }
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
