#include "classic.h"

#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked (glibc's copy predates it)
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "../cached.h"
#include "../file_stat.h"

// Debian 12's headers have these; a libc without them gets the kernel's values.
#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

namespace zerocopy {
namespace classic {

struct Op {
  uint32_t id = 0;
  int fd = -1;    // our own duplicate of the socket: a close by Node can never redirect these bytes
  int file = -1;  // our own duplicate of the file (a file op)
  bool remote = false;
  const uint8_t* data = nullptr;
  uint64_t fileOffset = 0;
  size_t length = 0;
  size_t sent = 0;
  size_t turn = 0;  // bytes at most per turn of the loop
  bool zc = false;
  uint32_t zcNext = 0;  // the socket's next MSG_ZEROCOPY id
  uint64_t socket = 0;  // the socket's inode (Classic::bySocket_)
  std::unordered_map<uint32_t, uint32_t> pins;  // zero-copy sends the error queue still owes: id -> bytes
  bool waitingWritable = false;
  bool queued = false;
  bool job = false;  // a disk thread is sending a part of it
  bool corked = true;
  bool aborting = false;
  bool finished = false;
  // Node let go of the connection after the op finished, with zero-copy sends still owed
  // (Abort on a finished op): the op no longer keeps the loop alive, and once the client
  // held the body up for kLetGoGraceMs (LetGoClock) its connection is reset.
  bool abandoned = false;
  bool expired = false;  // its connection was reset (Expire)
  LetGoClock letGo;
  int error = 0;
  uint32_t notifications = 0;
  uint32_t copied = 0;
  OpResult result;
  bool IsFile() const { return file >= 0; }
};

namespace {

constexpr uint64_t kWakeKey = 0;  // the epoll key of the wake-up eventfd; ops' ids are > 0
constexpr uint32_t kCloseJob = 0;  // the inbox id of a close job (its result is the descriptor)
// The inbox id of an open job, never an op's: its result is the open's id (high 32 bits) and
// the descriptor or -errno (low 32 bits).
constexpr uint32_t kOpenJob = UINT32_MAX;

int Dup(int fd) {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

void Uncork(Op* op) {
  if (!op->corked) return;
  op->corked = false;
  int off = 0;
  setsockopt(op->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
}

}  // namespace

int Classic::Create(Classic** out) {
  std::unique_ptr<Classic> c(new Classic());
  c->epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (c->epfd_ < 0) return -errno;
  c->wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->wake_ < 0) return -errno;
  c->inbox_ = new Inbox(c->wake_);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  if (epoll_ctl(c->epfd_, EPOLL_CTL_ADD, c->wake_, &ev) < 0) return -errno;
  // MSG_ZEROCOPY needs SO_ZEROCOPY (4.14 for TCP); a sandbox that lacks it says so here or,
  // like gVisor, with EINVAL at the first send (SendBuffer).
  int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  c->zeroCopy_ = probe >= 0 && setsockopt(probe, SOL_SOCKET, SO_ZEROCOPY, &on, sizeof on) == 0;
  if (probe >= 0) close(probe);
  *out = c.release();
  return 0;
}

Classic::~Classic() {
  for (auto& entry : ops_) {
    Op* op = entry.second;
    if (op->job) continue;  // a disk thread still uses its descriptors: leave them to it
    for (int fd : {op->fd, op->file}) {
      if (fd >= 0) close(fd);
    }
    delete op;
  }
  if (epfd_ >= 0) close(epfd_);
  // wake_ belongs to inbox_, closed when no disk job refers to it any more.
  if (inbox_ != nullptr) {
    inbox_->Unref();
  } else if (wake_ >= 0) {
    close(wake_);
  }
}

void Classic::Wake() {
  uint64_t one = 1;
  if (write(wake_, &one, sizeof one) < 0) {
    // EAGAIN: already signalled.
  }
}

int64_t Classic::Start(int fd, const uint8_t* data, size_t length, bool zc, uint32_t slice, uint32_t depth,
                       uint32_t zcNext) {
  if (length == 0 || slice == 0 || depth == 0) return -EINVAL;
  int own = Dup(fd);
  if (own < 0) return -errno;
  Op* op = new Op();
  op->fd = own;
  op->data = data;
  op->length = length;
  op->turn = static_cast<size_t>(slice) * depth;
  op->zcNext = zcNext;
  if (zc && zeroCopy_) {
    int on = 1;
    if (setsockopt(own, SOL_SOCKET, SO_ZEROCOPY, &on, sizeof on) == 0) {
      op->zc = true;
    } else if (errno == ENOPROTOOPT || errno == EINVAL) {
      zeroCopy_ = false;  // this kernel (or sandbox) has no MSG_ZEROCOPY: copying sends from now on
      op->result.fallbacks |= kFallbackEopnotsupp;
    } else {
      op->result.fallbacks |= kFallbackEopnotsupp;  // this socket refused it (EOPNOTSUPP)
    }
  }
  return Launch(op);
}

int64_t Classic::StartFile(int fd, int file, uint64_t offset, uint64_t length, uint32_t chunk, uint32_t depth,
                           bool /*pollFirst*/, bool remote) {
  if (length == 0 || chunk == 0 || offset > static_cast<uint64_t>(INT64_MAX) - length) return -EINVAL;
  if (!remote) {
    // A pipe or socket would be consumed, not read. (A remote file's fstat may wait on its
    // server: the plugin checked it is a regular file off this thread.)
    struct stat st;
    if (FileStat(file, &st) < 0) return -errno;
    if (!S_ISREG(st.st_mode)) return -EINVAL;
  }
  int own = Dup(fd);
  if (own < 0) return -errno;
  int ownFile = Dup(file);
  if (ownFile < 0) {
    int err = errno;
    close(own);
    return -err;
  }
  Op* op = new Op();
  op->fd = own;
  op->file = ownFile;
  op->remote = remote;
  op->fileOffset = offset;
  op->length = length;
  op->turn = static_cast<size_t>(chunk) * std::max<uint32_t>(1, depth);
  // A socket found full needs no special start: the first sendfile says EAGAIN, and the op
  // waits for EPOLLOUT like any other.
  return Launch(op);
}

int64_t Classic::Launch(Op* op) {
  do {
    op->id = nextId_++;
  } while (op->id == 0 || op->id == kOpenJob || ops_.count(op->id) != 0);
  struct stat st;
  if (FileStat(op->fd, &st) == 0) op->socket = static_cast<uint64_t>(st.st_ino);
  epoll_event ev{};
  // Edge-triggered: a writable socket wakes the loop when it becomes writable, not every turn;
  // EPOLLERR (the error queue has zero-copy completions) is reported whatever is asked.
  ev.events = EPOLLOUT | EPOLLET;
  ev.data.u64 = op->id;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, op->fd, &ev) < 0) {
    int err = errno;
    for (int fd : {op->fd, op->file}) {
      if (fd >= 0) close(fd);
    }
    delete op;
    return -err;
  }
  ops_.emplace(op->id, op);
  bySocket_[op->socket].push_back(op->id);
  // The first turn runs at the next reap (one wake-up later): callbacks never run inside start().
  op->queued = true;
  ready_.push_back(op->id);
  Wake();
  return op->id;
}

void Classic::Abort(uint32_t id) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  Op* op = it->second;
  if (op->finished) {
    LetGo(op);
    return;
  }
  if (op->aborting) return;
  op->aborting = true;
  // The connection must go. Disconnecting it (connect with AF_UNSPEC: TCP sends a reset and
  // purges its queues) makes a disk thread's sendfile into it return, and frees the queued
  // segments, so the error queue reports every zero-copy send of the op complete (measured on
  // 6.18: all of them, at once) and the pages can be released.
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  if (connect(op->fd, &unspec, sizeof unspec) < 0) {
    linger hard{1, 0};  // not TCP (cannot happen here): a reset at the last close, at least
    setsockopt(op->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    shutdown(op->fd, SHUT_RDWR);
  }
  if (op->job) {
    // A disk thread is in the file's read, which nothing interrupts (a disk, a hard NFS
    // mount): the response ends now; the op keeps its descriptors, and is released, once the
    // thread is back.
    Fail(op, ECANCELED);
  } else if (!op->queued) {
    op->queued = true;
    ready_.push_back(op->id);
  }
  Wake();
}

// Node closed the connection of a finished op whose zero-copy sends are owed (the client has
// not taken all of the body), but the op's duplicate keeps the socket open: without more, the
// connection would stay established for as long as the client keeps its window shut. What
// Node's close would do, the op does: the FIN goes out behind the body (a client still
// reading gets all of it); the op stops keeping the loop alive, and Reap resets the
// connection once the client held the body up for kLetGoGraceMs (LetGoClock, Expire).
void Classic::LetGo(Op* op) {
  if (op->abandoned || op->pins.empty()) return;
  op->abandoned = true;
  abandoned_++;
  op->letGo.Start(op->fd);
  shutdown(op->fd, SHUT_WR);
}

// Disconnecting drops the segments the client never acknowledged, and with them the last
// references to the body's pages: the error queue reports the sends complete at once (see
// Abort). The duplicate stays until then, to read it.
void Classic::Expire(Op* op, std::vector<uint32_t>* touched) {
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  if (connect(op->fd, &unspec, sizeof unspec) < 0) {
    linger hard{1, 0};
    setsockopt(op->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    shutdown(op->fd, SHUT_RDWR);
  }
  ReadErrorQueue(op, touched);
  touched->push_back(op->id);
}

int64_t Classic::Progress(uint32_t id) const {
  auto it = ops_.find(id);
  if (it == ops_.end()) return -1;
  const Op* op = it->second;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(op->fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
      len >= offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked) {
    return static_cast<int64_t>(info.tcpi_bytes_acked);
  }
  return static_cast<int64_t>(op->sent);
}

Engine::Stats Classic::GetStats() const {
  // What the engine still owes: each op not yet finished (waiting for the socket, queued for
  // its next turn or on a disk thread: the ring's counterpart has an SQE in flight), and each
  // zero-copy send whose completion the error queue has not reported.
  uint64_t sends = 0;
  for (const auto& entry : ops_) sends += entry.second->pins.size() + (entry.second->finished ? 0 : 1);
  return Stats{notifications_, copied_, sends, pinned_, ops_.size(), strays_};
}

// One turn of an op: as much as the socket takes, up to its turn's bytes.
void Classic::Run(Op* op) {
  op->queued = false;
  if (op->finished || op->job) return;
  if (op->aborting) {
    Fail(op, ECANCELED);
    return;
  }
  size_t budget = op->turn;
  while (op->sent < op->length && budget > 0) {
    size_t want = std::min(op->length - op->sent, budget);
    ssize_t n;
    if (op->IsFile()) {
      uint64_t at = op->fileOffset + op->sent;
      // Only pages already read in go on this thread; anything else (and a remote file's
      // every byte) on a disk thread.
      if (op->remote || !PageCached(op->file, at, want)) {
        StartDiskJob(op, want);
        return;
      }
      off_t pos = static_cast<off_t>(at);
      n = sendfile(op->fd, op->file, &pos, want);
    } else {
      n = SendBuffer(op, want);
    }
    if (n > 0) {
      OnSent(op, n);
      budget -= std::min(budget, static_cast<size_t>(n));
      continue;
    }
    int err = n == 0 ? ENODATA : errno;  // sendfile's 0: the file ended before the length announced
    if (err == EINTR) continue;
    if (err == EAGAIN) {
      op->waitingWritable = true;  // EPOLLOUT resumes it
      return;
    }
    Fail(op, err);
    return;
  }
  if (op->sent < op->length) {
    // The turn is used up and the socket may take more: the other connections first.
    op->queued = true;
    ready_.push_back(op->id);
    Wake();
    return;
  }
  Finish(op);
}

// Every errno of a buffer's send gets a decision here.
ssize_t Classic::SendBuffer(Op* op, size_t want) {
  for (;;) {
    bool zc = op->zc;
    if (zc && !ReservePinned(want, pinBudget_)) {
      zc = false;  // pinning more would pass the budget (RLIMIT_MEMLOCK for unprivileged users)
      op->result.fallbacks |= kFallbackPinBudget;
    }
    int flags = MSG_DONTWAIT | MSG_NOSIGNAL | (op->sent + want < op->length ? MSG_MORE : 0) | (zc ? MSG_ZEROCOPY : 0);
    ssize_t n = send(op->fd, op->data + op->sent, want, flags);
    // A send that took nothing charged nothing: back to the process's total. One that took
    // part of it stays charged whole: the kernel charges RLIMIT_MEMLOCK for the size asked
    // (mm_account_pinned_pages) until the send's completion, whatever it took.
    if (zc && n <= 0) ProcessPinned().fetch_sub(want, std::memory_order_relaxed);
    if (n > 0) {
      if (zc) {
        // One id per send call that took bytes; its pages stay pinned (and `want` charged)
        // until the error queue reports the id complete.
        op->pins.emplace(op->zcNext++, static_cast<uint32_t>(want));
        pinned_ += static_cast<uint64_t>(want);  // reserved in the process's total above
        op->result.zcBytes += static_cast<uint64_t>(n);
      } else {
        op->result.copyBytes += static_cast<uint64_t>(n);
      }
      return n;
    }
    if (n < 0 && zc) {
      switch (errno) {
        case ENOBUFS:
        case ENOMEM:
          // optmem or RLIMIT_MEMLOCK: this part by copy, never a failed response.
          op->result.fallbacks |= kFallbackEnomem;
          op->zc = false;
          continue;
        case EINVAL:
        case EOPNOTSUPP:
          // The flag itself is refused (gVisor: EINVAL): copying sends from now on.
          if (errno == EINVAL) zeroCopy_ = false;
          op->result.fallbacks |= kFallbackEopnotsupp;
          op->zc = false;
          continue;
        default:
          break;
      }
    }
    return n;  // EAGAIN, EINTR, EPIPE, ECONNRESET, ...: the caller decides
  }
}

void Classic::OnSent(Op* op, ssize_t n) {
  op->sent += static_cast<size_t>(n);
  if (op->IsFile()) op->result.spliceBytes += static_cast<uint64_t>(n);
  // The headers left with the first bytes (the plugin corked them); the rest goes uncorked,
  // with MSG_MORE keeping a buffer's segments full.
  Uncork(op);
}

void Classic::StartDiskJob(Op* op, size_t want) {
  op->job = true;
  jobs_++;
  int sock = op->fd;
  int file = op->file;
  off_t pos = static_cast<off_t>(op->fileOffset + op->sent);
  // Blocks on the disk or the filesystem's server, here and nowhere else; returns at a full
  // socket (it is non-blocking) with what it sent, or -errno.
  RunOnDiskThread(inbox_, op->id, [sock, file, pos, want]() -> int64_t {
    off_t at = pos;
    ssize_t n;
    do {
      n = sendfile(sock, file, &at, want);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -static_cast<int64_t>(errno) : static_cast<int64_t>(n);
  });
}

void Classic::OnDiskJob(Op* op, int64_t result) {
  op->job = false;
  jobs_--;
  if (op->aborting) {
    Fail(op, ECANCELED);
    return;
  }
  if (result > 0) {
    OnSent(op, static_cast<ssize_t>(result));
  } else if (result == 0) {
    Fail(op, ENODATA);  // the file ended before the length announced
    return;
  } else if (result == -EAGAIN) {
    // The socket was full. Its edge to writable may have come and gone while the thread was
    // reporting back: look now. Writable, the next turn goes on (the pages the thread read are
    // cached now); not, the next edge resumes it.
    pollfd p{op->fd, POLLOUT, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      if (!op->queued) {
        op->queued = true;
        ready_.push_back(op->id);
      }
    } else {
      op->waitingWritable = true;
    }
    return;
  } else {
    Fail(op, static_cast<int>(-result));
    return;
  }
  if (!op->queued) {
    op->queued = true;
    ready_.push_back(op->id);
  }
}

// Zero-copy completions: ranges [ee_info, ee_data] of send ids, each released once, by the op
// (of those on this socket) that sent it.
void Classic::ReadErrorQueue(Op* op, std::vector<uint32_t>* touched) {
  std::vector<Op*> sharing;
  auto same = bySocket_.find(op->socket);
  if (same != bySocket_.end()) {
    for (uint32_t id : same->second) {
      auto it = ops_.find(id);
      if (it != ops_.end() && it->second != op) sharing.push_back(it->second);
    }
  }
  for (;;) {
    char control[256];
    msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(op->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: nothing left
    }
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      bool ip = (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR);
      if (!ip) continue;
      const sock_extended_err* err = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(cm));
      if (err->ee_origin != SO_EE_ORIGIN_ZEROCOPY || err->ee_errno != 0) {
        strays_++;  // not a completion (TCP queues no other errors here without IP_RECVERR)
        continue;
      }
      bool copied = (err->ee_code & SO_EE_CODE_ZEROCOPY_COPIED) != 0;
      for (uint32_t id = err->ee_info;; id++) {
        bool mine = ReleasePin(op, id, copied);
        for (size_t i = 0; !mine && i < sharing.size(); i++) {
          mine = ReleasePin(sharing[i], id, copied);
          if (mine) touched->push_back(sharing[i]->id);
        }
        if (!mine) strays_++;
        if (id == err->ee_data) break;
      }
    }
  }
}

bool Classic::ReleasePin(Op* op, uint32_t zcId, bool copied) {
  auto it = op->pins.find(zcId);
  if (it == op->pins.end()) return false;
  pinned_ -= it->second;
  ProcessPinned().fetch_sub(it->second, std::memory_order_relaxed);
  op->pins.erase(it);
  notifications_++;
  op->notifications++;
  if (copied) {
    copied_++;
    op->copied++;
  }
  return true;
}

void Classic::Fail(Op* op, int err) {
  if (op->error == 0) op->error = err;
  Finish(op);
}

// Every byte is out (or the op failed): the callback is due. The pages of zero-copy sends may
// still be read by the kernel; MaybeRelease waits for their completions.
void Classic::Finish(Op* op) {
  if (op->finished) return;
  Uncork(op);
  op->finished = true;
  if (op->aborting && op->error == 0) op->error = ECANCELED;
  op->result.error = op->error;
  op->result.zcNext = op->zcNext;
  finishedSinceReap_.push_back(Finished{op->id, op->result});
}

void Classic::MaybeRelease(Op* op, std::vector<Released>* released) {
  if (!op->finished || op->job || !op->pins.empty()) return;
  if (op->abandoned) abandoned_--;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, op->fd, nullptr);  // before the close: Node's descriptor keeps the socket open
  if (op->remote && op->file >= 0) {
    CloseAsync(op->file);
    op->file = -1;
  }
  for (int fd : {op->fd, op->file}) {
    if (fd >= 0) close(fd);
  }
  released->push_back(Released{op->id, op->notifications, op->copied});
  auto same = bySocket_.find(op->socket);
  if (same != bySocket_.end()) {
    auto& ids = same->second;
    ids.erase(std::remove(ids.begin(), ids.end(), op->id), ids.end());
    if (ids.empty()) bySocket_.erase(same);
  }
  ops_.erase(op->id);
  delete op;
}

void Classic::Reap(std::vector<Finished>* finished, std::vector<Released>* released) {
  uint64_t count;
  if (read(wake_, &count, sizeof count) < 0) {
    // EAGAIN: nothing signalled; the rest is looked at regardless.
  }
  std::vector<uint32_t> touched;
  std::vector<std::pair<uint32_t, int64_t>> done;
  {
    std::lock_guard<std::mutex> guard(inbox_->lock);
    done.swap(inbox_->done);
  }
  for (const auto& job : done) {
    if (job.first == kCloseJob) {
      closing_--;
      closed_.push_back(static_cast<int>(job.second));
      continue;
    }
    if (job.first == kOpenJob) {
      opening_--;
      uint64_t packed = static_cast<uint64_t>(job.second);
      opened_.push_back(Opened{static_cast<uint32_t>(packed >> 32), static_cast<int32_t>(static_cast<uint32_t>(packed))});
      continue;
    }
    auto it = ops_.find(job.first);
    if (it == ops_.end()) {
      strays_++;
      continue;
    }
    OnDiskJob(it->second, job.second);
    touched.push_back(job.first);
  }
  epoll_event events[64];
  int n;
  do {
    n = epoll_wait(epfd_, events, 64, 0);
  } while (n < 0 && errno == EINTR);
  for (int i = 0; i < n; i++) {
    if (events[i].data.u64 == kWakeKey) continue;
    uint32_t id = static_cast<uint32_t>(events[i].data.u64);
    auto it = ops_.find(id);
    if (it == ops_.end()) continue;
    Op* op = it->second;
    touched.push_back(id);
    if (events[i].events & EPOLLERR) ReadErrorQueue(op, &touched);
    if (op->waitingWritable && (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      op->waitingWritable = false;
      if (!op->queued) {
        op->queued = true;
        ready_.push_back(id);
      }
    }
  }
  // One turn for each op that was ready when this reap began; what queues itself again runs
  // at the next one, after the loop served everything else.
  std::vector<uint32_t> turn;
  turn.swap(ready_);
  for (uint32_t id : turn) {
    auto it = ops_.find(id);
    if (it == ops_.end()) continue;
    Run(it->second);
    touched.push_back(id);
  }
  if (abandoned_ > 0) {
    for (auto& entry : ops_) {
      Op* op = entry.second;
      if (op->abandoned && !op->expired && op->letGo.Expired(op->fd)) {
        op->expired = true;
        Expire(op, &touched);
      }
    }
  }
  finished->insert(finished->end(), finishedSinceReap_.begin(), finishedSinceReap_.end());
  finishedSinceReap_.clear();
  for (uint32_t id : touched) {
    auto it = ops_.find(id);
    if (it != ops_.end()) MaybeRelease(it->second, released);
  }
  // With 64 events at a time there may be more: the next turn of the loop reads them.
  if (n == 64) Wake();
}

void Classic::CloseAsync(int fd) {
  closing_++;
  RunOnDiskThread(inbox_, kCloseJob, [fd]() -> int64_t {
    close(fd);  // an error of the file's flush leaves nothing to do: the descriptor is released
    return fd;
  });
}

int64_t Classic::OpenBeneath(int dirfd, const char* path, BeneathKind kind, uint64_t resolve) {
  int dir = dirfd == AT_FDCWD ? AT_FDCWD : fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dir < 0 && dir != AT_FDCWD) return -errno;
  std::string name(path);
  return OpenOnDiskThread([dir, name, kind, resolve]() -> int {
    int fd = OpenBeneathNow(dir, name.c_str(), kind, resolve);
    if (dir >= 0) close(dir);
    return fd;
  });
}

// A path's open on a disk thread: its lookup or the filesystem's open may wait (a cold
// dentry, NFS, FUSE). Reported through TakeOpened like the opens beneath a root.
int64_t Classic::OpenFile(const char* path) {
  std::string name(path);
  return OpenOnDiskThread([name]() -> int {
    // O_NONBLOCK: a FIFO opens at once (and is then refused as not a regular file).
    int fd = open(name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
  });
}

// Runs `open` (a descriptor or -errno) on a disk thread under a new open id; the inbox gets
// the id and the result packed in one value.
int64_t Classic::OpenOnDiskThread(std::function<int()> open) {
  uint32_t id;
  do {
    id = nextOpen_++;
  } while (id == 0);
  opening_++;
  RunOnDiskThread(inbox_, kOpenJob, [id, open]() -> int64_t {
    int fd = open();
    return static_cast<int64_t>((static_cast<uint64_t>(id) << 32) | static_cast<uint32_t>(fd));
  });
  return id;
}

void Classic::TakeOpened(std::vector<Opened>* out) {
  out->insert(out->end(), opened_.begin(), opened_.end());
  opened_.clear();
}

void Classic::TakeClosed(std::vector<int>* out) {
  out->insert(out->end(), closed_.begin(), closed_.end());
  closed_.clear();
}

void Classic::Drain(unsigned timeoutMs, std::vector<Released>* released) {
  // Nobody is left to wait for a slow client: every op ends now, and a finished one's unsent
  // segments are dropped (Expire), so the kernel lets go of the bodies before they are freed.
  std::vector<uint32_t> touched;
  for (auto& entry : ops_) {
    Op* op = entry.second;
    if (!op->finished) {
      Abort(entry.first);
    } else if (!op->pins.empty() && !op->expired) {
      op->expired = true;
      Expire(op, &touched);
    }
  }
  for (uint32_t id : touched) {
    auto it = ops_.find(id);
    if (it != ops_.end()) MaybeRelease(it->second, released);
  }
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  std::vector<Finished> finished;
  while (!ops_.empty() || closing_ != 0 || opening_ != 0) {
    pollfd sleep{epfd_, POLLIN, 0};
    poll(&sleep, 1, 50);  // until something is ready (poll, not epoll_wait: no event is consumed)
    Wake();
    Reap(&finished, released);
    if (MsSince(start) >= static_cast<long>(timeoutMs)) break;
  }
  CloseUntaken(&opened_);
}

}  // namespace classic
}  // namespace zerocopy
