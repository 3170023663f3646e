// The options of fastify-zero-copy/static, read and checked once at registration: those of
// @fastify/static (9, 10), with their meaning, and `symlinks`.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseDuration } from '@lukeed/ms'
import type { FileHttpOptions } from '../file'
import { FST_STATIC_INVALID_OPTION, FST_STATIC_INVALID_OPTION_VALUE, FST_ZERO_COPY_INVALID_OPTION } from '../errors'
import { RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS } from '../native'

export type Dotfiles = 'allow' | 'deny' | 'ignore'
export type Symlinks = 'inside' | 'none' | 'follow'

/** What decides one response, from the registration's options and a call's own. */
export interface SendSettings {
  http: FileHttpOptions
  dotfiles: Dotfiles
  index: string[]
  extensions: string[]
  resolve: number
  /** @fastify/static 10's onFile: called with the selected file's absolute path and stat, awaited; a throw refuses it. */
  onFile?: (path: string, stat: import('node:fs').Stats) => void | Promise<void>
}

const YEAR = 365 * 24 * 3600 * 1000

/**
 * maxAge as @fastify/static reads it (through @fastify/send): milliseconds, or any string
 * @lukeed/ms parses ('1d', '2 hours', '10 minutes'); at most a year. A string it cannot read
 * fails registration here, where @fastify/static would send max-age=0.
 */
export function readMaxAge (value: unknown): number | undefined {
  if (value === undefined) return undefined
  let ms: number | undefined
  if (typeof value === 'number') {
    ms = value
  } else if (typeof value === 'string') {
    ms = parseDuration(value)
    if (ms === undefined) throw new FST_ZERO_COPY_INVALID_OPTION('maxAge', `expected milliseconds or a duration such as "1d" or "2 hours", received ${JSON.stringify(value.slice(0, 40))}`)
  } else {
    throw new FST_ZERO_COPY_INVALID_OPTION('maxAge', `expected milliseconds or a duration string, received ${typeof value}`)
  }
  if (!Number.isFinite(ms) || ms < 0) throw new FST_ZERO_COPY_INVALID_OPTION('maxAge', 'expected a non-negative duration')
  return Math.min(Math.floor(ms), YEAR)
}

function oneOf<T extends string> (name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!allowed.includes(value as T)) throw new FST_ZERO_COPY_INVALID_OPTION(name, `expected one of ${allowed.join(', ')}, received ${JSON.stringify(value)}`)
  return value as T
}

function readIndex (value: unknown, fallback: string[]): string[] {
  if (value === undefined) return fallback
  if (value === false) return []
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string' && v.length > 0 && !v.includes('\0'))) {
    throw new FST_ZERO_COPY_INVALID_OPTION('index', 'expected false, a file name or an array of file names')
  }
  return list
}

function readExtensions (value: unknown, fallback: string[]): string[] {
  if (value === undefined || value === false) return value === false ? [] : fallback
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string' && /^[^/\0]+$/.test(v))) {
    throw new FST_ZERO_COPY_INVALID_OPTION('extensions', 'expected an array of extensions such as ["html"]')
  }
  return list.map((e: string) => e.replace(/^\./, ''))
}

function readOnFile (value: unknown, fallback: SendSettings['onFile']): SendSettings['onFile'] {
  if (value === undefined) return fallback
  if (typeof value !== 'function') throw new FST_ZERO_COPY_INVALID_OPTION('onFile', 'expected a function')
  return value as SendSettings['onFile']
}

export function resolveFlags (symlinks: Symlinks): number {
  switch (symlinks) {
    case 'none': return RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS
    case 'follow': return RESOLVE_NO_MAGICLINKS // the application's choice: symlinks lead anywhere
    default: return RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
  }
}

const HTTP_NAMES = ['acceptRanges', 'cacheControl', 'immutable', 'etag', 'lastModified', 'contentType'] as const

/** `opts` over `base`: the HTTP options, dotfiles, index, extensions (registration or call). */
export function readSendSettings (opts: Record<string, unknown>, base: SendSettings): SendSettings {
  const http = { ...base.http }
  for (const name of HTTP_NAMES) {
    const value = opts[name]
    if (value === undefined) continue
    if (typeof value !== 'boolean') throw new FST_ZERO_COPY_INVALID_OPTION(name, `expected a boolean, received ${typeof value}`)
    http[name] = value
  }
  const maxAge = readMaxAge(opts.maxAge)
  if (maxAge !== undefined) http.maxAge = maxAge
  return {
    http,
    dotfiles: oneOf('dotfiles', opts.dotfiles, ['allow', 'deny', 'ignore'] as const, base.dotfiles),
    index: readIndex(opts.index, base.index),
    extensions: readExtensions(opts.extensions, base.extensions),
    resolve: opts.symlinks === undefined ? base.resolve : resolveFlags(oneOf('symlinks', opts.symlinks, ['inside', 'none', 'follow'] as const, 'inside')),
    onFile: readOnFile(opts.onFile, base.onFile)
  }
}

/** root: a string, a file: URL, or a non-empty array of them without duplicates; absolute (@fastify/static's checks and errors). */
export function readRoots (root: unknown): string[] {
  if (root === undefined) throw new FST_STATIC_INVALID_OPTION('root', 'is required')
  const list = Array.isArray(root) ? root : [root]
  if (list.length === 0) throw new FST_STATIC_INVALID_OPTION('root', 'array requires one or more paths')
  const out = list.map((r: unknown) => {
    if (r instanceof URL) {
      if (r.protocol !== 'file:') throw new FST_STATIC_INVALID_OPTION_VALUE('root', `must be a path or a file: URL (received ${r.protocol})`)
      return fileURLToPath(r)
    }
    if (typeof r !== 'string') throw new FST_STATIC_INVALID_OPTION_VALUE('root', 'must be a string or array of strings')
    return r
  })
  for (const r of out) {
    if (r.includes('\0')) throw new FST_STATIC_INVALID_OPTION('root', 'must not hold a NUL')
    if (!path.isAbsolute(r)) throw new FST_STATIC_INVALID_OPTION('root', `must be an absolute path (${JSON.stringify(r)})`)
  }
  if (new Set(out).size !== out.length) throw new FST_STATIC_INVALID_OPTION('root', 'array contains duplicate paths')
  return out
}
