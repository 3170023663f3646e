#include "fsclass.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

namespace zerocopy {
namespace {

// Filesystems whose open, getattr, flush and cached reads do not wait on anything but memory.
const char* const kLocal[] = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "overlay",
                              "f2fs", "jfs", "reiserfs", "bcachefs", "zfs", "vfat", "msdos", "exfat",
                              "ntfs3", "hfsplus", "squashfs", "iso9660", "udf", "erofs", "nilfs2",
                              "devtmpfs"};
// Kernel interfaces nobody serves files from: their mounts do not make every open pay for a
// classification. A file on one still counts as remote (IsRemote) and is never sent inline.
const char* const kPseudo[] = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue",
                               "securityfs", "debugfs", "tracefs", "pstore", "bpf", "configfs",
                               "fusectl", "binfmt_misc", "hugetlbfs", "efivarfs", "selinuxfs",
                               "nsfs", "rpc_pipefs", "autofs"};

bool Listed(const char* const* list, size_t n, const std::string& type) {
  for (size_t i = 0; i < n; i++) {
    if (type == list[i]) return true;
  }
  return false;
}

struct Mounts {
  std::mutex lock;  // every Node environment (thread) of the process shares the table
  int fd = -2;      // /proc/self/mountinfo, kept open to poll; -1 when it cannot be read
  bool anyRemote = true;
  std::unordered_map<int, bool> remote;  // mount id -> its filesystem may wait
  // The coarse clock's reading at the last poll: the table is polled at most once per tick.
  timespec polledAt{-1, 0};
};

Mounts& Table() {
  static Mounts* mounts = new Mounts();  // never destroyed: environments may outlive statics
  return *mounts;
}

// Reads the whole table again. Lines: "id parent major:minor root mountpoint options
// [optional fields] - fstype source superoptions".
void Load(Mounts& m) {
  m.remote.clear();
  m.anyRemote = true;
  if (m.fd < 0 || lseek(m.fd, 0, SEEK_SET) < 0) return;
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = read(m.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) return;  // unreadable: every file counts as remote
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  bool anyRemote = false;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    at = end + 1;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    int id = atoi(line.c_str());
    size_t typeStart = dash + 3;
    size_t typeEnd = line.find(' ', typeStart);
    std::string type = line.substr(typeStart, typeEnd == std::string::npos ? std::string::npos : typeEnd - typeStart);
    bool local = Listed(kLocal, sizeof kLocal / sizeof kLocal[0], type);
    m.remote[id] = !local;
    if (!local && !Listed(kPseudo, sizeof kPseudo / sizeof kPseudo[0], type)) anyRemote = true;
  }
  m.anyRemote = anyRemote;
}

// Opens the table the first time, and reads it again when the kernel says it changed (the
// file polls POLLPRI | POLLERR after a mount or an unmount). Called with the lock held.
void Refresh(Mounts& m, bool force) {
  if (m.fd == -2) {
    m.fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    Load(m);
    return;
  }
  if (m.fd < 0) return;
  if (!force) {
    // Every open asks (two or three times a request): within one tick of the coarse clock
    // (1 to 4 ms, read without a system call) the last poll's answer stands, so a mount
    // made since is seen at most a tick late, as one made between a poll and an open is.
    timespec now{};
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &now) == 0) {
      if (now.tv_sec == m.polledAt.tv_sec && now.tv_nsec == m.polledAt.tv_nsec) return;
      m.polledAt = now;
    }
  }
  pollfd p{m.fd, POLLPRI, 0};
  if (force || (poll(&p, 1, 0) > 0 && (p.revents & (POLLPRI | POLLERR)) != 0)) Load(m);
}

// The mount id of an open file, from /proc/self/fdinfo/<fd> ("mnt_id:\t<n>"), or -1.
int MountOf(int fd) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int info = open(path, O_RDONLY | O_CLOEXEC);
  if (info < 0) return -1;
  char buf[512];
  ssize_t n;
  do {
    n = read(info, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  close(info);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* at = strstr(buf, "mnt_id:");
  return at == nullptr ? -1 : atoi(at + 7);
}

}  // namespace

bool RemoteMountsPresent() {
  Mounts& m = Table();
  std::lock_guard<std::mutex> guard(m.lock);
  Refresh(m, false);
  return m.anyRemote;
}

bool IsRemote(int fd) {
  Mounts& m = Table();
  {
    std::lock_guard<std::mutex> guard(m.lock);
    Refresh(m, false);
    if (!m.anyRemote) return false;
  }
  int id = MountOf(fd);
  if (id < 0) return true;
  std::lock_guard<std::mutex> guard(m.lock);
  auto it = m.remote.find(id);
  if (it == m.remote.end()) {
    Refresh(m, true);  // a mount newer than the table
    it = m.remote.find(id);
  }
  return it == m.remote.end() || it->second;
}

}  // namespace zerocopy
