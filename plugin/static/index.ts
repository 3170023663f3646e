// fastify-zero-copy/static: a directory served the way @fastify/static serves it (same
// options, same decorators), each file opened beneath its root by the kernel (openat2
// RESOLVE_BENEATH, beneath.h) and sent by the core's file response (the native path at or
// above the threshold).
import path from 'node:path'
import { fstat, fstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs'
import fp from 'fastify-plugin'
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
import { displayPath, hasDotSegment, isRefusal, relativePath, resolveName, resolveRequestPath, type Refusal, type Resolved } from './path'
import { readRoots, readSendSettings, resolveFlags, type SendSettings, type Symlinks } from './options'
import { OpenFileCache, readOpenFileCache } from './cache'

/** A root directory, held open as an O_PATH descriptor; fd -1 when it did not exist at registration. */
interface Root {
  path: string
  fd: number
  refs: number
  closed: boolean
}

type OpenDone = (err: NodeJS.ErrnoException | null, fd: number) => void

const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'EXDEV', 'ELOOP', 'ENAMETOOLONG', 'ENXIO', 'ENODEV'])
/** Roots given per call (reply.sendFile(name, root)) kept open, most recent last. */
const CALL_ROOTS_MAX = 32

function errnoError (code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code })
}

/** Opens `rel` beneath `dirfd`: at once when the lookup is cached and local, else off the loop. */
function openBeneath (addon: Descriptors, dirfd: number, rel: string, kind: 0 | 1, resolve: number, done: OpenDone): void {
  let fd: number
  try {
    fd = addon.openBeneathCached(dirfd, rel, kind, resolve)
  } catch (err) {
    done(err as NodeJS.ErrnoException, -1)
    return
  }
  if (fd >= 0) {
    done(null, fd)
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

/** Content-Disposition: attachment with the name, ASCII-only fallback and RFC 8187's filename*. */
function attachment (filename: string): string {
  const name = path.basename(filename)
  const fallback = name.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '_')
  if (fallback === name && !/[%]/.test(name)) return `attachment; filename="${name}"`
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
  return `attachment; filename="${fallback.replace(/%/g, '_')}"; filename*=UTF-8''${encoded}`
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

  if (opts.list !== undefined && opts.list !== false) throw new FST_ZERO_COPY_INVALID_OPTION('list', 'directory listings are not supported yet')
  if (opts.preCompressed !== undefined && opts.preCompressed !== false) throw new FST_ZERO_COPY_INVALID_OPTION('preCompressed', 'pre-compressed siblings are not supported yet')
  if ((opts as { globIgnore?: unknown }).globIgnore !== undefined) throw new FST_ZERO_COPY_INVALID_OPTION('globIgnore', 'not supported yet')
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
    : new OpenFileCache(addon, cacheSettings, (dirfd, rel, resolve, done) => openBeneath(addon, dirfd, rel, BENEATH_FILE, resolve, done), statOf)

  const serve = opts.serve !== false
  const roots: Root[] = []
  const callRoots = new Map<string, Root>()

  /** Opens a root as an O_PATH descriptor; a refused openat2 fails closed. */
  function openRootNow (rootPath: string): Root {
    let fd = -1
    try {
      fd = addon!.openRoot(rootPath)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOSYS' || code === 'EPERM') {
        throw new FST_ZERO_COPY_STATIC_UNCONTAINED(`openat2 failed with ${code}: a kernel before 5.6 or a seccomp profile that refuses it`)
      }
      if (code === 'ENOTDIR') throw new FST_ZERO_COPY_STATIC_INVALID_ROOT(`not a directory: ${JSON.stringify(rootPath)}`)
      if (code !== 'ENOENT') throw new FST_ZERO_COPY_STATIC_INVALID_ROOT(`${JSON.stringify(rootPath)} cannot be opened (${code})`)
      // As @fastify/static: a root that does not exist yet is a warning, and every request
      // under it a 404 (it is not looked for again: the descriptor is the root).
      fastify.log.warn(`"root" path "${rootPath}" must exist`)
    }
    return { path: rootPath, fd, refs: 0, closed: false }
  }

  if (serve || opts.root !== undefined) {
    for (const r of readRoots(opts.root)) roots.push(openRootNow(r))
  }
  fastify.addHook('onClose', (_instance, done) => {
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
      const root: Root = { path: rootPath, fd, refs: 1, closed: false }
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
    })
  }

  function refusal (reply: FastifyReply, r: Refusal): void {
    if (r.status === 404) reply.callNotFound()
    else if (r.status === 403) reply.send(new FST_ZERO_COPY_STATIC_FORBIDDEN())
    else reply.send(new FST_ZERO_COPY_STATIC_BAD_PATH(r.reason))
  }

  /**
   * Serves `resolved` from the first of `candidates` that has it. `redirectBase`: the URL path
   * of the root for a directory's redirect (route requests with redirect on), else null.
   */
  function respond (req: FastifyRequest, reply: FastifyReply, resolved: Resolved, candidates: Root[], settings: SendSettings, redirectBase: string | null): void {
    if (settings.dotfiles !== 'allow' && hasDotSegment(resolved.segments)) {
      if (settings.dotfiles === 'deny') reply.send(new FST_ZERO_COPY_STATIC_FORBIDDEN())
      else reply.callNotFound()
      return
    }
    const pathname = displayPath(resolved.segments, resolved.trailingSlash)
    const tryRoot = (i: number): void => {
      if (i >= candidates.length) {
        reply.callNotFound()
        return
      }
      const root = candidates[i]
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
        openFile(root, names[n], settings, (err, file, stat) => {
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
            directory(req, reply, root, resolved, settings, redirectBase)
            return
          }
          if (!stat!.isFile()) {
            file!.close()
            tryName(n + 1)
            return
          }
          send(reply, root, names[n], file!, stat!, settings)
        })
      }
      tryName(0)
    }
    tryRoot(0)
  }

  function failed (reply: FastifyReply, err: NodeJS.ErrnoException): void {
    if (err.code === 'EACCES' || err.code === 'EPERM') reply.send(new FST_ZERO_COPY_FILE_FORBIDDEN())
    else reply.send(new FST_ZERO_COPY_FILE_OPEN_FAILED(err.code ?? err.message))
  }

  /** A directory: its index file, a redirect to its URL with a `/`, or a 404. */
  function directory (req: FastifyRequest, reply: FastifyReply, root: Root, resolved: Resolved, settings: SendSettings, redirectBase: string | null): void {
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
        reply.callNotFound()
        return
      }
      const segments = [...resolved.segments, ...settings.index[k].split('/')]
      openFile(root, segments, settings, (err, file, stat) => {
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
        send(reply, root, segments, file!, stat!, settings)
      })
    }
    tryIndex(0)
  }

  function openFile (root: Root, segments: string[], settings: SendSettings, done: (err: NodeJS.ErrnoException | null, file?: OpenFile, stat?: Stats) => void): void {
    if (cache !== null) {
      cache.open(root, relativePath(segments), displayPath(segments, false), settings.resolve, done)
      return
    }
    openBeneath(addon!, root.fd, relativePath(segments), BENEATH_FILE, settings.resolve, (err, fd) => {
      if (err !== null) {
        done(err)
        return
      }
      const file = new OpenFile(fd, displayPath(segments, false), true, addon!.isRemote(fd), addon)
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

  function send (reply: FastifyReply, root: Root, segments: string[], file: OpenFile, stat: Stats, settings: SendSettings): void {
    if (reply.raw.destroyed || reply.sent) {
      file.close()
      return
    }
    try {
      setHeaders?.(reply.raw, path.join(root.path, ...segments), stat)
    } catch (err) {
      file.close()
      reply.send(err)
      return
    }
    coreInternals.sendOpenFile(reply, file, stat, {}, settings.http)
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

  let prefix = opts.prefix ?? '/'
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || prefix.startsWith('//') || prefix.includes('\\')) {
    throw new FST_ZERO_COPY_INVALID_OPTION('prefix', 'expected a path beginning with a single "/"')
  }
  const configuredPrefix = prefix
  if (opts.prefixAvoidTrailingSlash !== true && !prefix.endsWith('/')) prefix += '/'

  const routeOpts: Partial<RouteOptions> = {
    constraints: opts.constraints,
    schema: { hide: opts.schemaHide ?? true } as RouteOptions['schema'],
    logLevel: opts.logLevel
  }

  /** The route's own prefix, with the encapsulation prefix the router added: `/v1/assets/`. */
  function routePrefix (req: FastifyRequest): string {
    const url = req.routeOptions.url ?? prefix + '*'
    return url.endsWith('*') ? url.slice(0, -1) : url
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
        respond(req, reply, resolved, roots, base, redirect ? encodeURI(routeBase.endsWith('/') ? routeBase : routeBase + '/') : null)
      }
    } as RouteOptions)
    if (redirect && prefix !== configuredPrefix) {
      fastify.route({
        ...routeOpts,
        method: ['HEAD', 'GET'],
        url: configuredPrefix,
        handler (req, reply) {
          const search = searchOf(req.raw.url ?? '')
          reply.redirect(encodeURI(req.routeOptions.url + '/') + search, 301)
        }
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
    for (const segments of walk(root.path, base.dotfiles === 'allow')) {
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
    if (redirect && bare !== '' && !routes.has(bare)) addFixedRoute(bare, { segments, trailingSlash: true }, root)
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

function searchOf (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? '' : url.slice(q)
}

/**
 * The regular files under `dir` (segments relative to it), at registration. Symlinks are
 * listed when they lead to a file inside `dir`; the open at each request decides again.
 */
function walk (dir: string, dot: boolean): string[][] {
  const out: string[][] = []
  let real: string
  try {
    real = realpathSync(dir)
  } catch {
    return out
  }
  const visit = (abs: string, rel: string[], depth: number): void => {
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
      if (e.isDirectory()) {
        visit(child, [...rel, e.name], depth + 1)
      } else if (e.isFile()) {
        out.push([...rel, e.name])
      } else if (e.isSymbolicLink()) {
        try {
          const target = realpathSync(child)
          if (target.startsWith(real + path.sep) && statSync(target).isFile()) out.push([...rel, e.name])
        } catch {
          // dangling: nothing to serve
        }
      }
    }
  }
  visit(dir, [], 0)
  return out
}

const plugin = fp(fastifyZeroCopyStatic, { fastify: '5.x', name: 'fastify-zero-copy-static' }) as ReturnType<typeof fp> & {
  default: unknown
  fastifyStatic: unknown
  fastifyZeroCopyStatic: unknown
}
plugin.default = plugin
plugin.fastifyStatic = plugin
plugin.fastifyZeroCopyStatic = plugin
export = plugin
