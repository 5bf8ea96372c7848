// Module generations and in-process re-initialisation, against SoftHSM
// itself (the fault tests in tests/fault use the fault-injecting module).
#include "daemon/backend/pkcs11/module.h"

#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "daemon/backend/pkcs11/token.h"
#include "gtest/gtest.h"
#include "tests/util/softhsm_env.h"

namespace hsmd::backend::pkcs11 {
namespace {

class ModuleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alarm(120);  // A hang fails the test instead of blocking the run.
    absl::StatusOr<std::unique_ptr<testing::SoftHsmEnv>> env =
        testing::SoftHsmEnv::New();
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = env->release();
  }

  static CK_SESSION_HANDLE OpenSession(Module& module) {
    absl::StatusOr<CK_SLOT_ID> slot =
        FindTokenSlot(module, env_->token_label(), "", std::nullopt);
    EXPECT_TRUE(slot.ok()) << slot.status();
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    EXPECT_EQ(module.fns()->C_OpenSession(*slot, CKF_SERIAL_SESSION, nullptr,
                                          nullptr, &session),
              CKR_OK);
    return session;
  }

  static testing::SoftHsmEnv* env_;
};

testing::SoftHsmEnv* ModuleTest::env_ = nullptr;

TEST_F(ModuleTest, SoftHsmSurvivesFinalizeAndInitialize) {
  absl::StatusOr<std::shared_ptr<Module>> module =
      Module::Load(testing::kSoftHsmModulePath);
  ASSERT_TRUE(module.ok()) << module.status();
  const uint64_t before = (*module)->generation();
  const CK_SESSION_HANDLE old_session = OpenSession(**module);

  absl::StatusOr<uint64_t> after =
      (*module)->Reinitialize(before, absl::Seconds(5));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, before + 1);
  EXPECT_EQ((*module)->generation(), *after);
  // The old session died with the old initialisation.
  CK_SESSION_INFO info;
  EXPECT_NE((*module)->fns()->C_GetSessionInfo(old_session, &info), CKR_OK);

  // The token is found again (by label) and usable, PIN included.
  const CK_SESSION_HANDLE session = OpenSession(**module);
  SecretString pin = env_->user_pin();
  EXPECT_EQ((*module)->fns()->C_Login(
                session, CKU_USER,
                reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data())),
                pin.size()),
            CKR_OK);
  unsigned char random[16];
  EXPECT_EQ((*module)->fns()->C_GenerateRandom(session, random, 16), CKR_OK);
  EXPECT_EQ((*module)->fns()->C_Logout(session), CKR_OK);
  EXPECT_EQ((*module)->fns()->C_CloseSession(session), CKR_OK);

  // Several rounds in a row work too.
  for (int i = 0; i < 3; ++i) {
    after = (*module)->Reinitialize(*after, absl::Seconds(5));
    ASSERT_TRUE(after.ok()) << after.status();
  }
  EXPECT_EQ((*module)->generation(), before + 4);
}

TEST_F(ModuleTest, ModuleFinalizedBehindOurBackIsInitialisedAgain) {
  absl::StatusOr<std::shared_ptr<Module>> module =
      Module::Load(testing::kSoftHsmModulePath);
  ASSERT_TRUE(module.ok()) << module.status();
  const uint64_t before = (*module)->generation();
  ASSERT_EQ((*module)->fns()->C_Finalize(nullptr), CKR_OK);
  CK_ULONG count = 0;
  EXPECT_EQ((*module)->fns()->C_GetSlotList(CK_TRUE, nullptr, &count),
            CKR_CRYPTOKI_NOT_INITIALIZED);
  absl::StatusOr<uint64_t> after =
      (*module)->Reinitialize(before, absl::Seconds(5));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GT(*after, before);
  EXPECT_EQ((*module)->fns()->C_GetSlotList(CK_TRUE, nullptr, &count), CKR_OK);
  EXPECT_GE(count, 1u);
}

TEST_F(ModuleTest, UsesOfAnOldGenerationAreRefused) {
  absl::StatusOr<std::shared_ptr<Module>> module =
      Module::Load(testing::kSoftHsmModulePath);
  ASSERT_TRUE(module.ok()) << module.status();
  const uint64_t old_generation = (*module)->generation();
  {
    Module::Use use = (*module)->Enter(old_generation);
    EXPECT_TRUE(use.active());
    EXPECT_EQ((*module)->active_uses(), 1);
  }
  EXPECT_EQ((*module)->active_uses(), 0);
  ASSERT_TRUE((*module)->Reinitialize(old_generation, absl::Seconds(5)).ok());
  EXPECT_FALSE((*module)->Enter(old_generation).active());
  EXPECT_TRUE((*module)->Enter((*module)->generation()).active());
  EXPECT_EQ((*module)->active_uses(), 0);
}

TEST_F(ModuleTest, ReinitializeWaitsForActiveUses) {
  absl::StatusOr<std::shared_ptr<Module>> module =
      Module::Load(testing::kSoftHsmModulePath);
  ASSERT_TRUE(module.ok()) << module.status();
  const uint64_t generation = (*module)->generation();
  Module::Use use = (*module)->Enter(generation);
  ASSERT_TRUE(use.active());
  std::atomic<bool> released{false};
  std::atomic<bool> released_before_return{false};
  absl::Notification started;
  std::thread reinit([&] {
    started.Notify();
    absl::StatusOr<uint64_t> after =
        (*module)->Reinitialize(generation, absl::Seconds(30));
    EXPECT_TRUE(after.ok()) << after.status();
    released_before_return = released.load();
  });
  started.WaitForNotification();
  // While it waits, new uses are refused.
  while ((*module)->Enter(generation).active()) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(absl::Milliseconds(50));
  released = true;
  use.Release();
  reinit.join();
  EXPECT_TRUE(released_before_return.load());
  EXPECT_EQ((*module)->generation(), generation + 1);
}

TEST_F(ModuleTest, ReinitializeIsSkippedWhenAnotherUserDidIt) {
  absl::StatusOr<std::shared_ptr<Module>> module =
      Module::Load(testing::kSoftHsmModulePath);
  ASSERT_TRUE(module.ok()) << module.status();
  const uint64_t seen = (*module)->generation();
  ASSERT_TRUE((*module)->Reinitialize(seen, absl::Seconds(5)).ok());
  const CK_SESSION_HANDLE session = OpenSession(**module);
  // A second user that saw the same old generation does not finalize again.
  absl::StatusOr<uint64_t> again =
      (*module)->Reinitialize(seen, absl::Seconds(5));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, seen + 1);
  CK_SESSION_INFO info;
  EXPECT_EQ((*module)->fns()->C_GetSessionInfo(session, &info), CKR_OK);
  EXPECT_EQ((*module)->fns()->C_CloseSession(session), CKR_OK);
}

TEST_F(ModuleTest, NoFinalizeQuirkKeepsTheInitialisation) {
  absl::StatusOr<std::shared_ptr<Module>> module =
      Module::Load(testing::kSoftHsmModulePath, /*no_finalize=*/true);
  ASSERT_TRUE(module.ok()) << module.status();
  ASSERT_TRUE((*module)->no_finalize());
  const uint64_t before = (*module)->generation();
  const CK_SESSION_HANDLE session = OpenSession(**module);
  absl::StatusOr<uint64_t> after =
      (*module)->Reinitialize(before, absl::Seconds(5));
  ASSERT_TRUE(after.ok()) << after.status();
  // C_Initialize said "already initialised": handles stay valid.
  EXPECT_EQ(*after, before);
  CK_SESSION_INFO info;
  EXPECT_EQ((*module)->fns()->C_GetSessionInfo(session, &info), CKR_OK);
  EXPECT_EQ((*module)->fns()->C_CloseSession(session), CKR_OK);
  module->reset();
  // The last user does not finalize either: a new Load finds SoftHSM still
  // initialised (and now finalizes it when done).
  absl::StatusOr<std::shared_ptr<Module>> again =
      Module::Load(testing::kSoftHsmModulePath);
  ASSERT_TRUE(again.ok()) << again.status();
  CK_ULONG count = 0;
  EXPECT_EQ((*again)->fns()->C_GetSlotList(CK_TRUE, nullptr, &count), CKR_OK);
  EXPECT_EQ((*again)->fns()->C_Finalize(nullptr), CKR_OK);
}

}  // namespace
}  // namespace hsmd::backend::pkcs11
