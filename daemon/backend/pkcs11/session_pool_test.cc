#include "daemon/backend/pkcs11/session_pool.h"

#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "daemon/backend/pkcs11/module.h"
#include "daemon/backend/pkcs11/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/softhsm_env.h"

namespace hsmd::backend::pkcs11 {
namespace {

using ::testing::HasSubstr;

class SessionPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alarm(120);  // A hang fails the test instead of blocking the run.
    absl::StatusOr<std::unique_ptr<testing::SoftHsmEnv>> env =
        testing::SoftHsmEnv::New();
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = env->release();
    absl::StatusOr<std::shared_ptr<Module>> module =
        Module::Load(testing::kSoftHsmModulePath);
    ASSERT_TRUE(module.ok()) << module.status();
    module_ = new std::shared_ptr<Module>(*module);
    absl::StatusOr<CK_SLOT_ID> slot =
        FindTokenSlot(**module_, env_->token_label(), "", std::nullopt);
    ASSERT_TRUE(slot.ok()) << slot.status();
    slot_ = *slot;
  }

  CK_FUNCTION_LIST* fns() { return (*module_)->fns(); }

  absl::StatusOr<std::unique_ptr<SessionPool>> NewPool(uint32_t size) {
    return SessionPool::New(*module_, slot_, size);
  }

  static testing::SoftHsmEnv* env_;
  static std::shared_ptr<Module>* module_;
  static CK_SLOT_ID slot_;
};

testing::SoftHsmEnv* SessionPoolTest::env_ = nullptr;
std::shared_ptr<Module>* SessionPoolTest::module_ = nullptr;
CK_SLOT_ID SessionPoolTest::slot_ = 0;

TEST_F(SessionPoolTest, RejectsSizeZero) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(0);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionPoolTest, OpensSessionsUpFront) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(3);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->size(), 3u);
  EXPECT_EQ((*pool)->open(), 3u);
  EXPECT_EQ((*pool)->in_use(), 0u);
}

TEST_F(SessionPoolTest, ExhaustedPoolGivesResourceExhaustedAtDeadline) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(2);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<SessionPool::Lease> a =
      (*pool)->Acquire(absl::InfiniteFuture());
  absl::StatusOr<SessionPool::Lease> b =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->handle(), b->handle());
  EXPECT_EQ((*pool)->in_use(), 2u);

  absl::StatusOr<SessionPool::Lease> c =
      (*pool)->Acquire(absl::Now() + absl::Milliseconds(50));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(c.status().message(),
              HasSubstr("no HSM session became free before the deadline "
                        "(pool size 2)"));
  // A deadline in the past fails at once.
  c = (*pool)->Acquire(absl::InfinitePast());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);

  CK_SESSION_HANDLE returned = a->handle();
  *a = SessionPool::Lease();
  EXPECT_EQ((*pool)->in_use(), 1u);
  c = (*pool)->Acquire(absl::InfinitePast());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->handle(), returned);
}

TEST_F(SessionPoolTest, WaiterGetsTheReturnedSession) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(1);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<SessionPool::Lease> held =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(held.ok());
  absl::Notification waiting, done;
  absl::Status waiter_status;
  std::thread waiter([&] {
    waiting.Notify();
    absl::StatusOr<SessionPool::Lease> lease =
        (*pool)->Acquire(absl::InfiniteFuture());
    waiter_status = lease.status();
    done.Notify();
  });
  waiting.WaitForNotification();
  EXPECT_FALSE(done.HasBeenNotified());
  *held = SessionPool::Lease();
  done.WaitForNotification();
  waiter.join();
  EXPECT_TRUE(waiter_status.ok()) << waiter_status;
  EXPECT_EQ((*pool)->in_use(), 0u);
}

TEST_F(SessionPoolTest, BrokenSessionIsReplacedAndLoginSurvives) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(1);
  ASSERT_TRUE(pool.ok()) << pool.status();
  CK_SESSION_HANDLE old_handle;
  {
    absl::StatusOr<SessionPool::Lease> lease =
        (*pool)->Acquire(absl::InfiniteFuture());
    ASSERT_TRUE(lease.ok());
    SecretString pin = env_->user_pin();
    CK_RV rv = fns()->C_Login(
        lease->handle(), CKU_USER,
        reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data())),
        pin.size());
    ASSERT_TRUE(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) << rv;
    old_handle = lease->handle();
    lease->Invalidate();
  }
  EXPECT_EQ((*pool)->replaced(), 1u);
  EXPECT_EQ((*pool)->open(), 1u);
  CK_SESSION_INFO info;
  EXPECT_EQ(fns()->C_GetSessionInfo(old_handle, &info),
            CKR_SESSION_HANDLE_INVALID);

  absl::StatusOr<SessionPool::Lease> lease =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(lease.ok());
  EXPECT_NE(lease->handle(), old_handle);
  ASSERT_EQ(fns()->C_GetSessionInfo(lease->handle(), &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RW_USER_FUNCTIONS);
  EXPECT_EQ(fns()->C_Logout(lease->handle()), CKR_OK);
}

TEST_F(SessionPoolTest, SessionClosedElsewhereIsDetectedAndReplaced) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(1);
  ASSERT_TRUE(pool.ok()) << pool.status();
  {
    absl::StatusOr<SessionPool::Lease> lease =
        (*pool)->Acquire(absl::InfiniteFuture());
    ASSERT_TRUE(lease.ok());
    ASSERT_EQ(fns()->C_CloseSession(lease->handle()), CKR_OK);
    unsigned char buffer[8];
    CK_RV rv = fns()->C_GenerateRandom(lease->handle(), buffer, 8);
    ASSERT_EQ(rv, CKR_SESSION_HANDLE_INVALID);
    lease->Invalidate();
  }
  absl::StatusOr<SessionPool::Lease> lease =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(lease.ok());
  unsigned char buffer[8];
  EXPECT_EQ(fns()->C_GenerateRandom(lease->handle(), buffer, 8), CKR_OK);
}

TEST_F(SessionPoolTest, ClosedPoolIsUnavailable) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(2);
  ASSERT_TRUE(pool.ok()) << pool.status();
  bool called = false;
  EXPECT_TRUE((*pool)->Close(absl::Seconds(5),
                             [&](CK_SESSION_HANDLE) { called = true; }));
  EXPECT_TRUE(called);
  EXPECT_EQ((*pool)->open(), 0u);
  absl::StatusOr<SessionPool::Lease> lease =
      (*pool)->Acquire(absl::InfiniteFuture());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(SessionPoolTest, CloseWithLeaseOutClosesItOnReturn) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(1);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<SessionPool::Lease> lease =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(lease.ok());
  CK_SESSION_HANDLE handle = lease->handle();
  bool called = false;
  EXPECT_FALSE((*pool)->Close(absl::ZeroDuration(),
                              [&](CK_SESSION_HANDLE) { called = true; }));
  EXPECT_FALSE(called);
  *lease = SessionPool::Lease();
  CK_SESSION_INFO info;
  EXPECT_EQ(fns()->C_GetSessionInfo(handle, &info), CKR_SESSION_HANDLE_INVALID);
  EXPECT_EQ((*pool)->open(), 0u);
}

TEST_F(SessionPoolTest, ConcurrentUsersNeverShareASession) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(2);
  ASSERT_TRUE(pool.ok()) << pool.status();
  std::atomic<int> concurrent{0};
  std::atomic<int> max_concurrent{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<SessionPool::Lease> lease =
            (*pool)->Acquire(absl::InfiniteFuture());
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        int now = ++concurrent;
        int seen = max_concurrent.load();
        while (now > seen && !max_concurrent.compare_exchange_weak(seen, now)) {
        }
        unsigned char buffer[16];
        if (fns()->C_GenerateRandom(lease->handle(), buffer, 16) != CKR_OK) {
          ++failures;
        }
        --concurrent;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(max_concurrent.load(), 2);
  EXPECT_EQ((*pool)->in_use(), 0u);
  EXPECT_EQ((*pool)->open(), 2u);
}

TEST_F(SessionPoolTest, WaitersAreServedInArrivalOrder) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(1);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<SessionPool::Lease> held =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(held.ok());
  constexpr int kWaiters = 6;
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<SessionPool::Lease> lease =
          (*pool)->Acquire(absl::InfiniteFuture());
      ASSERT_TRUE(lease.ok()) << lease.status();
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
    });
    // Each one is in line before the next arrives.
    while ((*pool)->waiting() != static_cast<uint32_t>(i + 1)) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  // A newcomer queues behind them (and times out), leaving the line intact.
  EXPECT_EQ(
      (*pool)->Acquire(absl::Now() + absl::Milliseconds(20)).status().code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*pool)->waiting(), static_cast<uint32_t>(kWaiters));
  *held = SessionPool::Lease();
  for (std::thread& thread : threads) thread.join();
  std::vector<int> expected;
  for (int i = 0; i < kWaiters; ++i) expected.push_back(i);
  EXPECT_EQ(order, expected);
  EXPECT_EQ((*pool)->waiting(), 0u);
  EXPECT_EQ((*pool)->in_use(), 0u);
}

TEST_F(SessionPoolTest, ClosingWakesWaiters) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(1);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<SessionPool::Lease> held =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(held.ok());
  absl::Status waiter_status;
  std::thread waiter([&] {
    waiter_status = (*pool)->Acquire(absl::InfiniteFuture()).status();
  });
  while ((*pool)->waiting() != 1) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_FALSE((*pool)->Close(absl::ZeroDuration()));
  waiter.join();
  EXPECT_EQ(waiter_status.code(), absl::StatusCode::kUnavailable);
  *held = SessionPool::Lease();
  EXPECT_EQ((*pool)->open(), 0u);
}

// Runs last: it re-initialises the module (SoftHSM renumbers slots then).
TEST_F(SessionPoolTest, PoolOfAnOldGenerationNeverCallsTheModule) {
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = NewPool(2);
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<SessionPool::Lease> lease =
      (*pool)->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(lease.ok());
  const uint64_t generation = (*module_)->generation();
  ASSERT_TRUE((*module_)->Reinitialize(generation, absl::Seconds(5)).ok());
  absl::StatusOr<CK_SLOT_ID> slot =
      FindTokenSlot(**module_, env_->token_label(), "", std::nullopt);
  ASSERT_TRUE(slot.ok()) << slot.status();
  slot_ = *slot;
  // New sessions of the new generation; the module may reuse the old
  // handle numbers for them.
  std::vector<CK_SESSION_HANDLE> fresh(4);
  for (CK_SESSION_HANDLE& handle : fresh) {
    ASSERT_EQ(fns()->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr,
                                   &handle),
              CKR_OK);
  }
  lease->Invalidate();
  *lease = SessionPool::Lease();  // Broken: no replacement, no close.
  pool->reset();                  // Closes nothing either.
  for (CK_SESSION_HANDLE handle : fresh) {
    CK_SESSION_INFO info;
    EXPECT_EQ(fns()->C_GetSessionInfo(handle, &info), CKR_OK) << handle;
    EXPECT_EQ(fns()->C_CloseSession(handle), CKR_OK);
  }
}

}  // namespace
}  // namespace hsmd::backend::pkcs11
