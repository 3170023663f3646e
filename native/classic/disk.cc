#include "disk.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <deque>

// glibc 2.34 moved pthread_create into libc under a new version; the prebuilds load on glibc
// 2.28, so bind the version every glibc since the architecture's first has.
#if defined(__x86_64__)
__asm__(".symver pthread_create, pthread_create@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver pthread_create, pthread_create@GLIBC_2.17");
#endif

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

// pthreads rather than std::thread and std::condition_variable, whose libstdc++ symbols are
// newer than the prebuilds' floor (GLIBCXX_3.4.30 for condition_variable::wait with GCC 12).
struct Pool {
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
  std::deque<Job> jobs;
  unsigned threads = 0;
  unsigned idle = 0;

  static void* Main(void* self) {
    static_cast<Pool*>(self)->Loop();
    return nullptr;
  }

  void Loop() {
    for (;;) {
      Job job;
      pthread_mutex_lock(&lock);
      idle++;
      while (jobs.empty()) pthread_cond_wait(&ready, &lock);
      idle--;
      job = std::move(jobs.front());
      jobs.pop_front();
      pthread_mutex_unlock(&lock);
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
  pthread_mutex_lock(&pool.lock);
  pool.jobs.push_back(Job{inbox, id, std::move(job)});
  if (pool.idle < pool.jobs.size() && pool.threads < kThreads) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    // Signals stay with Node's threads: a disk thread blocks them all.
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);  // this thread's mask (pthread_sigmask binds GLIBC_2.32)
    if (pthread_create(&thread, &attr, &Pool::Main, &pool) == 0) pool.threads++;
    sigprocmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
  }
  pthread_cond_signal(&pool.ready);
  pthread_mutex_unlock(&pool.lock);
}

}  // namespace classic
}  // namespace zerocopy
