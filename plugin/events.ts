// Per-response events on node:diagnostics_channel, as Fastify and undici publish theirs, so
// metrics subscribe instead of polling stats(). Nothing is measured for a response that
// began while no one was subscribed.
import diagnostics from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import type { FastifyReply } from 'fastify'

export const RESPONSE_CHANNEL = 'fastify-zero-copy:response'
const channel = diagnostics.channel(RESPONSE_CHANNEL)

const kStarted = Symbol('fastify-zero-copy.started')
type Timed = FastifyReply & { [kStarted]?: number }

export type ResponsePath = 'sendZc' | 'send' | 'splice' | 'sendfile' | 'stream'

export interface ResponseFields {
  path: ResponsePath
  engine: 'io_uring' | 'classic' | null
  /** Bytes the path carried (a body on Fastify's path: the bytes handed to Fastify). */
  bytes: number
  /** The body's length. */
  length: number
  /** Why the body took Fastify's path; null on the native path. */
  reason: string | null
  /** The client went away (or the send failed) before the last byte. */
  aborted: boolean
}

/** A response of sendZeroCopy starts: its clock, if someone listens. */
export function begin (reply: FastifyReply): void {
  if (channel.hasSubscribers) (reply as Timed)[kStarted] = performance.now()
}

/** Whether the response's event will be published (it began with a subscriber). */
export function timed (reply: FastifyReply | undefined): boolean {
  return reply !== undefined && (reply as Timed)[kStarted] !== undefined
}

/** The response's one event; `duration` in milliseconds since sendZeroCopy. */
export function publish (reply: FastifyReply, fields: ResponseFields): void {
  const started = (reply as Timed)[kStarted]
  if (started === undefined) return
  delete (reply as Timed)[kStarted]
  if (!channel.hasSubscribers) return
  channel.publish({ request: reply.request, reply, ...fields, duration: performance.now() - started })
}
