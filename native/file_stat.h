// fstat(2) without glibc's fstat symbol: glibc 2.33 made fstat (and fstatat) exported functions
// (fstat64@GLIBC_2.33); before, headers inlined calls to __fxstat, which newer glibc no longer
// exports for linking. The prebuilt addons must load on glibc 2.28.
#pragma once

#include <sys/stat.h>

namespace zerocopy {

// As fstat: 0, or -1 with errno set.
int FileStat(int fd, struct stat* st);

}  // namespace zerocopy
