// What an engine does for one transfer, whichever kernel interface carries it: start it, abort
// it, tell its progress, and report when it finished (its callback is due) and when it was
// released (the kernel holds no reference to its memory any more). Two engines implement it:
// the io_uring ring (uring/ring.h) and the classic one made of the calls container profiles
// allow (classic/classic.h: sendfile, send with MSG_ZEROCOPY, the loop's own epoll).
// Nothing here knows about JavaScript: addon.cc owns the JS references and calls back.
#pragma once

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "beneath.h"

namespace zerocopy {

// Why a body did not go entirely by a zero-copy send (bits of OpResult::fallbacks).
enum : uint32_t {
  kFallbackEopnotsupp = 1,  // the socket refused zero-copy sends: the op went on copying
  kFallbackEnomem = 2,      // pinning was refused (RLIMIT_MEMLOCK, optmem): the rest went by copy
  kFallbackPinBudget = 4,   // the process's pin budget was full: that part went by copy
};

struct OpResult {
  int error = 0;             // 0, or the errno that ended the op (ECANCELED when aborted)
  uint64_t zcBytes = 0;      // bytes the kernel accepted through a zero-copy send
  uint64_t copyBytes = 0;    // bytes the kernel accepted through a copying send
  uint64_t spliceBytes = 0;  // bytes of a file the kernel moved into the socket (splice, sendfile)
  uint32_t fallbacks = 0;    // kFallback* bits
  uint32_t zcNext = 0;       // the socket's next MSG_ZEROCOPY id after this op (classic engine)
};

// Bytes of every engine's zero-copy sends not yet released by the kernel, in the whole process
// (each Node environment has an engine of its own): the pin budget applies to the process, as
// RLIMIT_MEMLOCK does (to the user, even).
inline std::atomic<uint64_t>& ProcessPinned() {
  static std::atomic<uint64_t> pinned{0};
  return pinned;
}

// Reserves `n` bytes of the process's pinned total if that stays within `budget`; false, with
// nothing reserved, otherwise. One compare-exchange: two environments' threads checking at once
// cannot both pass (a load, a check and a later add let both, and the total passed the budget).
inline bool ReservePinned(uint64_t n, uint64_t budget) {
  std::atomic<uint64_t>& pinned = ProcessPinned();
  uint64_t now = pinned.load(std::memory_order_relaxed);
  do {
    if (now + n > budget) return false;
  } while (!pinned.compare_exchange_weak(now, now + n, std::memory_order_relaxed));
  return true;
}

// How long an op whose connection Node let go of (Abort after it finished) waits for a
// client that has stopped reading: its FIN follows the body at once, so a client still
// reading gets the whole body, as from Node's own close; a client whose receive window stayed
// shut (or that acknowledged nothing in flight) this long gets a reset, which frees the pages
// its unsent segments hold. Node's close leaves such a client to the kernel, which keeps
// probing its window for minutes: a client whose event loop was held up for a few seconds
// (a busy process, a garbage collection) must not lose its body here either, so the bound
// is a few seconds, not a round trip. Meanwhile the op does not keep the event loop alive.
constexpr long kLetGoGraceMs = 5000;
// However the window looks, an op whose client acknowledged nothing for this long is reset.
constexpr long kLetGoLimitMs = 4 * kLetGoGraceMs;

// Milliseconds since `start` (a CLOCK_MONOTONIC reading): the engines' teardown bound.
inline long MsSince(const timespec& start) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
}

// What TCP_INFO tells of the peer (uring/ring.cc).
struct PeerState {
  int64_t acked = -1;     // bytes of the stream the peer acknowledged, -1 if unknown
  uint32_t window = 0;    // the receive window it advertised last
  uint32_t inFlight = 0;  // segments sent and not yet acknowledged
};
PeerState ReadPeer(int fd);

// Where an op Node let go of stands, read on the op's own duplicate of the socket (Node's
// number may name another socket by now). The client is waited for, not judged, while it
// acknowledges bytes or while its window is open with nothing of ours in flight (then our
// side's sending is what waits: the kernel's window probes back off between tries, and a
// byte acknowledged at the next one is progress again).
struct LetGoClock {
  int64_t acked = -1;
  timespec progress{};  // the last byte acknowledged
  timespec blamed{};    // since when the client has been holding the body up
  void Start(int fd) {
    acked = ReadPeer(fd).acked;
    clock_gettime(CLOCK_MONOTONIC, &progress);
    blamed = progress;
  }
  // True once the client held the body up for kLetGoGraceMs in a row, or acknowledged
  // nothing for kLetGoLimitMs.
  bool Expired(int fd) {
    PeerState peer = ReadPeer(fd);
    if (peer.acked != acked) {
      Start(fd);
      return false;
    }
    if (peer.window != 0 && peer.inFlight == 0) clock_gettime(CLOCK_MONOTONIC, &blamed);
    return MsSince(blamed) >= kLetGoGraceMs || MsSince(progress) >= kLetGoLimitMs;
  }
};

class Engine {
 public:
  struct Finished {
    uint32_t id;
    OpResult result;
  };
  struct Released {
    uint32_t id;
    uint32_t notifications;  // the op's zero-copy completions
    uint32_t copied;         // ... of which the kernel reported it copied the data
  };
  struct Stats {
    uint64_t notifications;  // zero-copy completions reaped
    uint64_t copied;         // ... of which the kernel reported it copied the data
    uint64_t sends;          // requests (or sends) whose completion is still owed
    uint64_t pinnedBytes;    // bytes of zero-copy sends whose completion is still owed
    uint64_t ops;            // operations not yet released
    uint64_t strays;         // completions for requests already retired (dropped)
    uint64_t waiting = 0;    // operations waiting for room in the engine's queue
    uint64_t waits = 0;      // times the queue had no room for the next one
    int broken = 0;          // errno that broke the engine, or 0
  };
  // What the engine needs from its caller's event loop besides EventFd.
  enum class Due : uint8_t {
    kNothing,  // completions, if any are owed, come through EventFd
    kNow,      // finishes to report that no completion will announce: Reap as soon as possible
    kRetry,    // work the kernel refused for now: Reap again after a backoff
  };
  struct Opened {
    uint32_t id;
    int result;  // the descriptor, or -errno
  };
  // Teardown: opens that completed with nobody left to take their descriptors.
  static void CloseUntaken(std::vector<Opened>* opened) {
    for (const Opened& o : *opened) {
      if (o.result >= 0) close(o.result);
    }
    opened->clear();
  }

  virtual ~Engine() = default;

  virtual const char* Name() const = 0;
  // A descriptor that polls readable when Reap has work: the loop's uv_poll watches it.
  virtual int EventFd() const = 0;
  virtual bool SupportsZeroCopy() const = 0;
  virtual bool SupportsSend() const = 0;
  virtual bool SupportsFiles() const = 0;
  virtual void SetPinBudget(uint64_t bytes) = 0;

  // Sends [data, data + length) on a duplicate of the socket `fd`. The caller keeps `data`
  // alive until Reap reports the op released. `zcNext`: the socket's next MSG_ZEROCOPY id.
  // Returns the op's id (> 0) or -errno.
  virtual int64_t Start(int fd, const uint8_t* data, size_t length, bool zc, uint32_t slice, uint32_t depth,
                        uint32_t zcNext) = 0;
  // Sends `length` bytes of the regular file `file` from `offset` on a duplicate of the socket
  // `fd`, holding its own duplicate of the file. `pollFirst`: the socket was just found full.
  // `remote`: the file is on a filesystem whose calls may wait (fsclass.h).
  virtual int64_t StartFile(int fd, int file, uint64_t offset, uint64_t length, uint32_t chunk, uint32_t depth,
                            bool pollFirst, bool remote) = 0;
  // Ends an op early; it finishes once nothing of it is running in the kernel or a thread.
  // On an op already finished whose zero-copy sends are still owed, it lets go of the
  // connection (Node closed it): the FIN goes after the body, the op no longer keeps the loop
  // alive, and once the client held the body up for kLetGoGraceMs (LetGoClock) the
  // connection is reset (its pages freed).
  virtual void Abort(uint32_t id) = 0;
  // Bytes the kernel accepted so far, or -1 for an unknown op.
  virtual int64_t Progress(uint32_t id) const = 0;
  // Does what is ready. Appends the ops that finished, then those released.
  virtual void Reap(std::vector<Finished>* finished, std::vector<Released>* released) = 0;
  // Environment teardown: aborts every op and waits up to `timeoutMs` for what is owed.
  virtual void Drain(unsigned timeoutMs, std::vector<Released>* released) = 0;
  virtual bool Idle() const = 0;
  virtual Stats GetStats() const = 0;
  // Whether the event loop must stay alive for the engine.
  virtual bool NeedsLoop() const { return !Idle(); }
  virtual Due Pending() const { return Due::kNothing; }
  // The errno that broke the engine (it takes no new op), or 0.
  virtual int Broken() const { return 0; }

  // Opens `path` read-only off the event loop's thread; the result comes out of TakeOpened
  // after a Reap. Returns the request's id (> 0) or -errno (-EOPNOTSUPP: not this engine's).
  virtual int64_t OpenFile(const char* /*path*/) { return -95; }
  virtual void TakeOpened(std::vector<Opened>* /*out*/) {}
  // Opens `path` beneath the directory `dirfd` (or AT_FDCWD) with openat2 and `resolve`
  // (beneath.h) off the event loop's thread, holding its own duplicate of `dirfd` until the
  // open is done (the caller may close theirs meanwhile: the number could then name another
  // directory). Reported like OpenFile, through TakeOpened.
  virtual int64_t OpenBeneath(int /*dirfd*/, const char* /*path*/, BeneathKind /*kind*/, uint64_t /*resolve*/) { return -95; }
  // Closes `fd` off the event loop's thread (a remote file's close may wait on its server);
  // TakeClosed reports it once the kernel released it.
  virtual void CloseAsync(int fd) = 0;
  virtual void TakeClosed(std::vector<int>* out) = 0;
};

}  // namespace zerocopy
