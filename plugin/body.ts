// The body of a response that may leave through the ring.
//
// Fastify sees an ordinary Readable: its onSend hooks run, it sets the headers and pipes the
// body into the response. If that pipe goes straight into the response with the declared
// Content-Length, the headers are flushed through Node, the body is sent by the ring on the
// connection's socket once Node's write queue is empty, and res.end() follows the last byte,
// so onResponse, logging, reply.sent and keep-alive behave. Anything else (an onSend hook
// that wrapped the body, trailers, a status without a body) reads it as a plain stream.
//
// BufferBody sends a Buffer (SEND_ZC or SEND); FileBody splices a file (file.ts decides
// which part, and closes what it opened).
import { Readable } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyReply } from 'fastify'
import type { Binding } from './native'
import { FALLBACK_EOPNOTSUPP } from './native'
import type { Counters } from './stats'
import { checkAtPipe, markSocket, sendZcFor, setZcNext, socketFd, zcNextOf, type RouteSettings } from './route'
import { FST_ZERO_COPY_FILE_CHANGED, FST_ZERO_COPY_SEND_FAILED } from './errors'
import type { OpenFile } from './file'

export interface SendSettings {
  binding: Binding
  zc: boolean
  sliceSize: number
  depth: number
  /** Bytes per splice round of a file (the pipe's size). */
  fileChunk: number
  /** Bytes at the start of a file body that sendfile may send on this thread, if cached. */
  fileInline: number
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

/** A body the ring may send; read as a plain stream, it gives the same bytes through Node. */
abstract class RingBody extends Readable {
  private op = 0
  private running = false
  private corked = false
  /** Node's side of the socket, corked while the kernel owns its stream (holdNode). */
  private held: Socket | null = null
  private onAborted: (() => void) | null = null
  private idle: { timer: NodeJS.Timeout, socket: Socket, ms: number } | null = null

  constructor (
    protected readonly settings: SendSettings | null,
    protected readonly reply: FastifyReply,
    readonly length: number
  ) {
    super()
  }

  /** Bytes of the body already sent on this thread (a file's cached head) when startOp returned. */
  protected inlineBytes = 0

  /**
   * Starts the native op; returns its id, 0 if the body left whole without one, or throws
   * (errno code). `released` must reach the op's released callback: the kernel no longer
   * reads the body.
   */
  protected abstract startOp (fd: number, socket: Socket, done: (error: string | null, zcBytes: number, copyBytes: number, fallbacks: number, spliceBytes: number) => void, released: () => void): number
  /** Counts what the ring carried. */
  protected abstract count (error: string | null, zcBytes: number, copyBytes: number, fallbacks: number, spliceBytes: number): void
  /** The error an errno that is not the client's leaving becomes. */
  protected failure (error: string): Error {
    return new FST_ZERO_COPY_SEND_FAILED(error)
  }

  pipe<T extends NodeJS.WritableStream> (dest: T, options?: { end?: boolean }): T {
    const res = this.reply.raw
    const reason = this.settings === null ? null : checkAtPipe(res, dest, options, this.length)
    if (this.settings === null || reason !== null) {
      if (reason !== null) this.settings?.counters.stream(reason, this.length, 0, this.reply)
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
    // Corked, the headers wait in the socket for the body's first bytes and leave with them
    // (nginx's tcp_nopush): one segment and one wake-up of the client fewer per response. The
    // op uncorks the socket behind its first send or drain (or after its first round on a
    // kernel before 6.7); if no op starts, uncork() does.
    const binding = (this.settings as SendSettings).binding
    const fd = socketFd(socket)
    this.corked = binding.cork(fd, true)
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
      else this.uncork(socket)
    })
  }

  /** The socket outlives this body (keep-alive): it must not stay corked. */
  private uncork (socket: Socket): void {
    if (!this.corked) return
    this.corked = false
    if (!socket.destroyed) (this.settings as SendSettings).binding.cork(socketFd(socket), false)
  }

  private start (res: ServerResponse, socket: Socket): void {
    // When Node lets go of the connection (its timeouts, close(), the client's close), the op
    // lets go too, finished or not: a finished body whose pages the kernel still holds (the
    // client has not read it all) must not keep the connection open or the loop alive.
    const binding = (this.settings as SendSettings).binding
    let op = 0
    const letGo = (): void => { if (op !== 0) binding.abort(op) }
    // From the first byte the kernel sends (a cached head by sendfile included) to the last,
    // Node's writes wait.
    this.holdNode(socket)
    // However the response ends, Node's writes on a connection that lives on must flow.
    res.once('close', () => { if (this.held !== null) setImmediate(() => this.releaseNode()) })
    try {
      op = this.op = this.startOp(socketFd(socket), socket, (error, zcBytes, copyBytes, fallbacks, spliceBytes) => {
        this.count(error, zcBytes, copyBytes, fallbacks, spliceBytes)
        this.onDone(res, error)
      }, () => {
        op = 0
        socket.removeListener('close', letGo)
      })
    } catch (err) {
      // The ring could not take it (EMFILE on dup, a broken ring): Node still can, through
      // this stream's own reads (the headers are out already, and so is what sendfile sent:
      // the reads start after it).
      const code = String((err as NodeJS.ErrnoException).code ?? 'error')
      this.settings?.counters.stream(code === 'RING_BROKEN' ? 'ring-broken' : `start-${code.toLowerCase()}`,
        this.length - this.inlineBytes, this.inlineBytes, this.reply)
      this.uncork(socket)
      this.releaseNode() // Node sends the rest: its writes flow again, in order
      super.pipe(res)
      return
    }
    if (this.op === 0) {
      // All of it is in the socket already: nothing will call back.
      this.uncork(socket)
      this.count(null, 0, 0, 0, 0)
      this.finish(res)
      return
    }
    this.corked = false // the op uncorks the socket
    if (op !== 0) socket.once('close', letGo)
    this.running = true
    this.watchIdle(socket)
  }

  /**
   * While the kernel sends the body, the socket's stream is the kernel's: a write by Node
   * (Fastify's clientErrorHandler answering garbage sent behind the request with a 400, an
   * application writing to the socket) would go straight to the descriptor, into the middle
   * of the body. Corked, Node holds such writes in the socket's Writable, in order: released
   * behind a body that completed (releaseNode), or discarded with the socket when the
   * response is cut (whoever destroys the socket).
   */
  private holdNode (socket: Socket): void {
    if (this.held !== null) return
    this.held = socket
    socket.cork()
  }

  /** The body is complete: what Node holds goes out behind it, in order. */
  private releaseNode (): void {
    const socket = this.held
    if (socket === null) return
    this.held = null
    if (!socket.destroyed) socket.uncork()
  }

  private onDone (res: ServerResponse, error: string | null): void {
    this.running = false
    this.unwatchIdle()
    if (this.onAborted !== null) {
      const aborted = this.onAborted
      this.onAborted = null
      aborted()
    } else if (error === null) {
      this.finish(res)
    } else if (PEER_GONE.has(error)) {
      res.destroy() // Fastify logs "stream closed prematurely" at info and destroys this body
    } else {
      this.destroy(this.failure(error)) // logged once by Fastify; connection closed
    }
  }

  /** Ends this stream, then the response. */
  private finish (res: ServerResponse): void {
    this.releaseNode()
    this.once('end', () => res.end())
    this.push(null)
    this.resume()
  }

  _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    // A body destroyed while the socket lives on (whoever destroyed it did not take the
    // connection down) must not leave the socket corked: the responses behind it on the
    // connection would wait for ever. Not at once: when the connection is going (a response
    // cut), its destroy comes in this same turn and discards what Node holds, which must
    // never reach the wire behind part of a body.
    if (this.held !== null) setImmediate(() => this.releaseNode())
    if (!this.running) {
      callback(err)
      return
    }
    // The response was destroyed mid-body (client gone, server closing): cancel, and finish
    // only once every result CQE arrived, so nothing is still sending on the socket.
    this.onAborted = () => callback(err)
    this.settings?.binding.abort(this.op)
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
    const binding = this.settings?.binding
    const timer = setInterval(() => {
      const now = binding?.progress(this.op) ?? -1
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

/** A Buffer's bytes, by SEND_ZC or SEND. */
export class BufferBody extends RingBody {
  private zc = false

  constructor (settings: SendSettings, private readonly body: Buffer, reply: FastifyReply) {
    super(settings, reply, body.length)
  }

  // The ordinary path: whoever reads this stream gets the whole body as one chunk.
  _read (): void {
    this.push(this.body)
    this.push(null)
  }

  protected startOp (fd: number, socket: Socket, done: Parameters<RingBody['startOp']>[2], released: () => void): number {
    const settings = this.settings as SendSettings
    this.zc = settings.zc && sendZcFor(socket, settings.route)
    if (settings.zc && !this.zc) settings.counters.fallback('kernel-copies')
    const classic = settings.binding.engine === 'classic'
    return settings.binding.start(fd, this.body, this.zc, settings.sliceSize, settings.depth,
      (error, zcBytes, copyBytes, fallbacks, _spliceBytes, zcNext) => {
        if ((fallbacks & FALLBACK_EOPNOTSUPP) !== 0) markSocket(socket, 'eopnotsupp')
        if (classic) setZcNext(socket, zcNext)
        done(error, zcBytes, copyBytes, fallbacks, 0)
      },
      (notifications, copied) => {
        released()
        if (this.zc) onReleased(socket, notifications, copied)
      },
      classic ? zcNextOf(socket) : 0)
  }

  protected count (error: string | null, zcBytes: number, copyBytes: number, fallbacks: number): void {
    this.settings?.counters.native(this.zc, zcBytes, copyBytes, fallbacks, { reply: this.reply, error, length: this.length })
  }
}

/** Bytes per read when a file goes through Node. */
const READ_CHUNK = 256 * 1024

/**
 * `length` bytes of a file from `offset`: the cached head by sendfile(2) on this thread, the
 * rest spliced by the ring (page cache -> pipe -> socket); or, on the ordinary path
 * (`settings` null, or an onSend hook wrapped the body), read through Node. A file that ends
 * early (truncated during the transfer) is an error either way: the Content-Length sent can
 * no longer be honoured, so the connection is closed.
 */
export class FileBody extends RingBody {
  private position: number
  private readonly end: number
  private ring = false

  constructor (settings: SendSettings | null, private readonly file: OpenFile, offset: number, length: number, reply: FastifyReply) {
    super(settings, reply, length)
    this.position = offset
    this.end = offset + length
  }

  _read (): void {
    const size = Math.min(READ_CHUNK, this.end - this.position)
    if (size <= 0) {
      this.push(null)
      return
    }
    const buffer = Buffer.allocUnsafe(size)
    this.file.read(buffer, this.position).then((bytesRead) => {
      if (this.destroyed) return
      if (bytesRead === 0) {
        this.destroy(new FST_ZERO_COPY_FILE_CHANGED(`the file ended ${this.end - this.position} bytes early`))
        return
      }
      this.position += bytesRead
      this.push(bytesRead === size ? buffer : buffer.subarray(0, bytesRead))
    }, (err: Error) => this.destroy(err))
  }

  protected startOp (fd: number, _socket: Socket, done: Parameters<RingBody['startOp']>[2], released: () => void): number {
    const settings = this.settings as SendSettings
    // One sendfile of a cached head costs less than a hand-off to io_uring's workers and back
    // (bench/README.md); it stops at a full socket, and the ring, polling first, goes on.
    // Only a local file's cached pages: a remote one's read may still ask its server.
    const want = this.file.remote ? 0 : Math.min(this.length, settings.fileInline)
    if (want > 0) {
      this.inlineBytes = settings.binding.sendCached(fd, this.file.fd, this.position, want)
      this.position += this.inlineBytes
    }
    const rest = this.end - this.position
    if (rest === 0) return 0
    const full = this.inlineBytes > 0 && this.inlineBytes < want
    const id = settings.binding.startFile(fd, this.file.fd, this.position, rest, settings.fileChunk, done, released, settings.depth, full, this.file.remote)
    this.ring = true
    return id
  }

  protected count (error: string | null, _zcBytes: number, _copyBytes: number, _fallbacks: number, spliceBytes: number): void {
    const end = { reply: this.reply, error, length: this.length }
    // The classic engine moves the rest by sendfile too: all of it counts as sendfile there.
    if (this.settings?.binding.engine === 'classic') this.settings.counters.file(this.inlineBytes + spliceBytes, false, 0, end)
    else this.settings?.counters.file(this.inlineBytes, this.ring, spliceBytes, end)
  }

  protected failure (error: string): Error {
    if (error === 'ENODATA') return new FST_ZERO_COPY_FILE_CHANGED('the file was truncated during the transfer')
    return super.failure(error)
  }
}
