#include "daemon/backend/sdf/worker_pool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "gtest/gtest.h"

namespace hsmd::backend::sdf {
namespace {

TEST(WorkerPoolTest, RunsTasksOnWorkers) {
  WorkerPool pool(2);
  std::atomic<int> done{0};
  std::mutex mu;
  std::condition_variable cv;
  for (int i = 0; i < 10; ++i) {
    pool.Submit([&] {
      done.fetch_add(1);
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done.load() == 10; });
  EXPECT_LE(pool.threads(), 2u);
  EXPECT_TRUE(pool.Shutdown(absl::InfiniteDuration()));
}

TEST(WorkerPoolTest, ShutdownLeavesStuckTasksBehind) {
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto finished = std::make_shared<std::atomic<bool>>(false);
  {
    WorkerPool pool(1);
    pool.Submit([release, finished] {
      while (!release->load()) std::this_thread::yield();
      finished->store(true);
    });
    EXPECT_FALSE(pool.Shutdown(absl::Milliseconds(10)));
    // After Shutdown, tasks run on the caller.
    bool ran_here = false;
    pool.Submit([&] { ran_here = true; });
    EXPECT_TRUE(ran_here);
  }
  release->store(true);
  while (!finished->load()) std::this_thread::yield();
}

}  // namespace
}  // namespace hsmd::backend::sdf
