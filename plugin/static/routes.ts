// What the routes of fastify-zero-copy/static share with @fastify/static's beyond serving a
// file: their own error handler, and the redirect of a directory's bare name.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { requestPrefix } from './path'

/**
 * As @fastify/static's: a response whose body stream was cut under it (the client went away)
 * ends its request instead of sending an error into a half-written response; anything else
 * goes to the error handler the instance has when it happens.
 */
export function routeErrorHandler (fastify: FastifyInstance) {
  return function staticErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): unknown {
    if (error?.code === 'ERR_STREAM_PREMATURE_CLOSE') {
      request.raw.destroy()
      return undefined
    }
    return fastify.errorHandler(error, request, reply)
  }
}

/** The query of a raw request target, with its `?` ('' when it has none). */
export function searchOf (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? '' : url.slice(q)
}

/**
 * The handler of a bare name with redirect: true (the prefix without its `/`, or with
 * wildcard: false a directory's): 301 to the name with a `/`, the query kept. The Location is
 * built from the route's own path (a parametric prefix's values the request's), each name
 * encoded, never from the raw URL. A parameter left empty answers 404.
 */
export function slashRedirect (request: FastifyRequest, reply: FastifyReply): void {
  const route = request.routeOptions.url ?? '/'
  const names = requestPrefix(route, request.raw.url ?? '/', request.params)
  if (route.includes(':') && names.includes(':')) {
    reply.callNotFound()
    return
  }
  reply.redirect(urlPath(names + '/') + searchOf(request.raw.url ?? ''), 301)
}

/**
 * A path of decoded names as a URL path of this site: each name percent-encoded (a `?` or
 * `#` in a name stays in it), and one leading `/`, never `//`, which a browser would take for
 * another host (a parameter of a prefix may be empty).
 */
export function urlPath (names: string): string {
  return '/' + names.split('/').map(encodeURIComponent).join('/').replace(/^\/+/, '')
}
