// From a request's raw URL to a path relative to a root, decided once and before anything
// else looks at it (allowedPath, the dotfile policy, the open): the router and the filesystem
// must never disagree about what a path names.
// - The raw URL is percent-decoded exactly once, segment by segment: only a literal `/`
//   separates. A decoded `/` (%2F) names no file (404); a backslash, literal or %5C, is a
//   character of a name, never a separator; NUL (literal or %00) and invalid UTF-8 (overlong
//   forms included) are a 400.
// - A path that is not canonical once decoded (an empty segment, `//`; a `.` or `..` segment,
//   %2e spelled or not, anywhere, the prefix's part included; a trailing `/.`) is refused with
//   403 before anything is resolved, as @fastify/static refuses it: the router matched the raw
//   spelling, so `//deep/x` or `/a/../deep/x` would pass an application's guard route on
//   `/deep/*` and reach the static wildcard. Nothing is resolved: a name is what it says.
// The open itself is then confined by the kernel (openat2 RESOLVE_BENEATH): whatever got past
// this, a symlink included, cannot leave the root.

export type Refusal = { status: 400 | 403 | 404, reason: string }

export interface Resolved {
  /** Segments below the root, dot segments resolved: never empty strings, `.` or `..`. */
  segments: string[]
  /** The request named a directory (its path ended with `/`). */
  trailingSlash: boolean
}

/** A request's path below its route's prefix, and the prefix as this request's URL spells it. */
export interface RouteResolved extends Resolved {
  /** The URL path of the prefix, encoded, ending with `/`: parameters (`/:tenant/`) filled in. */
  base: string
}

/** A prefix segment the router fills from the URL (`:tenant`); `::` is a literal colon. */
function isParameter (part: string): boolean {
  return part.replace(/::/g, '').includes(':')
}

function refuse (status: 400 | 403 | 404, reason: string): Refusal {
  return { status, reason }
}

export function isRefusal (value: Resolved | Refusal): value is Refusal {
  return (value as Refusal).status !== undefined
}

/** Decodes one segment of a raw path; null when it is not valid percent-encoded UTF-8. */
function decodeSegment (raw: string): string | null {
  if (!raw.includes('%')) return raw
  try {
    return decodeURIComponent(raw)
  } catch {
    return null
  }
}

/** Whether decoded `/`-separated parts are not a canonical path: a `.` or `..` part, or an empty one other than a leading or trailing `/`'s. */
function nonCanonical (parts: string[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (part === '.' || part === '..') return true
    if (part === '' && i !== 0 && i !== parts.length - 1) return true
  }
  return false
}

/** The names of canonical decoded parts (their empty parts are a leading or a trailing `/`). */
function namesOf (parts: string[], trailingSlash: boolean): Resolved | Refusal {
  const out: string[] = []
  for (const part of parts) {
    if (part === '') continue
    if (part.includes('\0')) return refuse(400, 'NUL in the path')
    if (part.includes('/')) return refuse(404, 'an encoded separator in a name')
    out.push(part)
  }
  return { segments: out, trailingSlash }
}

interface PrefixPart {
  parameter: boolean
  /** The segment as matched (`::` is a literal `:`). */
  want: string
  /** ... and as it is written in a URL. */
  encoded: string
}

/** A route prefix's segments, parsed once per prefix (a registration has one or two). */
const prefixes = new Map<string, { parts: PrefixPart[], endsWithSlash: boolean }>()

function parsePrefix (prefix: string): { parts: PrefixPart[], endsWithSlash: boolean } {
  let parsed = prefixes.get(prefix)
  if (parsed !== undefined) return parsed
  const raw = prefix.split('/')
  const endsWithSlash = prefix.endsWith('/')
  if (endsWithSlash) raw.pop()
  const parts = raw.map((segment) => {
    const want = segment.replace(/::/g, ':')
    return { parameter: isParameter(segment), want, encoded: encodeURI(want).replace(/[?#]/g, encodeURIComponent) }
  })
  parsed = { parts, endsWithSlash }
  if (prefixes.size < 256) prefixes.set(prefix, parsed) // routes' prefixes: a handful per application
  return parsed
}

/**
 * The path below `prefix` that the raw request target `url` names. `prefix` is the route's
 * own (as registered, decoded); the router matched it already, so a mismatch is a 404.
 */
export function resolveRequestPath (url: string, prefix: string): RouteResolved | Refusal {
  let end = url.length
  const q = url.indexOf('?')
  if (q !== -1) end = q
  const hash = url.indexOf('#')
  if (hash !== -1 && hash < end) end = hash
  const rawPath = url.slice(0, end)
  if (!rawPath.startsWith('/')) return refuse(400, 'the request target is not a path')
  const raw = rawPath.split('/')
  const decoded: string[] = []
  for (const part of raw) {
    const d = decodeSegment(part)
    if (d === null) return refuse(400, 'the path is not valid percent-encoded UTF-8')
    decoded.push(d)
  }
  if (decoded.some((d) => d.includes('\0'))) return refuse(400, 'NUL in the path')
  // The whole path, the prefix's part included (a dot segment a parameter took counts too),
  // judged as the client spelled it; refused once the prefix matched, as @fastify/static does
  // (an empty parameter is a 404 before it).
  const canonical = !nonCanonical(decoded)
  // The prefix's segments, matched against the decoded ones: the names below start after it.
  const { parts: prefixParts, endsWithSlash: prefixEndsWithSlash } = parsePrefix(prefix)
  let at = 0
  const base: string[] = []
  for (let i = 0; i < prefixParts.length; i++, at++) {
    const got = decoded[at]
    if (got === undefined) return refuse(404, 'outside the prefix')
    const part = prefixParts[i]
    if (part.parameter) {
      // A parameter is one whole segment (the router's never span a `/`): the names below
      // start after it. (A dot segment there was refused with the rest of the path.)
      if (got === '') return refuse(404, 'outside the prefix')
      base.push(encodeURIComponent(got))
      continue
    }
    const want = part.want
    base.push(part.encoded)
    if (i === prefixParts.length - 1 && !prefixEndsWithSlash && want !== '') {
      // prefixAvoidTrailingSlash: `/assets*` also matches `/assetsx/...`; the rest of that
      // segment is the first name below.
      if (!got.startsWith(want)) return refuse(404, 'outside the prefix')
      const rest = got.slice(want.length)
      if (rest !== '') {
        decoded[at] = rest
        break
      }
      continue
    }
    if (got !== want) return refuse(404, 'outside the prefix')
  }
  if (!canonical) return refuse(403, 'a non-canonical path (an empty, `.` or `..` segment)')
  const below = namesOf(decoded.slice(at), rawPath.endsWith('/'))
  if (isRefusal(below)) return below
  return { segments: below.segments, trailingSlash: below.trailingSlash, base: base.join('/') + '/' }
}

/**
 * A name given by the application (reply.sendFile(name)): already decoded, `/`-separated.
 * Refused with 403 where it is not canonical, as a request's path is (and as @fastify/static
 * refuses it): such a name is often a URL's, and `a/../b` or `./b` would pass a check the
 * application made on its spelling.
 */
export function resolveName (name: string): Resolved | Refusal {
  if (name.includes('\0')) return refuse(400, 'NUL in the path')
  const parts = name.split('/')
  if (nonCanonical(parts)) return refuse(403, 'a non-canonical name (an empty, `.` or `..` segment)')
  return namesOf(parts, name.endsWith('/'))
}

/** Whether any segment is a dotfile or a dot-directory (`.env`, `.git/config`). */
export function hasDotSegment (segments: string[]): boolean {
  return segments.some((s) => s.startsWith('.'))
}

/** The path openat2 gets: relative, `.` for the root itself. */
export function relativePath (segments: string[]): string {
  return segments.length === 0 ? '.' : segments.join('/')
}

/** `/a/b` (`/a/b/` for a directory): what allowedPath and setHeaders see. */
export function displayPath (segments: string[], trailingSlash: boolean): string {
  const joined = '/' + segments.join('/')
  return trailingSlash && segments.length > 0 ? joined + '/' : joined
}
