// Session-level faults are transparent to callers; CKR_GENERAL_ERROR is an
// error once and a re-initialisation when repeated (but never for
// C_Decrypt, where SoftHSM uses it for bad padding).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/error_detail.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_env.h"

namespace hsmd::fault_testing {
namespace {

using ::testing::HasSubstr;

class SessionFaultsTest : public FaultEnvTest {
 protected:
  // A backend on a new token with one P-256 key.
  static std::unique_ptr<backend::Backend> NewBackend(const std::string& label,
                                                      v1::Key& key) {
    absl::StatusOr<backend::Pkcs11BackendOptions> options =
        env_->NewToken(label);
    EXPECT_TRUE(options.ok()) << options.status();
    if (!options.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
        backend::NewPkcs11Backend(*options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    if (!backend.ok()) return nullptr;
    absl::StatusOr<v1::Key> generated = GenerateP256(**backend, "k");
    EXPECT_TRUE(generated.ok()) << generated.status();
    if (generated.ok()) key = *generated;
    return *std::move(backend);
  }
};

TEST_F(SessionFaultsTest, InvalidatedSessionsAreTransparent) {
  Watchdog watchdog(absl::Seconds(90), "InvalidatedSessionsAreTransparent");
  v1::Key key;
  std::unique_ptr<backend::Backend> backend = NewBackend("invalidate", key);
  ASSERT_NE(backend, nullptr);
  SignerLoad load(*backend, key, 6, absl::Seconds(10));
  ASSERT_TRUE(load.WaitForSuccesses(30, absl::Seconds(30)));
  constexpr int kRounds = 5;
  for (int round = 0; round < kRounds; ++round) {
    // Every session open so far dies at once, under load.
    ASSERT_TRUE(env_->faults().SetRules("invalidate_sessions\n").ok());
    ASSERT_TRUE(load.WaitForSuccesses(40, absl::Seconds(30)))
        << "round " << round;
  }
  load.Stop();
  const LoadStats stats = load.Stats();
  EXPECT_EQ(stats.wrong, 0u);
  EXPECT_EQ(stats.error_count(), 0u)
      << (stats.errors.empty() ? "" : stats.error_samples.begin()->second);
  // Each round replaced the pool's sessions; the faults were real.
  EXPECT_GE(Counters(*backend).sessions_replaced,
            static_cast<uint64_t>(kRounds * 4));
  absl::StatusOr<faulty_pkcs11::Stats> faults = env_->faults().Sync();
  ASSERT_TRUE(faults.ok()) << faults.status();
  uint64_t injected = 0;
  for (const char* fn : {"C_SignInit", "C_Sign", "C_FindObjectsInit",
                         "C_GetAttributeValue", "C_CloseSession"}) {
    injected += faults->For(fn).faults;
  }
  EXPECT_GE(injected, static_cast<uint64_t>(kRounds * 4));
  v1::BackendStatus status = backend->GetStatus();
  EXPECT_TRUE(backend->IsServing());
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_DEGRADED);
  EXPECT_THAT(status.state_reason(), HasSubstr("CKR_SESSION_HANDLE_INVALID"));
  EXPECT_EQ(status.reinitializations(), 0u);
  EXPECT_EQ(status.sessions_total(), 4u);
}

TEST_F(SessionFaultsTest, OneGeneralErrorIsJustAnError) {
  Watchdog watchdog(absl::Seconds(60), "OneGeneralErrorIsJustAnError");
  v1::Key key;
  std::unique_ptr<backend::Backend> backend = NewBackend("general-once", key);
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(
      env_->faults().SetRules("C_Sign rv=CKR_GENERAL_ERROR count=1\n").ok());
  int errors = 0;
  for (int i = 0; i < 12; ++i) {
    const std::string message = absl::StrCat("m", i);
    absl::StatusOr<v1::SignResponse> response =
        backend->Sign(EcdsaRequest(key, message), Within(absl::Seconds(10)));
    if (!response.ok()) {
      ++errors;
      EXPECT_EQ(response.status().code(), absl::StatusCode::kInternal)
          << response.status();
      std::optional<v1::ErrorDetail> detail = GetErrorDetail(response.status());
      ASSERT_TRUE(detail.has_value());
      EXPECT_EQ(detail->backend_code_name(), "CKR_GENERAL_ERROR");
      continue;
    }
    EXPECT_TRUE(VerifyEcdsaSha256(key, message, response->signature()));
  }
  EXPECT_EQ(errors, 1);
  EXPECT_TRUE(backend->IsServing());
  EXPECT_EQ(backend->GetStatus().state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(backend->GetStatus().reinitializations(), 0u);
  EXPECT_EQ(Counters(*backend).reinit_attempts, 0u);
}

TEST_F(SessionFaultsTest, RepeatedGeneralErrorsReinitialise) {
  Watchdog watchdog(absl::Seconds(60), "RepeatedGeneralErrorsReinitialise");
  v1::Key key;
  std::unique_ptr<backend::Backend> backend =
      NewBackend("general-repeated", key);
  ASSERT_NE(backend, nullptr);
  // Two in a row, then a success: the streak ends, nothing happens.
  ASSERT_TRUE(
      env_->faults().SetRules("C_Sign rv=CKR_GENERAL_ERROR count=2\n").ok());
  for (int i = 0; i < 3; ++i) {
    (void)backend->Sign(EcdsaRequest(key, "m"), Within(absl::Seconds(10)));
  }
  ASSERT_TRUE(
      env_->faults().SetRules("C_Sign rv=CKR_GENERAL_ERROR count=2\n").ok());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(backend->Sign(EcdsaRequest(key, "m"), Within(absl::Seconds(10)))
                  .status()
                  .code(),
              absl::StatusCode::kInternal);
  }
  ASSERT_TRUE(env_->faults().Clear().ok());
  EXPECT_TRUE(
      backend->Sign(EcdsaRequest(key, "m"), Within(absl::Seconds(10))).ok());
  EXPECT_EQ(Counters(*backend).reinit_attempts, 0u);

  // Three in a row (the pool hands out its sessions in turn, so three
  // different sessions): treated as a device fault.
  ASSERT_TRUE(
      env_->faults().SetRules("C_Sign rv=CKR_GENERAL_ERROR count=3\n").ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(backend->Sign(EcdsaRequest(key, "m"), Within(absl::Seconds(10)))
                  .status()
                  .code(),
              absl::StatusCode::kInternal);
  }
  ASSERT_TRUE(
      WaitFor([&] { return backend->GetStatus().reinitializations() == 1; },
              absl::Seconds(30)));
  EXPECT_TRUE(backend->IsServing());
  const std::string message = "after re-initialisation";
  absl::StatusOr<v1::SignResponse> response =
      backend->Sign(EcdsaRequest(key, message), Within(absl::Seconds(10)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(VerifyEcdsaSha256(key, message, response->signature()));
}

TEST_F(SessionFaultsTest, DecryptGeneralErrorsNeverReinitialise) {
  Watchdog watchdog(absl::Seconds(60), "DecryptGeneralErrorsNeverReinitialise");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("decrypt-errors");
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  v1::GenerateKeyRequest generate;
  generate.set_label("rsa");
  generate.set_key_type(v1::KEY_TYPE_RSA);
  generate.set_rsa_bits(2048);
  absl::StatusOr<v1::Key> key =
      (*backend)->GenerateKey(generate, backend::RequestContext());
  ASSERT_TRUE(key.ok()) << key.status();
  // What SoftHSM answers for bad PKCS#1 padding, many times in a row.
  ASSERT_TRUE(
      env_->faults().SetRules("C_Decrypt rv=CKR_GENERAL_ERROR count=6\n").ok());
  v1::DecryptRequest decrypt;
  decrypt.mutable_key()->set_uri(key->uri());
  decrypt.mutable_algorithm()->mutable_rsa_pkcs1();
  decrypt.set_ciphertext(std::string(256, '\x01'));
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<v1::DecryptResponse> response =
        (*backend)->Decrypt(decrypt, Within(absl::Seconds(10)));
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument)
        << response.status();
  }
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ((*backend)->GetStatus().state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(Counters(**backend).reinit_attempts, 0u);
}

}  // namespace
}  // namespace hsmd::fault_testing
