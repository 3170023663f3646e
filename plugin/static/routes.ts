// What the routes of fastify-zero-copy/static share with @fastify/static's beyond serving a
// file: their own error handler, and the redirect of a directory's bare name.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

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
 * The handler of a directory's bare name (wildcard: false, redirect: true): 301 to the name
 * with a `/`, the query kept. The Location is built from the route's own path (names the
 * walk found, each encoded), never from the raw URL: one leading `/`, this site's.
 */
export function slashRedirect (request: FastifyRequest, reply: FastifyReply): void {
  const route = request.routeOptions.url ?? '/'
  const location = route.split('/').map(encodeURIComponent).join('/') + '/' + searchOf(request.raw.url ?? '')
  reply.redirect(location, 301)
}
