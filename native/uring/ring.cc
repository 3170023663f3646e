// The ring and the life of one operation (one response body).
//
// An op sends its body as chains of at most `depth` slices linked with IOSQE_IO_LINK, so the
// kernel runs them strictly in order on the stream socket; MSG_WAITALL makes a short send a
// failed link, so nothing after a short slice goes out before it is resent. The next chain is
// submitted as soon as every *result* CQE of the current one arrived; notifications trail
// behind and only release pins (DESIGN: never make the next send wait for a notification).
//
// CQEs owed per slice (the state machine):
//   submitted -> result CQE without F_MORE                      -> done
//   submitted -> result CQE with F_MORE -> notification CQE     -> done
// An op is released (its body may be freed) when it finished and no CQE of it is owed.
//
// A file op (StartFile) moves the file in rounds instead: one linked chain of up to `depth`
// pairs SPLICE file -> pipe (a pipe's worth), SPLICE pipe -> socket (all of it), preceded
// by a POLL_ADD (POLLOUT) when the last round found the socket full, and by a drain of what
// the pipe still holds. A splice that moves less than asked fails the link (the kernel's
// rule for splice), so every fill starts on an empty pipe at the offset planned for it, and
// the round ends at the first short drain: the socket is full, the next round polls first.
// The pipe holds references to page-cache pages, so no byte of the file is copied on the
// sending side (what sendfile does). The kernel runs the splices on io_uring's workers.
//
// The ring's own progress (submission never waits for another request's completion):
//   An op's next chain or round goes to the back of `waiting_`; Pump moves ops from its
//   front into the SQ, each chain or round whole (never half a chain: the kernel would run
//   the halves as two chains, side by side on one socket), once the SQ has room for all of
//   it, then submits. A full SQ means waiting there, never failing the op.
//   io_uring_enter's answer to a submit (Flush), every errno decided:
//     >= 0             the kernel consumed that many SQEs; the rest (if any) stay queued.
//     EINTR            a signal came first: tried again at once, a few times, then as EAGAIN.
//     EAGAIN, EBUSY    the kernel was short of memory or of room for completions and
//                      consumed nothing: the SQEs stay queued. Pending() says kRetry and the
//                      caller (addon.cc) reaps and submits again after a backoff (1 ms
//                      doubling to 100 ms), so a lone response never waits for another one.
//                      Refused for kStuckSubmitMs (3 s) with nothing consumed in between, it
//                      is not transient: the ring is broken with that errno (Refused).
//     anything else    (EBADR: completions were dropped; EBADF, EFAULT, EINVAL, ENXIO,
//                      EOPNOTSUPP, ENOMEM: the ring or this process cannot go on) the ring is
//                      broken: Break.
//   A reap that finds the kernel dropped CQEs (the CQ overflow counter, or EBADR from
//   io_uring_get_events) breaks the ring too: some ops would never hear from their requests.
//   Broken (for good: the ring is never submitted to again, and never replaced):
//     - the SQEs the kernel never consumed are taken back (DropUnsubmitted): no CQE will come
//       for them, so what they owed is forgotten, and an open among them fails with the errno;
//     - every unfinished op is finished with the errno at the next Reap, its socket reset and
//       shut down (Cut) so the client sees the connection end and a request of it still in
//       the kernel returns; the plugin destroys the response;
//     - ops with requests in the kernel stay (their memory referenced) until their CQEs come,
//       which may be never if CQEs were lost: so they no longer keep the event loop alive
//       (NeedsLoop), and teardown waits for them only its bounded time;
//     - Start, StartFile and OpenFile fail at once: the plugin sends by Node instead.
#include "ring.h"
#include "../file_stat.h"

#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked (glibc's copy predates it)
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cerrno>
#include <memory>

// Debian's liburing 2.3 headers predate these (kernel 6.2).
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
// ... and this (kernel 6.7): IORING_OP_URING_CMD on a socket, cmd_op SETSOCKOPT.
#ifndef SOCKET_URING_OP_SETSOCKOPT
#define SOCKET_URING_OP_SETSOCKOPT 3
#endif

namespace zerocopy {

struct Op {
  uint32_t id = 0;
  int fd = -1;  // our own dup: a close by Node can never redirect these bytes
  const uint8_t* data = nullptr;
  size_t length = 0;
  size_t acked = 0;        // bytes the kernel accepted, in order
  size_t chainStart = 0;   // acked when the chain in flight was submitted
  uint32_t slice = 0;
  uint32_t depth = 0;
  uint32_t resultsOwed = 0;  // result CQEs owed by the chain in flight
  uint32_t cqesOwed = 0;     // every CQE owed: results, notifications, cancels
  bool zc = false;           // slices go by SEND_ZC (false: SEND)
  bool aborting = false;
  bool finished = false;
  // Node let go of the connection after the op finished, while notifications were owed
  // (Abort on a finished op): the op no longer keeps the loop alive; once the client has
  // held the body up for kLetGoGraceMs (LetGoClock) its connection is reset. `fd` stays open until
  // then to watch and reset it.
  bool abandoned = false;
  LetGoClock letGo;
  int error = 0;
  int stalls = 0;  // chains in a row that made no progress
  uint32_t notifications = 0;
  uint32_t copied = 0;
  OpResult result;
  // A file op: its own duplicate of the file, its pipe, and where the transfer stands.
  // `acked` counts bytes that reached the socket, `filled` bytes that reached the pipe.
  int file = -1;
  int pipeRead = -1;
  int pipeWrite = -1;
  uint32_t pipeSize = 0;
  uint64_t fileOffset = 0;  // where the body starts in the file
  size_t filled = 0;
  size_t chainFilled = 0;   // filled when the round in flight was submitted
  bool socketFull = false;  // a drain of the round in flight moved less than asked
  bool pollFirst = false;   // the last round found the socket full: wait for POLLOUT first
  // The plugin may have corked the socket (TCP_CORK) so that its headers leave with the
  // body's first bytes. Where the ring can set socket options, the first chain or round
  // uncorks it itself, right behind the first send or drain (kUncork), so the end of the
  // body never waits for this thread; otherwise, or if that request failed, Advance does,
  // once the first chain or round completed (every finish goes through Advance).
  bool corked = true;
  bool uncorkQueued = false;
  // The file is on a filesystem whose close may wait (fsclass.h): its duplicate is closed by
  // the ring (IORING_OP_CLOSE goes to the workers when the file has a flush to call).
  bool remote = false;
  bool waiting = false;  // in Ring::waiting_: its next chain or round waits for room in the SQ
  bool IsFile() const { return file >= 0; }
};

namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

// user_data is a key, never an address: (slice key << 1) for a send, (op id << 1) | 1 for a
// cancel. A CQE whose key is no longer known is counted and dropped, never dereferenced.
// Measured on 6.18: a SEND_ZC failed with -ECANCELED because an earlier link failed posts
// its result *without* F_MORE and still posts a notification afterwards.
constexpr uint64_t kCancelBit = 1;
constexpr int kSendFlags = MSG_WAITALL | MSG_NOSIGNAL;
constexpr int kMaxStalls = 8;
// How long io_uring_enter may refuse every submit (EAGAIN, EBUSY, or none consumed) before the
// ring is taken as broken (Refused). The retries back off to one every 100 ms, so a response
// waits at most about this long and 100 ms before it ends.
constexpr long kStuckSubmitMs = 3000;
constexpr unsigned kEntries = 256;
constexpr unsigned kCqEntries = 4096;  // room for a notification per slice in flight
// A copying send pins nothing, so an op in SEND mode goes in requests this large: fewer
// CQEs and wake-ups. The kernel interleaves sockets by writability, so this starves nobody.
constexpr uint32_t kCopySlice = 64u << 20;

const int kCorkOff = 0;  // the option value a kUncork request points to: read by the kernel when it runs

// setsockopt(fd, IPPROTO_TCP, TCP_CORK, &kCorkOff) as a request. liburing 2.3 has no helper
// (io_uring_prep_cmd_sock, 2.5): level and optname share addr, optlen is splice_fd_in,
// optval is addr3.
void PrepUncork(io_uring_sqe* sqe, int fd) {
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, nullptr, 0, 0);
  sqe->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
  sqe->addr = static_cast<uint64_t>(IPPROTO_TCP) | (static_cast<uint64_t>(TCP_CORK) << 32);
  sqe->splice_fd_in = static_cast<int32_t>(sizeof kCorkOff);
  sqe->addr3 = reinterpret_cast<uint64_t>(&kCorkOff);
}

// Whether this kernel sets socket options through the ring: one uncork of a fresh socket.
bool ProbeSocketCommand(io_uring* ring) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  bool ok = false;
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe != nullptr) {
    PrepUncork(sqe, s);
    io_uring_sqe_set_data64(sqe, 0);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(ring, 1) == 1 && io_uring_peek_cqe(ring, &cqe) == 0) {
      ok = cqe->res == 0;  // an older kernel: -EOPNOTSUPP or -EINVAL
      io_uring_cqe_seen(ring, cqe);
    }
  }
  close(s);
  return ok;
}

}  // namespace

int Ring::Create(Ring** out, unsigned maxEntries) {
  std::unique_ptr<Ring> r(new Ring());
  // Measured on 6.18: the rings themselves count against RLIMIT_MEMLOCK for users without
  // CAP_IPC_LOCK (256 + 4096 entries need 84 KiB). Under a tight limit, smaller rings still
  // serve: CQEs past the CQ wait in the kernel (IORING_FEAT_NODROP) until reaped.
  static const unsigned kSizes[][2] = {{kEntries, kCqEntries}, {128, 1024}, {64, 256}, {32, 64}};
  int ret = -ENOMEM;
  for (const auto& size : kSizes) {
    if (maxEntries != 0 && size[0] > maxEntries && size[0] != kSizes[3][0]) continue;
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p.cq_entries = size[1];
    ret = io_uring_queue_init_params(size[0], &r->ring_, &p);
    if (ret != -ENOMEM) break;
  }
  if (ret < 0) return ret;
  r->initialized_ = true;
  // IORING_REGISTER_PROBE, not uname: distributions backport and containers lie.
  io_uring_probe* probe = io_uring_get_probe_ring(&r->ring_);
  if (probe != nullptr) {
    r->sendZc_ = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
    r->send_ = io_uring_opcode_supported(probe, IORING_OP_SEND);
    r->openat_ = io_uring_opcode_supported(probe, IORING_OP_OPENAT);
    r->openat2_ = io_uring_opcode_supported(probe, IORING_OP_OPENAT2);
    r->splice_ = io_uring_opcode_supported(probe, IORING_OP_SPLICE) &&
                 io_uring_opcode_supported(probe, IORING_OP_POLL_ADD);
    if (io_uring_opcode_supported(probe, IORING_OP_URING_CMD)) r->sockCmd_ = ProbeSocketCommand(&r->ring_);
    io_uring_free_probe(probe);
  }
  r->efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->efd_ < 0) return -errno;
  ret = io_uring_register_eventfd(&r->ring_, r->efd_);
  if (ret < 0) return ret;
  *out = r.release();
  return 0;
}

Ring::~Ring() {
  // Ops still here only if Drain timed out: the kernel holds its own page references, so
  // nothing it reads is freed under it; the bytes of a dead connection may be stale.
  for (auto& entry : ops_) {
    entry.second->remote = false;  // no ring left to close it: the environment's thread does
    CloseFds(entry.second);
    delete entry.second;
  }
  if (initialized_) io_uring_queue_exit(&ring_);
  if (efd_ >= 0) close(efd_);
}

int64_t Ring::Start(int fd, const uint8_t* data, size_t length, bool zc, uint32_t slice,
                    uint32_t depth, uint32_t /*zcNext: SEND_ZC's notifications need no socket counter*/) {
  if (broken_ != 0) return -broken_;
  if (length == 0 || slice == 0 || depth == 0) return -EINVAL;
  depth = std::min(depth, ring_.sq.ring_entries / 2);  // a small ring (tight memlock) holds fewer
  if (zc ? !sendZc_ : !send_) return -EOPNOTSUPP;
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return -errno;
  Op* op = NewOp(own);
  op->data = data;
  op->length = length;
  op->slice = slice;
  op->depth = depth;
  op->zc = zc;
  return Launch(op);
}

int64_t Ring::Launch(Op* op) {
  ops_.emplace(op->id, op);
  Submit(op);
  if (broken_ == 0 && (op->waiting || op->resultsOwed > 0)) return op->id;  // under way, or queued
  if (op->resultsOwed == 0 && op->cqesOwed == 0) {
    // Nothing of it is in the kernel (the ring broke under it): no CQE will ever come for it,
    // so fail it here, and the caller sends the body another way.
    if (op->waiting) waiting_.erase(std::find(waiting_.begin(), waiting_.end(), op));
    ops_.erase(op->id);
    CloseFds(op);
    delete op;
    return -(broken_ != 0 ? broken_ : EBUSY);
  }
  return op->id;  // part of it reached the kernel before the ring broke: the next Reap fails it
}

// The op's next chain or round goes in behind those already waiting for room.
void Ring::Submit(Op* op) {
  op->waiting = true;
  waiting_.push_back(op);
  Pump();
}

// Moves waiting ops into the SQ, oldest first, each whole, while they fit; then submits.
void Ring::Pump() {
  while (!waiting_.empty() && broken_ == 0) {
    Op* op = waiting_.front();
    unsigned need = Need(op);
    if (io_uring_sq_space_left(&ring_) < need) {
      Flush();  // what the SQ holds goes first; its room is ours once the kernel took it
      if (broken_ != 0 || io_uring_sq_space_left(&ring_) < need) {
        waits_++;
        break;  // the kernel refused for now: the retry (Pending kRetry) pumps again
      }
    }
    waiting_.pop_front();
    op->waiting = false;
    if (op->IsFile()) {
      SubmitRound(op);
    } else {
      SubmitChain(op);
    }
  }
  Flush();
}

// SQEs the op's next chain or round may take: at most, so that it always fits whole. Start
// and RoundPairs keep this within the SQ's size, so an empty SQ always takes it.
unsigned Ring::Need(const Op* op) const {
  if (op->IsFile()) return 3 + 2 * RoundPairs(op);
  return op->depth + 1;  // the slices and an uncork
}

// Fill/drain pairs per round: room for a poll, a leftover drain and an uncork besides the
// pairs, even in the smallest ring.
uint32_t Ring::RoundPairs(const Op* op) const {
  return std::max<uint32_t>(1, std::min<uint32_t>(op->depth, (ring_.sq.ring_entries - 3) / 2));
}

void Ring::QueueStats(Stats* s) const {
  s->waiting = waiting_.size();
  s->waits = waits_;
  s->broken = broken_;
}

Ring::Due Ring::Pending() const {
  if (broken_ != 0) return sweepDue_ || !opened_.empty() ? Due::kNow : Due::kNothing;
  for (const Op* op : waiting_) {
    if (op->aborting) return Due::kNow;  // no CQE will finish it: Reap does
  }
  // Ops Node let go of: the retry timer (unreferenced, as nothing else keeps the loop) looks
  // at their grace; a broken ring is never waited for.
  if (!waiting_.empty() || io_uring_sq_ready(&ring_) > 0 || abandoned_ > 0) return Due::kRetry;
  return Due::kNothing;
}

Op* Ring::NewOp(int own) {
  Op* op = new Op();
  do {
    op->id = nextId_++;
  } while (op->id == 0 || ops_.count(op->id) != 0);
  op->fd = own;
  return op;
}

void Ring::CloseFds(Op* op) {
  if (op->remote && op->file >= 0) {
    CloseAsync(op->file);
    op->file = -1;
  }
  for (int* fd : {&op->fd, &op->file, &op->pipeRead, &op->pipeWrite}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void Ring::CloseAsync(int fd) {
  io_uring_sqe* sqe = SingleSqe();
  if (sqe == nullptr) {
    closeBacklog_.push_back(fd);  // submitted at the next reap
    return;
  }
  uint64_t key = nextSlice_++;
  closes_.emplace(key, fd);
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, key << 1);
  Flush();
}

void Ring::TakeClosed(std::vector<int>* out) {
  out->insert(out->end(), closed_.begin(), closed_.end());
  closed_.clear();
}

int64_t Ring::StartFile(int fd, int file, uint64_t offset, uint64_t length, uint32_t chunk, uint32_t depth,
                        bool pollFirst, bool remote) {
  if (broken_ != 0) return -broken_;
  if (length == 0 || chunk == 0 || offset > static_cast<uint64_t>(INT64_MAX) - length) return -EINVAL;
  if (!splice_) return -EOPNOTSUPP;
  if (!remote) {
    // A pipe or socket would be consumed, not read. (A remote file's fstat may wait on its
    // server: the plugin checked it is a regular file off this thread.)
    struct stat st;
    if (FileStat(file, &st) < 0) return -errno;
    if (!S_ISREG(st.st_mode)) return -EINVAL;
  }
  Op* op = NewOp(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  op->remote = remote;
  int err = 0;
  int pipes[2] = {-1, -1};
  if (op->fd < 0) {
    err = errno;
  } else if ((op->file = fcntl(file, F_DUPFD_CLOEXEC, 0)) < 0) {
    err = errno;
  } else if (pipe2(pipes, O_CLOEXEC | O_NONBLOCK) < 0) {
    err = errno;
  }
  if (err != 0) {
    CloseFds(op);
    delete op;
    return -err;
  }
  op->pipeRead = pipes[0];
  op->pipeWrite = pipes[1];
  // The pipe holds one splice: page references, not copies. Past fs.pipe-max-size or the
  // user's fs.pipe-user-pages-soft the kernel refuses to grow it; the op goes on with what
  // the pipe has (smaller splices).
  fcntl(op->pipeWrite, F_SETPIPE_SZ, static_cast<int>(std::min<uint32_t>(chunk, INT32_MAX)));
  int size = fcntl(op->pipeWrite, F_GETPIPE_SZ);
  op->pipeSize = size > 0 ? static_cast<uint32_t>(size) : static_cast<uint32_t>(kPage);
  op->fileOffset = offset;
  op->length = length;
  op->depth = std::max<uint32_t>(1, depth);
  op->pollFirst = pollFirst;
  return Launch(op);
}

int64_t Ring::OpenFile(const char* path) {
  if (broken_ != 0) return -broken_;
  if (!openat_) return -EOPNOTSUPP;
  io_uring_sqe* sqe = SingleSqe();
  if (sqe == nullptr) return -EBUSY;  // the caller opens it through libuv instead
  uint64_t key;
  OpenReq& req = NewOpen(path, &key);
  // O_NONBLOCK: a FIFO opens at once (and is then refused as not a regular file).
  io_uring_prep_openat(sqe, AT_FDCWD, req.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  io_uring_sqe_set_data64(sqe, key << 1);
  // Straight to the workers: tried inline, an open whose lookup is cached runs the
  // filesystem's open on this thread (a FUSE daemon's or an NFS server's answer).
  sqe->flags |= IOSQE_ASYNC;
  Flush();
  return req.id;
}

// A new open request: its id and key, and the OpenReq where its path (and open_how) live
// until the kernel has read them.
Ring::OpenReq& Ring::NewOpen(const char* path, uint64_t* key) {
  uint32_t id;
  do {
    id = nextOpen_++;
  } while (id == 0);
  *key = nextSlice_++;
  return opens_.emplace(*key, OpenReq{id, path}).first->second;
}

int64_t Ring::OpenBeneath(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) {
  if (broken_ != 0) return -broken_;
  // In walk mode (openat2 refused) never IORING_OP_OPENAT2, though seccomp does not see ring
  // opcodes: a profile that refuses openat2 is a policy, not to be gone round; and the bit
  // that forces the walk is not the kernel's. A disk thread walks instead (-EOPNOTSUPP).
  if (!openat2_ || (resolve & kBeneathWalk) != 0 || CurrentBeneathMode() == BeneathMode::kWalk) return -EOPNOTSUPP;
  int dir = dirfd == AT_FDCWD ? AT_FDCWD : fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dir < 0 && dir != AT_FDCWD) return -errno;
  io_uring_sqe* sqe = SingleSqe();
  if (sqe == nullptr) {
    if (dir >= 0) close(dir);
    return -EBUSY;
  }
  uint64_t key;
  OpenReq& req = NewOpen(path, &key);
  req.how.flags = BeneathFlags(kind);
  req.how.resolve = resolve;
  req.dir = dir >= 0 ? dir : -1;
  io_uring_prep_openat2(sqe, dir, req.path.c_str(), &req.how);
  io_uring_sqe_set_data64(sqe, key << 1);
  sqe->flags |= IOSQE_ASYNC;  // as OpenFile: never the filesystem's open on this thread
  Flush();
  return req.id;
}

// An SQE for a request that stands alone (never inside a chain being built: a flush there
// would submit half a chain): when the queue is full, what it holds is submitted first.
io_uring_sqe* Ring::SingleSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    Flush();
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Ring::TakeOpened(std::vector<Opened>* out) {
  out->insert(out->end(), opened_.begin(), opened_.end());
  opened_.clear();
}

uint64_t Ring::Key(Op* op, uint32_t len, Kind kind) {
  uint64_t key = nextSlice_++;
  slices_.emplace(key, Slice{op, len, kind});
  op->resultsOwed++;
  op->cqesOwed++;
  sends_++;
  return key << 1;
}

// Builds the op's next round; Pump made room for all of it (Need) and submits it.
void Ring::SubmitRound(Op* op) {
  uint32_t pairs = RoundPairs(op);
  op->chainStart = op->acked;
  op->chainFilled = op->filled;
  op->socketFull = false;
  io_uring_sqe* last = nullptr;
  // Every request of the round, in order, linked to the next.
  auto push = [&](uint32_t len, Kind kind, auto&& prep) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    prep(sqe);
    io_uring_sqe_set_data64(sqe, Key(op, len, kind));
    sqe->flags |= IOSQE_IO_LINK;
    last = sqe;
  };
  auto drain = [&](size_t len, size_t after) {
    // SPLICE_F_MORE (MSG_MORE) while more of the body follows: full segments, as TCP_CORK would.
    unsigned flags = SPLICE_F_NONBLOCK | (after < op->length ? SPLICE_F_MORE : 0);
    push(static_cast<uint32_t>(len), Kind::kDrain, [&](io_uring_sqe* sqe) {
      io_uring_prep_splice(sqe, op->pipeRead, -1, op->fd, -1, static_cast<unsigned>(len), flags);
    });
  };
  if (op->pollFirst) {
    push(0, Kind::kPoll, [&](io_uring_sqe* sqe) { io_uring_prep_poll_add(sqe, op->fd, POLLOUT); });
  }
  size_t inPipe = op->filled - op->acked;
  if (inPipe > 0) drain(inPipe, op->filled);  // what a short drain left: the pipe must be empty to fill
  size_t planned = op->filled;
  for (uint32_t n = 0; n < pairs && planned < op->length; n++) {
    uint64_t at = op->fileOffset + planned;
    // A fill that starts inside a page spends a pipe slot on a partial page: ask one page
    // less, so an empty pipe always takes the whole fill.
    size_t room = op->pipeSize - (at % kPage != 0 && op->pipeSize > kPage ? kPage : 0);
    size_t want = std::min<size_t>(room, op->length - planned);
    push(static_cast<uint32_t>(want), Kind::kFill, [&](io_uring_sqe* sqe) {
      io_uring_prep_splice(sqe, op->file, static_cast<int64_t>(at), op->pipeWrite, -1, static_cast<unsigned>(want),
                           SPLICE_F_NONBLOCK);
    });
    planned += want;
    drain(want, planned);
    PushUncork(op, &last);
  }
  if (last != nullptr) last->flags &= ~(IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
}

// Right behind the first send or drain: the headers and the body's first bytes are in the
// socket together, so the cork has done its work. Hard-linked, so that a failure of its own
// (it has no errno that matters) never cancels the body behind it; when the request before
// it failed, it is cancelled with the rest, and Advance uncorks.
void Ring::PushUncork(Op* op, io_uring_sqe** last) {
  if (!sockCmd_ || !op->corked || op->uncorkQueued) return;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return;  // Advance uncorks
  PrepUncork(sqe, op->fd);
  io_uring_sqe_set_data64(sqe, Key(op, 0, Kind::kUncork));
  sqe->flags |= IOSQE_IO_HARDLINK;
  op->uncorkQueued = true;
  *last = sqe;
}

// Builds the op's next chain; Pump made room for all of it (Need) and submits it.
void Ring::SubmitChain(Op* op) {
  size_t off = op->acked;
  op->chainStart = off;
  io_uring_sqe* last = nullptr;
  for (uint32_t n = 0; n < op->depth && off < op->length; n++) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) break;
    uint32_t len = static_cast<uint32_t>(std::min<size_t>(op->zc ? op->slice : kCopySlice, op->length - off));
    bool zc = op->zc;
    if (zc && !ReservePinned(len, pinBudget_)) {
      // Pinning more would pass the budget (RLIMIT_MEMLOCK for unprivileged users): copy.
      zc = false;
      op->result.fallbacks |= kFallbackPinBudget;
    }
    uint64_t key = Key(op, len, zc ? Kind::kSendZc : Kind::kSend) >> 1;
    if (zc) {
      io_uring_prep_send_zc(sqe, op->fd, op->data + off, len, kSendFlags,
                            reportUsage_ ? IORING_SEND_ZC_REPORT_USAGE : 0);
      pinned_ += len;  // reserved in the process's total above
    } else {
      io_uring_prep_send(sqe, op->fd, op->data + off, len, kSendFlags);
    }
    io_uring_sqe_set_data64(sqe, key << 1);
    sqe->flags |= IOSQE_IO_LINK;
    last = sqe;
    off += len;
    PushUncork(op, &last);
  }
  if (last != nullptr) last->flags &= ~(IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
}

// Submits what the SQ holds; every errno decided (see the top of this file).
void Ring::Flush() {
  if (broken_ != 0) {
    DropUnsubmitted();  // an abort's cancel queued since: it will never go
    return;
  }
  int ret = -EINTR;
  for (int tries = 0; tries < 3 && ret == -EINTR; tries++) ret = io_uring_submit(&ring_);
  switch (-ret) {
    case EINTR:
    case EAGAIN:
    case EBUSY:
      Refused(ret == -EINTR ? EAGAIN : -ret);  // nothing consumed: the SQEs stay, and Pending() asks for a retry
      return;
    default:
      if (ret < 0) {
        Break(-ret);
      } else if (ret == 0 && io_uring_sq_ready(&ring_) > 0) {
        Refused(EAGAIN);  // nothing consumed, and no errno to say why: no progress either
      } else {
        refusing_ = false;  // consumed; what is left (a short submit) also asks for a retry
      }
      return;
  }
}

// A submit the kernel refused for now. Refused again and again for kStuckSubmitMs, with
// nothing consumed in between (the retries keep coming: Pending() says kRetry), it is not
// transient: a kernel short of memory that long, or a filter refusing this very submit
// (seccomp answering for io_uring_enter), would keep every response of the ring waiting
// for ever. The ring breaks with the errno: its responses end cut, later ones go by Node.
void Ring::Refused(int err) {
  if (!refusing_) {
    refusing_ = true;
    clock_gettime(CLOCK_MONOTONIC, &refusedSince_);
    return;
  }
  if (MsSince(refusedSince_) >= kStuckSubmitMs) Break(err);
}

// The ring cannot be trusted to complete what it is given: see "Broken" at the top.
void Ring::Break(int err) {
  if (broken_ != 0) return;
  broken_ = err;
  sweepDue_ = true;
  DropUnsubmitted();
}

// The SQEs between the kernel's head and our tail were never consumed (an io_uring_enter
// that fails consumed none, and a broken ring is never submitted to again): forget what they
// owe, and take them out of the SQ.
void Ring::DropUnsubmitted() {
  unsigned head = io_uring_smp_load_acquire(ring_.sq.khead);
  for (unsigned at = head; at != ring_.sq.sqe_tail; at++) Forget(ring_.sq.sqes[at & ring_.sq.ring_mask].user_data);
  ring_.sq.sqe_head = ring_.sq.sqe_tail = head;
  io_uring_smp_store_release(ring_.sq.ktail, head);
}

// A request that will never complete: what its CQEs would have settled, settled now.
void Ring::Forget(uint64_t data) {
  if (data & kCancelBit) {
    auto it = ops_.find(static_cast<uint32_t>(data >> 1));
    if (it != ops_.end()) it->second->cqesOwed--;
    return;
  }
  auto closing = closes_.find(data >> 1);
  if (closing != closes_.end()) {
    // The ring will never close it: here, then (only when the ring breaks with a close still
    // in its queue; a remote file's close may wait, once).
    close(closing->second);
    closed_.push_back(closing->second);
    closes_.erase(closing);
    return;
  }
  auto open = opens_.find(data >> 1);
  if (open != opens_.end()) {
    opened_.push_back(Opened{open->second.id, -broken_});
    if (open->second.dir >= 0) close(open->second.dir);
    opens_.erase(open);
    return;
  }
  auto it = slices_.find(data >> 1);
  if (it == slices_.end()) return;  // not ours (the probe's, key 0)
  Op* op = it->second.op;
  if (it->second.zc()) {
    pinned_ -= it->second.len;
    ProcessPinned().fetch_sub(it->second.len, std::memory_order_relaxed);
  }
  op->resultsOwed--;
  op->cqesOwed--;
  sends_--;
  slices_.erase(it);
}

// What no CQE announces, done at every Reap: an aborted op waiting for room finishes; when
// the ring broke, every unfinished op finishes with the errno.
void Ring::Settle(std::vector<Finished>* finished, std::vector<Released>* released) {
  std::vector<uint32_t> touched;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Op* op = *it;
    if (!op->aborting) {
      ++it;
      continue;
    }
    it = waiting_.erase(it);
    op->waiting = false;
    Advance(op, finished);  // nothing in flight, aborting: finishes with ECANCELED
    touched.push_back(op->id);
  }
  if (broken_ != 0 && sweepDue_) {
    sweepDue_ = false;
    for (Op* op : waiting_) op->waiting = false;
    waiting_.clear();
    for (auto& entry : ops_) {
      Op* op = entry.second;
      touched.push_back(op->id);
      if (op->finished) continue;
      Cut(op);
      if (op->error == 0) op->error = broken_;
      Finish(op, finished);
    }
  }
  if (abandoned_ > 0) {
    for (auto& entry : ops_) {
      Op* op = entry.second;
      if (op->abandoned && op->fd >= 0 && op->letGo.Expired(op->fd)) Expire(op);
    }
  }
  for (uint32_t id : touched) {
    auto it = ops_.find(id);
    if (it != ops_.end()) MaybeRelease(it->second, released);
  }
}

// The response cannot be completed: reset the connection (queued data dropped, the client
// told at once) and shut it down, so that a request of the op still in the kernel returns.
void Ring::Cut(Op* op) {
  if (op->fd < 0) return;
  linger hard{1, 0};
  setsockopt(op->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  shutdown(op->fd, SHUT_RDWR);
}

void Ring::Abort(uint32_t id) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  Op* op = it->second;
  if (op->finished) {
    LetGo(op);
    return;
  }
  if (op->aborting) return;
  op->aborting = true;
  // The response is broken and the connection must go: reset it rather than finish it, so
  // queued data is dropped and its pages are released without waiting for a client that may
  // never read; shut it down, so a send blocked on a full socket returns (EPIPE) even if the
  // cancel finds it running or not yet submitted.
  linger hard{1, 0};
  setsockopt(op->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  io_uring_sqe* sqe = SingleSqe();
  // A file op's fill is cancelled too if it is waiting; one already reading finishes by itself.
  // Its drain is hard-linked behind it and fails with EPIPE once the socket is shut down.
  if (sqe != nullptr) {
    io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(op->id) << 1) | kCancelBit);
    op->cqesOwed++;
    Flush();
  }
  // A fill's request belongs to the pipe (splice's output), not to the socket: cancelled by
  // the pipe's descriptor. One that is reading is interrupted (a slow filesystem's wait is).
  if (op->pipeWrite >= 0 && (sqe = SingleSqe()) != nullptr) {
    io_uring_prep_cancel_fd(sqe, op->pipeWrite, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(op->id) << 1) | kCancelBit);
    op->cqesOwed++;
    Flush();
  }
  shutdown(op->fd, SHUT_RDWR);
}

// Node closed the connection of a finished op whose notifications are owed (the client has
// not taken all of the body). What Node's close would do, the op does with its duplicate: the
// FIN goes out behind the body, so a client still reading gets all of it; the op stops
// keeping the loop alive, and Settle resets the connection once the client held the
// body up for kLetGoGraceMs (LetGoClock: its window shut, or nothing acknowledged).
void Ring::LetGo(Op* op) {
  if (op->abandoned || op->cqesOwed == 0) return;
  op->abandoned = true;
  abandoned_++;
  op->letGo.Start(op->fd);
  if (op->fd >= 0) shutdown(op->fd, SHUT_WR);
}

// A reset drops the segments the client never acknowledged, and with them the last
// references to the body's pages: their notifications follow at once.
void Ring::Expire(Op* op) {
  if (op->fd < 0) return;
  linger hard{1, 0};
  setsockopt(op->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  close(op->fd);
  op->fd = -1;
}

PeerState ReadPeer(int fd) {
  PeerState peer;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return peer;
  if (len >= offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked) {
    peer.acked = static_cast<int64_t>(info.tcpi_bytes_acked);
  }
  peer.inFlight = info.tcpi_unacked;
  // A kernel whose tcp_info has no tcpi_snd_wnd yet: the window reads as shut, and the grace
  // counts from the last byte acknowledged, as it always did.
  if (len >= offsetof(tcp_info, tcpi_snd_wnd) + sizeof info.tcpi_snd_wnd) peer.window = info.tcpi_snd_wnd;
  return peer;
}

int64_t Ring::Progress(uint32_t id) const {
  auto it = ops_.find(id);
  if (it == ops_.end()) return -1;
  const Op* op = it->second;
  // The bytes TCP saw acknowledged move on while a request is still in flight; `acked`
  // moves only when a whole slice completes. Either counts as progress.
  tcp_info info{};
  socklen_t len = sizeof info;
  if (op->fd >= 0 && getsockopt(op->fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
      len >= offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked) {
    return static_cast<int64_t>(info.tcpi_bytes_acked);
  }
  return static_cast<int64_t>(op->acked);
}

Ring::Stats Ring::GetStats() const {
  Stats s{notifications_, copied_, sends_, pinned_, ops_.size(), strays_};
  QueueStats(&s);
  return s;
}

void Ring::Reap(std::vector<Finished>* finished, std::vector<Released>* released) {
  uint64_t count;
  if (read(efd_, &count, sizeof count) < 0) {
    // EAGAIN: nothing signalled; the CQ is read regardless.
  }
  for (;;) {
    // io_uring_peek_batch_cqe also flushes CQEs the kernel had to hold back while the CQ was
    // full (IORING_FEAT_NODROP): a busy event loop lets notifications pile up past the CQ.
    io_uring_cqe* batch[256];
    unsigned seen = io_uring_peek_batch_cqe(&ring_, batch, 256);
    if (seen == 0 && (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW)) {
      // EINTR, EAGAIN, EBUSY: the overflow stays flagged, tried again at the next reap.
      // EBADR: the kernel dropped CQEs it could not keep. Anything else: a broken ring.
      int ret = io_uring_get_events(&ring_);
      if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) Break(-ret);
      seen = io_uring_peek_batch_cqe(&ring_, batch, 256);
    }
    // The count of CQEs dropped for want of memory (kernel >= 5.5 keeps the rest): the
    // requests they answered will never be heard from.
    if (IO_URING_READ_ONCE(*ring_.cq.koverflow) != 0) Break(EBADR);
    if (seen == 0) break;
    std::vector<Op*> advance;
    std::vector<uint32_t> touched;  // ops that got a CQE: only they can have become releasable
    for (unsigned i = 0; i < seen; i++) Complete(batch[i], &advance, &touched);
    io_uring_cq_advance(&ring_, seen);
    // Only after the CQ is advanced: a chain may submit, and complete inline.
    for (Op* op : advance) Advance(op, finished);
    // By id, not pointer: an op touched twice is released (deleted) at the first.
    for (uint32_t id : touched) {
      auto it = ops_.find(id);
      if (it != ops_.end()) MaybeRelease(it->second, released);
    }
  }
  std::vector<int> backlog;
  backlog.swap(closeBacklog_);
  for (int fd : backlog) CloseAsync(fd);
  Settle(finished, released);
  Pump();  // ops waiting for room, and SQEs left by an earlier EAGAIN/EBUSY
}

void Ring::Complete(const io_uring_cqe* cqe, std::vector<Op*>* advance, std::vector<uint32_t>* touched) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  if (data & kCancelBit) {
    auto it = ops_.find(static_cast<uint32_t>(data >> 1));
    if (it == ops_.end()) {
      strays_++;
      return;
    }
    Op* op = it->second;
    op->cqesOwed--;
    touched->push_back(op->id);
    // >= 0: cancelled; -ENOENT: nothing left to cancel; -EALREADY: running, and the
    // shutdown in Abort makes it return. Nothing more to decide.
    return;
  }
  auto closing = closes_.find(data >> 1);
  if (closing != closes_.end()) {
    // 0, or an errno of the file's flush (EIO, EINTR): the descriptor is released either way.
    closed_.push_back(closing->second);
    closes_.erase(closing);
    return;
  }
  auto open = opens_.find(data >> 1);
  if (open != opens_.end()) {
    // The descriptor (or -errno) of an open: handed over as it is, every errno to the caller.
    opened_.push_back(Opened{open->second.id, cqe->res});
    if (open->second.dir >= 0) close(open->second.dir);
    opens_.erase(open);
    return;
  }
  auto it = slices_.find(data >> 1);
  if (it == slices_.end()) {
    strays_++;  // the late notification of a never-issued, link-cancelled SEND_ZC (see above)
    return;
  }
  Slice& s = it->second;
  Op* op = s.op;
  touched->push_back(op->id);
  if (cqe->flags & IORING_CQE_F_NOTIF) {
    // Only now are the slice's pages no longer read by the kernel.
    notifications_++;
    op->notifications++;
    if (cqe->res & static_cast<int32_t>(IORING_NOTIF_USAGE_ZC_COPIED)) {
      copied_++;
      op->copied++;
    }
    pinned_ -= s.len;
    ProcessPinned().fetch_sub(s.len, std::memory_order_relaxed);
    sends_--;
    op->cqesOwed--;
    slices_.erase(it);
    return;
  }
  // The result. F_MORE, not res, says whether a notification follows: an errored SEND_ZC
  // may still post one, and one without F_MORE owes none (a late one is a stray, above).
  op->resultsOwed--;
  if (s.kind == Kind::kUncork) {
    // 0: uncorked. -ECANCELED (the send or drain before it failed) or any other errno: the
    // socket may still be corked, and Advance uncorks it with setsockopt(2).
    if (cqe->res == 0) op->corked = false;
  } else if (s.kind == Kind::kSendZc || s.kind == Kind::kSend) {
    OnResult(op, s, cqe->res);
  } else {
    OnFileResult(op, s, cqe->res);
  }
  if (!(cqe->flags & IORING_CQE_F_MORE)) {
    if (s.zc()) {
      pinned_ -= s.len;
      ProcessPinned().fetch_sub(s.len, std::memory_order_relaxed);
    }
    sends_--;
    op->cqesOwed--;
    slices_.erase(it);
  }
  if (op->resultsOwed == 0) advance->push_back(op);
}

// Every errno gets a decision here.
void Ring::OnResult(Op* op, const Slice& s, int res) {
  if (res >= 0) {
    // A short count fails the link (MSG_WAITALL): the rest of the chain comes back
    // -ECANCELED and is sent again from op->acked.
    op->acked += static_cast<size_t>(res);
    (s.zc() ? op->result.zcBytes : op->result.copyBytes) += static_cast<uint64_t>(res);
    return;
  }
  int err = -res;
  switch (err) {
    case ECANCELED:
      // Ours (abort), or a link broken by an earlier slice of the chain: resent.
      if (op->aborting && op->error == 0) op->error = ECANCELED;
      return;
    case EOPNOTSUPP:
    case EINVAL:
      if (!s.zc()) break;
      if (err == EINVAL && reportUsage_) {
        reportUsage_ = false;  // a kernel before 6.2 rejects the flag: resend without it
        return;
      }
      op->zc = false;  // this socket cannot do SEND_ZC (kTLS, some families): SEND
      op->result.fallbacks |= kFallbackEopnotsupp;
      return;
    case ENOMEM:
    case ENOBUFS:
      if (!s.zc()) break;
      // Pinning refused (RLIMIT_MEMLOCK, which is per user: other processes and threads of the
      // user count too). A refused link fails the rest of its chain, so the op goes on by copy.
      op->zc = false;
      op->result.fallbacks |= kFallbackEnomem;
      return;
    case EINTR:
    case EAGAIN:
      return;  // resent; a chain that makes no progress counts as a stall
    default:
      break;
  }
  // EPIPE, ECONNRESET and the like (the client went away) or anything unexpected: the op
  // ends with the errno, and the plugin decides what the connection gets.
  if (op->error == 0) op->error = err;
}

// Every errno of a file op's requests gets a decision here.
void Ring::OnFileResult(Op* op, const Slice& s, int res) {
  if (res == -ECANCELED) {
    // Ours (abort), or the rest of a chain after a short splice: planned again next round.
    if (op->aborting && op->error == 0) op->error = ECANCELED;
    return;
  }
  switch (s.kind) {
    case Kind::kPoll:
      return;  // writable, or an error the drain behind it will meet and report
    case Kind::kFill:
      if (res > 0) {
        op->filled += static_cast<size_t>(res);
      } else if (res == 0) {
        // End of file before the length announced in Content-Length: the file was truncated
        // during the transfer. The response cannot be completed.
        if (op->error == 0) op->error = ENODATA;
      } else if (res != -EAGAIN && res != -EINTR && op->error == 0) {
        op->error = -res;  // EIO and the like: the file cannot be read
      }
      return;
    case Kind::kDrain:
      if (res >= 0 && static_cast<uint32_t>(res) < s.len) op->socketFull = true;
      if (res == -EAGAIN) op->socketFull = true;
      if (res > 0) {
        op->acked += static_cast<size_t>(res);
        op->result.spliceBytes += static_cast<uint64_t>(res);
      } else if (res < 0 && res != -EAGAIN && res != -EINTR && op->error == 0) {
        op->error = -res;  // EPIPE, ECONNRESET (the client went away), or unexpected
      }
      return;
    default:
      return;
  }
}

void Ring::Advance(Op* op, std::vector<Finished>* finished) {
  if (op->finished) return;
  // The first chain or round left with the headers the plugin corked in front of it; the
  // rest goes uncorked (measured: a transfer kept corked throughout ran at half speed in
  // some runs), with MSG_MORE / SPLICE_F_MORE keeping its segments full. A no-op when the
  // chain's own kUncork did it.
  Uncork(op);
  if (op->aborting && op->error == 0) op->error = ECANCELED;
  if (op->error != 0 || op->acked >= op->length) {
    Finish(op, finished);
    return;
  }
  // A file op also progresses by filling its pipe, and polls first if the socket was full
  // (a buffer op has neither: both stay 0 and false).
  bool moved = op->acked != op->chainStart || op->filled != op->chainFilled;
  op->pollFirst = op->socketFull;
  if (moved) {
    op->stalls = 0;
  } else if (++op->stalls > kMaxStalls) {
    op->error = EIO;
    Finish(op, finished);
    return;
  }
  Submit(op);
  if (!op->waiting && op->resultsOwed == 0) {
    // Not queued and nothing in flight: the ring broke under this chain (its SQEs were taken
    // back). EBUSY cannot happen: an op that does not fit waits.
    op->error = broken_ != 0 ? broken_ : EBUSY;
    Finish(op, finished);
  }
}

void Ring::Uncork(Op* op) {
  if (!op->corked) return;
  op->corked = false;
  int off = 0;
  setsockopt(op->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
}

void Ring::Finish(Op* op, std::vector<Finished>* finished) {
  // Every result is in, so no request of this op uses the descriptor; notifications do not.
  // The socket's duplicate stays while notifications are owed by a response that completed:
  // if Node lets go of the connection before the client took the body, the op must be able
  // to end it (LetGo), or its pages stay pinned as long as the client keeps the window shut.
  int keep = op->error == 0 && op->cqesOwed > 0 ? op->fd : -1;
  if (keep >= 0) op->fd = -1;
  CloseFds(op);
  op->fd = keep;
  op->finished = true;
  op->result.error = op->error;
  finished->push_back(Finished{op->id, op->result});
}

void Ring::MaybeRelease(Op* op, std::vector<Released>* released) {
  if (!op->finished || op->cqesOwed != 0) return;
  CloseFds(op);  // the socket's duplicate kept past Finish
  if (op->abandoned) abandoned_--;
  released->push_back(Released{op->id, op->notifications, op->copied});
  ops_.erase(op->id);
  delete op;
}

void Ring::Drain(unsigned timeoutMs, std::vector<Released>* released) {
  // Nobody is left to wait for a slow client: every op ends now, and a finished one's unsent
  // segments are dropped (Expire), so the kernel lets go of the bodies before they are freed.
  for (auto& entry : ops_) {
    if (!entry.second->finished) Abort(entry.first);
    else Expire(entry.second);
  }
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  std::vector<Finished> finished;
  while (!ops_.empty() || !opens_.empty() || !closes_.empty() || !closeBacklog_.empty()) {
    __kernel_timespec wait{0, 50 * 1000 * 1000};
    io_uring_cqe* cqe;
    io_uring_wait_cqe_timeout(&ring_, &cqe, &wait);
    Reap(&finished, released);
    if (MsSince(start) >= static_cast<long>(timeoutMs)) break;
  }
  CloseUntaken(&opened_);
}

}  // namespace zerocopy
