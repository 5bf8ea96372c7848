// A small, growing pool of threads that make device calls (PKCS#11 or SDF)
// on behalf of requests with a deadline, so a request can end at its deadline
// while a hung call goes on in the background. Shared by both backends.
#ifndef HSMD_DAEMON_BACKEND_WORKER_POOL_H_
#define HSMD_DAEMON_BACKEND_WORKER_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace hsmd::backend {

// Threads are started on demand (a task finds no idle worker) up to
// `max_threads`, then tasks wait in a queue; the caller bounds the number of
// tasks (one per borrowed session), so the queue is bounded too. Workers keep
// only the pool's shared state alive, so one stuck in a task may outlive the
// pool (see Shutdown).
class WorkerPool {
 public:
  explicit WorkerPool(size_t max_threads);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  // Shutdown(absl::InfiniteDuration()) unless shut down already.
  ~WorkerPool();

  // Runs `task` on a worker. After Shutdown it runs on the caller.
  void Submit(absl::AnyInvocable<void()> task);

  // Stops the pool: queued tasks still run; waits up to `grace` for every
  // task to finish and joins the workers. Workers still inside a task after
  // `grace` are detached and exit when their task returns. True if all were
  // joined. Idempotent.
  bool Shutdown(absl::Duration grace);

  // Threads started and not yet exited.
  size_t threads() const;
  // Tasks running now.
  size_t running() const;

 private:
  struct State {
    mutable std::mutex mu;
    std::condition_variable work_cv;
    std::condition_variable done_cv;
    std::deque<absl::AnyInvocable<void()>> queue ABSL_GUARDED_BY(mu);
    size_t threads ABSL_GUARDED_BY(mu) = 0;
    size_t idle ABSL_GUARDED_BY(mu) = 0;
    size_t running ABSL_GUARDED_BY(mu) = 0;
    bool stopping ABSL_GUARDED_BY(mu) = false;
  };
  static void WorkerLoop(std::shared_ptr<State> state);

  const size_t max_threads_;
  const std::shared_ptr<State> state_;
  std::mutex threads_mu_;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(threads_mu_);
  bool shut_down_ ABSL_GUARDED_BY(threads_mu_) = false;
};

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_WORKER_POOL_H_
