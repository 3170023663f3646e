// One io_uring per Node environment, and the operations that send response bodies through it.
// Nothing here knows about JavaScript: addon.cc owns the JS references and calls back into JS.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "../engine.h"

namespace zerocopy {

struct Op;

// What a request does.
enum class Kind : uint8_t {
  kSendZc,  // SEND_ZC of a slice of a buffer: a result, then (F_MORE) a notification
  kSend,    // SEND of a slice of a buffer
  kFill,    // SPLICE from the file into the op's pipe
  kDrain,   // SPLICE from the op's pipe into the socket
  kPoll,    // POLL_ADD for POLLOUT on the socket, before a drain that found it full
  kUncork,  // URING_CMD setsockopt(TCP_CORK, 0) after the first bytes of the body
};

// One request of an op, with a CQE owed.
struct Slice {
  Op* op;
  uint32_t len;
  Kind kind;
  bool zc() const { return kind == Kind::kSendZc; }
};

class Ring : public Engine {
 public:
  // Creates a ring of at most `maxEntries` SQ entries (0: the default, 256; at least 32) and
  // probes it. Returns 0, or -errno (ENOSYS under seccomp, EPERM under
  // kernel.io_uring_disabled, ENOMEM, ...).
  static int Create(Ring** out, unsigned maxEntries = 0);
  ~Ring() override;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  const char* Name() const override { return "io_uring"; }
  bool SupportsZeroCopy() const override { return sendZc_; }
  bool SupportsSend() const override { return send_; }
  bool SupportsFiles() const override { return splice_; }
  int EventFd() const override { return efd_; }
  void SetPinBudget(uint64_t bytes) override { pinBudget_ = bytes; }

  // Starts sending [data, data + length) on a duplicate of `fd`, in slices of `slice` bytes,
  // at most `depth` linked slices in flight. Returns the op's id (> 0) or -errno.
  // The caller keeps `data` alive until Reap reports the op released.
  int64_t Start(int fd, const uint8_t* data, size_t length, bool zc, uint32_t slice, uint32_t depth,
                uint32_t zcNext) override;
  // Starts sending `length` bytes of the regular file `file` from `offset` on a duplicate of
  // the socket `fd`: page cache -> pipe -> socket with IORING_OP_SPLICE, `chunk` bytes per
  // splice (the pipe's size), up to `depth` fill/drain pairs per linked round. The op holds
  // its own duplicate of `file`. `pollFirst`: the socket was just found full, so the first
  // round waits for POLLOUT. Returns the id or -errno.
  // `remote`: the file is on a filesystem whose fstat and close may wait (fsclass.h).
  int64_t StartFile(int fd, int file, uint64_t offset, uint64_t length, uint32_t chunk, uint32_t depth,
                    bool pollFirst, bool remote) override;
  // Closes `fd` through the ring (on its workers when the file has a flush that may wait);
  // TakeClosed reports it once the kernel has released it.
  void CloseAsync(int fd) override;
  void TakeClosed(std::vector<int>* out) override;
  // Opens `path` read-only (O_NONBLOCK | O_CLOEXEC) with IORING_OP_OPENAT: inline when the
  // path is in the dentry cache, else on io_uring's workers, never on libuv's pool. Returns
  // the request's id (> 0) or -errno; the result comes out of TakeOpened after a Reap.
  int64_t OpenFile(const char* path) override;
  // IORING_OP_OPENAT2 beneath `dirfd` (a duplicate of it, held until the CQE), on io_uring's
  // workers like OpenFile; -EOPNOTSUPP on a kernel without the opcode.
  int64_t OpenBeneath(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) override;
  // Moves the opens completed by the last Reaps into `out`; the caller owns their fds.
  void TakeOpened(std::vector<Opened>* out) override;
  // Cancels an op's requests; it finishes once every result CQE has arrived.
  void Abort(uint32_t id) override;
  // Bytes the kernel accepted so far, or -1 for an unknown op.
  int64_t Progress(uint32_t id) const override;
  // Reaps every CQE that is ready. Appends the ops that finished (their callback is due) and
  // the ops whose every CQE arrived (their memory may be released), in that order.
  void Reap(std::vector<Finished>* finished, std::vector<Released>* released) override;
  // Environment teardown: aborts every op and waits up to `timeoutMs` for every CQE owed;
  // closes what opens completed meanwhile.
  void Drain(unsigned timeoutMs, std::vector<Released>* released) override;

  bool Idle() const override {
    return ops_.empty() && opens_.empty() && opened_.empty() && closes_.empty() && closeBacklog_.empty() && closed_.empty();
  }
  // Whether the event loop must stay alive for the ring. A broken ring's ops are all finished
  // (and their requests may never complete): once that is reported, nothing is waited for.
  // Ops Node let go of (LetGo) are not waited for either.
  bool NeedsLoop() const override {
    if (broken_ != 0) return Pending() == Due::kNow;
    return ops_.size() > abandoned_ || !opens_.empty() || !opened_.empty() || !closes_.empty() || !closeBacklog_.empty() ||
           !closed_.empty();
  }
  Due Pending() const override;
  // The errno that broke the ring (every io_uring_enter error but EINTR, EAGAIN and EBUSY;
  // EBADR for CQEs the kernel dropped), or 0. Broken, the ring takes no new op.
  int Broken() const override { return broken_; }
  Stats GetStats() const override;
  void QueueStats(Stats* s) const;

 private:
  Ring() = default;
  Op* NewOp(int own);
  void CloseFds(Op* op);
  int64_t Launch(Op* op);
  void Submit(Op* op);
  void SubmitChain(Op* op);
  void SubmitRound(Op* op);
  uint64_t Key(Op* op, uint32_t len, Kind kind);
  void Flush();
  void Pump();
  unsigned Need(const Op* op) const;
  uint32_t RoundPairs(const Op* op) const;
  void Break(int err);
  void Refused(int err);
  void DropUnsubmitted();
  void Forget(uint64_t data);
  void Settle(std::vector<Finished>* finished, std::vector<Released>* released);
  void Cut(Op* op);
  void LetGo(Op* op);
  void Expire(Op* op);
  io_uring_sqe* SingleSqe();
  void Complete(const io_uring_cqe* cqe, std::vector<Op*>* advance, std::vector<uint32_t>* touched);
  void OnResult(Op* op, const Slice& s, int res);
  void OnFileResult(Op* op, const Slice& s, int res);
  void Advance(Op* op, std::vector<Finished>* finished);
  void Finish(Op* op, std::vector<Finished>* finished);
  void Uncork(Op* op);
  void PushUncork(Op* op, io_uring_sqe** last);
  void MaybeRelease(Op* op, std::vector<Released>* released);

  io_uring ring_{};
  bool initialized_ = false;
  int efd_ = -1;
  bool sendZc_ = false;
  bool send_ = false;
  bool splice_ = false;
  bool openat_ = false;
  bool openat2_ = false;
  bool sockCmd_ = false;     // setsockopt through the ring (URING_CMD on sockets, 6.7+)
  bool reportUsage_ = true;  // cleared if the kernel rejects IORING_SEND_ZC_REPORT_USAGE (< 6.2)
  int broken_ = 0;           // errno of a failed io_uring_enter: the ring is broken (see ring.cc)
  bool sweepDue_ = false;    // broken, and its unfinished ops are still to be finished
  bool refusing_ = false;    // the last submits were all refused (Refused), since refusedSince_
  timespec refusedSince_{};
  uint64_t pinBudget_ = 0;
  uint64_t pinned_ = 0;
  uint64_t sends_ = 0;
  uint64_t notifications_ = 0;
  uint64_t copied_ = 0;
  uint32_t nextId_ = 1;
  uint64_t nextSlice_ = 1;
  uint64_t strays_ = 0;
  uint64_t waits_ = 0;
  uint64_t abandoned_ = 0;  // ops Node let go of (LetGo), not yet released
  // Ops whose next chain or round is due but did not fit in the SQ, in order: they go in
  // whole, first come first, as submits free room. An op is here or has results owed, or is
  // finished.
  std::deque<Op*> waiting_;
  std::unordered_map<uint64_t, Slice> slices_;  // requests with a CQE owed, by key
  std::unordered_map<uint32_t, Op*> ops_;
  // Opens in flight, by key (the slices' key space), with the path the SQE points to: it
  // must live until the kernel has read it, which may be at a later submit.
  struct OpenReq {
    uint32_t id;
    std::string path;
    open_how how{};  // OPENAT2's, read by the kernel when the SQE is
    int dir = -1;    // OPENAT2's own duplicate of its directory, closed with the CQE
  };
  OpenReq& NewOpen(const char* path, uint64_t* key);
  std::unordered_map<uint64_t, OpenReq> opens_;
  std::vector<Opened> opened_;
  uint32_t nextOpen_ = 1;
  std::unordered_map<uint64_t, int> closes_;  // closes in flight, by key -> the descriptor
  std::vector<int> closeBacklog_;             // closes that found the queue full
  std::vector<int> closed_;                   // closes completed since the last TakeClosed
};

}  // namespace zerocopy
