// Which files the event loop's thread may open, stat, close and send from the page cache
// itself: those on filesystems that answer such calls from memory (local disks, RAM, overlays
// of them). On any other (NFS, CIFS, FUSE, 9p, Ceph, cluster filesystems, a type not known
// here) each of those calls may wait on a server or a daemon, so the plugin hands them to
// io_uring's workers or libuv's pool.
#pragma once

namespace zerocopy {

// Whether any mount of this process's namespace is on a filesystem that may wait. Checked
// against /proc/self/mountinfo, which is read again whenever poll(2) says it changed.
bool RemoteMountsPresent();

// Whether the open file `fd` is on a filesystem that may wait. Its mount comes from
// /proc/self/fdinfo (procfs answers from memory: the file's own filesystem is not asked).
// An unknown mount, or a /proc that cannot be read, counts as remote.
bool IsRemote(int fd);

}  // namespace zerocopy
