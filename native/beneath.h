// Opens beneath a directory: every file a static root serves is opened relative to the root's
// descriptor with openat2(2) and RESOLVE_BENEATH, so the kernel itself refuses a path (a `..`,
// an absolute symlink, a symlink climbing out) that would leave the root, whatever the URL
// decoding above it concluded. Never a plain open of a joined path: where openat2 is refused
// (a kernel before 5.6, a seccomp profile) the root does not open at all.
#pragma once

#include <cstdint>

namespace zerocopy {

// The two kinds of open beneath a root: a file to serve, a directory to serve from (a root
// given per call, held as an O_PATH descriptor).
enum class BeneathKind : uint8_t { kFile = 0, kDirectory = 1 };

// openat2's flags for a kind (O_CLOEXEC always; O_NONBLOCK for files, so a FIFO cannot block).
uint64_t BeneathFlags(BeneathKind kind);

// Whether `resolve` holds only the RESOLVE_* bits a caller may ask for here (BENEATH,
// NO_MAGICLINKS, NO_SYMLINKS, NO_XDEV, IN_ROOT); RESOLVE_CACHED is this file's to add.
bool BeneathResolveValid(uint64_t resolve);

// Opens the directory `path` as a root (O_PATH | O_DIRECTORY | O_CLOEXEC), at registration,
// and checks that openat2 with RESOLVE_BENEATH answers beneath it. Returns the descriptor, or
// -errno: -ENOSYS or -EPERM when openat2 is refused (the caller fails closed), ENOENT,
// ENOTDIR, EACCES, ... for the root itself.
int OpenRoot(const char* path);

// On the event loop's thread: opens `path` beneath `dirfd` only if its lookup is all in the
// dentry cache (RESOLVE_CACHED) and, for a file, its filesystem is local (fsclass.h). Returns
// the descriptor, -EAGAIN when it must be opened off this thread (OpenBeneathNow on an
// engine's thread, or the ring's IORING_OP_OPENAT2), or -errno, the open's answer.
int OpenBeneathCached(int dirfd, const char* path, BeneathKind kind, uint64_t resolve);

// The open itself, which may wait on a disk or a server: on a disk thread only. Returns the
// descriptor or -errno.
int OpenBeneathNow(int dirfd, const char* path, BeneathKind kind, uint64_t resolve);

}  // namespace zerocopy
