// The open-file cache of fastify-zero-copy/static (option `openFileCache`), after nginx's
// open_file_cache: a hot file is opened beneath its root, stat'ed and has its header values
// formatted once, then each request gets a duplicate of the cached descriptor.
//
// What a cached entry may serve, and for how long:
// - every hit fstat()s the cached descriptor (a local file's inode, held by the kernel: no
//   wait); a file changed in any way (size, mtime, ctime: written, truncated, chmod'ed,
//   renamed) or whose last name went away (unlinked, renamed over: nlink 0) is dropped and
//   the path opened again at that request;
// - the path is resolved again (openat2 beneath the root, as without the cache) by the first
//   request at least `validMs` after the open that filled the entry was issued, so a path that
//   names another file while the cached one is untouched (a symlink or a directory along the
//   path swapped, a directory's permission taken away) is served at most `validMs` stale;
// - only regular files on local filesystems are cached: a remote file's fstat may wait (it
//   would have to leave the loop on every hit), and a directory's descriptor carries a read
//   position that duplicates would share. Errors (ENOENT) are not cached.
//
// Ownership: the cache holds one descriptor per entry and every response a dup() of it, its
// own to close (OpenFile closes exactly once, never under a read), so evicting or closing an
// entry never touches a response in flight. A dup is one syscall that takes no path; a
// borrowed, reference-counted descriptor would save it but make every response's close a
// question for the cache. Duplicates share the file offset, which nothing here uses: every
// read is positional (pread, sendfile and splice with an offset). Every descriptor here was
// opened or duplicated by the addon, so it is in the environment's registry and closed at
// worker exit even if onClose never runs.
import { fstatSync, type Stats } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { OpenFile } from '../file'
import type { Descriptors } from '../native'
import { FST_ZERO_COPY_INVALID_OPTION } from '../errors'

export interface OpenFileCacheSettings {
  /** Entries, hence descriptors, held at most. */
  max: number
  /** A path is resolved again by the first request at least this long after its entry was checked. */
  validMs: number
  /** An entry no request used for this long is closed (within half as long again). */
  inactiveMs: number
}

/**
 * max 256: one descriptor each, a small share of RLIMIT_NOFILE (Node raises the soft limit to
 * the hard one at startup), leaving the rest to sockets and in-flight responses. validMs 1 s: what a rename-over deploy may serve stale, and one open
 * per hot file per second. inactiveMs 20 s: a held descriptor keeps a deleted file's blocks
 * allocated, so an idle one does not stay long.
 */
export const OPEN_FILE_CACHE_DEFAULTS: OpenFileCacheSettings = { max: 256, validMs: 1000, inactiveMs: 20000 }

const LIMITS: Record<keyof OpenFileCacheSettings, [number, number]> = {
  max: [1, 65536],
  validMs: [0, 3600000],
  inactiveMs: [1, 86400000]
}

/** `openFileCache`: false or absent (off), true (the defaults), or { max, validMs, inactiveMs }. */
export function readOpenFileCache (value: unknown): OpenFileCacheSettings | null {
  if (value === undefined || value === false) return null
  if (value === true) return { ...OPEN_FILE_CACHE_DEFAULTS }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FST_ZERO_COPY_INVALID_OPTION('openFileCache', 'expected false, true or { max, validMs, inactiveMs }')
  }
  const out = { ...OPEN_FILE_CACHE_DEFAULTS }
  for (const name of Object.keys(value)) {
    if (!(name in LIMITS)) throw new FST_ZERO_COPY_INVALID_OPTION('openFileCache', `unknown key ${JSON.stringify(name)}`)
  }
  for (const name of Object.keys(LIMITS) as Array<keyof OpenFileCacheSettings>) {
    const v = (value as Record<string, unknown>)[name]
    if (v === undefined) continue
    const [min, max] = LIMITS[name]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new FST_ZERO_COPY_INVALID_OPTION('openFileCache', `${name}: expected an integer from ${min} to ${max}`)
    }
    out[name] = v
  }
  return out
}

/** What the cache needs of a root: its descriptor, and whether it was closed. */
export interface CacheRoot {
  fd: number
  closed: boolean
}

export type Served = (err: NodeJS.ErrnoException | null, file?: OpenFile, stat?: Stats) => void
/** The open without the cache: `rel` beneath the root descriptor, as an OpenFile and its stat. */
export type Opener = (dirfd: number, rel: string, path: string, resolve: number, done: Served) => void

interface Entry {
  key: string
  root: CacheRoot
  fd: number
  path: string
  size: number
  mtimeMs: number
  ctimeMs: number
  /** When the open that found this inode was issued (performance.now()). */
  checkedAt: number
  usedAt: number
}

export class OpenFileCache {
  private readonly entries = new Map<string, Entry>() // least recently used first
  private readonly rootIds = new WeakMap<CacheRoot, number>()
  private nextRootId = 0
  private closed = false
  private readonly sweeper: NodeJS.Timeout

  constructor (
    private readonly addon: Descriptors,
    private readonly settings: OpenFileCacheSettings,
    private readonly opener: Opener
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1, Math.floor(settings.inactiveMs / 2)))
    this.sweeper.unref()
  }

  /** Descriptors the cache holds now. */
  get size (): number {
    return this.entries.size
  }

  /**
   * The file `rel` beneath `root` (`path`: its name as responses show it) with its stat, as an
   * OpenFile the caller owns: from the cache when its entry is fresh, else opened.
   */
  open (root: CacheRoot, rel: string, path: string, resolve: number, done: Served): void {
    let id = this.rootIds.get(root)
    if (id === undefined) {
      id = this.nextRootId++
      this.rootIds.set(root, id)
    }
    const key = `${id}\0${resolve}\0${rel}`
    const now = performance.now()
    const entry = this.entries.get(key)
    if (entry !== undefined && now - entry.checkedAt < this.settings.validMs && this.hit(entry, now, done)) return
    this.miss(root, key, rel, path, resolve, now, done)
  }

  /** Serves a fresh entry; false when the entry is no longer good (then it is gone). */
  private hit (entry: Entry, now: number, done: Served): boolean {
    let stat: Stats
    try {
      stat = fstatSync(entry.fd)
    } catch {
      this.remove(entry)
      return false
    }
    // Its last name went (nlink 0: the path, if anything, names another file now), or it was
    // written, truncated, chmod'ed, renamed (ctime): the path is opened again, as without the
    // cache, so that a permission taken away is met by the open.
    if (stat.nlink === 0 || stat.ctimeMs !== entry.ctimeMs || stat.size !== entry.size || stat.mtimeMs !== entry.mtimeMs) {
      this.remove(entry)
      return false
    }
    let fd: number
    try {
      fd = this.addon.dup(entry.fd)
    } catch (err) {
      done(err as NodeJS.ErrnoException) // EMFILE: what an open would have met too
      return true
    }
    entry.usedAt = now
    this.entries.delete(entry.key)
    this.entries.set(entry.key, entry)
    done(null, new OpenFile(fd, entry.path, true, false, this.addon), stat)
    return true
  }

  /** Opens beneath the root, as without the cache; a regular local file then fills the entry. */
  private miss (root: CacheRoot, key: string, rel: string, path: string, resolve: number, issued: number, done: Served): void {
    this.opener(root.fd, rel, path, resolve, (err, file, stat) => {
      // What this open found replaces what an earlier one did (not what a later one did).
      const old = this.entries.get(key)
      const newest = old === undefined || old.checkedAt <= issued
      if (old !== undefined && newest) this.remove(old)
      if (err !== null) {
        done(err)
        return
      }
      if (newest && !file!.remote && stat!.isFile()) this.fill(root, key, path, file!.fd, stat!, issued)
      done(null, file, stat)
    })
  }

  /** Keeps a duplicate of the response's new descriptor as the entry of `key`. */
  private fill (root: CacheRoot, key: string, path: string, fd: number, stat: Stats, issued: number): void {
    if (this.closed || root.closed) return
    let own: number
    try {
      own = this.addon.dup(fd)
    } catch {
      return // out of descriptors: serve uncached
    }
    const entry: Entry = {
      key, root, fd: own, path, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, checkedAt: issued, usedAt: performance.now()
    }
    this.entries.set(key, entry)
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.settings.max) break
      this.remove(e) // least recently used first
    }
  }

  private remove (entry: Entry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key)
    this.addon.closeFile(entry.fd, false) // local, read-only: closes at once
  }

  private sweep (): void {
    const limit = performance.now() - this.settings.inactiveMs
    for (const e of this.entries.values()) {
      if (e.usedAt > limit) break // the rest were used later
      this.remove(e)
    }
  }

  /** A root being closed: its entries go with it (its number may name another directory next). */
  dropRoot (root: CacheRoot): void {
    for (const e of [...this.entries.values()]) {
      if (e.root === root) this.remove(e)
    }
  }

  /** fastify.close(): every descriptor the cache holds. Responses in flight keep their own. */
  close (): void {
    this.closed = true
    clearInterval(this.sweeper)
    for (const e of [...this.entries.values()]) this.remove(e)
  }
}
