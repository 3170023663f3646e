// The classic engine: response bodies by the calls the default profiles of Docker, containerd,
// Podman, CRI-O and gVisor allow where they refuse io_uring. Driven by the Node event loop
// through one epoll set of its own (edge-triggered, one entry per transfer's duplicate of its
// socket), which the loop's uv_poll watches.
//
// A file goes by sendfile(2) from the page cache to the socket in turns of at most `chunk` x
// `depth` bytes (nginx's sendfile_max_chunk: one fast client cannot hold the loop), on the
// loop's thread when every page of the turn is in the cache and up to date, else on a disk
// thread (disk.h), and always on a disk thread for a file on a remote filesystem. A buffer goes
// by send(2) with MSG_ZEROCOPY after SO_ZEROCOPY, in turns likewise; its pages stay referenced
// until the socket's error queue reported every send of it complete.
//
// The life of an op (one body):
//   running -> (socket full)      waiting for EPOLLOUT -> running
//   running -> (pages not cached) on a disk thread     -> running
//   running -> (turn used up)     queued for the next turn of the loop -> running
//   running -> (all sent, or an error, or aborted) finished: its callback is due
//   finished -> (no zero-copy send still owed by the error queue, no disk job) released
#pragma once

#include <functional>
#include <unordered_map>
#include <vector>

#include "../engine.h"
#include "disk.h"

namespace zerocopy {
namespace classic {

struct Op;

class Classic : public Engine {
 public:
  // Creates the epoll set and its wake-up eventfd. Returns 0 or -errno.
  static int Create(Classic** out);
  ~Classic() override;
  Classic(const Classic&) = delete;
  Classic& operator=(const Classic&) = delete;

  const char* Name() const override { return "classic"; }
  int EventFd() const override { return epfd_; }
  bool SupportsZeroCopy() const override { return zeroCopy_; }
  bool SupportsSend() const override { return true; }
  bool SupportsFiles() const override { return true; }
  void SetPinBudget(uint64_t bytes) override { pinBudget_ = bytes; }

  int64_t Start(int fd, const uint8_t* data, size_t length, bool zc, uint32_t slice, uint32_t depth,
                uint32_t zcNext) override;
  int64_t StartFile(int fd, int file, uint64_t offset, uint64_t length, uint32_t chunk, uint32_t depth,
                    bool pollFirst, bool remote) override;
  void Abort(uint32_t id) override;
  int64_t Progress(uint32_t id) const override;
  void Reap(std::vector<Finished>* finished, std::vector<Released>* released) override;
  void Drain(unsigned timeoutMs, std::vector<Released>* released) override;
  bool Idle() const override { return ops_.empty() && closing_ == 0 && closed_.empty() && opening_ == 0 && opened_.empty(); }
  // Ops Node let go of (LetGo) are not waited for.
  bool NeedsLoop() const override {
    return ops_.size() > abandoned_ || closing_ != 0 || !closed_.empty() || opening_ != 0 || !opened_.empty();
  }
  // Ops Node let go of: the retry timer (unreferenced when nothing else keeps the loop)
  // looks at their grace.
  Due Pending() const override { return abandoned_ > 0 ? Due::kRetry : Due::kNothing; }
  Stats GetStats() const override;
  // On a disk thread: a remote file's close may wait on its server (a FUSE flush, NFS).
  void CloseAsync(int fd) override;
  void TakeClosed(std::vector<int>* out) override;
  // On a disk thread: openat2 beneath a duplicate of `dirfd` (beneath.h).
  int64_t OpenBeneath(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) override;
  int64_t OpenFile(const char* path) override;
  void TakeOpened(std::vector<Opened>* out) override;

 private:
  Classic() = default;
  int64_t Launch(Op* op);
  int64_t OpenOnDiskThread(std::function<int()> open);
  void Wake();
  void Run(Op* op);
  ssize_t SendBuffer(Op* op, size_t want);
  void OnSent(Op* op, ssize_t n);
  void StartDiskJob(Op* op, size_t want);
  void OnDiskJob(Op* op, int64_t result);
  void ReadErrorQueue(Op* op, std::vector<uint32_t>* touched);
  bool ReleasePin(Op* op, uint32_t zcId, bool copied);
  void Fail(Op* op, int err);
  void LetGo(Op* op);
  void Expire(Op* op, std::vector<uint32_t>* touched);
  void Finish(Op* op);
  void MaybeRelease(Op* op, std::vector<Released>* released);

  int epfd_ = -1;
  int wake_ = -1;  // owned by inbox_; written by the disk threads and by Wake()
  Inbox* inbox_ = nullptr;  // one reference: the engine's
  bool zeroCopy_ = true;  // cleared when the kernel refuses SO_ZEROCOPY or MSG_ZEROCOPY (gVisor: EINVAL)
  uint64_t pinBudget_ = 0;
  uint64_t pinned_ = 0;
  uint64_t notifications_ = 0;
  uint64_t copied_ = 0;
  uint64_t strays_ = 0;
  uint64_t jobs_ = 0;
  uint64_t abandoned_ = 0;  // ops Node let go of (LetGo), not yet released
  uint32_t nextId_ = 1;
  std::unordered_map<uint32_t, Op*> ops_;
  // Ops by their socket (its inode: unique while any of our duplicates holds it open). A
  // socket's error queue reports the zero-copy sends of every body on it, and the kernel may
  // merge the last sends of one body and the first of the next into one range: whichever op
  // reads the queue hands each id to the op that sent it.
  std::unordered_map<uint64_t, std::vector<uint32_t>> bySocket_;
  std::vector<uint32_t> ready_;  // ops to run at the next Reap
  std::vector<Finished> finishedSinceReap_;
  uint64_t closing_ = 0;      // closes on the disk threads
  std::vector<int> closed_;   // closes done since the last TakeClosed
  uint64_t opening_ = 0;        // opens on the disk threads
  uint32_t nextOpen_ = 1;
  std::vector<Opened> opened_;  // opens done since the last TakeOpened
};

}  // namespace classic
}  // namespace zerocopy
