// fastify-zero-copy: reply.sendZeroCopy(body) over io_uring SEND_ZC, with Fastify's ordinary
// path wherever the native one cannot serve. Reads like a table of contents: options,
// capabilities, decorators.
import os from 'node:os'
import type { Stats } from 'node:fs'
import { Readable } from 'node:stream'
import { inspect } from 'node:util'
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
import { readCachedBody } from './small'
import { PendingBody, alreadySent, handOver, hold, installHandover, logAlreadySent, release, responseGone, sentBeforeHold, whenGone } from './handover'
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
  fileInline: 256 * KiB
}

const MODES = ['auto', 'send_zc', 'send', 'stream'] as const
const ENGINES = ['auto', 'io_uring', 'classic'] as const
const WHEN_COPIED = ['stream', 'send', 'keep'] as const

/** The body with the file's `path`, as a payload of @fastify/static has it for onSend hooks. */
function withPath<T extends object> (body: T, payloadPath: string | undefined): T {
  if (payloadPath !== undefined) (body as T & { path?: string }).path = payloadPath
  return body
}

/** Whether `value` is a stream (Node's, or a web ReadableStream): not a sendZeroCopy body. */
function isStream (value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false
  try {
    const v = value as { pipe?: unknown, getReader?: unknown }
    return typeof v.pipe === 'function' || typeof v.getReader === 'function'
  } catch {
    return false // a revoked Proxy
  }
}

/**
 * A value as an error message can show it, whatever it is: short, without running the
 * value's own code (custom inspect, getters), and never throwing (a revoked Proxy).
 */
function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value)
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value)
  try {
    if (isStream(value)) {
      const name = Object.getPrototypeOf(value)?.constructor?.name
      return typeof name === 'string' && name !== '' ? `a stream (${name})` : 'a stream'
    }
    const text = inspect(value, { depth: 0, maxArrayLength: 4, maxStringLength: 40, breakLength: Infinity, compact: true, customInspect: false })
    return text.length > 80 ? text.slice(0, 77) + '...' : text
  } catch {
    return typeof value
  }
}

/**
 * A stream is not a body here (an fs.ReadStream even has a string `.path`): it is destroyed,
 * so the descriptor it opened or is opening does not stay open, and the error says what to
 * do instead.
 */
function refuseStream (body: unknown): never {
  const what = describe(body)
  try {
    const destroy = (body as { destroy?: unknown }).destroy
    if (typeof destroy === 'function') destroy.call(body)
  } catch {
    // nothing more can be done for it
  }
  throw new FST_ZERO_COPY_INVALID_BODY(`${what}: send a stream with reply.send(stream), or its file with reply.sendZeroCopy({ path })`)
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
  const base = { native: machine.native, beneath: machine.beneath ?? 'userspace', ioUring: machine.ioUring, sendZc: machine.sendZc, send: machine.send, engine: machine.engine, kernel: os.release() }
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

  /**
   * The file's response, once it is open: its headers set on the reply (conditionals, range),
   * and what to send: its body, nothing (304), an empty body (HEAD, no bytes), or an error
   * (412, 416). The file is closed here when it is not the body.
   */
  function fileResponse (reply: FastifyReply, file: OpenFile, stat: Stats, part: ZeroCopyFileOptions, http: FileHttpOptions, payloadPath?: string): { body: Readable | Buffer | undefined } | { error: Error } {
    const added = setFileHeaders(reply, file, stat, http)
    const decision = decide(reply, entity(part, stat.size), http)
    if ('error' in decision) {
      file.close()
      // A 412 or 416 is not the file: none of its validators or caching headers, nor the
      // coding of its bytes (a pre-compressed sibling's Content-Encoding).
      for (const name of added) reply.removeHeader(name)
      reply.removeHeader('content-encoding')
      return { error: decision.error }
    }
    if (decision.status === 304) {
      file.close()
      notModified(reply)
      // For HEAD, an empty stream keeps Fastify's head route from adding Content-Length: 0.
      return { body: isHead(reply) ? Readable.from([]) : undefined }
    }
    if (decision.status === 206) reply.code(206)
    reply.header('content-length', String(decision.length))
    if (isHead(reply) || decision.length === 0) {
      if (decision.length > 0) counters.stream('head', 0, 0, reply)
      file.close()
      // An empty stream, not undefined: Fastify then keeps the Content-Length set above
      // (for HEAD, its own head route would otherwise replace it with 0).
      return { body: withPath(Readable.from([]), payloadPath) }
    }
    const reason = chooseRoute(reply, decision.length, route, 'file')
    if (reason !== null || send === null) {
      // Node's path: a body all in the page cache is read here and sent as a Buffer (small.ts).
      const cached = readCachedBody(files.addon, file, decision.offset, decision.length)
      if (cached !== null) {
        file.close()
        counters.stream(reason ?? 'native-unavailable', decision.length, 0, reply)
        // Fastify gives a Buffer without a Content-Type one (contentType: false wants none).
        return { body: withPath(reply.hasHeader('content-type') ? cached : bufferStream(cached), payloadPath) }
      }
    }
    if (reason !== null || send === null) counters.stream(reason ?? 'native-unavailable', decision.length, 0, reply)
    const body = new FileBody(reason === null ? send : null, file, decision.offset, decision.length, reply)
    body.once('close', () => file.close())
    return { body: withPath(body, payloadPath) }
  }

  /** An open file's response, handed to Fastify now. `payloadPath`: the body's `path` (static's onSend hooks). */
  function respondWithFile (reply: FastifyReply, file: OpenFile, stat: Stats, part: ZeroCopyFileOptions, http: FileHttpOptions, payloadPath?: string): void {
    if (responseGone(reply)) {
      file.close() // the client went away while the file was opening
      return
    }
    // Whatever happens next, a file the plugin opened is closed when the response is.
    whenGone(reply, () => file.close())
    let out
    try {
      out = fileResponse(reply, file, stat, part, http, payloadPath)
    } catch (err) {
      file.close() // never an uncaught exception: the error goes to Fastify's handler
      sendError(reply, err)
      return
    }
    if ('error' in out) sendError(reply, out.error)
    else handOver(reply, out.body)
  }

  /** The file opened later than the call, for a reply held meanwhile (HEAD). */
  function respondLater (reply: FastifyReply, err: Error | null, file: OpenFile | undefined, stat: Stats | undefined, part: ZeroCopyFileOptions, http: FileHttpOptions): void {
    if (err !== null || file === undefined || stat === undefined) {
      sendError(reply, err ?? new FST_ZERO_COPY_INVALID_BODY('a file that could not be opened'))
      return
    }
    respondWithFile(reply, file, stat, part, http) // which closes the file if the client went away meanwhile
  }

  /** The file opened later than the call: the body Fastify was given becomes the file's. */
  function resolvePending (reply: FastifyReply, pending: PendingBody, err: Error | null, file: OpenFile | undefined, stat: Stats | undefined, part: ZeroCopyFileOptions, http: FileHttpOptions): void {
    if (err !== null || file === undefined || stat === undefined) {
      pending.fail(err ?? new FST_ZERO_COPY_INVALID_BODY('a file that could not be opened'))
      return
    }
    whenGone(reply, () => file.close())
    if (pending.destroyed || responseGone(reply)) {
      file.close() // the client went away while the file was opening
      return
    }
    let out
    try {
      out = fileResponse(reply, file, stat, part, http)
    } catch (err) {
      file.close()
      pending.fail(err as Error)
      return
    }
    if ('error' in out) pending.fail(out.error)
    // A Buffer is not a stream that can take the pending body's place: one chunk of a stream.
    else pending.resolve(Buffer.isBuffer(out.body) ? bufferStream(out.body) : out.body ?? null)
  }

  function sendFile (reply: FastifyReply, body: unknown, part: ZeroCopyFileOptions): FastifyReply {
    // Options are checked now, so a mistake throws in the handler like any other.
    const http = readFileHttpOptions(part as Record<string, unknown>, options.http)
    entity(part, 0)
    if (alreadySent(reply)) {
      logAlreadySent(reply)
      return reply
    }
    // A path in the dentry cache opens (and a local file stats) before openFile returns: the
    // response is then handed to Fastify complete. Otherwise Fastify gets a pending body now,
    // which becomes the file's when it is open; except for HEAD, whose body Fastify's head
    // route discards at once, sending the head without the file's headers: that reply is
    // held (later sends refused) and handed over when the file is open.
    let later: PendingBody | 'held' | null = null
    const now: { opened: boolean, err: Error | null, file?: OpenFile, stat?: Stats } = { opened: false, err: null }
    openFile(body, files, (err, file, stat) => {
      if (later === null) Object.assign(now, { opened: true, err, file, stat })
      else if (later === 'held') respondLater(reply, err, file, stat, part, http)
      else resolvePending(reply, later, err, file, stat, part, http)
    })
    if (now.opened) {
      if (now.err !== null || now.file === undefined || now.stat === undefined) reply.send(now.err)
      else respondWithFile(reply, now.file, now.stat, part, http)
      return reply
    }
    if (isHead(reply)) {
      later = 'held'
      hold(reply)
      return reply
    }
    const pending = new PendingBody(reply)
    later = pending
    try {
      handOver(reply, pending)
    } catch (err) {
      pending.destroy() // its file is closed when it opens
      throw err
    }
    return reply
  }

  function sendOpenFile (reply: FastifyReply, file: OpenFile, stat: Stats, part: ZeroCopyFileOptions, http: FileHttpOptions, payloadPath?: string): FastifyReply {
    if (sentBeforeHold(reply)) {
      file.close()
      logAlreadySent(reply)
      return reply
    }
    begin(reply)
    respondWithFile(reply, file, stat, part, http, payloadPath)
    return reply
  }

  const decorator: ZeroCopyDecorator = { capabilities, stats: () => counters.snapshot() }
  internals.set(decorator, { files, http: options.http, sendOpenFile })
  fastify.decorate('zeroCopy', decorator)
  installHandover(fastify)
  fastify.decorateReply('sendZeroCopy', function sendZeroCopy (this: FastifyReply, body: unknown, part?: ZeroCopyFileOptions): FastifyReply {
    if (isStream(body)) refuseStream(body)
    begin(this)
    if (isFileBody(body)) return sendFile(this, body, part ?? {})
    const buffer = asBuffer(body)
    if (alreadySent(this)) {
      logAlreadySent(this)
      return this
    }
    // A transfer (postMessage, structuredClone) would detach the body under the response and
    // hand its memory to an owner that may free it while the kernel still reads it: marked,
    // the buffer is copied instead. This stays on the caller's ArrayBuffer.
    markAsUntransferable(buffer.buffer)
    if (!this.hasHeader('content-type')) this.header('content-type', 'application/octet-stream')
    prepareBuffer(this, buffer, body as NodeJS.ArrayBufferView, options.threshold, options.bufferEtag)
    const reason = chooseRoute(this, buffer.length, route, 'buffer')
    if (reason !== null || send === null) {
      counters.stream(reason ?? 'native-unavailable', this.request.method === 'HEAD' ? 0 : buffer.length, 0, this)
      handOver(this, buffer)
      return this
    }
    this.header('content-length', String(buffer.length))
    handOver(this, new BufferBody(send, buffer, this))
    return this
  })
}

/** A Buffer body as a stream, for a body Fastify was given as a stream before the file opened. */
function bufferStream (buffer: Buffer): Readable {
  return new Readable({
    read () {
      this.push(buffer)
      this.push(null)
    }
  })
}

/** An error for Fastify's error handler, the reply released to it if the plugin held it. */
function sendError (reply: FastifyReply, err: unknown): void {
  release(reply)
  reply.send(err)
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
