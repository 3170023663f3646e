// fastify-zero-copy: reply.sendZeroCopy(body) over io_uring SEND_ZC, with Fastify's ordinary
// path wherever the native one cannot serve. Reads like a table of contents: options,
// capabilities, decorators.
import os from 'node:os'
import { Readable } from 'node:stream'
import { markAsUntransferable } from 'node:worker_threads'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { FastifyZeroCopyOptions, ZeroCopyCapabilities, ZeroCopyDecorator, ZeroCopyFileOptions } from '../types/index'
import { FST_ZERO_COPY_INVALID_BODY, FST_ZERO_COPY_INVALID_OPTION, FST_ZERO_COPY_MODE_UNAVAILABLE } from './errors'
import { defaultPinBudget, probe, type Probe } from './native'
import { chooseRoute, type RouteSettings } from './route'
import { Counters } from './stats'
import { internals } from './internal'
import { begin } from './events'
import { logRegistration, onRoute, prepareBuffer, type BufferEtag } from './interop'
import { BufferBody, FileBody, type SendSettings } from './body'
import {
  FILE_HTTP_DEFAULTS, decide, entity, isFileBody, notModified, openFile, readFileHttpOptions, setFileHeaders,
  type FileHttpOptions, type Files, type OpenFile
} from './file'

const KiB = 1024
const MiB = 1024 * KiB

const DEFAULTS = {
  threshold: 16 * KiB,
  sliceSize: 256 * KiB,
  depth: 4,
  fileChunk: 256 * KiB,
  fileInline: MiB
}

const MODES = ['auto', 'send_zc', 'send', 'stream'] as const
const ENGINES = ['auto', 'io_uring', 'classic'] as const
const WHEN_COPIED = ['stream', 'send', 'keep'] as const

/** The body with the file's `path`, as a payload of @fastify/static has it for onSend hooks. */
function withPath<T extends Readable> (body: T, payloadPath: string | undefined): T {
  if (payloadPath !== undefined) (body as T & { path?: string }).path = payloadPath
  return body
}

/** A value as an error message can show it, whatever it is (String() throws for some). */
function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value)
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value)
  try {
    return Object.prototype.toString.call(value)
  } catch {
    return typeof value // a revoked Proxy
  }
}

function integer (name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new FST_ZERO_COPY_INVALID_OPTION(name, `expected an integer from ${min} to ${max}, received ${describe(value)}`)
  }
  return value
}

function oneOf<T extends string> (name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!allowed.includes(value as T)) {
    throw new FST_ZERO_COPY_INVALID_OPTION(name, `expected one of ${allowed.join(', ')}, received ${describe(value)}`)
  }
  return value as T
}

function engineFromEnv (): FastifyZeroCopyOptions['engine'] {
  const value = process.env.FASTIFY_ZERO_COPY_ENGINE
  return value === 'io_uring' || value === 'classic' || value === 'auto' ? value : undefined
}

function readOptions (opts: FastifyZeroCopyOptions) {
  const mode = oneOf('mode', opts.mode, MODES, 'auto')
  // FASTIFY_ZERO_COPY_ENGINE sets the default for a deployment (and runs the test suite on
  // either engine); the option, where given, wins.
  const engine = oneOf('engine', opts.engine ?? engineFromEnv(), ENGINES, 'auto')
  const whenCopied = oneOf('whenCopied', opts.whenCopied, WHEN_COPIED, 'stream')
  return {
    mode,
    engine,
    whenCopied,
    threshold: integer('threshold', opts.threshold, DEFAULTS.threshold, 0, Number.MAX_SAFE_INTEGER),
    sliceSize: integer('sliceSize', opts.sliceSize, DEFAULTS.sliceSize, 4 * KiB, 64 * MiB),
    depth: integer('depth', opts.depth, DEFAULTS.depth, 1, 64),
    fileChunk: integer('fileChunk', opts.fileChunk, DEFAULTS.fileChunk, 4 * KiB, 64 * MiB),
    fileInline: integer('fileInline', opts.fileInline, DEFAULTS.fileInline, 0, 64 * MiB),
    http: readFileHttpOptions(opts as Record<string, unknown>, FILE_HTTP_DEFAULTS),
    pinBudget: opts.pinBudget === undefined ? undefined : integer('pinBudget', opts.pinBudget, 0, 0, Number.MAX_SAFE_INTEGER),
    bufferEtag: bufferEtag(opts.bufferEtag)
  }
}

function bufferEtag (value: unknown): BufferEtag {
  if (value === undefined) return 'auto'
  if (value === 'auto' || value === false || typeof value === 'function') return value as BufferEtag
  throw new FST_ZERO_COPY_INVALID_OPTION('bufferEtag', `expected 'auto', false or a function, received ${describe(value)}`)
}

/**
 * What large bodies will use, given the machine, the requested mode and engine. A forced mode
 * or engine the machine cannot do fails registration. `reason` says why the io_uring engine's
 * SEND_ZC is not what serves (null when it is).
 */
function resolveMode (requested: FastifyZeroCopyOptions['mode'], engine: string, machine: Probe): Omit<ZeroCopyCapabilities, 'threshold' | 'pinBudget'> {
  const base = { native: machine.native, beneath: machine.beneath, ioUring: machine.ioUring, sendZc: machine.sendZc, send: machine.send, engine: machine.engine, kernel: os.release() }
  const why = machine.reason ?? 'no native engine is available'
  if (engine !== 'auto' && machine.engine !== engine) throw new FST_ZERO_COPY_MODE_UNAVAILABLE(`engine "${engine}"`, why)
  switch (requested) {
    case 'stream':
      return { ...base, engine: null, mode: 'stream', reason: 'mode "stream" was configured' }
    case 'send_zc':
      if (!machine.sendZc) throw new FST_ZERO_COPY_MODE_UNAVAILABLE('mode "send_zc"', why)
      return { ...base, mode: 'send_zc', reason: machine.reason }
    case 'send':
      if (!machine.send) throw new FST_ZERO_COPY_MODE_UNAVAILABLE('mode "send"', why)
      return { ...base, mode: 'send', reason: 'mode "send" was configured' }
    default:
      if (machine.sendZc) return { ...base, mode: 'send_zc', reason: machine.reason }
      if (machine.send) return { ...base, mode: 'send', reason: why }
      return { ...base, engine: null, mode: 'stream', reason: why }
  }
}

/**
 * A Buffer over exactly the body's bytes (no copy). Built anew even from a Buffer, so what
 * reaches the addon is a genuine Uint8Array whatever the caller passed (a Proxy passes
 * Buffer.isBuffer); anything that is not a usable view is FST_ZERO_COPY_INVALID_BODY.
 */
function asBuffer (body: unknown): Buffer {
  try {
    if (ArrayBuffer.isView(body)) {
      const view = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
      if (view.byteLength === body.byteLength) return view
    }
  } catch {
    // a revoked Proxy, a detached buffer: not a body
  }
  throw new FST_ZERO_COPY_INVALID_BODY(describe(body))
}

async function fastifyZeroCopy (fastify: FastifyInstance, opts: FastifyZeroCopyOptions): Promise<void> {
  const options = readOptions(opts)
  const machine = probe(options.engine)
  const resolved = resolveMode(options.mode, options.engine, machine)
  const binding = resolved.mode === 'stream' ? null : machine.binding
  const pinBudget = binding === null ? null : options.pinBudget ?? defaultPinBudget()
  if (binding !== null && pinBudget !== null) binding.setPinBudget(pinBudget)
  const capabilities = Object.freeze({ ...resolved, threshold: options.threshold, pinBudget })
  logRegistration(fastify.log, capabilities, options.mode === 'stream')
  fastify.addHook('onRoute', onRoute)

  const counters = new Counters(machine.binding)
  const route: RouteSettings = {
    threshold: options.threshold,
    unavailable: binding === null ? (options.mode === 'stream' ? 'mode-stream' : 'native-unavailable') : null,
    whenCopied: options.whenCopied,
    splice: binding !== null && machine.splice
  }
  const send: SendSettings | null = binding === null
    ? null
    : { binding, zc: capabilities.mode === 'send_zc', sliceSize: options.sliceSize, depth: options.depth, fileChunk: options.fileChunk, fileInline: options.fileInline, counters, route }

  // Descriptors are the addon's wherever it loaded (even with mode 'stream'); paths not in the
  // dentry cache are opened by the ring's workers when this registration has a ring, else by
  // libuv's pool.
  const files: Files = {
    addon: machine.addon,
    open: binding === null ? null : binding.openFile
  }

  /** The file's response, once it is open: headers, conditionals, range, then the body. */
  function respondWithFile (reply: FastifyReply, replySend: FastifyReply['send'], file: OpenFile, stat: import('node:fs').Stats, part: ZeroCopyFileOptions, http: FileHttpOptions, payloadPath?: string): void {
    if (reply.sent || reply.raw.destroyed) {
      file.close() // the client went away while the file was opening
      return
    }
    const added = setFileHeaders(reply, file, stat, http)
    const decision = decide(reply, entity(part, stat.size), http)
    if ('error' in decision) {
      file.close()
      // A 412 or 416 is not the file: none of its validators or caching headers, nor the
      // coding of its bytes (a pre-compressed sibling's Content-Encoding).
      for (const name of added) reply.removeHeader(name)
      reply.removeHeader('content-encoding')
      replySend.call(reply, decision.error)
      return
    }
    if (decision.status === 304) {
      file.close()
      notModified(reply)
      // For HEAD, an empty stream keeps Fastify's head route from adding Content-Length: 0.
      replySend.call(reply, isHead(reply) ? Readable.from([]) : undefined)
      return
    }
    if (decision.status === 206) reply.code(206)
    reply.header('content-length', String(decision.length))
    if (isHead(reply) || decision.length === 0) {
      if (decision.length > 0) counters.stream('head', 0, 0, reply)
      file.close()
      // An empty stream, not undefined: Fastify then keeps the Content-Length set above
      // (for HEAD, its own head route would otherwise replace it with 0).
      replySend.call(reply, withPath(Readable.from([]), payloadPath))
      return
    }
    const reason = chooseRoute(reply, decision.length, route, 'file')
    if (reason !== null || send === null) counters.stream(reason ?? 'native-unavailable', decision.length, 0, reply)
    const body = new FileBody(reason === null ? send : null, file, decision.offset, decision.length, reply)
    body.once('close', () => file.close())
    replySend.call(reply, withPath(body, payloadPath))
  }

  function sendFile (reply: FastifyReply, body: unknown, part: ZeroCopyFileOptions): FastifyReply {
    // Options are checked now, so a mistake throws in the handler like any other.
    const http = readFileHttpOptions(part as Record<string, unknown>, options.http)
    entity(part, 0)
    const replySend = holdSend(reply)
    openFile(body, files, (err, file, stat) => {
      if (err !== null || file === undefined || stat === undefined) {
        if (!reply.sent) replySend.call(reply, err)
        return
      }
      // Whatever happens next, a file the plugin opened is closed when the response is.
      reply.raw.once('close', () => file.close())
      try {
        respondWithFile(reply, replySend, file, stat, part, http)
      } catch (err) {
        file.close() // never an uncaught exception: the error goes to Fastify's handler
        if (!reply.sent) replySend.call(reply, err)
      }
    })
    return reply
  }

  function sendOpenFile (reply: FastifyReply, file: OpenFile, stat: import('node:fs').Stats, part: ZeroCopyFileOptions, http: FileHttpOptions, payloadPath?: string): FastifyReply {
    begin(reply)
    const replySend = holdSend(reply)
    reply.raw.once('close', () => file.close())
    try {
      respondWithFile(reply, replySend, file, stat, part, http, payloadPath)
    } catch (err) {
      file.close()
      if (!reply.sent) replySend.call(reply, err)
    }
    return reply
  }

  const decorator: ZeroCopyDecorator = { capabilities, stats: () => counters.snapshot() }
  internals.set(decorator, { files, http: options.http, sendOpenFile })
  fastify.decorate('zeroCopy', decorator)
  fastify.decorateReply('sendZeroCopy', function sendZeroCopy (this: FastifyReply, body: unknown, part?: ZeroCopyFileOptions): FastifyReply {
    begin(this)
    if (isFileBody(body)) return sendFile(this, body, part ?? {})
    const buffer = asBuffer(body)
    // A transfer (postMessage, structuredClone) would detach the body under the response and
    // hand its memory to an owner that may free it while the kernel still reads it: marked,
    // the buffer is copied instead. This stays on the caller's ArrayBuffer.
    markAsUntransferable(buffer.buffer)
    if (!this.hasHeader('content-type')) this.header('content-type', 'application/octet-stream')
    prepareBuffer(this, buffer, body as NodeJS.ArrayBufferView, options.threshold, options.bufferEtag)
    const reason = chooseRoute(this, buffer.length, route, 'buffer')
    if (reason !== null || send === null) {
      counters.stream(reason ?? 'native-unavailable', this.request.method === 'HEAD' ? 0 : buffer.length, 0, this)
      return this.send(buffer)
    }
    this.header('content-length', String(buffer.length))
    return this.send(new BufferBody(send, buffer, this))
  })
}

/**
 * A file response is sent once its file is open and its headers are known, which may be after
 * the handler returned. An async handler that did not return the reply resolves to undefined,
 * and Fastify then sends an empty reply in its place (wrap-thenable): while the response is
 * the plugin's, such a `reply.send(undefined)` is ignored, so the handler gets its file
 * whether the open was immediate or not. Returns Fastify's own send, for the plugin's calls.
 */
function holdSend (reply: FastifyReply): FastifyReply['send'] {
  const send = reply.send
  if (Object.prototype.hasOwnProperty.call(reply, 'send')) return send
  const held = function (this: FastifyReply, payload?: unknown): FastifyReply {
    return payload === undefined ? this : send.call(this, payload)
  }
  Object.defineProperty(reply, 'send', { value: held, configurable: true, writable: true })
  reply.raw.once('close', () => { delete (reply as { send?: unknown }).send })
  return send
}

function isHead (reply: FastifyReply): boolean {
  return reply.request.method === 'HEAD'
}

const plugin = fp(fastifyZeroCopy, { fastify: '5.x', name: 'fastify-zero-copy' }) as ReturnType<typeof fp> & {
  default: unknown
  fastifyZeroCopy: unknown
}
plugin.default = plugin
plugin.fastifyZeroCopy = plugin
export = plugin
