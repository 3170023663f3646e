// A request's path through fastify-zero-copy/static, one stage a function, in the order they
// run:
//   respond      the request's resolved name (path.ts parsed the URL once) and its roots
//   candidates   the names it may stand for: itself, then with each of `extensions`, per root
//   firstFound   each candidate located (letter case), judged by the gate (gate.ts), opened
//                beneath its root; the first that is there wins
//   directory    a directory found: its redirect, its index files (candidates again), its listing
//   sendFound    a file found: its pre-compressed siblings (candidates again), then deliver
//   deliver      onFile, setHeaders, and the core's file response
// Every name opened goes through firstFound, so through the gate. An application callback's
// throw or rejection, in whichever continuation it runs, becomes the request's error (fail).
import path from 'node:path'
import type { Stats } from 'node:fs'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CoreInternals } from '../internal'
import type { OpenFile } from '../file'
import { BENEATH_DIRECTORY, type Descriptors } from '../native'
import { FST_ZERO_COPY_FILE_FORBIDDEN, FST_ZERO_COPY_FILE_OPEN_FAILED, FST_ZERO_COPY_STATIC_FORBIDDEN } from '../errors'
import { displayPath, relativePath, type Resolved } from './path'
import type { SendSettings } from './options'
import { listsWithoutIndex, namedListing, sendListing, type ListRoot, type ListSettings } from './list'
import { storedNames } from './letter-case'
import { acceptedCodings, siblingSegments, setEncodingHeaders, type Coding } from './encoding'
import type { OpenFileCache, Served } from './cache'
import { NOT_FOUND, openBeneath, openUncached } from './open'
import { searchOf } from './routes'
import { CallbackError, DENIED, Refused, authorize, isThenable, type AllowedPath, type Authorized, type Candidate, type Root } from './gate'

/** What the request path needs of its registration. */
export interface Site {
  addon: Descriptors
  cache: OpenFileCache | null
  list: ListSettings | null
  preCompressed: boolean
  allowedPath: AllowedPath | undefined
  setHeaders: ((reply: FastifyReply, path: string, stat: Stats) => unknown) | undefined
  sendOpenFile: CoreInternals['sendOpenFile']
}

/** The URL path of the root, encoded with its `/`: for a directory's redirect (null: none) and a listing's links (null: no listing). */
export interface Bases {
  redirect: string | null
  list: string | null
}

interface Found {
  at: Authorized
  file: OpenFile
  stat: Stats
  /** Its place in the candidates searched. */
  from: number
  coding: Coding | null
  /** Its path on disk (the root's joined with the segments), once asked for. */
  full?: string
}

/** The path the application's callbacks and onSend hooks see for `found`, joined once. */
function fullPath (found: Found): string {
  if (found.full === undefined) found.full = path.join(found.at.root.path, ...found.at.segments)
  return found.full
}

type Stop = NodeJS.ErrnoException | Refused | CallbackError

const NO_EXTENSIONS: string[] = []

/** Serves `request` from the first of `roots` that has it. */
export function respond (site: Site, req: FastifyRequest, reply: FastifyReply, request: Resolved, roots: Root[], settings: SendSettings, bases: Bases): void {
  firstFound(site, req, reply, candidates(request, roots, settings), settings, (err, found) => {
    if (err !== null) fail(reply, err)
    else if (found === null) notFound(site, req, reply, request, roots, settings, bases)
    else if (found.stat.isDirectory()) directory(site, req, reply, found, settings, bases)
    else sendFound(site, req, reply, found, settings)
  })
}

/** The names a request may stand for, in order: per root, the name, then the name with each extension. */
function candidates (request: Resolved, roots: Root[], settings: SendSettings): Candidate[] {
  const { segments, trailingSlash } = request
  const last = segments[segments.length - 1]
  const extensions = settings.extensions.length > 0 && !trailingSlash && last !== undefined && path.extname(last) === '' ? settings.extensions : NO_EXTENSIONS
  const out: Candidate[] = []
  for (const root of roots) {
    out.push({ root, segments, trailingSlash, role: 'name' })
    for (const ext of extensions) out.push({ root, segments: [...segments.slice(0, -1), `${last}.${ext}`], trailingSlash: false, role: 'extension' })
  }
  return out
}

/** Whether what a candidate opened is what it stands for. */
function fits (c: Candidate, stat: Stats): boolean {
  if (c.role === 'name') return stat.isDirectory() || (stat.isFile() && !c.trailingSlash) // `small.txt/` is not there (ENOTDIR), as in send
  return stat.isFile() // `a.html` that is a directory is not what `a` meant
}

/**
 * The first of `list` that is there: each located (its stored names on a case-insensitive
 * root), judged by the gate, opened beneath its root. A refused request name stops the search
 * with the refusal; any other refused candidate is passed over. Null: none is there.
 */
function firstFound (site: Site, req: FastifyRequest, reply: FastifyReply, list: Candidate[], settings: SendSettings, done: (err: Stop | null, found: Found | null) => void): void {
  const policy = { dotfiles: settings.dotfiles, allowedPath: site.allowedPath }
  const next = (i: number): void => {
    if (i >= list.length) {
      done(null, null)
      return
    }
    const c = list[i]
    if (c.root.fd < 0 || c.root.closed) {
      next(i + 1)
      return
    }
    locate(site, c, settings, (err, located) => safely(reply, () => {
      if (err !== null && !NOT_FOUND.has(err.code ?? '')) {
        done(err, null)
        return
      }
      if (located === null) {
        next(i + 1)
        return
      }
      const verdict = authorize(policy, located, req)
      if (verdict instanceof CallbackError) {
        done(verdict, null)
        return
      }
      if (verdict instanceof Refused) {
        if (c.role === 'name') done(verdict, null)
        else next(i + 1)
        return
      }
      open(site, verdict, settings, (openErr, file, stat) => safely(reply, () => {
        if (openErr !== null) {
          if (NOT_FOUND.has(openErr.code ?? '')) next(i + 1)
          else done(openErr, null)
          return
        }
        if (!fits(c, stat!)) {
          file!.close()
          next(i + 1)
          return
        }
        done(null, { at: verdict, file: file!, stat: stat!, from: i, coding: null })
      }))
    }))
  }
  next(0)
}

/** The candidate as its root stores it: itself, or on a case-insensitive root the names its directories hold (null: none). */
function locate (site: Site, c: Candidate, settings: SendSettings, done: (err: NodeJS.ErrnoException | null, located: Candidate | null) => void): void {
  if (!c.root.caseless) {
    done(null, c)
    return
  }
  namesOf(site, c.root, settings).map(c.segments, c.known ?? 0, (err, stored) => {
    done(err, err === null && stored !== null ? { ...c, segments: stored } : null)
  })
}

/** The stored names of a case-insensitive root, read beneath it with the request's resolve flags. */
function namesOf (site: Site, root: Root, settings: SendSettings): ReturnType<typeof storedNames> {
  return storedNames((rel, done) => openBeneath(site.addon, root.fd, rel, BENEATH_DIRECTORY, settings.resolve, done), (fd) => site.addon.closeFile(fd, false), (fd) => site.addon.dirPath(fd))
}

/** The only open of the request path: a name the gate let through, beneath its root. */
function open (site: Site, at: Authorized, settings: SendSettings, done: Served): void {
  const rel = relativePath(at.segments)
  const shown = displayPath(at.segments, false)
  if (site.cache !== null) site.cache.open(at.root, rel, shown, settings.resolve, done)
  else openUncached(site.addon, at.root.fd, rel, shown, settings.resolve, done)
}

/** Nothing found under any root: the listing a trigger name asks for (`/sub/index.json`), or a 404. */
function notFound (site: Site, req: FastifyRequest, reply: FastifyReply, request: Resolved, roots: Root[], settings: SendSettings, bases: Bases): void {
  const only = roots.length === 1 ? roots[0] : undefined
  const named = site.list !== null && bases.list !== null && only !== undefined && only.fd >= 0 && !only.closed ? namedListing(site.list, request) : null
  if (named === null) {
    reply.callNotFound()
    return
  }
  locate(site, { root: only!, segments: named, trailingSlash: true, role: 'listing' }, settings, (err, located) => safely(reply, () => {
    if (err !== null || located === null) reply.callNotFound()
    else listing(site, req, reply, located, settings, bases.list!)
  }))
}

/** A directory found: its redirect to the URL with a `/`, its index file, its listing, or a 404. */
function directory (site: Site, req: FastifyRequest, reply: FastifyReply, dir: Found, settings: SendSettings, bases: Bases): void {
  dir.file.close()
  const at = dir.at
  const listed = site.list !== null && bases.list !== null
  // As @fastify/static: the directory's bare name lists, before its index file.
  if (listed && !at.trailingSlash && bases.redirect === null) {
    listing(site, req, reply, at, settings, bases.list!)
    return
  }
  if (!at.trailingSlash && bases.redirect !== null) {
    const search = req.raw.url === undefined ? '' : searchOf(req.raw.url)
    // Built from the route's own prefix and the resolved names, each encoded: a single
    // leading `/` and no `\`, so the Location is this site's (never `//host`).
    reply.redirect(bases.redirect + at.segments.map(encodeURIComponent).join('/') + '/' + search, 301)
    return
  }
  const indexes: Candidate[] = settings.index.map((name) => ({ root: at.root, segments: [...at.segments, ...name.split('/')], trailingSlash: false, role: 'index', known: at.segments.length }))
  firstFound(site, req, reply, indexes, settings, (err, found) => {
    if (err !== null) fail(reply, err)
    else if (found !== null) sendFound(site, req, reply, found, settings)
    else if (listed && at.trailingSlash && listsWithoutIndex(site.list!, at, settings.index.length, bases.redirect !== null)) listing(site, req, reply, at, settings, bases.list!)
    else if (settings.index.length === 0 && at.trailingSlash) fail(reply, DENIED) // as @fastify/static (send): `index: false` refuses a directory asked for as one
    else reply.callNotFound()
  })
}

/** The listing of a directory, judged by the gate as a directory (`/docs/`) unless it was already. */
function listing (site: Site, req: FastifyRequest, reply: FastifyReply, dir: Candidate, settings: SendSettings, listBase: string): void {
  if (!dir.trailingSlash || dir.role !== 'name') {
    const verdict = authorize({ dotfiles: settings.dotfiles, allowedPath: site.allowedPath }, { ...dir, trailingSlash: true, role: 'listing' }, req)
    if (verdict instanceof CallbackError) {
      fail(reply, verdict)
      return
    }
    if (verdict instanceof Refused) {
      reply.callNotFound()
      return
    }
  }
  const target: ListRoot = { addon: site.addon, open: openBeneath, rootFd: dir.root.fd, rootPath: dir.root.path, resolve: settings.resolve, dotfiles: settings.dotfiles, allowedPath: site.allowedPath }
  sendListing(req, reply, site.list!, target, dir.segments, listBase)
}

/** A regular file found: the pre-compressed sibling the request takes, if one is there, else the file. */
function sendFound (site: Site, req: FastifyRequest, reply: FastifyReply, found: Found, settings: SendSettings): void {
  const named = found.at.segments
  const codings = site.preCompressed && named.length > 0 ? acceptedCodings(req.headers['accept-encoding']) : []
  if (codings.length === 0) {
    deliver(site, reply, found, settings, named)
    return
  }
  const siblings: Candidate[] = codings.map((coding) => ({ root: found.at.root, segments: siblingSegments(named, coding), trailingSlash: false, role: 'sibling', known: named.length - 1 }))
  firstFound(site, req, reply, siblings, settings, (err, sibling) => {
    if (err !== null) {
      found.file.close()
      fail(reply, err)
      return
    }
    if (sibling === null) {
      deliver(site, reply, found, settings, named)
      return
    }
    found.file.close()
    sibling.coding = codings[sibling.from]
    deliver(site, reply, sibling, settings, named)
  })
}

/** `named`: the file the request resolved to (its type, when a sibling is sent). */
function deliver (site: Site, reply: FastifyReply, found: Found, settings: SendSettings, named: string[]): void {
  if (reply.raw.destroyed || reply.sent) {
    found.file.close()
    return
  }
  const onFile = settings.onFile
  if (onFile === undefined) {
    respondWith(site, reply, found, settings, named)
    return
  }
  // As @fastify/static 10: the hook sees the file chosen (a sibling when encoded), after
  // allowedPath, and is awaited before any header; a throw or a rejection refuses it.
  let pending: void | Promise<void>
  try {
    pending = onFile(fullPath(found), found.stat)
  } catch (err) {
    found.file.close()
    fail(reply, new CallbackError(err))
    return
  }
  afterCallback(reply, found, Promise.resolve(pending), () => respondWith(site, reply, found, settings, named))
}

/**
 * What an application callback about `found` returned: a value goes on at once; a thenable
 * goes on once it resolved (unless the response went meanwhile), and its rejection is the
 * request's error. Either way the file is closed unless it is sent.
 */
function afterCallback (reply: FastifyReply, found: Found, pending: unknown, next: () => void): void {
  if (!isThenable(pending)) {
    next()
    return
  }
  pending.then(() => safely(reply, () => {
    if (reply.raw.destroyed || reply.sent) found.file.close()
    else next()
  }), (err: unknown) => {
    found.file.close()
    fail(reply, new CallbackError(err))
  })
}

function respondWith (site: Site, reply: FastifyReply, found: Found, settings: SendSettings, named: string[]): void {
  // As @fastify/static: the file's type replaces one the application set before sendFile
  // (unless contentType: false); setHeaders may still set its own.
  if (settings.http.contentType) reply.removeHeader('content-type')
  let pending: unknown
  try {
    pending = site.setHeaders?.(reply, fullPath(found), found.stat) // as @fastify/static 10: the reply (9 gave reply.raw)
  } catch (err) {
    found.file.close()
    fail(reply, new CallbackError(err))
    return
  }
  // An async setHeaders: its headers are awaited (they would come too late otherwise).
  afterCallback(reply, found, pending, () => respondNow(site, reply, found, settings, named))
}

function respondNow (site: Site, reply: FastifyReply, found: Found, settings: SendSettings, named: string[]): void {
  try {
    // Vary joins what the application set, which may not be a valid header value.
    if (site.preCompressed) setEncodingHeaders(reply, found.coding, named, settings.http.contentType)
  } catch (err) {
    found.file.close()
    fail(reply, err)
    return
  }
  site.sendOpenFile(reply, found.file, found.stat, {}, settings.http, fullPath(found))
}

/** The request's answer to what stopped it: a refusal, an application callback's error, an open's errno. */
export function fail (reply: FastifyReply, err: unknown): void {
  if (reply.sent) return
  if (err instanceof Refused) {
    if (err.status === 404) reply.callNotFound()
    else reply.send(new FST_ZERO_COPY_STATIC_FORBIDDEN())
    return
  }
  if (err instanceof CallbackError) {
    reply.send(err.error)
    return
  }
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EACCES' || code === 'EPERM') reply.send(new FST_ZERO_COPY_FILE_FORBIDDEN())
  else if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) reply.send(new FST_ZERO_COPY_FILE_OPEN_FAILED(code))
  else reply.send(err instanceof Error ? err : new Error(String(err))) // already an HTTP error (a Fastify one, a header's TypeError)
}

/**
 * Runs a continuation (an addon's callback, a promise's): whatever it throws (an application
 * callback reached from it) becomes the request's error instead of an uncaught exception or
 * an unhandled rejection that would end the process.
 */
export function safely (reply: FastifyReply, fn: () => void): void {
  try {
    fn()
  } catch (err) {
    fail(reply, err instanceof CallbackError || err instanceof Refused ? err : new CallbackError(err))
  }
}
