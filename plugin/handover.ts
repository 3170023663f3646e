// How a sendZeroCopy response is handed to Fastify: once, at the call, whether its file is
// open yet or not, so that Fastify's rule for a reply sent twice holds: the first send wins,
// a later one is logged as "Reply was already sent" and changes nothing on the wire.
//
// Fastify counts a reply as sent once its response has ended. A body that goes out by the
// ring, or a file still opening, is not ended when the handler returns a value, when a hook
// that sent lets the handler run, or when the application calls reply.send again: Fastify
// would then write a second head over the first body and cut it. So a registration
// decorates `reply.sent` (on the Reply prototype, once): true as well from the moment a
// sendZeroCopy response was handed over. Fastify's own checks then do the rest: reply.send
// logs and ignores a later send, a value returned or an error thrown after it are logged as
// Fastify logs them, and the hooks and the handler after a hook that sent do not run.
// Fastify's own error path for the handed response (an onSend hook that failed, a file that
// turned out missing) releases the reply back to Fastify's rule, so its error handler can
// answer. `reply.then` is decorated alongside, so that `await reply` still waits for the end.
import { Readable, finished } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { errorCodes, type FastifyInstance, type FastifyReply } from 'fastify'

const kHandover = Symbol('fastify-zero-copy.handover')

/** null: not a sendZeroCopy response; the others below. */
const HANDING = 1 // inside Fastify's reply.send of the plugin's own payload
const HELD = 2 // handed over: every later send is refused
const RELEASED = 3 // Fastify's error path took the response over before any header left
const HOLDING = 4 // the plugin's, not yet handed (a file opening): later sends are refused
type State = null | typeof HANDING | typeof HELD | typeof RELEASED | typeof HOLDING

type Handed = FastifyReply & { [kHandover]: State | undefined }

const kOurs = Symbol('fastify-zero-copy.decoration')

type Getter = (this: FastifyReply) => boolean
type Then = (this: FastifyReply, fulfilled?: () => void, rejected?: (err: Error) => void) => void

/**
 * The decorations of one registration: `reply.sent`, and `reply.then` (so `await reply` still
 * resolves once the response finished, as before: the kernel may read a body until then).
 * Fastify's own members are found once, above the decorations on the reply's prototypes;
 * per registration, so a process with two copies of Fastify calls each its own.
 */
function decorations (): { sent: (this: Handed) => boolean, then: (this: Handed, fulfilled?: () => void, rejected?: (err: Error) => void) => void } {
  let sentByFastify: Getter | null = null
  let thenByFastify: Then | null = null
  const sent = function sent (this: Handed): boolean {
    const state = this[kHandover]
    if (state === HELD || state === HOLDING) return true
    if (sentByFastify === null) sentByFastify = fastifyOwn(this, 'sent', 'get') as Getter
    return sentByFastify.call(this)
  }
  const then = function then (this: Handed, fulfilled?: () => void, rejected?: (err: Error) => void): void {
    const state = this[kHandover]
    if (state !== HELD && state !== HOLDING) {
      if (thenByFastify === null) thenByFastify = fastifyOwn(this, 'then', 'value') as Then
      thenByFastify.call(this, fulfilled, rejected)
      return
    }
    // As Fastify's own, for a response still going out: the end, or its error (a premature
    // close is the client's leaving, not an error of the reply).
    finished(this.raw, (err) => {
      if (err != null && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
        if (rejected !== undefined) rejected(err)
        else this.log.warn('unhandled rejection on reply.then')
      } else {
        fulfilled?.()
      }
    })
  }
  Object.defineProperty(sent, kOurs, { value: true })
  Object.defineProperty(then, kOurs, { value: true })
  return { sent, then }
}

function fastifyOwn (reply: FastifyReply, name: string, kind: 'get' | 'value'): unknown {
  for (let proto = Object.getPrototypeOf(reply); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const member = Object.getOwnPropertyDescriptor(proto, name)?.[kind] as { [kOurs]?: true } | undefined
    if (typeof member === 'function' && member[kOurs] !== true) return member
  }
  throw new Error(`fastify-zero-copy: this Fastify has no reply.${name}`)
}

/** Installs the decorations and the release, once per context that does not inherit them. */
export function installHandover (fastify: FastifyInstance): void {
  if (fastify.hasReplyDecorator(kHandover as unknown as string)) return
  // An instance property initialised by Fastify's Reply constructor: every reply has the same shape.
  fastify.decorateReply(kHandover as unknown as string, null)
  const { sent, then } = decorations()
  fastify.decorateReply('sent', { getter: sent } as never)
  fastify.decorateReply('then', then as never)
  fastify.addHook('onError', function releaseOnError (_request, reply, _error, done) {
    release(reply)
    done()
  })
}

/**
 * Whether the reply is sent: by Fastify's rule, because a sendZeroCopy came first, or because
 * a body is already going out (a head written, or a stream Fastify piped into the response:
 * only a piped stream listens for 'unpipe').
 */
export function alreadySent (reply: FastifyReply): boolean {
  const res = reply.raw
  return (reply as Handed)[kHandover] != null || reply.sent || res.headersSent || res.listenerCount('unpipe') > 0
}

/** The same, except that a reply the plugin holds for the file being sent now is not sent. */
export function sentBeforeHold (reply: FastifyReply): boolean {
  const state = (reply as Handed)[kHandover]
  if (state === HOLDING) return false
  return alreadySent(reply)
}

/** What Fastify logs for a send after the reply was sent (reply.send, Fastify 5). */
export function logAlreadySent (reply: FastifyReply): void {
  reply.log.warn({ err: new errorCodes.FST_ERR_REP_ALREADY_SENT(reply.request.url, reply.request.method) })
}

/** Hands `payload` (a body or nothing) to Fastify's reply.send; later sends are refused. */
export function handOver (reply: FastifyReply, payload: unknown): void {
  closesWithConnection(reply)
  const handed = reply as Handed
  handed[kHandover] = HANDING
  let taken = false
  try {
    reply.send(payload)
    taken = true
  } finally {
    // A send that threw (inside an onError hook, a header Node refused) took nothing: the
    // error goes to the caller, and Fastify's error path must be able to answer.
    if (handed[kHandover] === HANDING) handed[kHandover] = taken ? HELD : null
  }
}

/**
 * The response is the plugin's, not yet Fastify's (a file still opening): later sends are
 * refused, as after a send, until handOver (or release, for an error) is called.
 * fastify-zero-copy/static may hold a reply while it resolves a name, then send the file with
 * sendOpenFile (which accepts a held reply) or release it before sending an error.
 */
export function hold (reply: FastifyReply): void {
  closesWithConnection(reply)
  const held = reply as Handed
  held[kHandover] = HOLDING
}

/** Fastify's error path answers instead (no header has left): its rule applies again. */
export function release (reply: FastifyReply): void {
  const handed = reply as Handed
  const state = handed[kHandover]
  if ((state === HANDING || state === HELD || state === HOLDING) && !reply.raw.headersSent) handed[kHandover] = RELEASED
}

/**
 * Responses waiting for their turn on a connection (HTTP/1.1 pipelining). Node gives such a
 * response the socket when the ones before it finished, and when the connection closes first
 * it emits 'close' on the socket's current response only: a waiting one would never close,
 * nor would what it holds (a file, a body Fastify piped into it).
 */
const waiting = new WeakMap<Socket, Set<ServerResponse>>()

/** Whether the response can no longer go out: closed, destroyed, or waiting on a connection that closed. */
export function responseGone (reply: FastifyReply): boolean {
  const res = reply.raw
  if (res.destroyed || (res as ServerResponse & { closed?: boolean }).closed === true) return true
  const connection = reply.request.raw.socket as Socket | null
  return res.socket === null && (connection == null || connection.destroyed)
}

/**
 * A response still waiting for its socket is destroyed and closed with its connection, as the
 * connection's current response is: Fastify and the body see the client gone, whatever the
 * response holds is let go.
 */
function closesWithConnection (reply: FastifyReply): void {
  const res = reply.raw
  const connection = reply.request.raw.socket as Socket | null
  // Only a node:http response waits without a socket (an injected one has its own, HTTP/2 its stream's).
  if (res.socket !== null || connection == null || connection.destroyed || typeof connection.once !== 'function') return
  let set = waiting.get(connection)
  if (set === undefined) {
    const responses = set = new Set()
    waiting.set(connection, responses)
    connection.once('close', () => {
      waiting.delete(connection)
      for (const r of responses) {
        r.destroy()
        r.emit('close')
      }
    })
  }
  if (set.has(res)) return
  set.add(res)
  const turn = set
  res.once('socket', () => turn.delete(res))
}

/**
 * Calls `fn` once the response is over: at once when it is already (a connection closed while
 * a file was opening), else at its 'close', which a response waiting its turn gets from its
 * connection's (closesWithConnection). What a response owns (its file) is tied to it here.
 */
export function whenGone (reply: FastifyReply, fn: () => void): void {
  if (responseGone(reply)) {
    fn()
    return
  }
  reply.raw.once('close', fn)
  closesWithConnection(reply)
}

/**
 * What Fastify is given at once for a file still opening: its onSend hooks run and it pipes
 * this body where it pipes any stream. When the file is open, `resolve` sets in its place the
 * file's body (piped where this one was, so the ring can still send it), or an empty one
 * (304, HEAD); `fail` makes it the error Fastify's error handler answers (404, 412, 416: no
 * header has left). Headers the file adds after Fastify copied the reply's are copied to the
 * response here.
 */
export class PendingBody extends Readable {
  private target: Readable | null = null
  private dest: NodeJS.WritableStream | null = null
  private destOptions: { end?: boolean } | undefined
  private wanted = false // read directly (not piped) before the file was open
  private relaying = false

  constructor (private readonly reply: FastifyReply) {
    super()
  }

  pipe<T extends NodeJS.WritableStream> (dest: T, options?: { end?: boolean }): T {
    if (this.dest !== null || this.relaying || this.destroyed) return dest
    this.dest = dest
    this.destOptions = options
    if (this.target !== null) this.forward(this.target, dest)
    return dest
  }

  _read (): void {
    if (this.target === null) {
      this.wanted = true
      return
    }
    if (!this.relaying) this.relay(this.target)
    else this.target.resume()
  }

  /** The file's body, its headers set on the reply; null for none. */
  resolve (body: Readable | null): void {
    const target = body ?? Readable.from([])
    if (this.destroyed) {
      target.destroy()
      return
    }
    this.target = target
    if (this.dest !== null) {
      this.copyHeaders(this.dest)
      this.forward(target, this.dest)
    } else if (this.wanted) {
      this.relay(target)
    }
  }

  fail (err: Error): void {
    release(this.reply)
    this.destroy(err)
  }

  /**
   * Fastify copied the reply's headers to the response when it was given this body; the
   * file's came later. A body an onSend hook wrapped keeps the length that hook chose.
   */
  private copyHeaders (dest: NodeJS.WritableStream): void {
    const res: ServerResponse = this.reply.raw
    if (res.headersSent) return
    const headers = this.reply.getHeaders()
    for (const name of Object.keys(headers)) {
      const value = headers[name]
      if (value === undefined || (name === 'content-length' && dest !== res)) continue
      res.setHeader(name, value)
    }
  }

  private forward (target: Readable, dest: NodeJS.WritableStream): void {
    // Listening before the file's body does: this body has ended before the response ends,
    // so Fastify never sees it closed early.
    target.on('end', () => {
      this.push(null)
      this.resume()
    })
    target.on('error', (err) => this.destroy(err))
    target.pipe(dest, this.destOptions)
  }

  private relay (target: Readable): void {
    this.relaying = true
    target.on('data', (chunk) => {
      if (!this.push(chunk)) target.pause()
    })
    target.on('end', () => this.push(null))
    target.on('error', (err) => this.destroy(err))
  }

  _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.target !== null && !this.target.destroyed) this.target.destroy()
    callback(err)
  }
}
