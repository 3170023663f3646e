// Opens beneath a directory: every file a static root serves is opened relative to the root's
// descriptor with openat2(2) and RESOLVE_BENEATH, so the kernel itself refuses a path (a `..`,
// an absolute symlink, a symlink climbing out) that would leave the root, whatever the URL
// decoding above it concluded. Never a plain open of a joined path: where openat2 is refused
// (a kernel before 5.6, a seccomp profile) the root does not open at all.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zerocopy {

// The two kinds of open beneath a root: a file to serve, a directory to serve from (a root
// given per call, held as an O_PATH descriptor).
enum class BeneathKind : uint8_t { kFile = 0, kDirectory = 1 };

// How this process opens beneath a root, chosen once (a harmless openat2 at the first call):
// openat2 where the kernel answers it, else the walk (ENOSYS, EPERM or EINVAL: a kernel before
// 5.6, a seccomp profile that refuses or does not know the call, gVisor).
enum class BeneathMode : uint8_t { kOpenat2 = 0, kWalk = 1 };
BeneathMode CurrentBeneathMode();

// A bit of this file's own above the kernel's RESOLVE_* bits, never passed to the kernel: this
// open goes by the walk whatever the mode (tests compare the walk with openat2 through it).
constexpr uint64_t kBeneathWalk = 1ull << 62;

// openat2's flags for a kind (O_CLOEXEC always; O_NONBLOCK for files, so a FIFO cannot block).
uint64_t BeneathFlags(BeneathKind kind);

// Whether `resolve` holds only the RESOLVE_* bits a caller may ask for here (BENEATH,
// NO_MAGICLINKS, NO_SYMLINKS, NO_XDEV, IN_ROOT); RESOLVE_CACHED is this file's to add.
bool BeneathResolveValid(uint64_t resolve);

// Opens the directory `path` as a root (O_PATH | O_DIRECTORY | O_CLOEXEC), at registration,
// never through a /proc magic link: with openat2 (and checks that RESOLVE_BENEATH answers
// beneath it), or in walk mode by the walk. Returns the descriptor, or -errno: ENOENT,
// ENOTDIR, EACCES, ... for the root itself (-ENOSYS or -EPERM only if openat2, which answered
// the probe, is refused afterwards: the caller fails closed).
int OpenRoot(const char* path);

// On the event loop's thread: opens `path` beneath `dirfd` only if its lookup is all in the
// dentry cache (RESOLVE_CACHED) and, for a file, its filesystem is local (fsclass.h). Returns
// the descriptor, -EAGAIN when it must be opened off this thread (OpenBeneathNow on an
// engine's thread, or the ring's IORING_OP_OPENAT2), or -errno, the open's answer. In walk
// mode always -EAGAIN: no single call tells whether a walk's lookups are all cached.
int OpenBeneathCached(int dirfd, const char* path, BeneathKind kind, uint64_t resolve);

// The open itself, which may wait on a disk or a server: on a disk thread only. openat2, or
// the walk in walk mode or when `resolve` holds kBeneathWalk. Returns the descriptor or -errno.
int OpenBeneathNow(int dirfd, const char* path, BeneathKind kind, uint64_t resolve);

// The walk: what openat2(dirfd, path, BeneathFlags(kind), resolve) answers, without openat2.
// `resolve` must hold RESOLVE_NO_MAGICLINKS and may hold RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS (else -EINVAL). Each component is opened alone with O_NOFOLLOW beneath
// the directory descriptor the walk holds for its parent; a symlink is read (readlinkat on the
// link's own O_PATH descriptor, so what is read is what was opened) and its body walked in its
// place: an absolute body is -EXDEV beneath a root, a /proc magic link -ELOOP, the 41st link
// -ELOOP (RESOLVE_NO_SYMLINKS: the first), and `..` returns to the descriptor it came from
// (-EXDEV above the start beneath a root). A rename or mount meanwhile cannot move it out:
// it never looks a parent up again. One deliberate difference: kWalkMaxDepth directories
// below the start or more is -ENAMETOOLONG (the walk holds a descriptor per level). May wait on a
// disk: on a disk thread, or at registration.
constexpr size_t kWalkMaxDepth = 256;
int OpenBeneathWalk(int dirfd, const char* path, BeneathKind kind, uint64_t resolve);

}  // namespace zerocopy
