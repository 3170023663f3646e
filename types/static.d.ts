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

  /** The open-file cache's bounds (option `openFileCache`). */
  export interface OpenFileCacheOptions {
    /** Entries, one descriptor each, held at most (least recently used closed first). Default 256. */
    max?: number
    /**
     * Milliseconds after which a cached path is resolved again (openat2 beneath the root):
     * how stale a path that names another file may be served. Default 1000.
     */
    validMs?: number
    /** Milliseconds without a request after which an entry is closed. Default 20000. */
    inactiveMs?: number
  }

  export interface FastifyZeroCopyStaticOptions extends SendOptions {
    /**
     * Keeps hot files open, stat'ed and with their headers formatted: false (default), true
     * (the defaults) or the bounds. Every hit still fstat()s the file, so a write or a
     * truncation is seen at once; see the README for the bound on a replaced file.
     */
    openFileCache?: boolean | OpenFileCacheOptions
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
    /** Not supported yet: registration fails if set. */
    preCompressed?: false
  }

  export const fastifyZeroCopyStatic: FastifyPluginAsync<FastifyZeroCopyStaticOptions>
  export const fastifyStatic: FastifyPluginAsync<FastifyZeroCopyStaticOptions>
  export { fastifyZeroCopyStatic as default }
}

declare function fastifyZeroCopyStatic (...params: Parameters<FastifyPluginAsync<fastifyZeroCopyStatic.FastifyZeroCopyStaticOptions>>): ReturnType<FastifyPluginAsync<fastifyZeroCopyStatic.FastifyZeroCopyStaticOptions>>

export = fastifyZeroCopyStatic
