// fastify-zero-copy/static: a directory served the way @fastify/static serves it (same
// options, same decorators), each file opened beneath its root by the kernel (openat2
// RESOLVE_BENEATH, beneath.h) and sent by the core's file response (the native path at or
// above the threshold). This file is the registration: options, roots, decorators, routes.
// A request's way from its URL to a response is resolve.ts, stage by stage; gate.ts is the
// one decision whether a name may be opened or listed; open.ts the open beneath a root.
import path from 'node:path'
import fp from 'fastify-plugin'
import { create as contentDisposition } from 'content-disposition'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { FastifyZeroCopyStaticOptions, SendFileOptions } from '../../types/static'
import core = require('../index')
import { internals, type CoreInternals } from '../internal'
import { AT_FDCWD, BENEATH_DIRECTORY, RESOLVE_NO_MAGICLINKS, type Descriptors } from '../native'
import {
  FST_ZERO_COPY_FILE_OPEN_FAILED,
  FST_ZERO_COPY_INVALID_OPTION,
  FST_ZERO_COPY_STATIC_BAD_PATH,
  FST_ZERO_COPY_STATIC_FORBIDDEN,
  FST_ZERO_COPY_STATIC_INVALID_ROOT,
  FST_ZERO_COPY_STATIC_UNCONTAINED
} from '../errors'
import { isRefusal, resolveName, resolveRequestPath, type Refusal, type Resolved } from './path'
import { readRoots, readSendSettings, resolveFlags, type SendSettings, type Symlinks } from './options'
import { checkListingRoot, readListOptions } from './list'
import { readGlobIgnore, routableFiles } from './glob'
import { probeCaseInsensitive, procFds } from './letter-case'
import { readPreCompressed } from './encoding'
import { OpenFileCache, readOpenFileCache } from './cache'
import { NOT_FOUND, openBeneath, openUncached } from './open'
import { UserSpaceOpener } from './open-userspace'
import type { AllowedPath, Root } from './gate'
import { respond, safely, type Site } from './resolve'
import { staticErrors } from './errors'
import { routeErrorHandler, slashRedirect } from './routes'

/** Roots given per call (reply.sendFile(name, root)) kept open, most recent last. */
const CALL_ROOTS_MAX = 32
/** reply.sendFile's and wildcard: false's requests: no redirect of a directory, no listing. */
const NO_BASES = { redirect: null, list: null }

/** Content-Disposition: attachment with the name's last component, as @fastify/static writes it (the same package). */
function attachment (filename: string): string {
  return contentDisposition(path.basename(filename))
}

/**
 * Whether the root ignores letter case (letter-case.ts); such a root whose names cannot be
 * read through its descriptors (no /proc) is refused: it could not be served contained.
 */
async function probeRoot (addon: Descriptors, fd: number, rootPath: string): Promise<boolean> {
  // In user space a directory is read by its checked path. Natively, without /proc (a mount
  // namespace that has none) the probe looks at the root by its path, a heuristic at
  // registration only, and a root found case-insensitive there is refused.
  const proc = addon.beneathMode === 'userspace' || await procFds()
  const caseless = await probeCaseInsensitive(proc ? addon.dirPath(fd) : rootPath)
  if (caseless && !proc) throw new FST_ZERO_COPY_STATIC_UNCONTAINED(`${JSON.stringify(rootPath)} ignores letter case, and its names cannot be read without /proc mounted`)
  return caseless
}

/**
 * Without the addon: files opened beneath the root as user space can (open-userspace.ts),
 * said once per registration; `containment: 'kernel'` refuses to serve so instead.
 */
function userSpace (fastify: FastifyInstance, opts: FastifyZeroCopyStaticOptions): Descriptors {
  const containment = (opts as { containment?: unknown }).containment ?? 'auto'
  if (containment !== 'auto' && containment !== 'kernel') throw new FST_ZERO_COPY_INVALID_OPTION('containment', 'expected "auto" or "kernel"')
  const why = internalsReason(fastify)
  if (containment === 'kernel') throw new FST_ZERO_COPY_STATIC_UNCONTAINED(`containment "kernel" was configured and ${why}`)
  fastify.log.warn(`fastify-zero-copy/static: files are opened beneath the root in user space, without the kernel's RESOLVE_BENEATH (a symlink swapped in during a request can race the checks; see the README), because ${why}. On Linux the addon gives the kernel's containment back; containment: 'kernel' refuses to start without it`)
  return new UserSpaceOpener()
}

function internalsReason (fastify: FastifyInstance): string {
  const caps = (fastify as unknown as { zeroCopy?: { capabilities?: { reason?: string | null } } }).zeroCopy?.capabilities
  return caps?.reason ?? 'not loaded'
}

function checkFunction (name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') throw new FST_ZERO_COPY_INVALID_OPTION(name, 'expected a function')
}

async function fastifyZeroCopyStatic (fastify: FastifyInstance, opts: FastifyZeroCopyStaticOptions): Promise<void> {
  if (!fastify.hasDecorator('zeroCopy')) await fastify.register(core, {})
  const inner = internals.get((fastify as unknown as { zeroCopy: object }).zeroCopy)
  if (inner === undefined) throw new FST_ZERO_COPY_STATIC_UNCONTAINED('the core plugin is not this package\'s')
  const coreInternals: CoreInternals = inner
  const addon = coreInternals.files.addon ?? userSpace(fastify, opts)

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
  const allowedPath = opts.allowedPath as AllowedPath | undefined
  const redirect = opts.redirect === true
  const cacheSettings = readOpenFileCache(opts.openFileCache)
  // The cache keeps descriptors and hands out duplicates: the addon's dup, none in user space.
  const cache = cacheSettings === null || addon.beneathMode === 'userspace'
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
  const site: Site = {
    addon,
    cache,
    list,
    preCompressed,
    allowedPath,
    setHeaders: opts.setHeaders as Site['setHeaders'],
    sendOpenFile: coreInternals.sendOpenFile
  }

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
    for (const root of roots) if (root.fd >= 0) root.caseless = await probeRoot(addon, root.fd, root.path)
    if (list !== null && serve && roots.length > 0) checkListingRoot(addon, roots[0].fd)
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
      probeRoot(addon!, fd, rootPath).then((caseless) => {
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
   * reply.sendFile and reply.download: a name below a root, given by the application. A bad
   * name or option is the response's error, not a throw: the call may come from anywhere (a
   * timer, a stream's event) where a throw would end the process.
   */
  function sendName (reply: FastifyReply, name: unknown, rootPath: string | undefined, callOpts: Record<string, unknown>): FastifyReply {
    if (typeof name !== 'string') {
      reply.send(new FST_ZERO_COPY_INVALID_OPTION('name', `expected a file name (a string), received ${typeof name}`))
      return reply
    }
    let settings: SendSettings
    try {
      settings = readSendSettings(callOpts, base)
    } catch (err) {
      reply.send(err)
      return reply
    }
    const resolved = resolveName(name)
    if (isRefusal(resolved)) {
      refusal(reply, resolved)
      return reply
    }
    if (rootPath === undefined) {
      if (roots.length > 0) {
        respond(site, reply.request, reply, resolved, roots, settings, NO_BASES)
        return reply
      }
      // As @fastify/static: without any root, only an absolute name is a file.
      if (!name.startsWith('/')) {
        reply.callNotFound()
        return reply
      }
      rootPath = '/'
    }
    acquireRoot(rootPath, (err, root) => safely(reply, () => {
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
      if (reply.raw.destroyed) done()
      respond(site, reply.request, reply, resolved, [root], settings, NO_BASES)
    }))
    return reply
  }

  // Decorators and routes: a failure here (a route already taken, a decorator already there)
  // fails the registration, which then closes what it opened: nothing else would.
  let listed: string[][][] = []
  try {
    // wildcard: false: the files of each root, listed now (glob reads the tree off the loop).
    if (serve && opts.wildcard === false) {
      listed = await Promise.all(roots.map((root) => root.fd < 0 ? [] : routableFiles(root.path, opts.serveDotFiles === true, globIgnore)))
    }
    decorateAndRoute()
  } catch (err) {
    cache?.close()
    for (const root of [...roots, ...callRoots.values()]) closeRoot(root)
    throw err
  }

  function decorateAndRoute (): void {
    if (opts.decorateReply !== false) {
      fastify.decorateReply('sendFile', function sendFile (this: FastifyReply, name: string, rootOrOptions?: string | SendFileOptions, maybeOptions?: SendFileOptions): FastifyReply {
        const callOpts = (typeof rootOrOptions === 'object' && rootOrOptions !== null ? rootOrOptions : maybeOptions) ?? {}
        const rootPath = typeof rootOrOptions === 'string' ? rootOrOptions : callOpts.root
        return sendName(this, name, rootPath, callOpts as Record<string, unknown>)
      })
      fastify.decorateReply('download', function download (this: FastifyReply, name: string, filenameOrOptions?: string | SendFileOptions, maybeOptions?: SendFileOptions): FastifyReply {
        const callOpts = (typeof filenameOrOptions === 'object' && filenameOrOptions !== null ? filenameOrOptions : maybeOptions) ?? {}
        const filename = typeof filenameOrOptions === 'string' ? filenameOrOptions : name
        try {
          this.header('content-disposition', attachment(String(filename)))
        } catch (err) {
          this.send(err)
          return this
        }
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
          respond(site, req, reply, resolved, roots, base, { redirect: redirect ? resolved.base : null, list: list !== null ? resolved.base : null })
        }
      } as RouteOptions)
      if (redirect && prefix !== configuredPrefix) {
        fastify.route({
          ...routeOpts,
          method: ['HEAD', 'GET'],
          url: configuredPrefix,
          handler: slashRedirect(refusal)
        } as RouteOptions)
      }
      return
    }

    // wildcard: false: a route per file found under the roots now (the first root that has a
    // name wins), and one per directory with an index file. The files are still opened beneath
    // their root at each request: a name replaced by a symlink out since is not followed.
    const routes = new Set<string>()
    const indexDirs = new Map<string, { root: Root, segments: string[] }>()
    for (const [i, root] of roots.entries()) {
      for (const segments of listed[i] ?? []) {
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
      if (redirect && bare !== '' && !routes.has(bare)) fastify.route({ ...routeOpts, method: ['HEAD', 'GET'], url: bare, handler: slashRedirect(refusal) } as RouteOptions)
    }

    function addFixedRoute (url: string, resolved: Resolved, root: Root): void {
      fastify.route({
        ...routeOpts,
        method: ['HEAD', 'GET'],
        url,
        handler (req, reply) {
          respond(site, req, reply, resolved, [root], base, NO_BASES)
        }
      } as RouteOptions)
    }
  }
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
