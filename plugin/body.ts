// The body of a response that may leave through the ring.
//
// Fastify sees an ordinary Readable: its onSend hooks run, it sets the headers and pipes the
// body into the response. If that pipe goes straight into the response with the declared
// Content-Length, the headers are flushed through Node, the body is sent by the ring on the
// connection's socket once Node's write queue is empty, and res.end() follows the last byte,
// so onResponse, logging, reply.sent and keep-alive behave. Anything else (an onSend hook
// that wrapped the body, trailers, a status without a body) reads it as a plain stream.
import { Readable } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyReply } from 'fastify'
import type { Binding } from './native'
import { FALLBACK_EOPNOTSUPP } from './native'
import type { Counters } from './stats'
import { checkAtPipe, markSocket, sendZcFor, socketFd, type RouteSettings } from './route'
import { FST_ZERO_COPY_SEND_FAILED } from './errors'

export interface SendSettings {
  binding: Binding
  zc: boolean
  sliceSize: number
  depth: number
  counters: Counters
  route: RouteSettings
}

/** errno names that mean the client went away: logged at info by Fastify, not an error. */
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN', 'ECONNABORTED', 'ESHUTDOWN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ECANCELED'])

const EMPTY = Buffer.alloc(0)

/** Every notification of the body is in: did the kernel copy anyway (local delivery)? */
function onReleased (socket: Socket, notifications: number, copied: number): void {
  if (notifications > 0 && copied * 10 >= notifications * 9) markSocket(socket, 'copied')
}

export class NativeBody extends Readable {
  private op = 0
  private running = false
  private onAborted: (() => void) | null = null
  private idle: { timer: NodeJS.Timeout, socket: Socket, ms: number } | null = null

  constructor (
    private readonly settings: SendSettings,
    private readonly body: Buffer,
    private readonly reply: FastifyReply
  ) {
    super()
  }

  // The ordinary path: whoever reads this stream gets the whole body as one chunk.
  _read (): void {
    this.push(this.body)
    this.push(null)
  }

  pipe<T extends NodeJS.WritableStream> (dest: T, options?: { end?: boolean }): T {
    const res = this.reply.raw
    const reason = checkAtPipe(res, dest, options, this.body.length)
    if (reason !== null) {
      this.settings.counters.stream(reason, this.body.length)
      return super.pipe(dest, options)
    }
    // A pipelined response gets its socket when the responses before it finished.
    if (res.socket !== null) this.flushHeaders(res)
    else res.once('socket', () => this.flushHeaders(res))
    return dest
  }

  private flushHeaders (res: ServerResponse): void {
    const socket = res.socket
    if (this.destroyed || socket === null || socket.destroyed) return
    res.flushHeaders()
    // Headers first, body after: the body starts once Node's write queue for the socket is
    // empty. Usually libuv wrote the headers synchronously and it is empty now; otherwise the
    // callback of an empty write comes after every write queued before it.
    if (socket.writableLength === 0) {
      this.start(res, socket)
      return
    }
    socket.write(EMPTY, (err) => {
      if (err == null && !this.destroyed && !socket.destroyed) this.start(res, socket)
    })
  }

  private start (res: ServerResponse, socket: Socket): void {
    const { binding, sliceSize, depth, counters } = this.settings
    const zc = this.settings.zc && sendZcFor(socket, this.settings.route)
    if (this.settings.zc && !zc) counters.fallback('kernel-copies')
    try {
      this.op = binding.start(socketFd(socket), this.body, zc, sliceSize, depth,
        (error, zcBytes, copyBytes, fallbacks) => this.onDone(res, socket, zc, error, zcBytes, copyBytes, fallbacks),
        zc ? (notifications, copied) => onReleased(socket, notifications, copied) : undefined)
    } catch (err) {
      // The ring could not take it (EMFILE on dup, a broken ring): Node still can.
      this.settings.counters.stream(`start-${String((err as NodeJS.ErrnoException).code ?? 'error').toLowerCase()}`, this.body.length)
      this.finish(res, this.body)
      return
    }
    this.running = true
    this.watchIdle(socket)
  }

  private onDone (res: ServerResponse, socket: Socket, zc: boolean, error: string | null, zcBytes: number, copyBytes: number, fallbacks: number): void {
    this.running = false
    this.unwatchIdle()
    this.settings.counters.native(zc, zcBytes, copyBytes, fallbacks)
    if ((fallbacks & FALLBACK_EOPNOTSUPP) !== 0) markSocket(socket, 'eopnotsupp')
    if (this.onAborted !== null) {
      const aborted = this.onAborted
      this.onAborted = null
      aborted()
    } else if (error === null) {
      this.finish(res, null)
    } else if (PEER_GONE.has(error)) {
      res.destroy() // Fastify logs "stream closed prematurely" at info and destroys this body
    } else {
      this.destroy(new FST_ZERO_COPY_SEND_FAILED(error)) // logged once by Fastify; connection closed
    }
  }

  /** Ends this stream, then the response (with `tail` written by Node, if any). */
  private finish (res: ServerResponse, tail: Buffer | null): void {
    this.once('end', () => {
      if (tail === null) res.end()
      else res.end(tail)
    })
    this.push(null)
    this.resume()
  }

  _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.running) {
      callback(err)
      return
    }
    // The response was destroyed mid-body (client gone, server closing): cancel, and finish
    // only once every result CQE arrived, so nothing is still sending on the socket.
    this.onAborted = () => callback(err)
    this.settings.binding.abort(this.op)
  }

  /**
   * Node's socket timeout counts only bytes written through Node. While the ring sends, the
   * timeout fires only if the ring made no progress for a whole period, as Node would.
   */
  private watchIdle (socket: Socket): void {
    const ms = socket.timeout ?? 0
    if (ms <= 0) return
    socket.setTimeout(0)
    let last = -1
    const timer = setInterval(() => {
      const now = this.settings.binding.progress(this.op)
      if (now !== last) {
        last = now
        return
      }
      this.unwatchIdle()
      socket.emit('timeout')
    }, ms)
    timer.unref()
    this.idle = { timer, socket, ms }
  }

  private unwatchIdle (): void {
    if (this.idle === null) return
    clearInterval(this.idle.timer)
    this.idle.socket.setTimeout(this.idle.ms)
    this.idle = null
  }
}
