import type { ZeroCopyStats } from '../types/index'
import { FALLBACK_ENOMEM, FALLBACK_EOPNOTSUPP, FALLBACK_PIN_BUDGET, type Binding } from './native'

/** One counter for each figure of app.zeroCopy.stats(). */
export class Counters {
  readonly responses = { sendZc: 0, send: 0, splice: 0, stream: 0 }
  readonly bytes = { sendZc: 0, send: 0, splice: 0, stream: 0 }
  readonly fallbacks: { [reason: string]: number } = Object.create(null)

  constructor (private readonly binding: Binding | null) {}

  fallback (reason: string): void {
    this.fallbacks[reason] = (this.fallbacks[reason] ?? 0) + 1
  }

  /** A body Fastify's ordinary path carried, and why. */
  stream (reason: string, length: number): void {
    this.fallback(reason)
    this.responses.stream++
    this.bytes.stream += length
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
    if ((fallbacks & FALLBACK_EOPNOTSUPP) !== 0) this.fallback('eopnotsupp')
    if ((fallbacks & FALLBACK_ENOMEM) !== 0) this.fallback('enomem')
    if ((fallbacks & FALLBACK_PIN_BUDGET) !== 0) this.fallback('pin-budget')
  }

  /** A file body the ring spliced (in part, when the client went away or the file shrank). */
  spliced (bytes: number): void {
    this.responses.splice++
    this.bytes.splice += bytes
  }

  snapshot (): ZeroCopyStats {
    const ring = this.binding?.stats()
    return {
      responses: { ...this.responses },
      bytes: { ...this.bytes },
      notifications: { total: ring?.notifications ?? 0, copied: ring?.copied ?? 0 },
      inFlight: { sends: ring?.sends ?? 0, pinnedBytes: ring?.pinnedBytes ?? 0 },
      fallbacks: { ...this.fallbacks }
    }
  }
}
