#include "daemon/backend/sdf/session_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hsmd::backend::sdf {
namespace {

// Sessions are numbered handles; opening and closing are counted.
class PoolTest : public ::testing::Test {
 protected:
  std::unique_ptr<SessionPool> NewPool(int size) {
    std::vector<std::unique_ptr<SdfSession>> sessions;
    for (int i = 0; i < size; ++i) sessions.push_back(Open().value());
    return SessionPool::New(
               std::move(sessions), [this] { return Open(); },
               [this](SdfSession& s) {
                 closed_.fetch_add(1);
                 s.handle = nullptr;
               })
        .value();
  }

  absl::StatusOr<std::unique_ptr<SdfSession>> Open() {
    if (fail_open_) return absl::UnavailableError("cannot open");
    auto session = std::make_unique<SdfSession>();
    session->handle = reinterpret_cast<void*>(next_.fetch_add(1));
    opened_.fetch_add(1);
    return session;
  }

  std::atomic<uintptr_t> next_{1};
  std::atomic<int> opened_{0};
  std::atomic<int> closed_{0};
  std::atomic<bool> fail_open_{false};
};

TEST_F(PoolTest, LendsAndTakesBack) {
  auto pool = NewPool(2);
  EXPECT_EQ(pool->size(), 2u);
  EXPECT_EQ(pool->open(), 2u);
  auto a = pool->Acquire(absl::InfiniteFuture());
  auto b = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->session()->handle, b->session()->handle);
  EXPECT_EQ(pool->in_use(), 2u);
  // All busy: a deadline ends the wait.
  auto c = pool->Acquire(absl::Now() + absl::Milliseconds(20));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  a->Release();
  EXPECT_EQ(pool->in_use(), 1u);
  c = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(c.ok());
}

TEST_F(PoolTest, ReplacesBrokenSessions) {
  auto pool = NewPool(1);
  {
    auto lease = pool->Acquire(absl::InfiniteFuture());
    ASSERT_TRUE(lease.ok());
    lease->Invalidate();
  }
  EXPECT_EQ(pool->replaced(), 1u);
  EXPECT_EQ(closed_.load(), 1);
  EXPECT_EQ(opened_.load(), 2);
  EXPECT_EQ(pool->open(), 1u);
  // A replacement that cannot be opened now is opened by the next holder.
  fail_open_ = true;
  {
    auto lease = pool->Acquire(absl::InfiniteFuture());
    ASSERT_TRUE(lease.ok());
    lease->Invalidate();
  }
  EXPECT_EQ(pool->open(), 0u);
  auto lease = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->session(), nullptr);
  EXPECT_FALSE(lease->EnsureOpen().ok());
  fail_open_ = false;
  EXPECT_TRUE(lease->EnsureOpen().ok());
  EXPECT_NE(lease->session(), nullptr);
}

TEST_F(PoolTest, WaitersAreServedInOrder) {
  auto pool = NewPool(1);
  auto held = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(held.ok());
  std::vector<int> order;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto lease = pool->Acquire(absl::InfiniteFuture());
      ASSERT_TRUE(lease.ok());
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
    });
    // Each thread is in line before the next starts.
    while (pool->waiting() != static_cast<uint32_t>(i + 1)) {
      std::this_thread::yield();
    }
  }
  held->Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(PoolTest, CloseWakesWaiters) {
  auto pool = NewPool(1);
  auto held = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(held.ok());
  std::thread waiter([&] {
    auto lease = pool->Acquire(absl::InfiniteFuture());
    EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  });
  while (pool->waiting() != 1) std::this_thread::yield();
  EXPECT_FALSE(pool->Close(absl::Milliseconds(10), true));
  waiter.join();
  held->Release();
  EXPECT_EQ(pool->Acquire(absl::InfiniteFuture()).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(PoolTest, CloseClosesFreeSessionsOnly) {
  auto pool = NewPool(2);
  auto held = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(pool->Close(absl::Milliseconds(10), true));
  EXPECT_EQ(closed_.load(), 1);
  // Returned after Close: dropped without a call (the device may be gone).
  held->Release();
  EXPECT_EQ(closed_.load(), 1);
  EXPECT_EQ(pool->open(), 0u);
}

TEST_F(PoolTest, CloseWithoutClosingSessions) {
  auto pool = NewPool(3);
  EXPECT_TRUE(pool->Close(absl::ZeroDuration(), false));
  EXPECT_EQ(closed_.load(), 0);
  EXPECT_EQ(pool->open(), 0u);
}

}  // namespace
}  // namespace hsmd::backend::sdf
