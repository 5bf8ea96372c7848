// The re-initialisation path with SoftHSM loaded directly (no fault
// module): SoftHSM survives C_Finalize + C_Initialize in-process, with and
// without the no_finalize quirk, and the token is found again by label and
// serial even though SoftHSM renumbers its slots.
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "common/error_detail.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_env.h"
#include "tests/util/softhsm_env.h"

namespace hsmd::fault_testing {
namespace {

class SoftHsmReinitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<testing::SoftHsmEnv>> env =
        testing::SoftHsmEnv::New();
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = env->release();
  }

  // Finalizes SoftHSM behind the backend's back, as a crashing helper
  // library or a buggy plug-in in the same process could.
  static void FinalizeSoftHsm() {
    void* handle = dlopen(testing::kSoftHsmModulePath, RTLD_NOW | RTLD_NOLOAD);
    ASSERT_NE(handle, nullptr) << "SoftHSM is not loaded";
    auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(
        dlsym(handle, "C_GetFunctionList"));
    ASSERT_NE(get_function_list, nullptr);
    CK_FUNCTION_LIST* fns = nullptr;
    ASSERT_EQ(get_function_list(&fns), CKR_OK);
    EXPECT_EQ(fns->C_Finalize(nullptr), CKR_OK);
    dlclose(handle);
  }

  static void SignAndVerify(backend::Backend& backend, const v1::Key& key) {
    backend::RequestContext ctx;
    ctx.deadline = absl::Now() + absl::Seconds(10);
    absl::StatusOr<v1::SignResponse> response =
        backend.Sign(EcdsaRequest(key, "message"), ctx);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_TRUE(VerifyEcdsaSha256(key, "message", response->signature()));
  }

  // Runs one "module finalized behind our back" round and checks the
  // backend recovers by itself.
  static void BreakAndRecover(backend::Backend& backend, const v1::Key& key,
                              uint64_t reinitializations) {
    FinalizeSoftHsm();
    backend::RequestContext ctx;
    ctx.deadline = absl::Now() + absl::Seconds(10);
    absl::Status status =
        backend.Sign(EcdsaRequest(key, "during"), ctx).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
    ASSERT_TRUE(detail.has_value()) << status;
    EXPECT_EQ(detail->backend_code_name(), "CKR_CRYPTOKI_NOT_INITIALIZED");
    ASSERT_TRUE(WaitFor(
        [&] {
          return backend.GetStatus().reinitializations() == reinitializations &&
                 backend.IsServing();
        },
        absl::Seconds(30)));
    SignAndVerify(backend, key);
  }

  static testing::SoftHsmEnv* env_;
};

testing::SoftHsmEnv* SoftHsmReinitTest::env_ = nullptr;

TEST_F(SoftHsmReinitTest, RecoversAfterTheModuleWasFinalized) {
  Watchdog watchdog(absl::Seconds(60), "RecoversAfterTheModuleWasFinalized");
  backend::Pkcs11BackendOptions options = env_->BackendOptions(2);
  options.reinit_backoff_initial = absl::Milliseconds(20);
  options.reinit_backoff_max = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "finalized");
  ASSERT_TRUE(key.ok()) << key.status();
  SignAndVerify(**backend, *key);
  for (uint64_t round = 1; round <= 3; ++round) {
    BreakAndRecover(**backend, *key, round);
  }
  EXPECT_TRUE((*backend)->GetStatus().logged_in());
}

TEST_F(SoftHsmReinitTest, NoFinalizeQuirkRecoversToo) {
  Watchdog watchdog(absl::Seconds(60), "NoFinalizeQuirkRecoversToo");
  backend::Pkcs11BackendOptions options = env_->BackendOptions(2);
  options.no_finalize = true;
  options.reinit_backoff_initial = absl::Milliseconds(20);
  options.reinit_backoff_max = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "no-finalize");
  ASSERT_TRUE(key.ok()) << key.status();
  BreakAndRecover(**backend, *key, 1);
}

TEST_F(SoftHsmReinitTest, TokenChosenBySlotIsFoundAgainByLabelAndSerial) {
  Watchdog watchdog(absl::Seconds(60), "TokenChosenBySlotIsFoundAgain");
  // A token initialised in this process keeps a temporary slot id until
  // SoftHSM is re-initialised, which renumbers it.
  absl::StatusOr<SecretString> pin = env_->AddToken("by-slot");
  ASSERT_TRUE(pin.ok()) << pin.status();
  backend::Pkcs11BackendOptions options = env_->BackendOptions(2);
  options.reinit_backoff_initial = absl::Milliseconds(20);
  options.token_label = "by-slot";
  const std::string pin_copy(pin->data(), pin->size());
  options.pin_source = [pin_copy]() -> absl::StatusOr<SecretString> {
    return SecretString(pin_copy);
  };
  absl::StatusOr<std::unique_ptr<backend::Backend>> by_label =
      backend::NewPkcs11Backend(options);
  ASSERT_TRUE(by_label.ok()) << by_label.status();
  const uint64_t slot = (*by_label)->GetStatus().slot_id();
  const std::string serial = (*by_label)->GetStatus().token_serial();
  (*by_label)->Shutdown();
  by_label->reset();

  options.token_label.clear();
  options.slot_id = slot;
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  ASSERT_EQ((*backend)->GetStatus().token_label(), "by-slot");
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();
  BreakAndRecover(**backend, *key, 1);
  v1::BackendStatus status = (*backend)->GetStatus();
  EXPECT_EQ(status.token_label(), "by-slot");
  EXPECT_EQ(status.token_serial(), serial);
  printf(
      "slot id of token \"by-slot\": %llu before re-initialisation, "
      "%llu after\n",
      static_cast<unsigned long long>(slot),
      static_cast<unsigned long long>(status.slot_id()));
}

}  // namespace
}  // namespace hsmd::fault_testing
