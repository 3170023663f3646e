// globIgnore (wildcard: false): glob patterns of files that get no route. @fastify/static
// passes them to glob's `ignore`, whose rules are followed here with the matcher glob itself
// uses (minimatch): patterns are matched with dotfiles included (a `*` matches `.env`), as
// glob parses its ignore patterns; a pattern matches a file's path relative to the root (or,
// when it begins with `/`, the absolute path); a pattern ending in `/**` also skips every
// file below the directories it matches. Nothing here ever decides containment: a file kept
// out of the route table is simply not routed, and what is routed is still opened beneath
// the root at each request.
import path from 'node:path'
import { braceExpand, Minimatch, type MinimatchOptions } from 'minimatch'
import { FST_ZERO_COPY_INVALID_OPTION } from '../errors'

const OPTIONS: MinimatchOptions = { dot: true, nocomment: true, nonegate: true, optimizationLevel: 2 }

export interface GlobIgnore {
  /** Whether the file at `rel` (segments below `root`) gets no route. */
  file (root: string, rel: string[]): boolean
  /** Whether nothing below the directory at `rel` gets a route (skips the walk there). */
  below (root: string, rel: string[]): boolean
}

/** The option as given: undefined, a pattern or an array of patterns (glob's own forms). */
export function readGlobIgnore (value: unknown): GlobIgnore | null {
  if (value === undefined) return null
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || !list.every((p) => typeof p === 'string' && p.length > 0 && !p.includes('\0'))) {
    throw new FST_ZERO_COPY_INVALID_OPTION('globIgnore', 'expected a glob pattern or an array of glob patterns')
  }
  const all: Minimatch[] = []
  const children: Minimatch[] = []
  // Each brace alternative on its own, as glob does: `{dist/**,*.map}` skips below dist/.
  for (const pattern of (list as string[]).flatMap((p) => braceExpand(p, OPTIONS))) {
    const mm = new Minimatch(pattern.replace(/^(\.\/)+/, ''), OPTIONS)
    all.push(mm)
    if (/(^|\/)\*\*$/.test(mm.pattern)) children.push(mm)
  }
  const subject = (m: Minimatch, root: string, rel: string[]): string => {
    const joined = rel.join('/')
    return m.pattern.startsWith('/') ? path.posix.join(root, joined) : joined
  }
  return {
    file (root, rel) {
      return all.some((m) => {
        const s = subject(m, root, rel)
        return m.match(s) || m.match(s + '/')
      })
    },
    below (root, rel) {
      return children.some((m) => m.match(subject(m, root, rel) + '/'))
    }
  }
}
