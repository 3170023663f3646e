// The open beneath a root without the native addon (macOS, Windows, a Linux host where the
// addon could not be built or loaded): the second implementation of the `Descriptors` calls
// open.ts and the request path use, chosen once at registration, so the candidates and the
// gate are the same code in both modes. It holds what user space can:
// - every name is checked lexically (no `..`, no absolute name, no separator in a segment);
// - with symlinks 'inside' the name is resolved a component at a time by RESOLVE_BENEATH's
//   rules (a symlink's target walked in its place; an absolute one, or one climbing above the
//   root, refused); with 'none' any symlink is refused; 'follow' walks from the filesystem's
//   root, anywhere;
// - the file is opened by its resolved name (no symlink left in it) with O_NOFOLLOW where the
//   platform has it;
// - after the open, what was opened is checked again: its real path (/proc/self/fd/N where
//   there is one, else the name's realpath whose stat must be the descriptor's dev+ino) must
//   still lie beneath the root, so a directory swapped for a symlink before the open is caught.
// What only the kernel's RESOLVE_BENEATH holds (README): a swap between the open and the check
// that is swapped back (where there is no /proc), a directory swapped during the walk, /proc
// magic links (read here as ordinary symlinks).
// Nothing here waits on a disk on the event loop's thread: every call is libuv's pool.
import path from 'node:path'
import { constants, open, close, fstat, lstat, readlink, realpath, stat, realpathSync, statSync, type Stats } from 'node:fs'
import { BENEATH_DIRECTORY, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, AT_FDCWD, type BeneathKind, type Descriptors } from '../native'
import { errnoError } from './open'

/** A directory opened beneath a root: no descriptor in user space, its real path and identity. */
interface Directory {
  real: string
  dev: number
  ino: number
}

// Directory handles are numbers far above any descriptor, so a handle is never mistaken for one.
const HANDLE_BASE = 0x40000000
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0
// A FIFO or a device opened to be served must not hold a pool thread in open(2).
const O_NONBLOCK = constants.O_NONBLOCK ?? 0
const PROC_FDS = process.platform === 'linux'

type Done = (error: string | null, fd: number) => void

function beneath (real: string, root: string): boolean {
  if (real === root) return true
  const withSep = root.endsWith(path.sep) ? root : root + path.sep
  return real.startsWith(withSep)
}

/** `rel` as segments, or null when a segment could step out or name another place. */
function segmentsOf (rel: string): string[] | null {
  if (rel === '.' || rel === '') return []
  if (path.isAbsolute(rel) || rel.includes('\0')) return null
  const parts = rel.split('/')
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..') return null
    if (path.sep === '\\' && (p.includes('\\') || p.includes(':'))) return null // a drive or a separator on Windows
  }
  return parts
}

/** What separates a path's names: `/`, and on Windows `\\` too. */
const SEPARATORS = path.sep === '\\' ? /[\\/]/ : '/'

/** Symlinks followed in one resolution at most, as the kernel's MAXSYMLINKS. */
const MAX_LINKS = 40

/**
 * Resolves `segments` from `root` (a real path) as openat2 does, a component at a time in
 * libuv's pool: a symlink's target is walked in its place, MAX_LINKS at most. `contained`
 * (RESOLVE_BENEATH): a target that is absolute or climbs above the root is refused (EXDEV)
 * even if it would come back; otherwise `root` is the filesystem's and `at` where the walk
 * starts. `noSymlinks`: any symlink is refused (ELOOP). The answer is a path without symlinks
 * (beneath the root by construction when contained), or the errno an open would give.
 */
function walkBeneath (root: string, start: string[], segments: string[], contained: boolean, noSymlinks: boolean, done: (err: string | null, real: string | null) => void): void {
  const pending = [...segments]
  const at: string[] = [...start]
  let links = 0
  let isDir = true
  const step = (): void => {
    const name = pending.shift()
    if (name === undefined) {
      done(null, path.join(root, ...at))
      return
    }
    if (name === '' || name === '.') {
      // A target's trailing `/` (or `/.`): what is reached must be a directory.
      if (!isDir) done('ENOTDIR', null)
      else step()
      return
    }
    if (name === '..') {
      if (!isDir) {
        done('ENOTDIR', null) // `file/..`
        return
      }
      if (at.length === 0 && contained) {
        done('EXDEV', null) // above the root, as RESOLVE_BENEATH refuses it
        return
      }
      at.pop() // at the filesystem's root, `..` stays there
      isDir = true
      step()
      return
    }
    if (!isDir) {
      done('ENOTDIR', null)
      return
    }
    const here = path.join(root, ...at, name)
    lstat(here, (err, st) => {
      if (err !== null) {
        done(err.code ?? 'EIO', null)
        return
      }
      if (!st.isSymbolicLink()) {
        at.push(name)
        isDir = st.isDirectory()
        step()
        return
      }
      if (noSymlinks || ++links > MAX_LINKS) {
        done('ELOOP', null)
        return
      }
      readlink(here, (linkErr, target) => {
        if (linkErr !== null) {
          done(linkErr.code ?? 'EIO', null)
          return
        }
        if (target === '') {
          done('ENOENT', null)
          return
        }
        if (path.isAbsolute(target)) {
          if (contained) {
            done('EXDEV', null) // an absolute target: never, as RESOLVE_BENEATH
            return
          }
          at.length = 0 // from the filesystem's root
          isDir = true
        }
        pending.unshift(...target.split(SEPARATORS))
        step()
      })
    })
  }
  step()
}

export class UserSpaceOpener implements Descriptors {
  readonly beneathMode = 'userspace' as const
  private readonly dirs = new Map<number, Directory>()
  private next = HANDLE_BASE

  /** How many directory handles are held (tests: none is left behind). */
  get heldDirectories (): number {
    return this.dirs.size
  }

  /** The root, at registration (its real path and identity); throws the errno as the addon does. */
  openRoot (rootPath: string): number {
    const real = realpathSync(rootPath)
    const st = statSync(real)
    if (!st.isDirectory()) throw errnoError('ENOTDIR')
    return this.hold({ real, dev: st.dev, ino: st.ino })
  }

  private hold (dir: Directory): number {
    const handle = this.next++
    this.dirs.set(handle, dir)
    return handle
  }

  /** The path a directory handle is read through (listings, letter case). */
  dirPath (fd: number): string {
    const dir = this.dirs.get(fd)
    if (dir === undefined) throw errnoError('EBADF')
    return dir.real
  }

  /** Never at once: every lookup is a filesystem call, done in libuv's pool by openBeneath. */
  openBeneathCached (): number {
    return -1
  }

  openBeneath (dirfd: number, rel: string, kind: BeneathKind, resolve: number, done: Done): void {
    let base: string
    let segments: string[] | null
    if (dirfd === AT_FDCWD) {
      // A root given per call (reply.sendFile(name, root)): an absolute directory, as it is.
      if (!path.isAbsolute(rel) || rel.includes('\0')) {
        done('EINVAL', -1)
        return
      }
      base = path.parse(rel).root
      segments = rel.slice(base.length).split(SEPARATORS)
      resolve &= ~(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
    } else {
      const dir = this.dirs.get(dirfd)
      segments = segmentsOf(rel)
      if (dir === undefined) {
        done('EBADF', -1)
        return
      }
      if (segments === null) {
        done('EXDEV', -1) // as RESOLVE_BENEATH answers a step out
        return
      }
      base = dir.real
    }
    const contained = (resolve & RESOLVE_BENEATH) !== 0
    // Resolved first: the open then names no symlink, and O_NOFOLLOW refuses one put in its place.
    const resolved = (err: string | null, real: string | null): void => {
      if (err !== null || real === null) done(err ?? 'EIO', -1)
      else if (contained && !beneath(real, base)) done('EXDEV', -1)
      else if (kind === BENEATH_DIRECTORY) this.openDirectory(real, base, contained, done)
      else this.openFile(real, base, contained, done)
    }
    const noSymlinks = (resolve & RESOLVE_NO_SYMLINKS) !== 0
    if (contained) {
      walkBeneath(base, [], segments, true, noSymlinks, resolved)
    } else {
      // 'follow' (and a root given per call): from the filesystem's root, symlinks lead anywhere.
      const top = path.parse(base).root
      walkBeneath(top, base.slice(top.length).split(path.sep).filter((p) => p !== ''), segments, false, noSymlinks, resolved)
    }
  }

  private openDirectory (real: string, base: string, contained: boolean, done: Done): void {
    stat(real, (err, st) => {
      if (err !== null) {
        done(err.code ?? 'EIO', -1)
        return
      }
      if (!st.isDirectory()) {
        done('ENOTDIR', -1)
        return
      }
      // The name's real path again: a component swapped for a symlink since is seen here.
      realpath(real, (again, now) => {
        if (again !== null) done(again.code ?? 'EIO', -1)
        else if (now !== real || (contained && !beneath(now, base))) done('EXDEV', -1)
        else done(null, this.hold({ real, dev: st.dev, ino: st.ino }))
      })
    })
  }

  private openFile (real: string, base: string, contained: boolean, done: Done): void {
    open(real, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK, (err, fd) => {
      if (err !== null) {
        done(err.code ?? 'EIO', -1)
        return
      }
      fstat(fd, (statErr, st) => {
        if (statErr !== null) {
          close(fd, () => done(statErr.code ?? 'EIO', -1))
          return
        }
        this.opened(fd, real, st, (where) => {
          if (where !== null && (!contained || beneath(where, base))) {
            done(null, fd)
            return
          }
          close(fd, () => done('EXDEV', -1)) // what was opened is not what was checked
        })
      })
    })
  }

  /** The real path of what `fd` opened (null: it cannot be told to be `real`'s file). */
  private opened (fd: number, real: string, st: Stats, done: (where: string | null) => void): void {
    const byName = (): void => {
      realpath(real, (err, now) => {
        if (err !== null || now !== real) {
          done(null)
          return
        }
        stat(now, (statErr, named) => done(statErr === null && named.dev === st.dev && named.ino === st.ino ? now : null))
      })
    }
    if (!PROC_FDS) {
      byName()
      return
    }
    // The kernel's own name of the open file: no second lookup, no window.
    readlink(`/proc/self/fd/${fd}`, (err, link) => {
      if (err !== null) byName() // no /proc mounted
      else done(link === real ? link : null)
    })
  }

  /** A directory handle forgets its path; a file's descriptor is the caller's to close (false). */
  closeFile (fd: number): boolean {
    if (fd >= HANDLE_BASE) {
      this.dirs.delete(fd)
      return true
    }
    return false
  }

  /** Every file is stat'ed and closed in libuv's pool: nothing tells a local file from a remote one here. */
  /** Never a read on the event loop here: without the addon, every read goes through libuv's pool. */
  readCached (): number {
    return -1
  }

  isRemote (): boolean {
    return true
  }

  openCached (): number {
    return -1
  }

  dup (): number {
    throw errnoError('ENOSYS')
  }

  adopt (): void {}
}
