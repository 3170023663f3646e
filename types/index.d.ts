/// <reference types="node" />
import type { FastifyPluginAsync } from 'fastify'

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Sends `body` as the response. Bodies at or above `threshold` bytes leave through
     * io_uring (SEND_ZC or SEND) where the native path can serve; everything else takes
     * Fastify's ordinary `reply.send` path with the same headers, hooks and logs.
     *
     * Do not modify or transfer the body's memory until the response finished: the kernel
     * reads it in place. A stream is not a body (FST_ZERO_COPY_INVALID_BODY): send it with
     * `reply.send(stream)`.
     */
    sendZeroCopy(body: fastifyZeroCopy.ZeroCopyBody): FastifyReply
    /**
     * Sends a regular file (or the part `start`..`end` of it) with the headers and
     * conditional/range semantics of @fastify/send. Large files are spliced from the page
     * cache into the socket by io_uring. The reply counts as sent at the call (`reply.sent`),
     * even while the file is opening: a later send is ignored and logged as Fastify logs a
     * second send. A `{ path }` is opened and closed by the plugin; a FileHandle or
     * `{ fd }` stays the caller's and must stay open until the response finished.
     */
    sendZeroCopy(file: fastifyZeroCopy.ZeroCopyFile, options?: fastifyZeroCopy.ZeroCopyFileOptions): FastifyReply
  }
  interface FastifyInstance {
    zeroCopy: fastifyZeroCopy.ZeroCopyDecorator
  }
}

type FastifyZeroCopy = FastifyPluginAsync<fastifyZeroCopy.FastifyZeroCopyOptions>

declare namespace fastifyZeroCopy {
  /** A Buffer, or any TypedArray or DataView (its bytes are sent, not copied). */
  export type ZeroCopyBody = Buffer | NodeJS.ArrayBufferView

  /** A file: a path the plugin opens (and closes), or an open file the caller keeps. */
  export type ZeroCopyFile = { path: string } | { fd: number } | import('node:fs/promises').FileHandle

  /** HTTP behaviour of file responses (plugin-wide defaults, or per call). */
  export interface ZeroCopyFileHttpOptions {
    /** `Accept-Ranges: bytes` and Range requests (206, 416). Default true. */
    acceptRanges?: boolean
    /** `Cache-Control: public, max-age=<maxAge/1000>`. Default true. */
    cacheControl?: boolean
    /** Milliseconds, for Cache-Control. Default 0. */
    maxAge?: number
    /** Adds `, immutable` to Cache-Control. Default false. */
    immutable?: boolean
    /** A weak ETag from size and mtime. Default true. */
    etag?: boolean
    /** `Last-Modified` from mtime. Default true. */
    lastModified?: boolean
    /** Content-Type from the path's extension (charset=utf-8 for text types). Default true. */
    contentType?: boolean
  }

  export interface ZeroCopyFileOptions extends ZeroCopyFileHttpOptions {
    /** First byte of the file to serve (Range requests are relative to start..end). Default 0. */
    start?: number
    /** Last byte of the file to serve, inclusive. Default: the end of the file. */
    end?: number
  }

  /** `auto` picks `send_zc`, then `send`, then `stream`, by what the machine supports. */
  export type ZeroCopyMode = 'auto' | 'send_zc' | 'send' | 'stream'

  export interface FastifyZeroCopyOptions extends ZeroCopyFileHttpOptions {
    /** Bodies smaller than this many bytes take the ordinary path. Default 16384. */
    threshold?: number
    /** Default `auto`. A forced native mode that the machine cannot do fails registration. */
    mode?: ZeroCopyMode
    /**
     * The native engine. `auto` (default): io_uring where a ring can be created, else the
     * classic engine (sendfile, send with MSG_ZEROCOPY, the event loop's own epoll: what
     * container profiles that refuse io_uring allow), else Fastify's path. A forced engine the
     * machine cannot run fails registration with FST_ZERO_COPY_MODE_UNAVAILABLE.
     */
    engine?: 'auto' | 'io_uring' | 'classic'
    /**
     * What later bodies on a connection use once the kernel reported that it copied the
     * SEND_ZC data of one of its bodies anyway (local delivery: loopback, veth), where
     * pinning costs CPU and saves nothing: `stream` (default) Fastify's ordinary path,
     * `send` the ring's copying SEND, `keep` SEND_ZC regardless.
     */
    whenCopied?: 'stream' | 'send' | 'keep'
    /** Bytes per io_uring send request. Default 262144. */
    sliceSize?: number
    /** Linked send requests in flight per response; for files, pipe-fulls per splice round. Default 4. */
    depth?: number
    /**
     * Bytes the process may keep pinned for SEND_ZC at once; beyond it, slices are sent by
     * copying. Default: half of RLIMIT_MEMLOCK for unprivileged processes, 64 MiB with
     * CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK.
     */
    pinBudget?: number
    /** Bytes a file moves per splice (the size of its pipe). Default 262144. */
    fileChunk?: number
    /**
     * At most this many bytes at the start of a file body go out with one sendfile(2) on the
     * event loop's thread, and only when all of them are in the page cache (cachestat(2),
     * Linux 6.5+, which answers only for files the process owns or may write); the ring
     * splices the rest. 0 splices everything. Default 262144.
     */
    fileInline?: number
    /**
     * ETags for buffer bodies of `threshold` bytes or more where @fastify/etag serves the
     * route (it skips them: they reach it as a stream). `auto` (default): etag's default tag,
     * sha1 of the body in base64, computed per response; a function returns the tag
     * (quotes included) for the body given to sendZeroCopy (the same object), e.g. one
     * hashed once; a result that is not an entity tag is a 500 FST_ZERO_COPY_INVALID_OPTION.
     * false: none. A tag the handler set is kept. Either way @fastify/etag answers
     * If-None-Match with 304.
     */
    bufferEtag?: 'auto' | false | ((body: ZeroCopyBody) => string)
  }

  export interface ZeroCopyCapabilities {
    /** The native addon loaded. */
    native: boolean
    /** An io_uring ring could be created (false, too, when engine 'classic' was configured: none was tried). */
    ioUring: boolean
    /** The engine has zero-copy sends: IORING_OP_SEND_ZC, or MSG_ZEROCOPY for the classic engine. */
    sendZc: boolean
    /** The engine has a copying send of its own (IORING_OP_SEND, or send(2)). */
    send: boolean
    /** The engine that carries bodies at or above the threshold; null when Fastify's path does. */
    engine: 'io_uring' | 'classic' | null
    /**
     * What bodies at or above the threshold will use: `send_zc` a zero-copy send (SEND_ZC or
     * MSG_ZEROCOPY), `send` the engine's copying send, `stream` Fastify's ordinary path.
     */
    mode: 'send_zc' | 'send' | 'stream'
    /** Why the io_uring engine's SEND_ZC is not what serves; null when it is. */
    reason: string | null
    /** The running kernel's release. */
    kernel: string
    /**
     * How `fastify-zero-copy/static` opens files beneath its root: `openat2` (RESOLVE_BENEATH),
     * or `walk` where openat2 is refused (a kernel before 5.6, a seccomp profile, gVisor): one
     * component at a time with O_NOFOLLOW, every symlink checked; `userspace` without the
     * addon (names checked, O_NOFOLLOW, the opened file's real path and identity checked:
     * no kernel containment, see the README).
     */
    beneath: 'openat2' | 'walk' | 'userspace'
    /** The effective `threshold`: bodies smaller than this take Fastify's path. */
    threshold: number
    /**
     * The bytes the process may keep pinned for zero-copy sends (the option, or its default
     * from RLIMIT_MEMLOCK); compare with `stats().inFlight.processPinnedBytes`. null when no
     * engine serves.
     */
    pinBudget: number | null
  }

  /**
   * Scopes: `responses`, `bytes`, `engines`, `fallbacks` and `aborted` count this
   * registration's responses; `notifications`, `inFlight.sends` and `inFlight.pinnedBytes` are
   * the Node environment's engine's (the thread's, shared by every registration on it);
   * `inFlight.processPinnedBytes` is the whole process's.
   */
  export interface ZeroCopyStats {
    /** Bodies by the path that carried them (`stream`: Fastify's ordinary path). */
    responses: { sendZc: number, send: number, splice: number, sendfile: number, stream: number }
    /**
     * Bytes by the path that carried them. A file body's cached head counts under `sendfile`
     * and the rest under `splice`; the response counts under `splice` if the ring carried any
     * of it, else under `sendfile` (the classic engine sends files by sendfile throughout).
     * `sendZc` counts SEND_ZC and MSG_ZEROCOPY bytes.
     */
    bytes: { sendZc: number, send: number, splice: number, sendfile: number, stream: number }
    /**
     * Bodies each engine carried (in part, when the client went away), and their bytes: the
     * native figures of `responses` and `bytes` split by engine.
     */
    engines: { io_uring: { responses: number, bytes: number }, classic: { responses: number, bytes: number } }
    /** Zero-copy completions reaped (SEND_ZC notifications, MSG_ZEROCOPY completions), and how many reported that the kernel copied. */
    notifications: { total: number, copied: number }
    /**
     * Send requests whose completion is still owed, the bytes they keep pinned, and the bytes
     * pinned by every environment of the process together (main thread and workers: what
     * `pinBudget` bounds).
     */
    inFlight: { sends: number, pinnedBytes: number, processPinnedBytes: number }
    /**
     * Bodies (or, for `enomem` and `pin-budget`, bodies with slices) that left the native path,
     * by reason (README, `app.zeroCopy.stats()`: `below-threshold`, `tls`, ..., `ring-broken`).
     */
    fallbacks: { [reason: string]: number }
    /**
     * Responses whose client went away (or whose send failed) before the last byte, also
     * counted under `responses`: `native` bodies (their bytes sent count in `bytes`), and
     * `stream` bodies on Fastify's path (of `threshold` bytes or more).
     */
    aborted: { responses: number, native: number, stream: number }
  }

  /**
   * The message published on `node:diagnostics_channel`'s `fastify-zero-copy:response` for
   * each body of a response that began while the channel had a subscriber, once its path is
   * final: on the native path when its last send completed, on Fastify's path when the
   * response closed.
   */
  export interface ZeroCopyResponseEvent {
    request: import('fastify').FastifyRequest
    reply: import('fastify').FastifyReply
    /** The path that carried the body (`stream`: Fastify's). */
    path: 'sendZc' | 'send' | 'splice' | 'sendfile' | 'stream'
    engine: 'io_uring' | 'classic' | null
    /** Bytes the path carried: on the native path those sent, on Fastify's those handed to it. */
    bytes: number
    /** The body's length. */
    length: number
    /** Why the body took Fastify's path (a `fallbacks` reason); null on the native path. */
    reason: string | null
    /** The client went away (or the send failed) before the last byte. */
    aborted: boolean
    /** Milliseconds from `sendZeroCopy` to the event. */
    duration: number
  }

  export interface ZeroCopyDecorator {
    readonly capabilities: ZeroCopyCapabilities
    stats(): ZeroCopyStats
  }

  export const fastifyZeroCopy: FastifyZeroCopy
  export { fastifyZeroCopy as default }
}

declare function fastifyZeroCopy (...params: Parameters<FastifyZeroCopy>): ReturnType<FastifyZeroCopy>
export = fastifyZeroCopy
