// fastify-zero-copy/static: a directory served the way @fastify/static serves it (same
// options, same decorators), each file opened beneath its root by the kernel (openat2
// RESOLVE_BENEATH, beneath.h) and sent by the core's file response (the native path at or
// above the threshold).
import path from 'node:path'
import { constants } from 'node:os'
import { fstat, fstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs'
import fp from 'fastify-plugin'
import { create as contentDisposition } from 'content-disposition'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { FastifyZeroCopyStaticOptions, SendFileOptions } from '../../types/static'
import core = require('../index')
import { internals, type CoreInternals } from '../internal'
import { OpenFile, type FileHttpOptions } from '../file'
import { AT_FDCWD, BENEATH_DIRECTORY, BENEATH_FILE, RESOLVE_NO_MAGICLINKS, type Descriptors } from '../native'
import {
  FST_ZERO_COPY_FILE_FORBIDDEN,
  FST_ZERO_COPY_FILE_OPEN_FAILED,
  FST_ZERO_COPY_INVALID_OPTION,
  FST_ZERO_COPY_STATIC_BAD_PATH,
  FST_ZERO_COPY_STATIC_FORBIDDEN,
  FST_ZERO_COPY_STATIC_INVALID_ROOT,
  FST_ZERO_COPY_STATIC_UNCONTAINED
} from '../errors'
import { displayPath, hasDotSegment, isRefusal, relativePath, requestPrefix, resolveName, resolveRequestPath, type Refusal, type Resolved } from './path'
import { readRoots, readSendSettings, resolveFlags, type SendSettings, type Symlinks } from './options'
import { checkListingRoot, listsWithoutIndex, namedListing, readListOptions, sendListing, type ListRoot } from './list'
import { readGlobIgnore, type GlobIgnore } from './glob'
import { probeCaseInsensitive, procFds, storedNames } from './letter-case'
import { acceptedCodings, findSibling, readPreCompressed, setEncodingHeaders, type Coding } from './encoding'
import { OpenFileCache, readOpenFileCache, type Served } from './cache'
import { staticErrors } from './errors'
import { routeErrorHandler, searchOf, slashRedirect, urlPath } from './routes'

/** A root directory, held open as an O_PATH descriptor; fd -1 when it did not exist at registration. */
interface Root {
  path: string
  fd: number
  refs: number
  closed: boolean
  /** Lookups beneath it ignore letter case (letter-case.ts): names are mapped to stored ones. */
  caseless: boolean
}

type OpenDone = (err: NodeJS.ErrnoException | null, fd: number) => void

const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'EXDEV', 'ELOOP', 'ENAMETOOLONG', 'ENXIO', 'ENODEV'])
/** Roots given per call (reply.sendFile(name, root)) kept open, most recent last. */
const CALL_ROOTS_MAX = 32

/** errno -> its name (the first of two names for one number: EAGAIN, not EWOULDBLOCK). */
const ERRNO_NAMES = new Map<number, string>()
for (const [name, value] of Object.entries(constants.errno)) if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name)

function errnoError (code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code })
}

/** Opens `rel` beneath `dirfd`: at once when the lookup is cached and local (never in walk mode), else off the loop. */
function openBeneath (addon: Descriptors, dirfd: number, rel: string, kind: 0 | 1, resolve: number, done: OpenDone): void {
  let fd: number
  try {
    fd = addon.openBeneathCached(dirfd, rel, kind, resolve, true)
  } catch (err) {
    done(err as NodeJS.ErrnoException, -1)
    return
  }
  if (fd >= 0) {
    done(null, fd)
    return
  }
  if (fd < -1) {
    // The open's failure as -errno (quiet) rather than thrown: a miss, the common answer for
    // a pre-compressed sibling or an extension tried, costs a fraction of a throw.
    done(errnoError(ERRNO_NAMES.get(-fd) ?? 'EIO'), -1)
    return
  }
  try {
    addon.openBeneath(dirfd, rel, kind, resolve, (code, opened) => done(code === null ? null : errnoError(code), opened))
  } catch (err) {
    done(err as NodeJS.ErrnoException, -1)
  }
}

/** The file's stat, on this thread for a local file (the kernel holds its inode), else in libuv's pool. */
function statOf (fd: number, remote: boolean, done: (err: NodeJS.ErrnoException | null, stat: Stats | null) => void): void {
  if (remote) {
    fstat(fd, (err, stat) => done(err, stat ?? null))
    return
  }
  try {
    done(null, fstatSync(fd))
  } catch (err) {
    done(err as NodeJS.ErrnoException, null)
  }
}

/** A file opened beneath `dirfd` and stat'ed, without the open-file cache; `path` is its name for responses. */
function openUncached (addon: Descriptors, dirfd: number, rel: string, path: string, resolve: number, done: Served): void {
  openBeneath(addon, dirfd, rel, BENEATH_FILE, resolve, (err, fd) => {
    if (err !== null) {
      done(err)
      return
    }
    const file = new OpenFile(fd, path, true, addon.isRemote(fd), addon)
    statOf(fd, file.remote, (statErr, stat) => {
      if (statErr !== null || stat === null) {
        file.close()
        done(statErr ?? errnoError('EIO'))
        return
      }
      done(null, file, stat)
    })
  })
}

/** Content-Disposition: attachment with the name's last component, as @fastify/static writes it (the same package). */
function attachment (filename: string): string {
  return contentDisposition(path.basename(filename))
}

/**
 * Whether the root ignores letter case (letter-case.ts); such a root whose names cannot be
 * read through its descriptors (no /proc) is refused: it could not be served contained.
 */
async function probeRoot (fd: number, rootPath: string): Promise<boolean> {
  const caseless = await probeCaseInsensitive(fd, rootPath)
  if (caseless && !await procFds()) throw new FST_ZERO_COPY_STATIC_UNCONTAINED(`${JSON.stringify(rootPath)} ignores letter case, and its names cannot be read without /proc mounted`)
  return caseless
}

function checkFunction (name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') throw new FST_ZERO_COPY_INVALID_OPTION(name, 'expected a function')
}

async function fastifyZeroCopyStatic (fastify: FastifyInstance, opts: FastifyZeroCopyStaticOptions): Promise<void> {
  if (!fastify.hasDecorator('zeroCopy')) await fastify.register(core, {})
  const inner = internals.get((fastify as unknown as { zeroCopy: object }).zeroCopy)
  if (inner === undefined) throw new FST_ZERO_COPY_STATIC_UNCONTAINED('the core plugin is not this package\'s')
  const coreInternals: CoreInternals = inner
  const addon = coreInternals.files.addon
  if (addon === null) throw new FST_ZERO_COPY_STATIC_UNCONTAINED('the native addon did not load')

  const list = readListOptions(opts.list, Array.isArray(opts.root) ? opts.root.length : 1)
  const preCompressed = readPreCompressed(opts.preCompressed)
  // As @fastify/static: only the route table of wildcard: false looks at it.
  const globIgnore = readGlobIgnore(opts.globIgnore)
  for (const name of ['serveDotFiles', 'suppressWarning'] as const) {
    if (opts[name] !== undefined && typeof opts[name] !== 'boolean') throw new FST_ZERO_COPY_INVALID_OPTION(name, 'expected a boolean')
  }
  const suppressWarning = opts.suppressWarning === true
  checkFunction('setHeaders', opts.setHeaders)
  checkFunction('allowedPath', opts.allowedPath)
  if (opts.wildcard !== undefined && typeof opts.wildcard !== 'boolean') throw new FST_ZERO_COPY_INVALID_OPTION('wildcard', 'expected a boolean')
  const symlinks = (opts.symlinks ?? 'inside') as Symlinks
  const base: SendSettings = readSendSettings(opts as Record<string, unknown>, {
    http: coreInternals.http,
    // The one deliberate difference from @fastify/static, which forces 'allow': a `.env` or
    // a `.git/` under the root is not served unless asked for.
    dotfiles: 'ignore',
    index: ['index.html'],
    extensions: [],
    resolve: resolveFlags(symlinks)
  })
  const setHeaders = opts.setHeaders
  const allowedPath = opts.allowedPath
  const redirect = opts.redirect === true
  const cacheSettings = readOpenFileCache(opts.openFileCache)
  const cache = cacheSettings === null
    ? null
    : new OpenFileCache(addon, cacheSettings, (dirfd, rel, name, resolve, done) => openUncached(addon, dirfd, rel, name, resolve, done))

  if (addon.beneathMode === 'walk') {
    // Contained all the same (native/beneath.h), but every open is a disk thread's walk.
    fastify.log.info('fastify-zero-copy/static: openat2 is refused here (a kernel before 5.6, a seccomp profile, gVisor); files are opened beneath the root by a walk, one component at a time with O_NOFOLLOW, every symlink checked')
  }
  const serve = opts.serve !== false
  // Checked before any root is opened: a registration that fails leaves no descriptor behind.
  let prefix = opts.prefix ?? '/'
  if (serve && (typeof prefix !== 'string' || !prefix.startsWith('/') || prefix.startsWith('//') || prefix.includes('\\'))) {
    throw new FST_ZERO_COPY_INVALID_OPTION('prefix', 'expected a path beginning with a single "/"')
  }
  const roots: Root[] = []
  const callRoots = new Map<string, Root>()

  /**
   * Opens a root as an O_PATH descriptor (by the walk where openat2 is refused); an openat2
   * that answered the process's probe and is refused afterwards fails closed.
   */
  function openRootNow (rootPath: string): Root {
    let fd = -1
    try {
      fd = addon!.openRoot(rootPath)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOSYS' || code === 'EPERM') {
        throw new FST_ZERO_COPY_STATIC_UNCONTAINED(`openat2 failed with ${code}: a kernel before 5.6 or a seccomp profile that refuses it`)
      }
      if (code === 'ENOTDIR') throw new FST_ZERO_COPY_STATIC_INVALID_ROOT(`must be a directory (${JSON.stringify(rootPath)})`)
      if (code !== 'ENOENT') throw new FST_ZERO_COPY_STATIC_INVALID_ROOT(`cannot be opened (${JSON.stringify(rootPath)}: ${code})`)
      // As @fastify/static: a root that does not exist yet is a warning, and every request
      // under it a 404 (it is not looked for again: the descriptor is the root).
      if (!suppressWarning) fastify.log.warn(`"root" path "${rootPath}" must exist`)
    }
    return { path: rootPath, fd, refs: 0, closed: false, caseless: false }
  }

  try {
    if (serve || opts.root !== undefined) {
      for (const r of readRoots(opts.root)) roots.push(openRootNow(r))
    }
    for (const root of roots) if (root.fd >= 0) root.caseless = await probeRoot(root.fd, root.path)
    if (list !== null && serve && roots.length > 0) checkListingRoot(roots[0].fd)
  } catch (err) {
    for (const root of roots) closeRoot(root)
    throw err
  }
  let instanceClosed = false
  fastify.addHook('onClose', (_instance, done) => {
    instanceClosed = true
    cache?.close()
    for (const root of [...roots, ...callRoots.values()]) closeRoot(root)
    callRoots.clear()
    done()
  })

  function closeRoot (root: Root): void {
    if (root.closed) return
    root.closed = true
    cache?.dropRoot(root)
    if (root.fd >= 0) addon!.closeFile(root.fd, false)
  }

  function release (root: Root): void {
    root.refs--
    if (root.refs === 0 && !roots.includes(root) && callRoots.get(root.path) !== root) closeRoot(root)
  }

  /**
   * A root given per call: the registration's own when it is one of them, else opened (off the
   * loop unless cached) and kept among the last CALL_ROOTS_MAX. Held (refs) while a request
   * uses it, so that eviction never closes a descriptor an open is about to use.
   */
  function acquireRoot (rootPath: string, done: (err: Error | null, root: Root | null) => void): void {
    const known = roots.find((r) => r.path === rootPath) ?? callRoots.get(rootPath)
    if (known !== undefined && !known.closed) {
      known.refs++
      done(null, known)
      return
    }
    if (!path.isAbsolute(rootPath) || rootPath.includes('\0')) {
      done(new FST_ZERO_COPY_STATIC_INVALID_ROOT(`must be an absolute path: ${JSON.stringify(rootPath)}`), null)
      return
    }
    openBeneath(addon!, AT_FDCWD, rootPath, BENEATH_DIRECTORY, RESOLVE_NO_MAGICLINKS, (err, fd) => {
      if (err !== null) {
        done(NOT_FOUND.has(err.code ?? '') ? null : new FST_ZERO_COPY_FILE_OPEN_FAILED(err.code ?? err.message), null)
        return
      }
      probeRoot(fd, rootPath).then((caseless) => {
        if (instanceClosed) {
          addon!.closeFile(fd, false) // fastify.close() ran while it was being opened: nobody would close it later
          done(null, null)
          return
        }
        adoptCallRoot(rootPath, fd, caseless, done)
      }, (probeErr) => {
        addon!.closeFile(fd, false)
        done(probeErr, null)
      })
    })
  }

  function adoptCallRoot (rootPath: string, fd: number, caseless: boolean, done: (err: Error | null, root: Root | null) => void): void {
    const root: Root = { path: rootPath, fd, refs: 1, closed: false, caseless }
    const old = callRoots.get(rootPath)
    callRoots.set(rootPath, root)
    if (old !== undefined && old.refs === 0) closeRoot(old)
    if (callRoots.size > CALL_ROOTS_MAX) {
      for (const [key, r] of callRoots) {
        if (callRoots.size <= CALL_ROOTS_MAX) break
        if (r.refs > 0 || r === root) continue
        callRoots.delete(key)
        closeRoot(r)
      }
    }
    done(null, root)
  }

  function refusal (reply: FastifyReply, r: Refusal): void {
    if (r.status === 404) reply.callNotFound()
    else if (r.status === 403) reply.send(new FST_ZERO_COPY_STATIC_FORBIDDEN())
    else reply.send(new FST_ZERO_COPY_STATIC_BAD_PATH(r.reason))
  }

  /**
   * Serves `resolved` from the first of `candidates` that has it. `redirectBase`: the URL path
   * of the root for a directory's redirect (route requests with redirect on), else null.
   * `listBase`: the URL path of the root for a listing's links (route requests with `list`
   * on), else null.
   */
  function respond (req: FastifyRequest, reply: FastifyReply, resolved: Resolved, candidates: Root[], settings: SendSettings, redirectBase: string | null, listBase: string | null = null): void {
    if (dotRefused(reply, resolved.segments, settings)) return
    const tryRoot = (i: number): void => {
      if (i >= candidates.length) {
        const only = candidates.length === 1 ? candidates[0] : undefined
        const named = list !== null && listBase !== null && only !== undefined && only.fd >= 0 && !only.closed ? namedListing(list, resolved) : null
        if (named === null) {
          reply.callNotFound()
          return
        }
        const listNamed = (segments: string[]): void => {
          if (allowedPath === undefined || allowedPath(displayPath(segments, true), only!.path, req)) listing(req, reply, only!, segments, settings, listBase!)
          else reply.callNotFound()
        }
        // On a case-insensitive root allowedPath and the listing see the stored names too.
        if (!only!.caseless) listNamed(named)
        else {
          namesOf(only!, settings).map(named, 0, (err, stored) => {
            if (err !== null || stored === null) reply.callNotFound()
            else listNamed(stored)
          })
        }
        return
      }
      const root = candidates[i]
      if (!root.caseless || root.fd < 0 || root.closed) {
        fromRoot(i, root, resolved, 0)
        return
      }
      // Letter case folded: allowedPath, the dotfile policy, setHeaders and the open see the
      // names the directories store, whatever the request's spelling (letter-case.ts).
      namesOf(root, settings).canonical(resolved.segments, resolved.trailingSlash, settings.extensions, (err, stored, lastStored) => {
        if (err !== null && !NOT_FOUND.has(err.code ?? '')) {
          failed(reply, err)
          return
        }
        if (stored === null) {
          tryRoot(i + 1)
          return
        }
        if (dotRefused(reply, stored, settings)) return
        fromRoot(i, root, { segments: stored, trailingSlash: resolved.trailingSlash }, lastStored ? stored.length : stored.length - 1)
      })
    }
    /** `known`: how many leading segments are names read from the directories already. */
    const fromRoot = (i: number, root: Root, resolved: Resolved, known: number): void => {
      const pathname = displayPath(resolved.segments, resolved.trailingSlash)
      if (allowedPath !== undefined && !allowedPath(pathname, root.path, req)) {
        reply.callNotFound()
        return
      }
      if (root.fd < 0 || root.closed) {
        tryRoot(i + 1)
        return
      }
      const names = [resolved.segments]
      const last = resolved.segments[resolved.segments.length - 1]
      if (!resolved.trailingSlash && last !== undefined && path.extname(last) === '') {
        for (const ext of settings.extensions) names.push([...resolved.segments.slice(0, -1), `${last}.${ext}`])
      }
      const tryName = (n: number): void => {
        if (n >= names.length) {
          tryRoot(i + 1)
          return
        }
        openFile(root, names[n], n === 0 ? known : Math.min(known, names[n].length - 1), settings, (err, file, stat, stored) => {
          if (err !== null) {
            if (NOT_FOUND.has(err.code ?? '')) tryName(n + 1)
            else failed(reply, err)
            return
          }
          if (stat!.isDirectory()) {
            file!.close()
            if (n > 0) {
              tryName(n + 1) // `a.html` that is a directory is not what `a` meant
              return
            }
            directory(req, reply, root, { segments: stored!, trailingSlash: resolved.trailingSlash }, settings, redirectBase, listBase)
            return
          }
          if (!stat!.isFile()) {
            file!.close()
            tryName(n + 1)
            return
          }
          if (resolved.trailingSlash) {
            file!.close() // `small.txt/`: a file named as a directory is not there (ENOTDIR), as in send
            tryRoot(i + 1)
            return
          }
          send(reply, root, stored!, file!, stat!, settings)
        })
      }
      tryName(0)
    }
    tryRoot(0)
  }

  /** The dotfile policy on a path: true when it answered (403 for 'deny', 404 for 'ignore'). */
  function dotRefused (reply: FastifyReply, segments: string[], settings: SendSettings): boolean {
    if (settings.dotfiles === 'allow' || !hasDotSegment(segments)) return false
    if (settings.dotfiles === 'deny') reply.send(new FST_ZERO_COPY_STATIC_FORBIDDEN())
    else reply.callNotFound()
    return true
  }

  function failed (reply: FastifyReply, err: NodeJS.ErrnoException): void {
    if (err.code === 'EACCES' || err.code === 'EPERM') reply.send(new FST_ZERO_COPY_FILE_FORBIDDEN())
    else reply.send(new FST_ZERO_COPY_FILE_OPEN_FAILED(err.code ?? err.message))
  }

  /** A directory: its index file, a redirect to its URL with a `/`, its listing, or a 404. */
  function directory (req: FastifyRequest, reply: FastifyReply, root: Root, resolved: Resolved, settings: SendSettings, redirectBase: string | null, listBase: string | null): void {
    const listed = list !== null && listBase !== null
    // As @fastify/static: the directory's bare name lists, before its index file.
    if (listed && !resolved.trailingSlash && redirectBase === null) {
      listing(req, reply, root, resolved.segments, settings, listBase!)
      return
    }
    if (!resolved.trailingSlash && redirectBase !== null) {
      const search = req.raw.url === undefined ? '' : searchOf(req.raw.url)
      // Built from the route's own prefix and the resolved names, each encoded: a single
      // leading `/` and no `\`, so the Location is this site's (never `//host`).
      const location = redirectBase + resolved.segments.map(encodeURIComponent).join('/') + '/' + search
      reply.redirect(location, 301)
      return
    }
    const tryIndex = (k: number): void => {
      if (k >= settings.index.length) {
        if (listed && resolved.trailingSlash && listsWithoutIndex(list!, resolved, settings.index.length, redirectBase !== null)) {
          listing(req, reply, root, resolved.segments, settings, listBase!)
          return
        }
        // As @fastify/static (send): `index: false` refuses a directory asked for as one.
        if (settings.index.length === 0 && resolved.trailingSlash) reply.send(new FST_ZERO_COPY_STATIC_FORBIDDEN())
        else reply.callNotFound()
        return
      }
      const segments = [...resolved.segments, ...settings.index[k].split('/')]
      openFile(root, segments, resolved.segments.length, settings, (err, file, stat, stored) => {
        if (err !== null) {
          if (NOT_FOUND.has(err.code ?? '')) tryIndex(k + 1)
          else failed(reply, err)
          return
        }
        if (!stat!.isFile()) {
          file!.close()
          tryIndex(k + 1)
          return
        }
        send(reply, root, stored!, file!, stat!, settings)
      })
    }
    tryIndex(0)
  }

  function listing (req: FastifyRequest, reply: FastifyReply, root: Root, segments: string[], settings: SendSettings, listBase: string): void {
    const target: ListRoot = { addon: addon!, open: openBeneath, rootFd: root.fd, rootPath: root.path, resolve: settings.resolve, dotfiles: settings.dotfiles, allowedPath }
    sendListing(req, reply, list!, target, segments, listBase)
  }

  /** The stored names of a case-insensitive root, read beneath it with the request's resolve flags. */
  function namesOf (root: Root, settings: SendSettings): ReturnType<typeof storedNames> {
    return storedNames((rel, done) => openBeneath(addon!, root.fd, rel, BENEATH_DIRECTORY, settings.resolve, done), (fd) => addon!.closeFile(fd, false))
  }

  /**
   * Opens `segments` beneath the root; `stored`: the names opened (on a case-insensitive root,
   * those its directories store; `known`: how many leading ones are such names already).
   */
  function openFile (root: Root, segments: string[], known: number, settings: SendSettings, done: (err: NodeJS.ErrnoException | null, file?: OpenFile, stat?: Stats, stored?: string[]) => void): void {
    if (!root.caseless) {
      openStored(root, segments, settings, done)
      return
    }
    namesOf(root, settings).map(segments, known, (err, stored) => {
      if (err !== null || stored === null) done(err ?? errnoError('ENOENT'))
      else openStored(root, stored, settings, done)
    })
  }

  function openStored (root: Root, segments: string[], settings: SendSettings, done: (err: NodeJS.ErrnoException | null, file?: OpenFile, stat?: Stats, stored?: string[]) => void): void {
    const opened: Served = (err, file, stat) => done(err, file, stat, segments)
    if (cache !== null) cache.open(root, relativePath(segments), displayPath(segments, false), settings.resolve, opened)
    else openUncached(addon!, root.fd, relativePath(segments), displayPath(segments, false), settings.resolve, opened)
  }

  /** Sends the regular file found for the request, or the pre-compressed sibling the request takes. */
  function send (reply: FastifyReply, root: Root, segments: string[], file: OpenFile, stat: Stats, settings: SendSettings): void {
    const codings = preCompressed && segments.length > 0 ? acceptedCodings(reply.request.headers['accept-encoding']) : []
    if (codings.length === 0) {
      deliver(reply, root, segments, file, stat, settings, null, segments)
      return
    }
    const open = (name: string[], done: Parameters<typeof openFile>[4]): void => openFile(root, name, name.length - 1, settings, done)
    findSibling(reply, segments, codings, open, (err) => NOT_FOUND.has(err.code ?? ''), (err, sibling) => {
      if (err !== null) {
        file.close()
        failed(reply, err)
        return
      }
      if (sibling === null) {
        deliver(reply, root, segments, file, stat, settings, null, segments)
        return
      }
      file.close()
      deliver(reply, root, sibling.segments, sibling.file, sibling.stat, settings, sibling.coding, segments)
    })
  }

  /** `segments` the file sent, `named` the file the request resolved to (its type, when encoded). */
  function deliver (reply: FastifyReply, root: Root, segments: string[], file: OpenFile, stat: Stats, settings: SendSettings, coding: Coding | null, named: string[]): void {
    if (reply.raw.destroyed || reply.sent) {
      file.close()
      return
    }
    const onFile = settings.onFile
    if (onFile === undefined) {
      respondWith(reply, root, segments, file, stat, settings, coding, named)
      return
    }
    // As @fastify/static 10: the hook sees the file chosen (a sibling when encoded), after
    // allowedPath, and is awaited before any header; a throw or a rejection refuses it.
    let pending: void | Promise<void>
    try {
      pending = onFile(path.join(root.path, ...segments), stat)
    } catch (err) {
      file.close()
      reply.send(err)
      return
    }
    Promise.resolve(pending).then(() => {
      if (reply.raw.destroyed || reply.sent) file.close()
      else respondWith(reply, root, segments, file, stat, settings, coding, named)
    }, (err: unknown) => {
      file.close()
      if (!reply.sent) reply.send(err)
    })
  }

  function respondWith (reply: FastifyReply, root: Root, segments: string[], file: OpenFile, stat: Stats, settings: SendSettings, coding: Coding | null, named: string[]): void {
    // As @fastify/static: the file's type replaces one set before sendFile (contentType on).
    if (settings.http.contentType) reply.removeHeader('content-type')
    try {
      setHeaders?.(reply, path.join(root.path, ...segments), stat) // as @fastify/static 10: the reply (9 gave reply.raw)
      if (preCompressed) setEncodingHeaders(reply, coding, named, settings.http.contentType)
    } catch (err) {
      file.close()
      reply.send(err)
      return
    }
    coreInternals.sendOpenFile(reply, file, stat, {}, settings.http, path.join(root.path, ...segments))
  }

  /** reply.sendFile and reply.download: a name below a root, given by the application. */
  function sendName (reply: FastifyReply, name: unknown, rootPath: string | undefined, callOpts: Record<string, unknown>): FastifyReply {
    if (typeof name !== 'string') throw new FST_ZERO_COPY_INVALID_OPTION('name', 'expected a file name (a string)')
    const settings = readSendSettings(callOpts, base)
    const resolved = resolveName(name)
    if (isRefusal(resolved)) {
      refusal(reply, resolved)
      return reply
    }
    if (rootPath === undefined) {
      if (roots.length > 0) {
        respond(reply.request, reply, resolved, roots, settings, null)
        return reply
      }
      // As @fastify/static: without any root, only an absolute name is a file.
      if (!name.startsWith('/')) {
        reply.callNotFound()
        return reply
      }
      rootPath = '/'
    }
    acquireRoot(rootPath, (err, root) => {
      if (err !== null) {
        reply.send(err)
        return
      }
      if (root === null) {
        reply.callNotFound()
        return
      }
      let released = false
      const done = (): void => {
        if (released) return
        released = true
        release(root)
      }
      reply.raw.once('close', done)
      respond(reply.request, reply, resolved, [root], settings, null)
      if (reply.raw.destroyed) done()
    })
    return reply
  }

  if (opts.decorateReply !== false) {
    fastify.decorateReply('sendFile', function sendFile (this: FastifyReply, name: string, rootOrOptions?: string | SendFileOptions, maybeOptions?: SendFileOptions): FastifyReply {
      const callOpts = (typeof rootOrOptions === 'object' && rootOrOptions !== null ? rootOrOptions : maybeOptions) ?? {}
      const rootPath = typeof rootOrOptions === 'string' ? rootOrOptions : callOpts.root
      return sendName(this, name, rootPath, callOpts as Record<string, unknown>)
    })
    fastify.decorateReply('download', function download (this: FastifyReply, name: string, filenameOrOptions?: string | SendFileOptions, maybeOptions?: SendFileOptions): FastifyReply {
      const callOpts = (typeof filenameOrOptions === 'object' && filenameOrOptions !== null ? filenameOrOptions : maybeOptions) ?? {}
      const filename = typeof filenameOrOptions === 'string' ? filenameOrOptions : name
      this.header('content-disposition', attachment(String(filename)))
      return sendName(this, name, callOpts.root, callOpts as Record<string, unknown>)
    })
  }

  if (!serve) return

  const configuredPrefix = prefix
  if (opts.prefixAvoidTrailingSlash !== true && !prefix.endsWith('/')) prefix += '/'

  const routeOpts: Partial<RouteOptions> = {
    constraints: opts.constraints,
    schema: { hide: opts.schemaHide ?? true } as RouteOptions['schema'],
    logLevel: opts.logLevel,
    errorHandler: routeErrorHandler(fastify)
  }

  /** The route's own prefix, with the encapsulation prefix the router added: `/v1/assets/`. */
  function routePrefix (req: FastifyRequest): string {
    const url = req.routeOptions.url ?? prefix + '*'
    return requestPrefix(url.endsWith('*') ? url.slice(0, -1) : url, req.raw.url ?? '/', req.params)
  }

  if (opts.wildcard !== false) {
    fastify.route({
      ...routeOpts,
      method: ['HEAD', 'GET'],
      url: prefix + '*',
      handler (req, reply) {
        const routeBase = routePrefix(req)
        const resolved = resolveRequestPath(req.raw.url ?? '/', routeBase)
        if (isRefusal(resolved)) {
          refusal(reply, resolved)
          return
        }
        const rootUrl = urlPath(routeBase.endsWith('/') ? routeBase : routeBase + '/')
        respond(req, reply, resolved, roots, base, redirect ? rootUrl : null, list !== null ? rootUrl : null)
      }
    } as RouteOptions)
    if (redirect && prefix !== configuredPrefix) {
      fastify.route({
        ...routeOpts,
        method: ['HEAD', 'GET'],
        url: configuredPrefix,
        handler: slashRedirect
      } as RouteOptions)
    }
    return
  }

  // wildcard: false: a route per file found under the roots now (the first root that has a
  // name wins), and one per directory with an index file. The files are still opened beneath
  // their root at each request: a name replaced by a symlink out since is not followed.
  const routes = new Set<string>()
  const indexDirs = new Map<string, { root: Root, segments: string[] }>()
  for (const root of roots) {
    if (root.fd < 0) continue
    for (const segments of walk(root.path, opts.serveDotFiles === true, globIgnore)) {
      const url = prefix + segments.join('/')
      if (routes.has(url) || segments.some((s) => s.includes('*') || s.includes(':'))) continue
      routes.add(url)
      const fixed: Resolved = { segments, trailingSlash: false }
      addFixedRoute(url, fixed, root)
      if (base.index.includes(segments[segments.length - 1])) {
        const dir = segments.slice(0, -1)
        const dirUrl = prefix + dir.map((s) => s + '/').join('')
        if (!indexDirs.has(dirUrl)) indexDirs.set(dirUrl, { root, segments: dir })
      }
    }
  }
  for (const [dirUrl, { root, segments }] of indexDirs) {
    if (routes.has(dirUrl)) continue
    addFixedRoute(dirUrl, { segments, trailingSlash: true }, root)
    const bare = dirUrl.replace(/\/$/, '')
    if (redirect && bare !== '' && !routes.has(bare)) fastify.route({ ...routeOpts, method: ['HEAD', 'GET'], url: bare, handler: slashRedirect } as RouteOptions)
  }

  function addFixedRoute (url: string, resolved: Resolved, root: Root): void {
    fastify.route({
      ...routeOpts,
      method: ['HEAD', 'GET'],
      url,
      handler (req, reply) {
        respond(req, reply, resolved, [root], base, null)
      }
    } as RouteOptions)
  }
}

/**
 * The regular files under `dir` (segments relative to it), at registration, less those
 * `ignore` (globIgnore) names. Symlinks are followed, as @fastify/static's glob follows them,
 * where they lead inside `dir` (a directory already on the way down is not entered again: a
 * loop is walked once); the open at each request decides again.
 */
function walk (dir: string, dot: boolean, ignore: GlobIgnore | null): string[][] {
  const out: string[][] = []
  let real: string
  try {
    real = realpathSync(dir)
  } catch {
    return out
  }
  const inside = (target: string): boolean => target === real || target.startsWith(real + path.sep)
  // `realAbs`: where `abs` really is; `above`: the real directories on the way down to it.
  const visit = (abs: string, realAbs: string, rel: string[], depth: number, above: Set<string>): void => {
    if (depth > 64) return
    let entries
    try {
      entries = readdirSync(abs, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      if (!dot && e.name.startsWith('.')) continue
      const child = path.join(abs, e.name)
      const segments = [...rel, e.name]
      let isDir = e.isDirectory()
      let isFile = e.isFile()
      let target = path.join(realAbs, e.name)
      if (e.isSymbolicLink()) {
        try {
          target = realpathSync(child)
          if (!inside(target)) continue
          const st = statSync(target)
          isDir = st.isDirectory()
          isFile = st.isFile()
        } catch {
          continue // dangling: nothing to serve
        }
      }
      if (isDir) {
        if (above.has(target)) continue
        if (ignore === null || !ignore.below(dir, segments)) visit(child, target, segments, depth + 1, new Set(above).add(target))
      } else if (ignore !== null && ignore.file(dir, segments)) {
        continue
      } else if (isFile) {
        out.push(segments)
      }
    }
  }
  visit(dir, real, [], 0, new Set([real]))
  return out
}

// Registered under @fastify/static's name: a plugin that declares `dependencies:
// ['@fastify/static']` (or asks fastify.hasPlugin) finds the drop-in that took its place.
const plugin = fp(fastifyZeroCopyStatic, { fastify: '5.x', name: '@fastify/static' }) as ReturnType<typeof fp> & {
  default: unknown
  fastifyStatic: unknown
  fastifyZeroCopyStatic: unknown
  errors: typeof staticErrors
}
plugin.default = plugin
plugin.fastifyStatic = plugin
plugin.fastifyZeroCopyStatic = plugin
plugin.errors = staticErrors
export = plugin
