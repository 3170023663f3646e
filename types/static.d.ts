import type { FastifyPluginAsync, FastifyRequest, FastifyReply, RouteShorthandOptions } from 'fastify'
import type { FastifyErrorConstructor } from '@fastify/error'
import type { Stats } from 'node:fs'
// /static registers the core plugin: its `app.zeroCopy` is declared for an application that
// imports only this entry.
import type {} from './index'

declare module 'fastify' {
  interface FastifyReply {
    /** Sends `name` from below the registration's root (or `root`), as @fastify/static's does. */
    sendFile(name: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
    /** `root` undefined: the registration's, as @fastify/static's `sendFile(name, undefined, options)`. */
    sendFile(name: string, root?: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
    /** sendFile with `Content-Disposition: attachment`, named by the file's base name unless `filename` is given (as in @fastify/static). */
    download(name: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
    download(name: string, filename?: string, options?: fastifyZeroCopyStatic.SendFileOptions): FastifyReply
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
    /** Milliseconds, or a duration string as @fastify/static reads it ('1d', '2 hours'); capped at a year. */
    maxAge?: string | number
    /**
     * Symlinks under the root: 'inside' (default) follows those that stay beneath the root,
     * 'none' follows none, 'follow' follows every one wherever it leads.
     */
    symlinks?: 'inside' | 'none' | 'follow'
    /**
     * Called with the selected file's absolute path and stat (the sibling when pre-compressed),
     * after allowedPath and before any header; awaited. A throw or a rejection refuses the file
     * and goes to Fastify's error handler.
     */
    onFile?: (path: string, stat: Stats) => void | Promise<void>
  }

  /** A folder's totals, of what a listing would show in it, at every depth. */
  export interface ExtendedInformation {
    fileCount: number
    totalFileCount: number
    folderCount: number
    totalFolderCount: number
    totalSize: number
    lastModified: number
  }

  export interface ListFile {
    /** The entry's URL path, each segment percent-encoded. */
    href: string
    /** The entry's name as on disk: escape it in the page. */
    name: string
    /** A symlink's are those of what it leads to. */
    stats: Stats
  }

  export interface ListDir extends ListFile {
    extendedInfo?: ExtendedInformation
  }

  export interface ListRender {
    (dirs: ListDir[], files: ListFile[]): string
  }

  export interface ListOptions {
    /**
     * Names that list their directory when no such file exists (`index.json` lists `dir/`
     * for `dir/index.json`); '/' lists a directory named with its slash that has no index file.
     */
    names?: string[]
    /** Adds `extendedInfo` to every directory of the listing. */
    extendedFolderInfo?: boolean
    /** json: names alone (default), or `{ name, stats, extendedInfo }` entries. */
    jsonFormat?: 'names' | 'extended'
  }

  export interface ListOptionsJsonFormat extends ListOptions {
    format?: 'json'
    /** Required for `?format=html`. */
    render?: ListRender
  }

  export interface ListOptionsHtmlFormat extends ListOptions {
    format: 'html'
    render: ListRender
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
    /**
     * 'auto' (default): without the native addon (macOS, Windows, an addon that did not
     * build), files are opened beneath the root in user space, with a warning at
     * registration. 'kernel': registration fails there (FST_ZERO_COPY_STATIC_UNCONTAINED)
     * rather than serve without the kernel's RESOLVE_BENEATH.
     */
    containment?: 'auto' | 'kernel'
    root?: string | URL | Array<string | URL>
    prefix?: string
    prefixAvoidTrailingSlash?: boolean
    serve?: boolean
    decorateReply?: boolean
    schemaHide?: boolean
    /** Called with the reply (as @fastify/static 10; 9 passed `reply.raw`), the file's absolute path and its stat. */
    setHeaders?: (reply: FastifyReply, path: string, stat: Stats) => void
    redirect?: boolean
    wildcard?: boolean
    /** With `wildcard: false`: routes for files under dot-directories and dotfiles too (the dotfile policy still decides). Default false. */
    serveDotFiles?: boolean
    /** No warning at registration for a root that does not exist. */
    suppressWarning?: boolean
    /**
     * With `wildcard: false`: glob patterns (minimatch, dotfiles matched) of files that get no
     * route; a pattern ending in `/**` also skips the files below the directories it matches.
     */
    globIgnore?: string | string[]
    allowedPath?: (pathName: string, root: string, request: FastifyRequest) => boolean
    constraints?: RouteShorthandOptions['constraints']
    logLevel?: RouteShorthandOptions['logLevel']
    /**
     * Directory listings, as @fastify/static's: `true` (json names) or the options. Only what
     * the dotfile policy and allowedPath let through, and only what resolves beneath the root.
     * A listing needs a single root.
     */
    list?: boolean | ListOptionsJsonFormat | ListOptionsHtmlFormat
    /**
     * Serve a file's `.br`, `.gz` or `.deflate` sibling (brotli first, then gzip, then deflate)
     * when the request's Accept-Encoding takes that coding, with Content-Encoding and the
     * file's own Content-Type; every file response then carries `Vary: Accept-Encoding`.
     * Default false.
     */
    preCompressed?: boolean
  }

  /** @fastify/static's name for the options. */
  export type FastifyStaticOptions = FastifyZeroCopyStaticOptions

  /**
   * @fastify/static's errors (its codes, messages and classes) and those of this package that
   * /static answers with.
   */
  export interface StaticErrors {
    FST_STATIC_INVALID_OPTION: FastifyErrorConstructor<{ code: 'FST_STATIC_INVALID_OPTION' }>
    FST_STATIC_INVALID_OPTION_VALUE: FastifyErrorConstructor<{ code: 'FST_STATIC_INVALID_OPTION_VALUE', statusCode: 500 }>
    FST_STATIC_MULTIROOT_LIST_CONFLICT: FastifyErrorConstructor<{ code: 'FST_STATIC_MULTIROOT_LIST_CONFLICT', statusCode: 500 }>
    FST_STATIC_INVALID_REDIRECT_URL: FastifyErrorConstructor<{ code: 'FST_STATIC_INVALID_REDIRECT_URL', statusCode: 400 }>
    FST_STATIC_FORBIDDEN_PATH: FastifyErrorConstructor<{ code: 'FST_STATIC_FORBIDDEN_PATH', statusCode: 403 }>
    FST_ZERO_COPY_INVALID_OPTION: FastifyErrorConstructor<{ code: 'FST_ZERO_COPY_INVALID_OPTION', statusCode: 500 }>
    FST_ZERO_COPY_STATIC_BAD_PATH: FastifyErrorConstructor<{ code: 'FST_ZERO_COPY_STATIC_BAD_PATH', statusCode: 400 }>
    FST_ZERO_COPY_STATIC_UNCONTAINED: FastifyErrorConstructor<{ code: 'FST_ZERO_COPY_STATIC_UNCONTAINED', statusCode: 500 }>
    FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE: FastifyErrorConstructor<{ code: 'FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE', statusCode: 406 }>
    FST_ZERO_COPY_FILE_FORBIDDEN: FastifyErrorConstructor<{ code: 'FST_ZERO_COPY_FILE_FORBIDDEN', statusCode: 403 }>
    FST_ZERO_COPY_FILE_OPEN_FAILED: FastifyErrorConstructor<{ code: 'FST_ZERO_COPY_FILE_OPEN_FAILED', statusCode: 500 }>
  }

  export const errors: StaticErrors
  export const fastifyZeroCopyStatic: FastifyPluginAsync<FastifyZeroCopyStaticOptions>
  export const fastifyStatic: FastifyPluginAsync<FastifyZeroCopyStaticOptions>
  export { fastifyZeroCopyStatic as default }
}

declare function fastifyZeroCopyStatic (...params: Parameters<FastifyPluginAsync<fastifyZeroCopyStatic.FastifyZeroCopyStaticOptions>>): ReturnType<FastifyPluginAsync<fastifyZeroCopyStatic.FastifyZeroCopyStaticOptions>>

export = fastifyZeroCopyStatic
