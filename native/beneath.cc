#include "beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

#include "fsclass.h"

#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif

namespace zerocopy {
namespace {

constexpr uint64_t kCallerResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_IN_ROOT;

// Cleared for the process when RESOLVE_CACHED is unknown (EINVAL before 5.12): every open
// beneath a root then goes off the loop.
std::atomic<bool> cachedAvailable{true};

long Openat2(int dirfd, const char* path, uint64_t flags, uint64_t resolve) {
  open_how how{};
  how.flags = flags;
  how.resolve = resolve;
  long fd;
  do {
    fd = syscall(__NR_openat2, dirfd, path, &how, sizeof how);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

}  // namespace

uint64_t BeneathFlags(BeneathKind kind) {
  return kind == BeneathKind::kDirectory ? (O_PATH | O_DIRECTORY | O_CLOEXEC) : (O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

bool BeneathResolveValid(uint64_t resolve) {
  return (resolve & ~kCallerResolve) == 0;
}

int OpenRoot(const char* path) {
  // The root's own path is the application's, not a client's: resolved as given, but never
  // through a /proc magic link. Opened on the registering thread, at startup.
  long root = Openat2(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_MAGICLINKS);
  if (root == -ENOSYS || root == -EPERM) return static_cast<int>(root);  // refused: fail closed
  if (root < 0) return static_cast<int>(root);
  long probe = Openat2(static_cast<int>(root), ".", O_PATH | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
  if (probe < 0) {
    close(static_cast<int>(root));
    // EINVAL: a kernel that knows openat2 but not these resolve bits; refused all the same.
    return static_cast<int>(probe == -EINVAL ? -ENOSYS : probe);
  }
  close(static_cast<int>(probe));
  return static_cast<int>(root);
}

int OpenBeneathCached(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) {
  if (!cachedAvailable.load(std::memory_order_relaxed)) return -EAGAIN;
  long fd;
  if (kind == BeneathKind::kFile && RemoteMountsPresent()) {
    // The lookup without the filesystem's open (O_PATH), classified, then the open itself
    // through that very inode (/proc/self/fd names what the O_PATH descriptor holds, beneath
    // the root already) when its filesystem answers from memory.
    long pathFd = Openat2(dirfd, path, O_PATH | O_CLOEXEC, resolve | RESOLVE_CACHED);
    if (pathFd >= 0) {
      fd = -EAGAIN;
      if (!IsRemote(static_cast<int>(pathFd))) {
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%ld", pathFd);
        fd = open(self, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) fd = errno == ENOENT ? -EAGAIN : -errno;  // no /proc: off the loop
      }
      close(static_cast<int>(pathFd));
      return static_cast<int>(fd);
    }
    fd = pathFd;
  } else {
    fd = Openat2(dirfd, path, BeneathFlags(kind), resolve | RESOLVE_CACHED);
    if (fd >= 0) return static_cast<int>(fd);
  }
  switch (-fd) {
    case EINVAL:
      // The flags are fixed and the caller's resolve bits were checked: RESOLVE_CACHED is unknown.
      cachedAvailable.store(false, std::memory_order_relaxed);
      return -EAGAIN;
    case EAGAIN:  // the lookup needs more than the dentry cache
    case ENOSYS:  // cannot happen after OpenRoot succeeded; the thread's open answers
    case EPERM:
      return -EAGAIN;
    default:
      return static_cast<int>(fd);  // ENOENT, EXDEV (out of the root), ELOOP, EACCES, ...
  }
}

int OpenBeneathNow(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) {
  return static_cast<int>(Openat2(dirfd, path, BeneathFlags(kind), resolve));
}

}  // namespace zerocopy
