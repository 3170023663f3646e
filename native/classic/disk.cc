#include "disk.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <thread>

namespace zerocopy {
namespace classic {
namespace {

// Enough for a few transfers waiting on slow reads at once; the rest queue behind them.
constexpr unsigned kThreads = 4;

struct Job {
  Inbox* inbox;
  uint32_t id;
  std::function<int64_t()> run;
};

struct Pool {
  std::mutex lock;
  std::condition_variable ready;
  std::deque<Job> jobs;
  unsigned threads = 0;
  unsigned idle = 0;

  void Loop() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> guard(lock);
        idle++;
        ready.wait(guard, [this] { return !jobs.empty(); });
        idle--;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      int64_t result = job.run();
      {
        std::lock_guard<std::mutex> guard(job.inbox->lock);
        job.inbox->done.emplace_back(job.id, result);
      }
      uint64_t one = 1;
      if (write(job.inbox->wake, &one, sizeof one) < 0) {
        // EAGAIN: the counter is already non-zero, the loop will look anyway.
      }
      job.inbox->Unref();
    }
  }
};

Pool& ThePool() {
  static Pool* pool = new Pool();  // its threads run until the process ends
  return *pool;
}

}  // namespace

Inbox::~Inbox() {
  if (wake >= 0) close(wake);
}

void RunOnDiskThread(Inbox* inbox, uint32_t id, std::function<int64_t()> job) {
  Pool& pool = ThePool();
  inbox->Ref();
  std::lock_guard<std::mutex> guard(pool.lock);
  pool.jobs.push_back(Job{inbox, id, std::move(job)});
  if (pool.idle < pool.jobs.size() && pool.threads < kThreads) {
    pool.threads++;
    std::thread([&pool] { pool.Loop(); }).detach();
  }
  pool.ready.notify_one();
}

}  // namespace classic
}  // namespace zerocopy
