// What the routes of fastify-zero-copy/static share with @fastify/static's beyond serving a
// file: their own error handler, and the redirect of a directory's bare name.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isRefusal, resolveRequestPath, type Refusal } from './path'

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
 * the route's own path as this request matched it (resolveRequestPath: a parametric prefix's
 * values the request's, each name encoded), never the raw URL; what that refuses (an empty
 * parameter, a dot segment) is answered by `refusal`.
 */
export function slashRedirect (refusal: (reply: FastifyReply, r: Refusal) => void) {
  return function redirectWithSlash (request: FastifyRequest, reply: FastifyReply): void {
    const url = request.raw.url ?? '/'
    const q = url.indexOf('?')
    const resolved = resolveRequestPath((q === -1 ? url : url.slice(0, q)) + '/', (request.routeOptions.url ?? '/') + '/')
    if (isRefusal(resolved)) refusal(reply, resolved)
    else reply.redirect(resolved.base + searchOf(url), 301)
  }
}
