// A path whose lookup is in the dentry cache opens with one openat2 here rather than a request
// that completes on the ring's next reap, one turn of the event loop later. A cached file's
// first bytes go out with one sendfile(2) on the event loop's thread: the same page
// references a splice would take, without handing the response to io_uring's workers and
// back (measured: that hand-off was most of the plugin's cost on a 1 MiB file). Only pages
// already in the page cache are sent this way, so the thread never waits for the disk: a
// page evicted between the check and the send is the one exception, and costs one read.
// Everything else (an uncached range, a full socket, an error) is the ring's. Both are for
// files on local filesystems only (fsclass.h): elsewhere an open, a getattr or a read of a
// cached page may still ask a server or a daemon.
#include "cached.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <linux/openat2.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <vector>

#include "fsclass.h"

// Debian 12's headers predate cachestat (Linux 6.5); its number is 451 on every architecture.
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
// ... and RESOLVE_CACHED (Linux 5.12).
#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif

namespace zerocopy {
namespace {

struct CachestatRange {
  uint64_t off;
  uint64_t len;
};

struct Cachestat {
  uint64_t nrCache;
  uint64_t nrDirty;
  uint64_t nrWriteback;
  uint64_t nrEvicted;
  uint64_t nrRecentlyEvicted;
};

// Cleared for the process when openat2 or RESOLVE_CACHED is unknown (ENOSYS before 5.6, EINVAL
// before 5.12): the ring opens every path.
std::atomic<bool> openat2Available{true};

// Cleared for the process when preadv2 or RWF_NOWAIT is unknown (ENOSYS: a kernel before 4.6 or
// a seccomp profile; EOPNOTSUPP for every file: before 4.14).
std::atomic<bool> nowaitAvailable{true};

// Cleared for the process at the first ENOSYS (a kernel before 6.5, or a seccomp profile
// that does not know the call): from then on every file goes through the ring.
std::atomic<bool> available{true};

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

// Whether every page of the range is in the page cache and holds its data. cachestat counts
// the folios in the cache, and that includes folios still being read (another request's
// readahead): sendfile would wait for that read. mincore reports a page only once it is up to
// date. cachestat goes first: it is the cheaper no for a range not all present, and its EPERM
// tells the files mincore would lie about (it reports every page resident for a file the
// caller may neither write nor owns, the same rule cachestat refuses by).
bool CachedRange(int file, uint64_t offset, uint64_t length) {
  if (!available.load(std::memory_order_relaxed)) return false;
  CachestatRange range{offset, length};
  Cachestat stat{};
  if (syscall(__NR_cachestat, file, &range, &stat, 0) != 0) {
    // ENOSYS: never here. EPERM: not this file. The kernel answers cachestat only for a file
    // the caller owns or may write (measured on 6.18: a root-owned 0644 file read as nobody),
    // and a seccomp profile may refuse it with EPERM too; either way the ring sends it.
    // EOPNOTSUPP (hugetlbfs), EBADF, EINVAL: not this file either.
    if (errno == ENOSYS) available.store(false, std::memory_order_relaxed);
    return false;
  }
  uint64_t first = offset / kPage;
  uint64_t pages = (offset + length - 1) / kPage - first + 1;
  if (stat.nrCache < pages) return false;
  size_t span = static_cast<size_t>(pages * kPage);
  void* map = mmap(nullptr, span, PROT_READ, MAP_SHARED, file, static_cast<off_t>(first * kPage));
  if (map == MAP_FAILED) return false;
  std::vector<unsigned char> resident(static_cast<size_t>(pages));
  bool uptodate = mincore(map, span, resident.data()) == 0;
  for (size_t i = 0; uptodate && i < resident.size(); i++) uptodate = (resident[i] & 1) != 0;
  munmap(map, span);
  return uptodate;
}

// The lookup of `path` from the dentry cache without opening the file (O_PATH calls no
// filesystem's open), then, on a local filesystem, the open itself through the same file
// (/proc/self/fd reopens that inode, whatever the path names by now).
int OpenCachedClassified(const char* path) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_CACHED;
  long pathFd = syscall(__NR_openat2, AT_FDCWD, path, &how, sizeof how);
  if (pathFd < 0) return -errno;
  int fd = -EAGAIN;  // remote: the ring opens it on its workers
  if (!IsRemote(static_cast<int>(pathFd))) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%ld", pathFd);
    fd = open(self, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fd = errno == ENOENT ? -EAGAIN : -errno;  // no /proc: the ring's open
  }
  close(static_cast<int>(pathFd));  // an O_PATH descriptor has nothing to flush
  return fd;
}

}  // namespace

int OpenCached(const char* path) {
  if (!openat2Available.load(std::memory_order_relaxed)) return -EAGAIN;
  int err;
  if (RemoteMountsPresent()) {
    int fd = OpenCachedClassified(path);
    if (fd >= 0) return fd;
    err = -fd;
  } else {
    open_how how{};
    how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
    how.resolve = RESOLVE_CACHED;
    long fd = syscall(__NR_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    err = errno;
  }
  switch (err) {
    case ENOSYS:
    case EINVAL:  // the flags are fixed, so only an unknown RESOLVE_CACHED
      openat2Available.store(false, std::memory_order_relaxed);
      return -EAGAIN;
    case EPERM:
      // A seccomp profile that does not know openat2, or the file's own answer: the ring's
      // open (openat) tells which.
    case EAGAIN:
    case EINTR:
      return -EAGAIN;
    default:
      return -err;  // ENOENT, ENOTDIR, EACCES, ELOOP, ENAMETOOLONG, EMFILE, ...: the answer
  }
}

bool PageCached(int file, uint64_t offset, uint64_t length) {
  return length > 0 && offset <= static_cast<uint64_t>(LLONG_MAX) - length && CachedRange(file, offset, length);
}

int64_t ReadCached(int file, uint8_t* buffer, uint64_t length, uint64_t offset) {
  if (!nowaitAvailable.load(std::memory_order_relaxed)) return -1;
  if (offset > static_cast<uint64_t>(LLONG_MAX) - length || length > static_cast<uint64_t>(SSIZE_MAX)) return -1;
  uint64_t got = 0;
  while (got < length) {
    iovec iov{buffer + got, static_cast<size_t>(length - got)};
    ssize_t n = preadv2(file, &iov, 1, static_cast<off_t>(offset + got), RWF_NOWAIT);
    if (n > 0) {
      // A short count is either the end of the file or the end of what is cached: the next
      // call tells (0 at the end, EAGAIN before an uncached page).
      got += static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) break;  // the file ends here (it shrank since its stat): the caller decides
    switch (errno) {
      case EINTR:
        continue;
      case ENOSYS:
        nowaitAvailable.store(false, std::memory_order_relaxed);
        return -1;
      case EAGAIN:      // a page not cached, or locked for a read in flight
      case EOPNOTSUPP:  // this filesystem cannot promise not to wait
      default:          // EIO, EBADF, EISDIR, EINVAL...: the ordinary read meets it and reports it
        return -1;
    }
  }
  return static_cast<int64_t>(got);
}

uint64_t SendCached(int sock, int file, uint64_t offset, uint64_t length) {
  if (length == 0 || offset > static_cast<uint64_t>(LLONG_MAX) - length) return 0;
  if (!CachedRange(file, offset, length)) return 0;
  uint64_t sent = 0;
  while (sent < length) {
    off_t at = static_cast<off_t>(offset + sent);
    ssize_t n = sendfile(sock, file, &at, static_cast<size_t>(length - sent));
    // EAGAIN (the socket is full), an early end of the file (0, or fewer bytes than asked),
    // EPIPE and the like: the ring goes on from here and decides. (SIGPIPE is ignored by Node.)
    if (n <= 0) break;
    sent += static_cast<uint64_t>(n);
  }
  return sent;
}

}  // namespace zerocopy
