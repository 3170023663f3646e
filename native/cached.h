// What the event loop's thread may do itself because the kernel has it cached: open a path
// whose lookup is in the dentry cache, send the head of a file that is in the page cache.
#pragma once

#include <cstdint>

namespace zerocopy {

// If every page of [offset, offset + length) of `file` is in the page cache and up to date
// (cachestat(2), Linux 6.5+, which answers only for a file the caller owns or may write, then
// mincore(2)), sends it on the non-blocking socket `sock` with sendfile(2) until done or the
// socket is full. Returns the bytes sent: 0 when the range is not all cached, cachestat is
// unavailable, or sendfile sent nothing (the ring then carries the whole range, and meets the
// socket's or the file's error itself).
uint64_t SendCached(int sock, int file, uint64_t offset, uint64_t length);

// Whether every page of [offset, offset + length) of `file` is in the page cache and up to
// date (cachestat(2) and mincore(2), same permission rule as SendCached): reading it waits for
// no device.
bool PageCached(int file, uint64_t offset, uint64_t length);

// Reads [offset, offset + length) of `file` into `buffer` with preadv2(RWF_NOWAIT), which
// answers EAGAIN instead of waiting for a page that is not in the page cache and up to date.
// Returns the bytes read (fewer than `length` only where the file ends), or -1 when some page
// would have to come from the device, or the filesystem or kernel cannot read without waiting
// (EOPNOTSUPP, ENOSYS), or the read failed: the caller then reads it the ordinary way, off this
// thread, and meets any error there. For local files only: a remote filesystem's read may ask
// its server even for a cached page.
int64_t ReadCached(int file, uint8_t* buffer, uint64_t length, uint64_t offset);

// Opens `path` read-only (O_NONBLOCK | O_CLOEXEC) with openat2(RESOLVE_CACHED) (Linux 5.12+),
// which fails with EAGAIN instead of waiting for the disk. Returns the descriptor, -EAGAIN when
// the lookup needs more than the dentry cache (or openat2 cannot be used here: the ring opens
// it), or another -errno that is the open's answer (ENOENT, EACCES, ...).
int OpenCached(const char* path);

}  // namespace zerocopy
