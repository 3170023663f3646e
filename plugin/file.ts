// File bodies: what to open, which headers and status a request gets (the semantics of
// @fastify/send for a single file), and who closes what. The bytes themselves go through
// FileBody (body.ts): spliced by the ring, or read through Node on the ordinary path.
import { close, fstat, fstatSync, open, read, constants as fsc, type promises as fsp, type Stats } from 'node:fs'
import type { FastifyReply } from 'fastify'
import mime from 'mime'
import fresh from 'fresh'
import parseRange from 'range-parser'
import type { ZeroCopyFileOptions } from '../types/index'
import type { Descriptors } from './native'
import {
  FST_ZERO_COPY_FILE_FORBIDDEN,
  FST_ZERO_COPY_FILE_NOT_FOUND,
  FST_ZERO_COPY_FILE_OPEN_FAILED,
  FST_ZERO_COPY_INVALID_BODY,
  FST_ZERO_COPY_INVALID_OPTION,
  FST_ZERO_COPY_NOT_A_FILE,
  FST_ZERO_COPY_PRECONDITION_FAILED,
  FST_ZERO_COPY_RANGE_NOT_SATISFIABLE
} from './errors'

/** HTTP behaviour of file responses: plugin-wide defaults, overridden per call. */
export interface FileHttpOptions {
  acceptRanges: boolean
  cacheControl: boolean
  maxAge: number
  immutable: boolean
  etag: boolean
  lastModified: boolean
  contentType: boolean
}

export const FILE_HTTP_DEFAULTS: FileHttpOptions = {
  acceptRanges: true,
  cacheControl: true,
  maxAge: 0,
  immutable: false,
  etag: true,
  lastModified: true,
  contentType: true
}

const BOOLEAN_OPTIONS = ['acceptRanges', 'cacheControl', 'immutable', 'etag', 'lastModified', 'contentType'] as const

/** Reads the HTTP options of `opts` over `base`; a bad value is FST_ZERO_COPY_INVALID_OPTION. */
export function readFileHttpOptions (opts: Partial<Record<keyof FileHttpOptions, unknown>>, base: FileHttpOptions): FileHttpOptions {
  const out = { ...base }
  for (const name of BOOLEAN_OPTIONS) {
    const value = opts[name]
    if (value === undefined) continue
    if (typeof value !== 'boolean') throw new FST_ZERO_COPY_INVALID_OPTION(name, `expected a boolean, received ${typeof value}`)
    out[name] = value
  }
  if (opts.maxAge !== undefined) {
    const value = opts.maxAge
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new FST_ZERO_COPY_INVALID_OPTION('maxAge', 'expected a non-negative integer of milliseconds')
    }
    out.maxAge = value
  }
  return out
}

/**
 * An open file and who closes it. Every descriptor here is the plugin's own: what it opened for
 * a `{ path }`, or its duplicate of a caller's FileHandle or `{ fd }` (taken at the call, so
 * the caller's stays theirs and closing it changes nothing here). It is closed exactly once,
 * whatever happens, and never while one of its reads is in flight (the number could be reused
 * by then). `remote`: on a filesystem whose calls may wait (fsclass.h), so fstat and close
 * happen off the event loop's thread.
 */
export class OpenFile {
  private reads = 0
  private closing = false

  constructor (
    readonly fd: number,
    readonly path: string | null,
    readonly owned: boolean,
    readonly remote: boolean,
    private readonly addon: Descriptors | null,
    /** Without the addon there is no duplicate: the caller's FileHandle, kept from the collector. */
    readonly keep: unknown = null
  ) {}

  /** Reads into `buffer` at `position`. */
  read (buffer: Buffer, position: number): Promise<number> {
    if (this.closing) return Promise.reject(Object.assign(new Error('the file was closed'), { code: 'EBADF' }))
    this.reads++
    return new Promise((resolve, reject) => {
      read(this.fd, buffer, 0, buffer.length, position, (err, bytesRead) => {
        if (--this.reads === 0 && this.closing) this.release()
        if (err === null) resolve(bytesRead)
        else reject(err)
      })
    })
  }

  close (): void {
    if (!this.owned || this.closing) return
    this.closing = true
    if (this.reads === 0) this.release()
  }

  /**
   * A local file's descriptor closes at once (read-only: nothing to write back, and the pool's
   * round trip cost more than the call); a remote one's through the ring or libuv's pool, since
   * its close may wait (a FUSE flush, an NFS server).
   */
  private release (): void {
    if (this.addon !== null && this.addon.closeFile(this.fd, this.remote)) return
    close(this.fd, () => {}) // EIO on closing a read-only file leaves nothing to do
  }
}

interface FileHandleLike { fd: number, stat: unknown, close: unknown }

function isFileHandle (body: object): body is fsp.FileHandle {
  const h = body as FileHandleLike
  return typeof h.fd === 'number' && typeof h.stat === 'function' && typeof h.close === 'function'
}

/** Whether sendZeroCopy was given a file: `{ path }`, `{ fd }` or a FileHandle. */
export function isFileBody (body: unknown): boolean {
  if (body === null || typeof body !== 'object' || ArrayBuffer.isView(body)) return false
  try {
    return typeof (body as { path?: unknown }).path === 'string' ||
      typeof (body as { fd?: unknown }).fd === 'number' ||
      isFileHandle(body)
  } catch {
    return false // a revoked Proxy
  }
}

/**
 * The error a client gets. Its message never names the path (Fastify sends 4xx messages to
 * the client); the path is on `err.path`, which the request log shows.
 */
function openError (err: NodeJS.ErrnoException, path: string | null): Error {
  let out: Error
  switch (err.code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ENAMETOOLONG':
    case 'ELOOP':
      out = new FST_ZERO_COPY_FILE_NOT_FOUND()
      break
    case 'EACCES':
    case 'EPERM':
      out = new FST_ZERO_COPY_FILE_FORBIDDEN()
      break
    case 'EISDIR':
    case 'ENXIO': // a Unix socket, or a device without its driver
    case 'ENODEV':
      out = new FST_ZERO_COPY_NOT_A_FILE()
      break
    default:
      out = new FST_ZERO_COPY_FILE_OPEN_FAILED(err.code ?? err.message)
  }
  return Object.assign(out, { path })
}

export type Opened = (err: Error | null, file?: OpenFile, stat?: Stats) => void

/** What opens, duplicates and classifies descriptors: the addon (null when it did not load) and the ring. */
export interface Files {
  addon: Descriptors | null
  /** The ring's IORING_OP_OPENAT (on its workers); throws if the ring cannot take it. Null without a ring. */
  open: ((path: string, done: (error: string | null, fd: number) => void) => void) | null
}

/**
 * Opens (or duplicates) the file and stats it, then calls `done` once: with the file, or with
 * a Fastify error that has a status. Callbacks, not promises: this runs on every request.
 * Nothing here waits on a disk or a network filesystem on this thread:
 * - a path whose lookup is in the dentry cache, on a local filesystem, opens at once (the
 *   addon's openat2 with RESOLVE_CACHED; `done` is then called before this returns);
 * - any other path is opened by the ring's workers, so native responses never queue behind
 *   libuv's pool (four threads by default: fs, dns.lookup, crypto, zlib), or without a ring
 *   through that pool;
 * - a local file's fstat runs here (it reads the inode the kernel holds), a remote file's in
 *   the pool.
 * Opens use O_NONBLOCK, so that a FIFO cannot block until a writer comes (it changes nothing for
 * a regular file, which is all that is served).
 */
export function openFile (body: unknown, files: Files, done: Opened): void {
  const { addon } = files
  if (isFileHandle(body as object) || typeof (body as { path?: unknown }).path !== 'string') {
    const fd = isFileHandle(body as object) ? (body as fsp.FileHandle).fd : (body as { fd: number }).fd
    if (!Number.isInteger(fd) || fd < 0) {
      done(new FST_ZERO_COPY_INVALID_BODY(`{ fd: ${fd} }`))
      return
    }
    if (addon === null) {
      // No duplicate without the addon: the caller's descriptor, which must stay open.
      statFile(new OpenFile(fd, null, false, true, null, body), done)
      return
    }
    let own: number
    try {
      own = addon.dup(fd)
    } catch {
      done(new FST_ZERO_COPY_INVALID_BODY(`a file descriptor that is not open (${fd})`))
      return
    }
    statFile(new OpenFile(own, null, true, addon.isRemote(own), addon), done)
    return
  }
  const path = (body as { path: string }).path
  if (path.length === 0 || path.includes('\0')) {
    done(openError(Object.assign(new Error('invalid path'), { code: 'ENOENT' }), path))
    return
  }
  const opened = (err: NodeJS.ErrnoException | null, fd: number): void => {
    if (err !== null) done(openError(err, path))
    else statFile(new OpenFile(fd, path, true, addon === null || addon.isRemote(fd), addon), done)
  }
  if (addon !== null) {
    let fd: number
    try {
      fd = addon.openCached(path)
    } catch (err) {
      opened(err as NodeJS.ErrnoException, -1)
      return
    }
    if (fd >= 0) {
      opened(null, fd)
      return
    }
  }
  if (files.open !== null) {
    try {
      files.open(path, (code, fd) => opened(code === null ? null : Object.assign(new Error(code), { code }), fd))
      return
    } catch {
      // The ring cannot take it now (its queue is full, or it broke): libuv's pool can.
    }
  }
  open(path, fsc.O_RDONLY | fsc.O_NONBLOCK, (err, fd) => {
    if (err === null && addon !== null) addon.adopt(fd)
    opened(err, fd)
  })
}

function statFile (file: OpenFile, done: Opened): void {
  const checked = (err: NodeJS.ErrnoException | null, stat: Stats | null): void => {
    if (err !== null || stat === null) {
      file.close()
      done(file.path === null ? new FST_ZERO_COPY_INVALID_BODY(`a file descriptor that cannot be read (${err?.code})`) : openError(err as NodeJS.ErrnoException, file.path))
      return
    }
    if (!stat.isFile()) {
      file.close()
      if (file.path !== null) done(Object.assign(new FST_ZERO_COPY_NOT_A_FILE(), { path: file.path }))
      else done(new FST_ZERO_COPY_INVALID_BODY(`a file descriptor that is not a regular file (${file.fd})`))
      return
    }
    done(null, file, stat)
  }
  statOf(file.fd, file.remote, checked)
}

/** A descriptor's stat: on this thread for a local file (the kernel holds its inode), else in libuv's pool. */
export function statOf (fd: number, remote: boolean, done: (err: NodeJS.ErrnoException | null, stat: Stats | null) => void): void {
  if (remote) {
    fstat(fd, (err, stat) => done(err, stat ?? null))
    return
  }
  let stat: Stats
  try {
    stat = fstatSync(fd)
  } catch (err) {
    done(err as NodeJS.ErrnoException, null)
    return
  }
  done(null, stat)
}

/** The part of the file the handler asked for, before any Range header: `start`..`end` inclusive. */
export function entity (opts: ZeroCopyFileOptions, size: number): { offset: number, length: number } {
  const start = bound('start', opts.start, 0)
  const end = bound('end', opts.end, Number.MAX_SAFE_INTEGER)
  const offset = Math.min(start, size)
  const last = Math.min(end, size - 1)
  return { offset, length: Math.max(0, last - offset + 1) }
}

function bound (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new FST_ZERO_COPY_INVALID_OPTION(name, 'expected a non-negative integer (a byte offset, inclusive)')
  }
  return value
}

export function isUtf8Type (type: string): boolean {
  return type.startsWith('text/') || type.startsWith('application/json') || type.startsWith('application/javascript')
}

/** A header's value as one string ('' when absent). */
function header (reply: FastifyReply, name: string): string {
  const value = reply.getHeader(name)
  return value === undefined ? '' : String(value)
}

/** The validators and type of a file, as they are sent, for the stat they were formatted from. */
interface FileHeaderValues {
  size: number
  mtimeMs: number
  lastModified: string
  etag: string
  contentType: string
}

function etagOf (stat: Stats): string {
  return `W/"${stat.size.toString(16)}-${stat.mtime.getTime().toString(16)}"`
}

function contentTypeOf (path: string | null): string {
  const type = path === null ? 'application/octet-stream' : (mime.getType(path) ?? 'application/octet-stream')
  return isUtf8Type(type) ? type + '; charset=utf-8' : type
}

/** Formats what setFileHeaders sends for `stat`. */
function fileHeaderValues (path: string | null, stat: Stats): FileHeaderValues {
  return {
    size: stat.size,
    mtimeMs: stat.mtimeMs,
    lastModified: stat.mtime.toUTCString(),
    etag: etagOf(stat),
    contentType: contentTypeOf(path)
  }
}

/**
 * Header values formatted for a path's recent stats, so that a file served again costs no
 * formatting (a Date's toUTCString, a type lookup): at most RECENT_HEADERS paths, the oldest
 * forgotten first. The values are a function of the path, the size and the mtime alone, and
 * an entry counts only for the size and mtime it was formatted from.
 */
const RECENT_HEADERS = 4096
const recentHeaders = new Map<string, FileHeaderValues>()

function headerValuesFor (path: string, stat: Stats): FileHeaderValues {
  const hit = recentHeaders.get(path)
  if (hit !== undefined && hit.size === stat.size && hit.mtimeMs === stat.mtimeMs) return hit
  if (hit !== undefined) recentHeaders.delete(path)
  else if (recentHeaders.size >= RECENT_HEADERS) recentHeaders.delete(recentHeaders.keys().next().value as string)
  const values = fileHeaderValues(path, stat)
  recentHeaders.set(path, values)
  return values
}

/** Sets the file's headers that the handler did not set itself; returns their names. */
export function setFileHeaders (reply: FastifyReply, file: OpenFile, stat: Stats, http: FileHttpOptions): string[] {
  const added: string[] = []
  const set = (name: string, value: string): void => {
    if (reply.hasHeader(name)) return
    reply.header(name, value)
    added.push(name)
  }
  // A named file's values are kept for its path; a descriptor's are formatted each time.
  const values = file.path !== null ? headerValuesFor(file.path, stat) : fileHeaderValues(null, stat)
  if (http.acceptRanges) set('accept-ranges', 'bytes')
  if (http.cacheControl) set('cache-control', `public, max-age=${Math.floor(http.maxAge / 1000)}${http.immutable ? ', immutable' : ''}`)
  if (http.lastModified) set('last-modified', values.lastModified)
  if (http.etag) set('etag', values.etag)
  if (http.contentType && !reply.hasHeader('content-type')) set('content-type', values.contentType)
  return added
}

/** RFC 9110 8.8.3.2: two entity tags match strongly when neither is weak and they are the same. */
function strongMatch (a: string, b: string): boolean {
  return a === b && a.startsWith('"')
}

function tokens (list: string): string[] {
  return list.split(',').map((t) => t.trim()).filter((t) => t.length > 0)
}

/** If-Match / If-Unmodified-Since (RFC 9110 13.1.1, 13.1.4). */
function preconditionFailed (req: NodeJS.Dict<string | string[]>, etag: string, lastModified: string): boolean {
  const ifMatch = req['if-match']
  if (typeof ifMatch === 'string' && ifMatch.trim() !== '*') {
    // The strong comparison (RFC 9110 13.1.1): a weak ETag never matches. @fastify/send
    // compares weakly here.
    if (!tokens(ifMatch).some((t) => strongMatch(t, etag))) return true
  }
  const since = req['if-unmodified-since']
  if (typeof since === 'string' && ifMatch === undefined) {
    const limit = Date.parse(since)
    if (!Number.isNaN(limit)) {
      const modified = Date.parse(lastModified)
      if (Number.isNaN(modified) || modified > limit) return true
    }
  }
  return false
}

/** If-Range: the range applies only to the representation the client has. */
function rangeFresh (req: NodeJS.Dict<string | string[]>, etag: string, lastModified: string): boolean {
  const ifRange = req['if-range']
  if (typeof ifRange !== 'string') return true
  // One entity tag, compared strongly (RFC 9110 13.1.5); @fastify/send matches weak tags and
  // substrings.
  if (ifRange.includes('"')) return strongMatch(ifRange.trim(), etag)
  const at = Date.parse(ifRange)
  const modified = Date.parse(lastModified)
  return !Number.isNaN(at) && !Number.isNaN(modified) && modified <= at
}

export type Decision =
  | { status: 200 | 206, offset: number, length: number }
  | { status: 304 }
  | { error: Error }

/**
 * What this request gets: the whole entity, one range of it (206), 304, or an error
 * (412, 416) for Fastify's error handler. Evaluated on the headers as they will be sent,
 * so an ETag or Last-Modified the handler set is the one compared.
 */
export function decide (reply: FastifyReply, whole: { offset: number, length: number }, http: FileHttpOptions): Decision {
  const req = reply.request.headers
  // A status the handler chose (a custom 404 page) is sent as it is, whole: preconditions
  // and ranges apply to 2xx responses only (RFC 9110 13.2.1, 14.2).
  if (reply.statusCode < 200 || reply.statusCode > 299) return { status: 200, offset: whole.offset, length: whole.length }
  const etag = header(reply, 'etag')
  const lastModified = header(reply, 'last-modified')
  if (preconditionFailed(req, etag, lastModified)) return { error: new FST_ZERO_COPY_PRECONDITION_FAILED() }
  const conditional = req['if-none-match'] !== undefined || req['if-modified-since'] !== undefined
  if (conditional && fresh(req, { etag, 'last-modified': lastModified })) return { status: 304 }
  const range = req.range
  if (http.acceptRanges && typeof range === 'string' && /^ *bytes=/.test(range) && rangeFresh(req, etag, lastModified)) {
    // A suffix longer than the entity means all of it (RFC 9110 14.1.3); range-parser
    // calls that unsatisfiable.
    const suffix = /^ *bytes= *-(\d+) *$/.exec(range)
    const ranges = suffix !== null && Number(suffix[1]) > whole.length && whole.length > 0
      ? [{ start: 0, end: whole.length - 1 }]
      : parseRange(whole.length, range, { combine: true })
    if (ranges === -1) {
      reply.header('content-range', `bytes */${whole.length}`)
      return { error: new FST_ZERO_COPY_RANGE_NOT_SATISFIABLE() }
    }
    // -2 (malformed) is ignored, as RFC 9110 allows; several ranges get the whole entity
    // with 200, as @fastify/send does (no multipart/byteranges).
    if (ranges !== -2 && ranges.length === 1) {
      const { start, end } = ranges[0]
      reply.header('content-range', `bytes ${start}-${end}/${whole.length}`)
      return { status: 206, offset: whole.offset + start, length: end - start + 1 }
    }
  }
  return { status: 200, offset: whole.offset, length: whole.length }
}

/** A 304 carries none of the entity's content headers. */
export function notModified (reply: FastifyReply): void {
  for (const name of ['content-encoding', 'content-language', 'content-length', 'content-range', 'content-type']) {
    reply.removeHeader(name)
  }
  reply.code(304)
}
