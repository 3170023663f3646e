// Directory listings (the `list` option), with @fastify/static's meaning: json (names or
// extended) or html by the application's render, the `names` that list a directory, the
// folders' extended information. Contained the way files are:
// - the directory is opened beneath the root (openat2 with the settings' resolve flags) and
//   its entries read from that descriptor: readdir of /proc/self/fd/<fd> in libuv's pool, a
//   path that names the very directory the descriptor holds (the kernel lets a process reach
//   its own fds there whatever its dumpable state), never a path joined from the request;
// - an entry is stat'ed with lstat through the same descriptor (a name, no `/`: nothing is
//   followed); a symlink is shown only when an open of it beneath the root under the same
//   resolve flags succeeds, and then with what that open reached;
// - what the dotfile policy hides ('ignore' and 'deny') and what allowedPath refuses is not
//   shown, not counted in a folder's extended information, at any depth, and neither
//   stat'ed nor opened: both are asked by name before anything else is done with it.
import { close, fstat, lstat, readdir, statSync, type Dirent, type Stats } from 'node:fs'
import fastq from 'fastq'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { BENEATH_DIRECTORY, BENEATH_FILE, type BeneathKind, type Descriptors } from '../native'
import {
  FST_ZERO_COPY_FILE_FORBIDDEN,
  FST_ZERO_COPY_FILE_OPEN_FAILED,
  FST_ZERO_COPY_INVALID_OPTION,
  FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE,
  FST_STATIC_INVALID_OPTION_VALUE,
  FST_STATIC_MULTIROOT_LIST_CONFLICT
} from '../errors'
import { displayPath, relativePath, type Resolved } from './path'
import type { Dotfiles } from './options'
import { CallbackError, askAllowedPath } from './gate'

export interface ExtendedInfo {
  totalSize: number
  fileCount: number
  totalFileCount: number
  folderCount: number
  totalFolderCount: number
  lastModified: number
}

export interface ListEntry {
  href: string
  name: string
  stats: Stats
  extendedInfo?: ExtendedInfo
}

export type ListRender = (dirs: ListEntry[], files: ListEntry[]) => unknown

export interface ListSettings {
  format: 'json' | 'html'
  names: string[]
  extendedFolderInfo: boolean
  jsonFormat: 'names' | 'extended'
  render: ListRender | null
}

type OpenDone = (err: NodeJS.ErrnoException | null, fd: number) => void

/** What a listing needs of its registration: the root, how opens beneath it resolve, the policies. */
export interface ListRoot {
  addon: Descriptors
  open: (addon: Descriptors, dirfd: number, rel: string, kind: 0 | 1, resolve: number, done: OpenDone) => void
  rootFd: number
  rootPath: string
  resolve: number
  dotfiles: Dotfiles
  allowedPath: ((pathName: string, root: string, request: FastifyRequest) => boolean) | undefined
}

const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'EXDEV', 'ELOOP', 'ENAMETOOLONG', 'ENXIO', 'ENODEV'])
/** Filesystem calls of one listing in flight at once: libuv's pool has 4 threads by default. */
const IO_CONCURRENCY = 4
/** A folder's extended information descends this deep at most (symlinked loops are cut anyway). */
const MAX_DEPTH = 64

/** The `list` option, checked at registration: null when listings are off. */
export function readListOptions (value: unknown, rootCount: number): ListSettings | null {
  if (value === undefined || value === false || value === null) return null
  if (value !== true && (typeof value !== 'object' || Array.isArray(value))) {
    throw new FST_ZERO_COPY_INVALID_OPTION('list', `expected true, false or { format, names, extendedFolderInfo, jsonFormat, render }, received ${typeof value}`)
  }
  // As @fastify/static, which refuses a listing over an array of roots: which root's
  // directory a listing shows would be a guess. The checks it makes fail with its errors.
  if (rootCount > 1) throw new FST_STATIC_MULTIROOT_LIST_CONFLICT()
  const o = (value === true ? {} : value) as Record<string, unknown>
  const format = o.format ?? 'json'
  if (format !== 'json' && format !== 'html') throw new FST_STATIC_INVALID_OPTION_VALUE('list.format', 'must be json or html')
  const names = o.names ?? []
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
    throw new FST_STATIC_INVALID_OPTION_VALUE('list.names', 'must be an array')
  }
  const jsonFormat = o.jsonFormat ?? 'names'
  if (jsonFormat !== 'names' && jsonFormat !== 'extended') throw new FST_STATIC_INVALID_OPTION_VALUE('list.jsonFormat', 'must be names or extended')
  const extended = o.extendedFolderInfo ?? false
  if (typeof extended !== 'boolean') throw new FST_ZERO_COPY_INVALID_OPTION('list.extendedFolderInfo', 'expected a boolean')
  const render = o.render
  if ((render !== undefined && typeof render !== 'function') || (format === 'html' && render === undefined)) {
    throw new FST_STATIC_INVALID_OPTION_VALUE('list.render', 'must be a function and is required with html format')
  }
  return { format, names: [...names], extendedFolderInfo: extended, jsonFormat, render: (render as ListRender | undefined) ?? null }
}

/** At registration: a listing reads directories through /proc/self/fd (the addon's); without /proc, fail now. */
export function checkListingRoot (addon: Descriptors, rootFd: number): void {
  if (rootFd < 0) return
  try {
    if (statSync(addon.dirPath(rootFd)).isDirectory()) return
  } catch {}
  throw new FST_ZERO_COPY_INVALID_OPTION('list', 'listings read directories through /proc/self/fd, and /proc is not mounted here')
}

/**
 * A request that named no file: the directory it lists when its last name is one of `names`
 * (`/sub/index.json` lists `/sub/`), else null.
 */
export function namedListing (list: ListSettings, resolved: Resolved): string[] | null {
  if (resolved.trailingSlash) return null
  const last = resolved.segments[resolved.segments.length - 1]
  if (last === undefined || !list.names.includes(last)) return null
  return resolved.segments.slice(0, -1)
}

/**
 * A directory named with its `/` and no index file: whether it lists. As @fastify/static:
 * with no index files configured, or `names` holding '/' (or the directory's own name, its
 * path's basename); and here also with `redirect`, since the bare name redirects to this one.
 */
export function listsWithoutIndex (list: ListSettings, resolved: Resolved, indexCount: number, redirect: boolean): boolean {
  const last = resolved.segments[resolved.segments.length - 1] ?? ''
  return indexCount === 0 || redirect || list.names.includes('/') || list.names.includes(last)
}

/** Sends the listing of `segments` (below the root); `hrefBase`: the encoded URL path of the root, with its `/`. */
export function sendListing (req: FastifyRequest, reply: FastifyReply, list: ListSettings, root: ListRoot, segments: string[], hrefBase: string): void {
  const query = req.query as Record<string, unknown> | null | undefined
  const asked = typeof query?.format === 'string' && query.format !== '' ? query.format : list.format
  const html = asked === 'html'
  if (html && list.render === null) {
    reply.send(new FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE())
    return
  }
  const walk = new Walk(root, req, reply, html || list.jsonFormat === 'extended', list.extendedFolderInfo && (html || list.jsonFormat === 'extended'))
  const answer = async (entries: { dirs: Entry[], files: Entry[] } | null): Promise<void> => {
    if (entries === null) {
      reply.callNotFound()
      return
    }
    if (!html) {
      if (list.jsonFormat === 'extended') {
        reply.send({
          dirs: entries.dirs.map((e) => ({ name: e.name, stats: e.stats, extendedInfo: e.extendedInfo })),
          files: entries.files.map((e) => ({ name: e.name, stats: e.stats }))
        })
      } else {
        reply.send({ dirs: entries.dirs.map((e) => e.name), files: entries.files.map((e) => e.name) })
      }
      return
    }
    // Each name percent-encoded on its own: a `?`, `#` or `%` in a name stays in the name.
    const href = (name: string): string => hrefBase + [...segments, name].map(encodeURIComponent).join('/')
    const page = await list.render!(
      entries.dirs.map((e) => ({ href: href(e.name), name: e.name, stats: e.stats, extendedInfo: e.extendedInfo })),
      entries.files.map((e) => ({ href: href(e.name), name: e.name, stats: e.stats }))
    )
    reply.type('text/html; charset=utf-8').send(page)
  }
  walk.list(segments).then((entries) => {
    answer(entries).catch((err) => { if (!reply.sent) reply.send(new CallbackError(err).error) }) // the render's own error: the error handler's
  }, (err: NodeJS.ErrnoException) => {
    if (reply.sent || reply.raw.destroyed) return
    if (err instanceof CallbackError) reply.send(err.error) // allowedPath's, as it threw it
    else if (err.code === 'EACCES' || err.code === 'EPERM') reply.send(new FST_ZERO_COPY_FILE_FORBIDDEN())
    else reply.send(new FST_ZERO_COPY_FILE_OPEN_FAILED(err.code ?? err.message))
  })
}

interface Entry {
  name: string
  stats: Stats
  dir: boolean
  extendedInfo?: ExtendedInfo
}

function promised<T> (call: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err === null ? resolve(value) : reject(err))))
}

/** One listing's walk: its filesystem calls through one bounded queue, every descriptor closed. */
class Walk {
  private readonly io = fastq.promise(async (task: () => Promise<unknown>) => await task(), IO_CONCURRENCY)

  constructor (private readonly root: ListRoot, private readonly req: FastifyRequest, private readonly reply: FastifyReply,
    private readonly needStats: boolean, private readonly extended: boolean) {}

  /** A filesystem call, queued; none once the client is gone (a folder's walk can be long). */
  private run<T> (task: () => Promise<T>): Promise<T> {
    return this.io.push(async () => {
      if (this.reply.raw.destroyed) throw Object.assign(new Error('the client went away'), { code: 'ECONNRESET' })
      return await task()
    }) as Promise<T>
  }

  private open (rel: string, kind: BeneathKind): Promise<number> {
    return this.run(() => promised<number>((cb) => this.root.open(this.root.addon, this.root.rootFd, rel, kind, this.root.resolve, cb)))
  }

  /** A descriptor this walk opened: an O_PATH one closes at once (no filesystem release), a file's off this thread. */
  private release (fd: number, kind: BeneathKind): void {
    if (this.root.addon.closeFile(fd, kind === BENEATH_FILE)) return
    close(fd, () => {})
  }

  /** Whether a name is shown before it is stat'ed: the dotfile policy, by name. */
  private hidden (name: string): boolean {
    return this.root.dotfiles !== 'allow' && name.startsWith('.')
  }

  /** allowedPath on an entry; what it throws ends the listing as the request's error (CallbackError). */
  private allowed (segments: string[], dir: boolean): boolean {
    if (this.root.allowedPath === undefined) return true
    const allowed = askAllowedPath(this.root.allowedPath, displayPath(segments, dir), this.root.rootPath, this.req)
    if (allowed instanceof CallbackError) throw allowed
    return allowed
  }

  /** The entries of the directory `segments` beneath the root; null when it is no directory there. */
  async list (segments: string[]): Promise<{ dirs: Entry[], files: Entry[] } | null> {
    let fd: number
    try {
      fd = await this.open(relativePath(segments), BENEATH_DIRECTORY)
    } catch (err) {
      if (NOT_FOUND.has((err as NodeJS.ErrnoException).code ?? '')) return null
      throw err
    }
    let entries: Entry[]
    try {
      entries = await this.entries(fd, segments, this.needStats)
    } finally {
      this.release(fd, BENEATH_DIRECTORY)
    }
    if (this.extended) {
      await Promise.all(entries.filter((e) => e.dir).map(async (e) => {
        e.extendedInfo = await this.folderInfo([...segments, e.name], e.stats)
      }))
    }
    const byName = (a: Entry, b: Entry): number => a.name.localeCompare(b.name)
    return { dirs: entries.filter((e) => e.dir).sort(byName), files: entries.filter((e) => !e.dir).sort(byName) }
  }

  /** The shown entries of the directory held by `fd` (`segments` below the root). */
  private async entries (fd: number, segments: string[], needStats: boolean): Promise<Entry[]> {
    const dirents = await this.run(() => promised<Dirent[]>((cb) => readdir(this.root.addon.dirPath(fd), { withFileTypes: true }, cb)))
    const out: Entry[] = []
    await Promise.all(dirents.map(async (d) => {
      if (this.hidden(d.name)) return
      const name = [...segments, d.name]
      // Judged before anything is stat'ed or opened: by readdir's type, and a symlink first as
      // a file (`/a`), again as a directory (`/a/`) when it leads to one.
      if (!this.allowed(name, d.isDirectory())) return
      const entry = await this.entry(fd, segments, d, needStats)
      if (entry !== null && (entry.dir === d.isDirectory() || this.allowed(name, entry.dir))) out.push(entry)
    }))
    return out
  }

  private async entry (fd: number, segments: string[], d: Dirent, needStats: boolean): Promise<Entry | null> {
    if (!d.isSymbolicLink()) {
      // Listed by name alone (json names): the type readdir gave is enough.
      if (!needStats) return { name: d.name, stats: undefined as unknown as Stats, dir: d.isDirectory() }
      let stats: Stats
      try {
        stats = await this.run(() => promised<Stats>((cb) => lstat(`${this.root.addon.dirPath(fd)}/${d.name}`, cb)))
      } catch {
        return null // gone since readdir
      }
      if (!stats.isSymbolicLink()) return { name: d.name, stats, dir: stats.isDirectory() }
      // replaced by a symlink since readdir: judged as one
    }
    // A symlink: shown when it resolves beneath the root as a request's open would, with
    // what it leads to (a dangling one, or one leading out, is not shown).
    let target: number
    try {
      target = await this.open(relativePath([...segments, d.name]), BENEATH_FILE)
    } catch {
      return null
    }
    try {
      const stats = await this.run(() => promised<Stats>((cb) => fstat(target, cb)))
      return { name: d.name, stats, dir: stats.isDirectory() }
    } catch {
      return null
    } finally {
      this.release(target, BENEATH_FILE)
    }
  }

  /** @fastify/static's extended information of a folder, of what a listing would show in it, at every depth. */
  private async folderInfo (segments: string[], stats: Stats): Promise<ExtendedInfo> {
    const info: ExtendedInfo = { totalSize: 0, fileCount: 0, totalFileCount: 0, folderCount: 0, totalFolderCount: 0, lastModified: 0 }
    await this.measure(segments, stats, info, 0, new Set())
    return info
  }

  private async measure (segments: string[], stats: Stats, info: ExtendedInfo, depth: number, visited: Set<string>): Promise<void> {
    // Within one folder, a directory reached twice (a symlink to an ancestor, two links to one
    // folder) is walked once: a loop ends.
    const key = `${stats.dev}:${stats.ino}`
    if (depth > MAX_DEPTH || visited.has(key)) return
    visited.add(key)
    let fd: number
    try {
      fd = await this.open(relativePath(segments), BENEATH_DIRECTORY)
    } catch {
      return
    }
    let entries: Entry[]
    try {
      entries = await this.entries(fd, segments, true)
    } catch (err) {
      if (err instanceof CallbackError) throw err // the application's error, not a folder gone meanwhile
      return
    } finally {
      this.release(fd, BENEATH_DIRECTORY)
    }
    await Promise.all(entries.map(async (e) => {
      if (e.dir) {
        info.totalFolderCount++
        if (depth === 0) info.folderCount++
        await this.measure([...segments, e.name], e.stats, info, depth + 1, visited)
      } else {
        info.totalSize += e.stats.size
        info.totalFileCount++
        if (depth === 0) info.fileCount++
        info.lastModified = Math.max(info.lastModified, e.stats.mtimeMs)
      }
    }))
  }
}
