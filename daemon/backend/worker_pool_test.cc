#include "daemon/backend/worker_pool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace hsmd::backend {
namespace {

TEST(WorkerPoolTest, RunsTasksOnOtherThreads) {
  WorkerPool pool(4);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> elsewhere{0};
  std::vector<std::unique_ptr<absl::Notification>> done;
  for (int i = 0; i < 20; ++i) {
    done.push_back(std::make_unique<absl::Notification>());
    absl::Notification* note = done.back().get();
    pool.Submit([&, note] {
      if (std::this_thread::get_id() != caller) ++elsewhere;
      note->Notify();
    });
  }
  for (auto& note : done) note->WaitForNotification();
  EXPECT_EQ(elsewhere.load(), 20);
  EXPECT_GE(pool.threads(), 1u);
  EXPECT_LE(pool.threads(), 4u);
  EXPECT_TRUE(pool.Shutdown(absl::Seconds(10)));
  EXPECT_EQ(pool.threads(), 0u);
}

TEST(WorkerPoolTest, GrowsUpToTheLimitThenQueues) {
  WorkerPool pool(3);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < 6; ++i) {
    pool.Submit([&] {
      ++started;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
      ++finished;
    });
  }
  while (started.load() < 3) absl::SleepFor(absl::Milliseconds(1));
  absl::SleepFor(absl::Milliseconds(50));
  // Three block their workers; the other three wait in the queue.
  EXPECT_EQ(started.load(), 3);
  EXPECT_EQ(pool.threads(), 3u);
  EXPECT_EQ(pool.running(), 3u);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(pool.Shutdown(absl::Seconds(10)));
  EXPECT_EQ(finished.load(), 6);
}

TEST(WorkerPoolTest, StuckTaskIsDetachedAfterTheGrace) {
  auto release = std::make_shared<absl::Notification>();
  auto finished = std::make_shared<absl::Notification>();
  {
    WorkerPool pool(2);
    pool.Submit([release, finished] {
      release->WaitForNotification();
      finished->Notify();
    });
    EXPECT_FALSE(pool.Shutdown(absl::Milliseconds(50)));
    // After shutdown, tasks run on the caller.
    bool ran = false;
    pool.Submit([&ran] { ran = true; });
    EXPECT_TRUE(ran);
  }
  // The pool is gone; the stuck worker still finishes its task safely.
  release->Notify();
  EXPECT_TRUE(finished->WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace hsmd::backend
