// wildcard: false: the files that get a route, listed at registration by the `glob` package
// with the options @fastify/static gives it (`**/**` under the root, following symlinks, no
// directories, dot names only with serveDotFiles, `globIgnore` as glob's `ignore`), so that
// globIgnore patterns mean exactly what they mean there. What glob would list beyond that is
// left out: a name whose symlink (in it or on its way) leads outside the root, a dangling
// one, and a symlinked directory that re-enters one already on its way (glob itself would
// walk such a loop until memory ran out). A listed name only gets a route: each request
// still goes through the gate and is opened beneath the root, so a name swapped for a
// symlink out after registration is refused then.
import path from 'node:path'
import { realpath } from 'node:fs/promises'
import { glob, Ignore, type IgnoreLike, type Path } from 'glob'
import { FST_ZERO_COPY_INVALID_OPTION } from '../errors'

// Directories walked below the root, at most: no static site is this deep, and it bounds a
// chain of symlinks that the loop check below would not see through.
const MAX_DEPTH = 64

/** The option as given: undefined, a pattern or an array of patterns (glob's own forms). */
export function readGlobIgnore (value: unknown): string[] | null {
  if (value === undefined) return null
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || !list.every((p) => typeof p === 'string' && p.length > 0 && !p.includes('\0'))) {
    throw new FST_ZERO_COPY_INVALID_OPTION('globIgnore', 'expected a glob pattern or an array of glob patterns')
  }
  return [...list as string[]]
}

/** The regular files under `root` that get a route, as segments relative to it. */
export async function routableFiles (root: string, dot: boolean, ignore: string[] | null): Promise<string[][]> {
  let real: string
  try {
    real = await realpath(root)
  } catch {
    return [] // a root missing at registration: served as 404s, as the routes decide
  }
  // Names are walked from the root as given (absolute ignore patterns match that spelling,
  // as with @fastify/static); containment compares real paths.
  const top = path.resolve(root)
  const beneath = (p: string): boolean => p === real || p.startsWith(real.endsWith(path.sep) ? real : real + path.sep)
  const realOf = (p: Path): string | undefined => (p.realpathCached() ?? p.realpathSync())?.fullpath()
  const patterns: IgnoreLike | null = ignore === null || ignore.length === 0 ? null : new Ignore(ignore, {})

  // A symlink in the name, or on its way down from the root, that leads out (or nowhere).
  const escapes = (p: Path): boolean => {
    for (let q: Path | undefined = p; q !== undefined && q.fullpath() !== top; q = q.parent) {
      if (!q.isSymbolicLink()) continue
      const target = realOf(q)
      if (target === undefined || !beneath(target)) return true
    }
    return false
  }
  // A symlinked directory whose target is a directory already on its way (by the names
  // walked, or physically above where the link lies): entering it would never end.
  const loops = (p: Path): boolean => {
    if (!p.isSymbolicLink()) return false
    const target = realOf(p)
    if (target === undefined) return true
    const parent = p.parent === undefined ? undefined : realOf(p.parent)
    if (parent !== undefined && (parent === target || parent.startsWith(target.endsWith(path.sep) ? target : target + path.sep))) return true
    for (let q = p.parent; q !== undefined; q = q.parent) {
      if (realOf(q) === target) return true
      if (q.fullpath() === top) break
    }
    return false
  }
  const filter: IgnoreLike = {
    ignored: (p) => escapes(p) || (patterns?.ignored?.(p) ?? false),
    childrenIgnored: (p) => escapes(p) || loops(p) || (patterns?.childrenIgnored?.(p) ?? false)
  }
  const found = await glob('**/**', {
    cwd: top,
    follow: true,
    nodir: true,
    dot,
    ignore: filter,
    maxDepth: MAX_DEPTH,
    withFileTypes: true
  })
  const out: string[][] = []
  for (const p of found) {
    // follow + nodir lists a symlink to a file by its own name; keep regular files only.
    const file = p.isSymbolicLink() ? p.realpathCached() : p
    if (file === undefined || !file.isFile()) continue
    out.push(p.relativePosix().split('/'))
  }
  return out
}
