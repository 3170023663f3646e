// The gate: the one function that decides whether a name beneath a root may be opened or
// listed. Every name the static plugin opens for a request (the request's own, an `extensions`
// candidate, an index file, a pre-compressed sibling, a directory listed) is judged here, by
// the dotfile policy and allowedPath, spelled as it is opened (on a case-insensitive root, as
// its directories store it). Only the gate makes an `Authorized` name, and the request path's
// open (resolve.ts) takes nothing else: a later candidate cannot reach an open unjudged.
import type { FastifyRequest } from 'fastify'
import { displayPath, hasDotSegment } from './path'
import type { Dotfiles } from './options'
import { FST_ZERO_COPY_INVALID_OPTION } from '../errors'

export type AllowedPath = (pathName: string, root: string, request: FastifyRequest) => boolean

/** A root directory, held open as an O_PATH descriptor; fd -1 when it did not exist at registration. */
export interface Root {
  path: string
  fd: number
  refs: number
  closed: boolean
  /** Lookups beneath it ignore letter case (letter-case.ts): names are mapped to stored ones. */
  caseless: boolean
}

/**
 * Why a name is tried: the request's own name refused answers the request (404, or 403 for a
 * denied dotfile); any other candidate refused is passed over, as if it were not there.
 */
export type Role = 'name' | 'extension' | 'index' | 'sibling' | 'listing'

export interface Candidate {
  root: Root
  /** Below the root, dot segments resolved. */
  segments: string[]
  /** Named as a directory (`/docs/`): what allowedPath sees ends with `/`. */
  trailingSlash: boolean
  role: Role
  /** On a case-insensitive root: how many leading segments are stored names already (read by this request). */
  known?: number
}

declare const AUTHORIZED: unique symbol
/** A candidate the gate let through (a type-level mark only: no cost at run time). */
export type Authorized = Candidate & { readonly [AUTHORIZED]: true }

/** The gate's refusal: 404 (not there, as far as the client may know) or 403 (a denied dotfile). */
export class Refused {
  constructor (readonly status: 403 | 404) {}
}
export const HIDDEN = new Refused(404)
export const DENIED = new Refused(403)

/** What an application's callback threw (or rejected with): the request's error as it is. */
export class CallbackError extends Error {
  constructor (readonly thrown: unknown) {
    super('an application callback threw')
  }

  /** What reaches Fastify's error handler: the thrown Error itself, or one that names the value. */
  get error (): Error {
    return this.thrown instanceof Error ? this.thrown : new Error(`an application callback threw ${String(this.thrown)}`)
  }
}

export interface GatePolicy {
  dotfiles: Dotfiles
  allowedPath: AllowedPath | undefined
}

export function authorize (policy: GatePolicy, candidate: Candidate, req: FastifyRequest): Authorized | Refused | CallbackError {
  if (policy.dotfiles !== 'allow' && hasDotSegment(candidate.segments)) return policy.dotfiles === 'deny' ? DENIED : HIDDEN
  if (policy.allowedPath !== undefined) {
    const allowed = askAllowedPath(policy.allowedPath, displayPath(candidate.segments, candidate.trailingSlash), candidate.root.path, req)
    if (allowed instanceof CallbackError) return allowed
    if (!allowed) return HIDDEN
  }
  return candidate as Authorized
}

/**
 * allowedPath's answer. What it throws is a CallbackError; so is a promise (an async
 * allowedPath): truthy but no answer, the name fails closed, and the promise's rejection, if
 * it comes, is not left unhandled to end the process.
 */
export function askAllowedPath (allowedPath: AllowedPath, pathname: string, rootPath: string, req: FastifyRequest): boolean | CallbackError {
  let allowed: unknown
  try {
    allowed = allowedPath(pathname, rootPath, req)
  } catch (err) {
    return new CallbackError(err)
  }
  if (isThenable(allowed)) {
    allowed.then(undefined, () => {})
    return new CallbackError(new FST_ZERO_COPY_INVALID_OPTION('allowedPath', 'returned a promise: expected a boolean, decided at once'))
  }
  return Boolean(allowed)
}

export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function'
}
