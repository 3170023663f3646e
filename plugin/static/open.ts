// Opens beneath a root: the one place the static plugin turns a relative name into a
// descriptor (openat2 RESOLVE_BENEATH, native/beneath.h), and stats what it opened.
import { getSystemErrorName } from 'node:util'
import { OpenFile, statOf } from '../file'
import { BENEATH_FILE, type Descriptors } from '../native'
import type { Served } from './cache'

export type OpenDone = (err: NodeJS.ErrnoException | null, fd: number) => void

/** The errors that mean "no such file here": the next candidate is tried. */
export const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'EXDEV', 'ELOOP', 'ENAMETOOLONG', 'ENXIO', 'ENODEV'])

export function errnoError (code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code })
}

/** Opens `rel` beneath `dirfd`: at once when the lookup is cached and local (never in walk mode), else off the loop. */
export function openBeneath (addon: Descriptors, dirfd: number, rel: string, kind: 0 | 1, resolve: number, done: OpenDone): void {
  let fd: number
  try {
    fd = addon.openBeneathCached(dirfd, rel, kind, resolve, true)
  } catch (err) {
    done(err as NodeJS.ErrnoException, -1)
    return
  }
  if (fd >= 0) {
    done(null, fd)
    return
  }
  if (fd < -1) {
    // The open's failure as -errno (quiet) rather than thrown: a miss, the common answer for
    // a pre-compressed sibling or an extension tried, costs a fraction of a throw.
    done(errnoError(getSystemErrorName(fd)), -1) // libuv's name for -errno (EAGAIN, not EWOULDBLOCK)
    return
  }
  try {
    addon.openBeneath(dirfd, rel, kind, resolve, (code, opened) => done(code === null ? null : errnoError(code), opened))
  } catch (err) {
    done(err as NodeJS.ErrnoException, -1)
  }
}

/** A file opened beneath `dirfd` and stat'ed, without the open-file cache; `path` is its name for responses. */
export function openUncached (addon: Descriptors, dirfd: number, rel: string, path: string, resolve: number, done: Served): void {
  openBeneath(addon, dirfd, rel, BENEATH_FILE, resolve, (err, fd) => {
    if (err !== null) {
      done(err)
      return
    }
    const file = new OpenFile(fd, path, true, addon.isRemote(fd), addon)
    statOf(fd, file.remote, (statErr, stat) => {
      if (statErr !== null || stat === null) {
        file.close()
        done(statErr ?? errnoError('EIO'))
        return
      }
      done(null, file, stat)
    })
  })
}
