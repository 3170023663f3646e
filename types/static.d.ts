import type { FastifyPluginAsync, FastifyRequest, FastifyReply, RouteShorthandOptions } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Stats } from 'node:fs'

declare module 'fastify' {
  interface FastifyReply {
    /** Sends `name` from below the registration's root (or `root`), as @fastify/static's does. */
    sendFile(name: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
    sendFile(name: string, root: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
    /** sendFile with `Content-Disposition: attachment` (filename defaults to the name's last segment). */
    download(name: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
    download(name: string, filename: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
  }
}

declare namespace fastifyZeroCopyStatic {
  /** What a response may override per call. */
  export interface SendOptions {
    acceptRanges?: boolean
    cacheControl?: boolean
    contentType?: boolean
    /** Default 'ignore' (404): unlike @fastify/static, dotfiles are not served unless allowed. */
    dotfiles?: 'allow' | 'deny' | 'ignore'
    etag?: boolean
    extensions?: string[]
    immutable?: boolean
    index?: string[] | string | false
    lastModified?: boolean
    /** Milliseconds, or a duration string such as '1d'; capped at a year. */
    maxAge?: string | number
    /**
     * Symlinks under the root: 'inside' (default) follows those that stay beneath the root,
     * 'none' follows none, 'follow' follows every one wherever it leads.
     */
    symlinks?: 'inside' | 'none' | 'follow'
  }

  export interface SendFileOptions extends SendOptions {
    root?: string
  }

  export interface FastifyZeroCopyStaticOptions extends SendOptions {
    root?: string | URL | Array<string | URL>
    prefix?: string
    prefixAvoidTrailingSlash?: boolean
    serve?: boolean
    decorateReply?: boolean
    schemaHide?: boolean
    setHeaders?: (res: ServerResponse, path: string, stat: Stats) => void
    redirect?: boolean
    wildcard?: boolean
    allowedPath?: (pathName: string, root: string, request: FastifyRequest) => boolean
    constraints?: RouteShorthandOptions['constraints']
    logLevel?: RouteShorthandOptions['logLevel']
    /** Not supported yet: registration fails if set. */
    list?: false
    /**
     * Serve a file's `.br`, `.gz` or `.deflate` sibling (brotli first, then gzip, then deflate)
     * when the request's Accept-Encoding takes that coding, with Content-Encoding and the
     * file's own Content-Type; every file response then carries `Vary: Accept-Encoding`.
     * Default false.
     */
    preCompressed?: boolean
  }

  export const fastifyZeroCopyStatic: FastifyPluginAsync<FastifyZeroCopyStaticOptions>
  export const fastifyStatic: FastifyPluginAsync<FastifyZeroCopyStaticOptions>
  export { fastifyZeroCopyStatic as default }
}

declare function fastifyZeroCopyStatic (...params: Parameters<FastifyPluginAsync<fastifyZeroCopyStatic.FastifyZeroCopyStaticOptions>>): ReturnType<FastifyPluginAsync<fastifyZeroCopyStatic.FastifyZeroCopyStaticOptions>>

export = fastifyZeroCopyStatic
