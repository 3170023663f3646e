import type { FastifyReply } from 'fastify'
import type { ZeroCopyStats } from '../types/index'
import { FALLBACK_ENOMEM, FALLBACK_EOPNOTSUPP, FALLBACK_PIN_BUDGET, type Binding } from './native'
import { publish, timed, type ResponsePath } from './events'

/** How a native body ended: its response, the op's error (null: every byte sent), its length. */
export interface NativeEnd {
  reply: FastifyReply
  error: string | null
  length: number
}

/**
 * One counter for each figure of app.zeroCopy.stats(), and the place each response's path is
 * final: its diagnostics_channel event is published from here. Responses, bytes, engines,
 * fallbacks and aborts are this registration's; the engine's figures (notifications,
 * inFlight) are read from the Node environment's engine, which every registration shares.
 */
export class Counters {
  readonly responses = { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 0 }
  readonly bytes = { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 0 }
  readonly fallbacks: { [reason: string]: number } = Object.create(null)
  readonly engines = { io_uring: { responses: 0, bytes: 0 }, classic: { responses: 0, bytes: 0 } }
  /** Responses whose client went away (or whose send failed) before the last byte. */
  readonly aborted = { responses: 0, native: 0, stream: 0 }

  constructor (private readonly binding: Binding | null) {}

  private engine (bytes: number): void {
    if (this.binding === null) return
    const engine = this.engines[this.binding.engine]
    engine.responses++
    engine.bytes += bytes
  }

  fallback (reason: string): void {
    this.fallbacks[reason] = (this.fallbacks[reason] ?? 0) + 1
  }

  /**
   * A body Fastify's ordinary path carried (after `inline` bytes sendfile sent), and why.
   * With its reply, the response is watched to its end for an abort (a small body, written
   * whole at once, only when an event is owed).
   */
  stream (reason: string, length: number, inline = 0, reply?: FastifyReply): void {
    this.fallback(reason)
    this.responses.stream++
    this.bytes.stream += length
    this.bytes.sendfile += inline
    if (reply !== undefined && (reason !== 'below-threshold' || timed(reply))) this.watchStream(reply, reason, length, inline)
  }

  private watchStream (reply: FastifyReply, reason: string, length: number, inline: number): void {
    const socket = reply.request.raw.socket as (typeof reply.request.raw.socket & { errored?: Error | null }) | null
    reply.raw.once('close', () => {
      // Node finishes a response whose last write failed (the client reset it): the socket's
      // error tells.
      const aborted = !reply.raw.writableFinished || (socket?.errored ?? null) !== null
      if (aborted) {
        this.aborted.responses++
        this.aborted.stream++
      }
      publish(reply, { path: 'stream', engine: null, bytes: length, length: length + inline, reason, aborted })
    })
  }

  /** A native body ended (`end` given): an abort is counted, and its event published. */
  private ended (end: NativeEnd | undefined, path: ResponsePath, bytes: number): void {
    if (end === undefined) return
    const aborted = end.error !== null
    if (aborted) {
      this.aborted.responses++
      this.aborted.native++
    }
    publish(end.reply, { path, engine: this.binding?.engine ?? null, bytes, length: end.length, reason: null, aborted })
  }

  /**
   * A body the ring carried (in part, when the client went away). It counts under the mode it
   * was started in, unless not one of its bytes went by SEND_ZC while others went by copy.
   */
  native (zc: boolean, zcBytes: number, copyBytes: number, fallbacks: number, end?: NativeEnd): void {
    const path = zcBytes > 0 || (zc && copyBytes === 0) ? 'sendZc' : 'send'
    this.responses[path]++
    this.bytes.sendZc += zcBytes
    this.bytes.send += copyBytes
    this.engine(zcBytes + copyBytes)
    if ((fallbacks & FALLBACK_EOPNOTSUPP) !== 0) this.fallback('eopnotsupp')
    if ((fallbacks & FALLBACK_ENOMEM) !== 0) this.fallback('enomem')
    if ((fallbacks & FALLBACK_PIN_BUDGET) !== 0) this.fallback('pin-budget')
    this.ended(end, path, zcBytes + copyBytes)
  }

  /**
   * A file body the native path carried (in part, when the client went away or the file
   * shrank): `inline` bytes by sendfile on the event loop, `spliced` by the ring (`ring`:
   * whether the ring took part).
   */
  file (inline: number, ring: boolean, spliced: number, end?: NativeEnd): void {
    const path = ring ? 'splice' : 'sendfile'
    this.responses[path]++
    this.bytes.sendfile += inline
    this.bytes.splice += spliced
    this.engine(inline + spliced)
    this.ended(end, path, inline + spliced)
  }

  snapshot (): ZeroCopyStats {
    const ring = this.binding?.stats()
    return {
      responses: { ...this.responses },
      bytes: { ...this.bytes },
      notifications: { total: ring?.notifications ?? 0, copied: ring?.copied ?? 0 },
      inFlight: { sends: ring?.sends ?? 0, pinnedBytes: ring?.pinnedBytes ?? 0, processPinnedBytes: ring?.processPinnedBytes ?? 0 },
      engines: { io_uring: { ...this.engines.io_uring }, classic: { ...this.engines.classic } },
      fallbacks: { ...this.fallbacks },
      aborted: { ...this.aborted }
    }
  }
}
