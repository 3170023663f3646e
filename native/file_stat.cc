#include "file_stat.h"

#include <sys/syscall.h>
#include <unistd.h>

namespace zerocopy {

int FileStat(int fd, struct stat* st) {
#if (defined(__x86_64__) && !defined(__ILP32__)) || defined(__aarch64__)
  // On these, glibc's struct stat is the kernel's, and glibc's own fstat is this one syscall.
  // syscall() has been in glibc since its first symbol version.
  return static_cast<int>(syscall(SYS_fstat, fd, st));
#else
  // Elsewhere no prebuild is made: a local build links against the glibc it runs on.
  return fstat(fd, st);
#endif
}

}  // namespace zerocopy
