#include "beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "file_stat.h"
#include "fsclass.h"

#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
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

BeneathMode Probe() {
  // "/" as an O_PATH descriptor, then "." beneath it: nothing is read, and the resolve bits
  // the plugin uses are the ones asked about. EINVAL: a kernel that knows openat2 but not
  // these bits, refused all the same. Any other answer is the kernel's: openat2 works.
  long root = Openat2(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_MAGICLINKS);
  if (root == -ENOSYS || root == -EPERM || root == -EINVAL) return BeneathMode::kWalk;
  if (root < 0) return BeneathMode::kOpenat2;
  long probe = Openat2(static_cast<int>(root), ".", O_PATH | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
  close(static_cast<int>(root));
  if (probe == -ENOSYS || probe == -EPERM || probe == -EINVAL) return BeneathMode::kWalk;
  if (probe >= 0) close(static_cast<int>(probe));
  return BeneathMode::kOpenat2;
}

constexpr int kMaxSymlinks = 40;  // the kernel's MAXSYMLINKS

// The directories the walk went through, innermost last, each held open so that `..` goes
// back to the very directory it came from; all closed however the walk ends.
struct Dirs {
  std::vector<int> fds;
  ~Dirs() { Clear(); }
  int Top() const { return fds.back(); }
  void Clear() {
    for (int fd : fds) close(fd);
    fds.clear();
  }
};

// What is left to walk: the caller's path, then the bodies of the symlinks met, innermost last.
struct Piece {
  std::string text;
  size_t at;
};

int Errno() {
  return -errno;
}

int OpenAt(int dir, const char* name, int flags) {
  int fd;
  do {
    fd = openat(dir, name, flags);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// A magic link: a /proc link whose body is not a path the kernel would look up but where it
// jumps (a descriptor, a cwd, a namespace). Its readlink is the target's d_path: absolute, or a
// pseudo name such as `socket:[123]`. The ordinary links of /proc (`self`, `mounts`) read as
// relative paths without a colon.
bool MagicLink(const struct statfs& fs, const char* body, size_t length) {
  return fs.f_type == PROC_SUPER_MAGIC && (body[0] == '/' || memchr(body, ':', length) != nullptr);
}

// fs.protected_symlinks, read once: unreadable (no /proc/sys) counts as on, the stricter.
bool ProtectedSymlinks() {
  static const bool on = [] {
    int fd = open("/proc/sys/fs/protected_symlinks", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    char c = '1';
    ssize_t n = read(fd, &c, 1);
    close(fd);
    return n != 1 || c != '0';
  }();
  return on;
}

// The kernel's may_follow_link, for the last component only (as there): with
// fs.protected_symlinks on, a symlink in a sticky world-writable directory is followed only by
// its owner or when it is the directory owner's. -EACCES otherwise.
int MayFollowLast(int dir, const struct stat& link) {
  if (!ProtectedSymlinks() || link.st_uid == geteuid()) return 0;
  struct stat st;
  if (FileStat(dir, &st) != 0) return -errno;
  if ((st.st_mode & (S_ISVTX | S_IWOTH)) != (S_ISVTX | S_IWOTH) || st.st_uid == link.st_uid) return 0;
  return -EACCES;
}

// A `.` or `..` is looked up in the current directory like any name: search permission on it.
int MaySearch(int dir) {
  int fd = OpenAt(dir, ".", O_PATH | O_CLOEXEC);
  if (fd < 0) return Errno();
  close(fd);
  return 0;
}

#ifndef ST_NOSYMFOLLOW
#define ST_NOSYMFOLLOW 0x2000  // statfs f_flags of a `nosymfollow` mount (Linux 5.10)
#endif

}  // namespace

BeneathMode CurrentBeneathMode() {
  static const BeneathMode mode = Probe();  // once per process, whichever thread asks first
  return mode;
}

int OpenBeneathWalk(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) {
  resolve &= ~kBeneathWalk;
  if ((resolve & RESOLVE_NO_MAGICLINKS) == 0 || (resolve & ~(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)) != 0) return -EINVAL;
  const bool beneath = (resolve & RESOLVE_BENEATH) != 0;
  const bool noSymlinks = (resolve & RESOLVE_NO_SYMLINKS) != 0;
  size_t length = strlen(path);
  if (length == 0) return -ENOENT;
  if (length >= PATH_MAX) return -ENAMETOOLONG;
  Dirs dirs;
  if (path[0] == '/') {
    if (beneath) return -EXDEV;
    int root = OpenAt(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return Errno();
    dirs.fds.push_back(root);
  } else {
    int start = dirfd == AT_FDCWD ? OpenAt(AT_FDCWD, ".", O_PATH | O_DIRECTORY | O_CLOEXEC) : fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (start < 0) return Errno();
    dirs.fds.push_back(start);
  }
  std::vector<Piece> pieces;
  pieces.push_back(Piece{path, 0});
  int links = 0;
  // A slash after the last component (of the path, or of a trailing symlink's body): what it
  // names must be a directory (the kernel's LOOKUP_DIRECTORY, which stays once set).
  bool mustDir = false;
  const int finalFlags = static_cast<int>(BeneathFlags(kind));
  for (;;) {
    while (!pieces.empty()) {
      Piece& p = pieces.back();
      while (p.at < p.text.size() && p.text[p.at] == '/') p.at++;
      if (p.at < p.text.size()) break;
      pieces.pop_back();
    }
    if (pieces.empty()) {
      // The path ended on a directory the walk holds (".", "..", a link to one): open it as asked.
      int fd = OpenAt(dirs.Top(), ".", finalFlags);
      return fd < 0 ? Errno() : fd;
    }
    Piece& p = pieces.back();
    const size_t begin = p.at;
    size_t end = p.text.find('/', begin);
    if (end == std::string::npos) end = p.text.size();
    const std::string name = p.text.substr(begin, end - begin);
    p.at = end;
    if (name == "." || name == "..") {
      int err = MaySearch(dirs.Top());
      if (err != 0) return err;
    }
    if (name == ".") continue;
    if (name == "..") {
      if (dirs.fds.size() > 1) {
        close(dirs.Top());
        dirs.fds.pop_back();
      } else if (beneath) {
        return -EXDEV;  // above the start
      } else {
        int up = OpenAt(dirs.Top(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (up < 0) return Errno();
        close(dirs.fds[0]);
        dirs.fds[0] = up;
      }
      continue;
    }
    // The last component overall: nothing but slashes after it, here and in every piece below.
    bool last = true;
    for (size_t i = pieces.size(); last && i-- > 0;) {
      const Piece& q = pieces[i];
      for (size_t k = q.at; k < q.text.size(); k++) {
        if (q.text[k] != '/') {
          last = false;
          break;
        }
      }
    }
    if (last && end < p.text.size()) mustDir = true;
    int link = -1;
    struct stat linkStat;
    if (last && kind == BeneathKind::kFile) {
      int fd = OpenAt(dirs.Top(), name.c_str(), finalFlags | O_NOFOLLOW | (mustDir ? O_DIRECTORY : 0));
      if (fd >= 0) return fd;
      int err = errno;
      // ELOOP: a symlink (O_NOFOLLOW); ENOTDIR with O_DIRECTORY: a symlink, or not a directory.
      if (err != ELOOP && !(err == ENOTDIR && mustDir)) return -err;
      link = OpenAt(dirs.Top(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (link < 0) return Errno();
      struct stat& st = linkStat;
      if (FileStat(link, &st) != 0) {
        err = errno;
        close(link);
        return -err;
      }
      if (!S_ISLNK(st.st_mode)) {
        close(link);
        if (err == ENOTDIR && !S_ISDIR(st.st_mode)) return -ENOTDIR;
        // Replaced since the open: that component again, bounded like a link.
        if (++links > kMaxSymlinks) return -ELOOP;
        p.at = begin;
        continue;
      }
    } else {
      int fd = OpenAt(dirs.Top(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Errno();
      struct stat& st = linkStat;
      if (FileStat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return -err;
      }
      if (S_ISDIR(st.st_mode)) {
        if (last) return fd;  // a directory kind's answer: this O_PATH descriptor
        if (dirs.fds.size() >= kWalkMaxDepth) {
          close(fd);
          return -ENAMETOOLONG;
        }
        dirs.fds.push_back(fd);
        continue;
      }
      if (!S_ISLNK(st.st_mode)) {
        close(fd);
        return -ENOTDIR;
      }
      link = fd;
    }
    // A symlink: its body is walked in its place, from the directory that holds it. The
    // kernel's checks in its order: the count, the last component's owner rule, no symlinks
    // (RESOLVE_NO_SYMLINKS, a `nosymfollow` mount), then what the body says.
    char body[PATH_MAX];
    ssize_t n = readlinkat(link, "", body, sizeof body);
    int err = n < 0 ? errno : 0;
    struct statfs fs;
    bool statted = fstatfs(link, &fs) == 0;
    close(link);
    if (++links > kMaxSymlinks) return -ELOOP;
    if (last) {
      int refused = MayFollowLast(dirs.Top(), linkStat);
      if (refused != 0) return refused;
    }
    if (noSymlinks || (statted && (fs.f_flags & ST_NOSYMFOLLOW) != 0)) return -ELOOP;
    bool magic = n > 0 && statted && MagicLink(fs, body, static_cast<size_t>(n));
    if (n < 0) return -err;
    if (static_cast<size_t>(n) >= sizeof body) return -ENAMETOOLONG;
    if (magic) return -ELOOP;  // RESOLVE_NO_MAGICLINKS, always asked for
    if (n > 0 && body[0] == '/') {
      if (beneath) return -EXDEV;
      dirs.Clear();
      int root = OpenAt(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (root < 0) return Errno();
      dirs.fds.push_back(root);
    }
    pieces.push_back(Piece{std::string(body, static_cast<size_t>(n)), 0});
  }
}

uint64_t BeneathFlags(BeneathKind kind) {
  return kind == BeneathKind::kDirectory ? (O_PATH | O_DIRECTORY | O_CLOEXEC) : (O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

bool BeneathResolveValid(uint64_t resolve) {
  return (resolve & ~kCallerResolve) == 0;
}

int OpenRoot(const char* path) {
  // The root's own path is the application's, not a client's: resolved as given, but never
  // through a /proc magic link. Opened on the registering thread, at startup.
  if (CurrentBeneathMode() == BeneathMode::kWalk) {
    return OpenBeneathWalk(AT_FDCWD, path, BeneathKind::kDirectory, RESOLVE_NO_MAGICLINKS);
  }
  // The process's probe (Probe) found openat2 and its resolve bits working; ENOSYS or EPERM
  // here is a filter installed since, and the caller fails closed on it.
  return static_cast<int>(Openat2(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_MAGICLINKS));
}

int OpenBeneathCached(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) {
  if (CurrentBeneathMode() == BeneathMode::kWalk) return -EAGAIN;
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
  if ((resolve & kBeneathWalk) != 0 || CurrentBeneathMode() == BeneathMode::kWalk) return OpenBeneathWalk(dirfd, path, kind, resolve);
  return static_cast<int>(Openat2(dirfd, path, BeneathFlags(kind), resolve));
}

}  // namespace zerocopy
