// Letter case on a case-insensitive filesystem (vfat, exfat, SMB, a casefold directory, a FUSE
// filesystem that folds): `/PRIVATE/x` opens the file stored as `private/x`, so a decision
// taken on the request's spelling (allowedPath, the dotfile policy, setHeaders) would not be
// about the file served. On a root found case-insensitive at registration, each name of a
// request is replaced by the name its directory stores before anything looks at it: the
// exact name when the directory has it, else the one entry equal to it once case is folded.
// No match, or two (a folding broader than the filesystem's), is a 404: only names read from
// the directory are ever opened, so a filesystem that folds differently from this code can
// make a request miss, never reach a file under a spelling the application did not see.
// Directories are opened beneath the root (openat2, the request's resolve flags) off the
// loop, and read in libuv's pool through their descriptor.
import { promises as fsp, readdir } from 'node:fs'

type Done<T> = (err: NodeJS.ErrnoException | null, value: T | null) => void
/** Opens the directory `rel` (relative to the root, `.` for itself) beneath the root: O_PATH. */
export type OpenDirectory = (rel: string, done: (err: NodeJS.ErrnoException | null, fd: number) => void) => void

// statfs f_type of filesystems that fold case whatever their directories hold: FAT, exFAT,
// CIFS and SMB2/3 (a server may be case-sensitive; mapping costs nothing in correctness).
const FOLDING = new Set([0x4d44, 0x2011bab0, 0xff534d42, 0xfe534d42])
// Local filesystems that never fold unless a directory is marked casefold (+F): an empty root
// there is taken as case-sensitive (a casefold root with entries is caught by the probe).
const SENSITIVE = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x858458f6, 0xf2f52010, 0x794c7630])

/** The comparison key of a name: canonical composition, then lower case. */
function fold (name: string): string {
  return name.normalize('NFC').toLowerCase()
}

/** `name` with its ASCII letters' case swapped. */
function swapAscii (name: string): string {
  return name.replace(/[A-Za-z]/g, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()))
}

/**
 * Whether lookups beneath the root (an O_PATH descriptor) ignore letter case: its filesystem
 * type where that says so, else a look-up of a case-swapped name of an entry it holds (the
 * same inode by another spelling). Inconclusive (no entry with an ASCII letter, the root not
 * readable): case-insensitive, unless the filesystem is a local one that folds only in marked
 * directories. At registration, off the loop. `self`: the path the root is read through.
 */
export async function probeCaseInsensitive (self: string): Promise<boolean> {
  let type = -1
  try {
    type = Number((await fsp.statfs(self)).type)
  } catch {}
  if (FOLDING.has(type)) return true
  let names: string[]
  try {
    names = await fsp.readdir(self)
  } catch {
    return !SENSITIVE.has(type)
  }
  const present = new Set(names)
  const candidates = names.filter((n) => /[A-Za-z]/.test(n) && !present.has(swapAscii(n))).slice(0, 3)
  for (const name of candidates) {
    let exact
    try {
      exact = await fsp.lstat(`${self}/${name}`)
    } catch {
      continue // gone since the listing
    }
    try {
      const other = await fsp.lstat(`${self}/${swapAscii(name)}`)
      return other.ino === exact.ino && other.dev === exact.dev
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    }
  }
  return !SENSITIVE.has(type)
}

/** Whether /proc/self/fd is there to read a directory through its descriptor. */
export async function procFds (): Promise<boolean> {
  try {
    await fsp.access('/proc/self/fd')
    return true
  } catch {
    return false
  }
}

/** The entries of the directory at `dir` (stored names, relative to the root). */
function list (openDirectory: OpenDirectory, close: (fd: number) => void, where: (fd: number) => string, dir: string[], done: Done<string[]>): void {
  openDirectory(dir.length === 0 ? '.' : dir.join('/'), (err, fd) => {
    if (err !== null) {
      done(err, null)
      return
    }
    readdir(where(fd), (readErr, names) => {
      close(fd)
      done(readErr, readErr === null ? names : null)
    })
  })
}

/** The stored name `want` stands for among `names`; null when none or more than one. */
function pick (names: string[], want: string): string | null {
  if (names.includes(want)) return want
  const key = fold(want)
  let found: string | null = null
  for (const n of names) {
    if (fold(n) !== key || n.includes('/')) continue
    if (found !== null) return null // ambiguous: refuse rather than guess
    found = n
  }
  return found
}

export interface StoredNames {
  /**
   * `segments` as the directories store them (null: not there), each directory read once;
   * the first `known` are stored names already (read by this request), and are not read again.
   */
  map (segments: string[], known: number, done: Done<string[]>): void
}

/** `where`: the path a directory opened is read through (/proc/self/fd/N, or its path in user space). */
export function storedNames (openDirectory: OpenDirectory, close: (fd: number) => void, where: (fd: number) => string): StoredNames {
  const walk = (segments: string[], known: number, done: Done<string[]>): void => {
    const out: string[] = segments.slice(0, known)
    const step = (i: number): void => {
      if (i === segments.length) {
        done(null, out)
        return
      }
      list(openDirectory, close, where, out, (err, names) => {
        if (err !== null) {
          done(err, null)
          return
        }
        const stored = pick(names!, segments[i])
        if (stored === null) {
          done(null, null)
          return
        }
        if (stored === '' || stored === '.' || stored === '..') {
          done(null, null) // no entry is spelled so; never a step up or in place
          return
        }
        out.push(stored)
        step(i + 1)
      })
    }
    step(out.length)
  }
  return {
    map: (segments, known, done) => walk(segments, Math.min(known, segments.length), done)
  }
}
