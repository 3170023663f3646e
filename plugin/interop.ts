// How a buffer body meets the Fastify plugins registered beside this one, and the line the
// registration logs. Each plugin is looked for on the route's own instance, so a plugin
// registered in a sibling scope changes nothing here.
import { createHash } from 'node:crypto'
import { inspect } from 'node:util'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, RouteOptions } from 'fastify'
import type { ZeroCopyCapabilities } from '../types/index'
import { FST_ZERO_COPY_INVALID_OPTION } from './errors'

export type BufferEtag = 'auto' | false | ((body: NodeJS.ArrayBufferView) => string)

interface Present { compress: boolean, etag: boolean }

// Plugins cannot be registered once an instance is ready, so what an instance has is asked once.
const present = new WeakMap<FastifyInstance, Present>()

function pluginsOf (instance: FastifyInstance): Present {
  let known = present.get(instance)
  if (known === undefined) {
    known = { compress: instance.hasPlugin('@fastify/compress'), etag: instance.hasPlugin('@fastify/etag') }
    present.set(instance, known)
  }
  return known
}

/** Set on a route's config when the route gives @fastify/compress options of its own. */
const kRouteCompresses = Symbol('fastify-zero-copy.routeCompresses')

/**
 * A route that configures @fastify/compress itself (`compress: { ... }`) asks for its bodies
 * to be compressed; the mark survives into the route's config, which Fastify copies.
 */
export function onRoute (routeOptions: RouteOptions): void {
  const compress = (routeOptions as { compress?: unknown }).compress
  if (typeof compress === 'object' && compress !== null) {
    routeOptions.config = { ...routeOptions.config, [kRouteCompresses]: true }
  }
}

/**
 * The largest body `bufferEtag: 'auto'` hashes. sha1 runs at about 2.2 GB/s here, on the event
 * loop, per response: 0.5 ms for 1 MiB, 57 ms for 64 MiB (more CPU than sending the body).
 * Above this, 'auto' gives no tag: a function (a tag kept per blob) or the app's own header.
 */
export const AUTO_ETAG_MAX_BYTES = 1024 * 1024

/** @fastify/etag's default tag (sha1, base64, strong), so both paths give a body the same one. */
function sha1Tag (body: Buffer): string {
  return '"' + createHash('sha1').update(body).digest('base64') + '"'
}

/**
 * Before the onSend hooks see a buffer body of `threshold` bytes or more:
 * - @fastify/compress would wrap it (its types include application/octet-stream) and send it
 *   by Fastify's path, recompressed at its CPU cost: the body was asked to go as it is, so
 *   compress is shown a request that accepts only `identity`, unless the route gives
 *   compress options of its own.
 * - @fastify/etag hashes only bodies it is handed whole, and this one reaches it as a
 *   stream: it gets its ETag here, which etag then compares with If-None-Match (304).
 * Done for every such body, whichever path it then takes, so `inject()` and a socket agree.
 */
/** `given` is the caller's own object (what a bufferEtag function may have kept a tag for). */
export function prepareBuffer (reply: FastifyReply, body: Buffer, given: NodeJS.ArrayBufferView, threshold: number, etag: BufferEtag): void {
  if (body.length < threshold) return // Fastify's path, where both plugins see the buffer itself
  const plugins = pluginsOf(reply.server)
  if (plugins.compress) {
    const request = reply.request
    const config = request.routeOptions.config as unknown as Record<symbol, unknown> | undefined
    if (config?.[kRouteCompresses] !== true) {
      // Fastify merges what is set here over the client's headers (request.raw.headers stay
      // as they came). Not compress's `x-no-compression`: with it, compress never negotiates
      // an encoding and calls an `onUnsupportedEncoding` handler, whose payload would replace
      // the body; `identity` is negotiated, and compress passes the body on.
      const headers = request.headers === request.raw.headers ? {} : { ...request.headers }
      request.headers = { ...headers, 'accept-encoding': 'identity' }
    }
  }
  if (plugins.etag && etag !== false && !reply.hasHeader('etag')) {
    if (etag !== 'auto') reply.header('etag', entityTag(etag(given)))
    else if (body.length <= AUTO_ETAG_MAX_BYTES) reply.header('etag', sha1Tag(body))
  }
}

// RFC 9110 8.8.3: [W/] DQUOTE *etagc DQUOTE. Anything else would fail in writeHead, after the hooks.
const ENTITY_TAG = /^(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"$/

function entityTag (tag: unknown): string {
  if (typeof tag === 'string' && ENTITY_TAG.test(tag)) return tag
  throw new FST_ZERO_COPY_INVALID_OPTION('bufferEtag', `the function returned ${inspect(tag, { depth: 0, maxStringLength: 40 })}, not an entity tag such as "\\"abc\\""`)
}

/** What to say of a registration: where its large bodies go, and the fix where it is the user's. */
export function registrationLine (capabilities: ZeroCopyCapabilities, forcedStream: boolean): { level: 'info' | 'warn', msg: string } {
  const fields = `threshold ${capabilities.threshold}`
  if (capabilities.engine === null) {
    if (forcedStream) return { level: 'info', msg: `fastify-zero-copy: mode "stream" was configured: every body takes Fastify's path (${fields})` }
    return {
      // Off Linux there is nothing to fix: said, not warned.
      level: process.platform === 'linux' ? 'warn' : 'info',
      msg: `fastify-zero-copy: bodies of ${capabilities.threshold} bytes or more will take Fastify's path: ${capabilities.reason ?? 'no native engine'}${fixFor(capabilities.reason)}`
    }
  }
  const why = capabilities.engine === 'io_uring' && capabilities.mode === 'send_zc'
    ? ''
    : `; ${capabilities.reason ?? ''}${capabilities.engine === 'classic' ? fixFor(capabilities.reason) : ''}`
  return { level: 'info', msg: `fastify-zero-copy: engine ${capabilities.engine}, mode ${capabilities.mode} (${fields}, pinBudget ${capabilities.pinBudget})${why}` }
}

/** The fix for a reason the addon or the ring gave, where the reason does not carry it already. */
function fixFor (reason: string | null): string {
  if (reason === null || /npm rebuild/.test(reason)) return ''
  if (/ENOSYS/.test(reason)) return ' (to use io_uring: allow io_uring_setup, io_uring_enter and io_uring_register in the seccomp profile, e.g. a custom Docker --security-opt seccomp=profile.json)'
  if (/EPERM/.test(reason)) return ' (to use io_uring: sysctl kernel.io_uring_disabled=0, or 1 with the process in kernel.io_uring_group)'
  if (/ENOMEM/.test(reason)) return ' (raise the locked-memory limit: ulimit -l, or LimitMEMLOCK= for a systemd unit)'
  return ''
}

export function logRegistration (log: FastifyBaseLogger, capabilities: ZeroCopyCapabilities, forcedStream: boolean): void {
  const { level, msg } = registrationLine(capabilities, forcedStream)
  const zeroCopy = { engine: capabilities.engine, mode: capabilities.mode, threshold: capabilities.threshold, pinBudget: capabilities.pinBudget, reason: capabilities.reason }
  log[level]({ zeroCopy }, msg)
}
