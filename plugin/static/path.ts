// From a request's raw URL to a path relative to a root, decided once and before anything
// else looks at it (allowedPath, the dotfile policy, the open): the router and the filesystem
// must never disagree about what a path names.
// - The raw URL is percent-decoded exactly once, segment by segment: only a literal `/`
//   separates. A decoded `/` (%2F) names no file (404); a backslash, literal or %5C, is a
//   character of a name, never a separator; NUL (literal or %00) and invalid UTF-8 (overlong
//   forms included) are a 400.
// - Empty segments (`//`) and `.` are dropped; `..` removes the segment before it, and a `..`
//   with nothing before it (climbing above the prefix) is refused (403).
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

/** Resolves `.` and `..` of already decoded segments; a refusal when a `..` climbs above them. */
function resolveDots (parts: string[], trailing: boolean): Resolved | Refusal {
  const out: string[] = []
  let trailingSlash = trailing
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (part === '' || part === '.') {
      if (i === parts.length - 1 && part === '.') trailingSlash = true
      continue
    }
    if (part === '..') {
      if (out.length === 0) return refuse(403, 'the path climbs above the root')
      out.pop()
      if (i === parts.length - 1) trailingSlash = true
      continue
    }
    if (part.includes('\0')) return refuse(400, 'NUL in the path')
    if (part.includes('/')) return refuse(404, 'an encoded separator in a name')
    out.push(part)
  }
  return { segments: out, trailingSlash }
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
  // The prefix's segments, matched against the decoded ones before any dot segment is
  // resolved: a `..` right after the prefix cannot climb above it.
  const prefixParts = prefix.split('/')
  const prefixEndsWithSlash = prefix.endsWith('/')
  if (prefixEndsWithSlash) prefixParts.pop()
  let at = 0
  const base: string[] = []
  for (let i = 0; i < prefixParts.length; i++, at++) {
    const got = decoded[at]
    if (got === undefined) return refuse(404, 'outside the prefix')
    if (isParameter(prefixParts[i])) {
      // A parameter is one whole segment (the router's never span a `/`): the names below
      // start after it. A dot segment there (`/../assets/x`) is refused as a climb is.
      if (got === '') return refuse(404, 'outside the prefix')
      if (got === '.' || got === '..') return refuse(403, 'a dot segment in the prefix')
      base.push(encodeURIComponent(got))
      continue
    }
    const want = prefixParts[i].replace(/::/g, ':')
    base.push(encodeURI(want).replace(/[?#]/g, encodeURIComponent))
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
  const below = resolveDots(decoded.slice(at), rawPath.endsWith('/'))
  if (isRefusal(below)) return below
  return { segments: below.segments, trailingSlash: below.trailingSlash, base: base.join('/') + '/' }
}

/**
 * A name given by the application (reply.sendFile(name)): already decoded, `/`-separated.
 * Dot segments are resolved the same way; a climb above the root is refused.
 */
export function resolveName (name: string): Resolved | Refusal {
  if (name.includes('\0')) return refuse(400, 'NUL in the path')
  return resolveDots(name.split('/'), name.endsWith('/'))
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
