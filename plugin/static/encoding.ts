// preCompressed: a file's `.br`, `.gz` or `.deflate` sibling sent in its place when the
// request's Accept-Encoding takes that coding, as @fastify/static does. The choice is made by
// @fastify/accept-negotiator (q-values, q=0 refusing, the server's order breaking ties); each
// sibling is a candidate of the request path (resolve.ts): judged by the gate under its own
// name, opened beneath the root like the file itself, so a sibling that is a symlink out of
// the root is missing, not followed, and one allowedPath refuses is passed over.
import type { FastifyReply } from 'fastify'
import mime from 'mime'
import negotiate = require('@fastify/accept-negotiator')
import vary = require('vary')
import { FST_ZERO_COPY_INVALID_OPTION } from '../errors'
import { isUtf8Type } from '../file'

export type Coding = 'br' | 'gzip' | 'deflate'

/** The server's order of preference, and each coding's file name suffix. */
const CODINGS: readonly Coding[] = ['br', 'gzip', 'deflate']
const SUFFIX: Record<Coding, string> = { br: '.br', gzip: '.gz', deflate: '.deflate' }

/** A gzip coding named in the header (not as `*`). */
const NAMES_GZIP = /(?:^|,)\s*gzip\s*(?:[;,]|$)/

export function readPreCompressed (value: unknown): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw new FST_ZERO_COPY_INVALID_OPTION('preCompressed', `expected a boolean, received ${typeof value}`)
  return value
}

/**
 * The codings the request takes, best first: each one the negotiator's choice among those not
 * yet chosen (what @fastify/static does by negotiating again after a missing sibling). `*`
 * stands for gzip, as in @fastify/static, except where gzip is named itself: there it adds
 * nothing, so that `gzip;q=0, *` refuses gzip as it says. No header, or `identity`: none.
 */
export function acceptedCodings (header: string | string[] | undefined): Coding[] {
  if (header === undefined) return []
  let value = (Array.isArray(header) ? header.join(',') : header).toLowerCase()
  if (value.includes('*')) value = value.replace(/\*/g, NAMES_GZIP.test(value) ? 'identity' : 'gzip')
  const out: Coding[] = []
  let left = [...CODINGS]
  for (;;) {
    const chosen = negotiate(value, left)
    if (chosen === null || chosen === undefined) return out
    out.push(chosen)
    left = left.filter((c) => c !== chosen)
  }
}

/** The sibling's segments: the file's with the coding's suffix on its last name. */
export function siblingSegments (segments: string[], coding: Coding): string[] {
  return [...segments.slice(0, -1), segments[segments.length - 1] + SUFFIX[coding]]
}

/**
 * The headers of a response chosen by Accept-Encoding. `coding` null: the file itself, which
 * still varies by the header (a cache must not give it to a client that takes a coding). The
 * Vary set by setHeaders on the raw response or by the application is kept, `*` untouched.
 */
export function setEncodingHeaders (reply: FastifyReply, coding: Coding | null, segments: string[], contentType: boolean): void {
  const current = reply.getHeader('vary') ?? reply.raw.getHeader('vary')
  const list = current === undefined ? '' : Array.isArray(current) ? current.join(', ') : String(current)
  reply.header('vary', vary.append(list, 'accept-encoding')) // as @fastify/static writes it
  if (coding === null) return
  reply.header('content-encoding', coding)
  // The type is the uncompressed name's: `app.js.br` is JavaScript, sent br-encoded.
  if (contentType && !reply.hasHeader('content-type')) {
    let type = mime.getType(segments[segments.length - 1]) ?? 'application/octet-stream'
    if (isUtf8Type(type)) type += '; charset=utf-8'
    reply.header('content-type', type)
  }
}
