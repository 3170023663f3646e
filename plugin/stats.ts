import type { ZeroCopyStats } from '../types/index'
import { FALLBACK_ENOMEM, FALLBACK_EOPNOTSUPP, FALLBACK_PIN_BUDGET, type Binding } from './native'

/** One counter for each figure of app.zeroCopy.stats(). */
export class Counters {
  readonly responses = { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 0 }
  readonly bytes = { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: 0 }
  readonly fallbacks: { [reason: string]: number } = Object.create(null)
  readonly engines = { io_uring: { responses: 0, bytes: 0 }, classic: { responses: 0, bytes: 0 } }

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

  /** A body Fastify's ordinary path carried (after `inline` bytes sendfile sent), and why. */
  stream (reason: string, length: number, inline = 0): void {
    this.fallback(reason)
    this.responses.stream++
    this.bytes.stream += length
    this.bytes.sendfile += inline
  }

  /**
   * A body the ring carried (in part, when the client went away). It counts under the mode it
   * was started in, unless not one of its bytes went by SEND_ZC while others went by copy.
   */
  native (zc: boolean, zcBytes: number, copyBytes: number, fallbacks: number): void {
    if (zcBytes > 0 || (zc && copyBytes === 0)) this.responses.sendZc++
    else this.responses.send++
    this.bytes.sendZc += zcBytes
    this.bytes.send += copyBytes
    this.engine(zcBytes + copyBytes)
    if ((fallbacks & FALLBACK_EOPNOTSUPP) !== 0) this.fallback('eopnotsupp')
    if ((fallbacks & FALLBACK_ENOMEM) !== 0) this.fallback('enomem')
    if ((fallbacks & FALLBACK_PIN_BUDGET) !== 0) this.fallback('pin-budget')
  }

  /**
   * A file body the native path carried (in part, when the client went away or the file
   * shrank): `inline` bytes by sendfile on the event loop, `spliced` by the ring (`ring`:
   * whether the ring took part).
   */
  file (inline: number, ring: boolean, spliced: number): void {
    if (ring) this.responses.splice++
    else this.responses.sendfile++
    this.bytes.sendfile += inline
    this.bytes.splice += spliced
    this.engine(inline + spliced)
  }

  snapshot (): ZeroCopyStats {
    const ring = this.binding?.stats()
    return {
      responses: { ...this.responses },
      bytes: { ...this.bytes },
      notifications: { total: ring?.notifications ?? 0, copied: ring?.copied ?? 0 },
      inFlight: { sends: ring?.sends ?? 0, pinnedBytes: ring?.pinnedBytes ?? 0, processPinnedBytes: ring?.processPinnedBytes ?? 0 },
      engines: { io_uring: { ...this.engines.io_uring }, classic: { ...this.engines.classic } },
      fallbacks: { ...this.fallbacks }
    }
  }
}
