// The classic engine's disk threads: where a transfer's call that may wait on a disk or a
// network filesystem runs, so that the event loop's thread never does (nginx's `aio threads`).
// A few threads for the whole process, started on first use, shared by every Node environment;
// not libuv's pool, which a stuck NFS mount would take from the application's fs, dns and
// crypto work.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace zerocopy {
namespace classic {

// Where an engine's finished jobs wait for its event loop: the job's id and what it returned.
// Shared with the threads (counted references: std::shared_ptr would bind newer glibc and
// libstdc++ symbols than the prebuilds allow), so a job that outlives its engine (a teardown
// that gave up on a stuck filesystem) still has somewhere to land.
struct Inbox {
  explicit Inbox(int wake) : wake(wake) {}
  void Ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  std::atomic<int> refs{1};
  std::mutex lock;
  std::vector<std::pair<uint32_t, int64_t>> done;
  int wake;  // an eventfd in the engine's epoll: written once a job lands

 private:
  ~Inbox();
};

// Runs `job` on a disk thread; its result lands in `inbox` (which it holds a reference to
// meanwhile) under `id`.
void RunOnDiskThread(Inbox* inbox, uint32_t id, std::function<int64_t()> job);

}  // namespace classic
}  // namespace zerocopy
