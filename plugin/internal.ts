// What the plugin's other entry points (fastify-zero-copy/static) use of a registration: its
// descriptors and its file response for a file they opened themselves. Keyed by the
// registration's `fastify.zeroCopy` decorator, which every child context sees.
import type { Stats } from 'node:fs'
import type { FastifyReply } from 'fastify'
import type { ZeroCopyFileOptions } from '../types/index'
import type { FileHttpOptions, Files, OpenFile } from './file'

export interface CoreInternals {
  files: Files
  /** The registration's HTTP defaults for file responses. */
  http: FileHttpOptions
  /**
   * Sends the already open, already stat'ed regular file: headers, conditionals, ranges, then
   * the native path (or Node's) as `reply.sendZeroCopy(file)` does. The file is the
   * response's from here: closed when the response is. A reply already sent (by Fastify's
   * rule or an earlier sendZeroCopy) gets nothing: the file is closed and the send logged as
   * Fastify logs a second send; a reply held with `hold` (handover.ts) is sent. `payloadPath`:
   * set as the body's `path` (what @fastify/static's payload carries to onSend hooks).
   */
  sendOpenFile (reply: FastifyReply, file: OpenFile, stat: Stats, part: ZeroCopyFileOptions, http: FileHttpOptions, payloadPath?: string): FastifyReply
}

export const internals = new WeakMap<object, CoreInternals>()
