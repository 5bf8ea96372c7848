// Login faults: a rejected PIN is never tried again (so the token is not
// locked by hsmd), CKR_USER_NOT_LOGGED_IN is healed by one re-login.
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

class LoginFaultsTest : public FaultEnvTest {
 protected:
  // Exact C_Login counters now.
  static faulty_pkcs11::FunctionStats Logins() {
    absl::StatusOr<faulty_pkcs11::Stats> stats = env_->faults().Sync();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? stats->For("C_Login") : faulty_pkcs11::FunctionStats();
  }

  // The same before the module was first initialised in this process (no
  // stats yet; Sync would wait for a module that is not there).
  static faulty_pkcs11::FunctionStats LoginsSoFar() {
    absl::StatusOr<faulty_pkcs11::Stats> stats = env_->faults().ReadStats();
    if (!stats.ok() && absl::IsNotFound(stats.status())) {
      return faulty_pkcs11::FunctionStats();
    }
    return Logins();
  }
};

TEST_F(LoginFaultsTest, PinRejectedAtStartIsAClearErrorAndNotRetried) {
  Watchdog watchdog(absl::Seconds(60), "PinRejectedAtStart");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("pin-at-start");
  ASSERT_TRUE(options.ok()) << options.status();
  const faulty_pkcs11::FunctionStats before = LoginsSoFar();
  ASSERT_TRUE(env_->faults().SetRules("C_Login rv=CKR_PIN_INCORRECT\n").ok());
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(backend.status().message(), HasSubstr("token \"pin-at-start\""));
  EXPECT_THAT(backend.status().message(), HasSubstr("CKR_PIN_INCORRECT"));
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(backend.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_code_name(), "CKR_PIN_INCORRECT");
  const faulty_pkcs11::FunctionStats after = Logins();
  EXPECT_EQ(after.calls - before.calls, 1u);
  EXPECT_EQ(after.faults - before.faults, 1u);
}

TEST_F(LoginFaultsTest, UserNotLoggedInIsHealedByOneReLogin) {
  Watchdog watchdog(absl::Seconds(60), "UserNotLoggedInIsHealed");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("relogin");
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();
  SignerLoad load(**backend, *key, 4, absl::Seconds(10));
  ASSERT_TRUE(load.WaitForSuccesses(20, absl::Seconds(30)));
  const faulty_pkcs11::FunctionStats before = Logins();

  ASSERT_TRUE(env_->faults()
                  .SetRules("C_Sign rv=CKR_USER_NOT_LOGGED_IN count=1\n")
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Counters(**backend).relogins == 1; },
                      absl::Seconds(30)));
  ASSERT_TRUE(load.WaitForSuccesses(50, absl::Seconds(30)));
  load.Stop();
  const LoadStats stats = load.Stats();
  EXPECT_EQ(stats.error_count(), 0u)
      << (stats.errors.empty() ? "" : stats.error_samples.begin()->second);
  EXPECT_EQ(stats.wrong, 0u);
  const faulty_pkcs11::FunctionStats after = Logins();
  EXPECT_EQ(after.calls - before.calls, 1u);
  EXPECT_EQ(Counters(**backend).relogins, 1u);
  EXPECT_TRUE((*backend)->IsServing());
  EXPECT_EQ((*backend)->GetStatus().reinitializations(), 0u);
}

TEST_F(LoginFaultsTest, PinRejectedDuringReinitialisationFailsForGood) {
  Watchdog watchdog(absl::Seconds(60), "PinRejectedDuringReinitialisation");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("pin-at-reinit");
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();
  const faulty_pkcs11::FunctionStats before = Logins();

  // A device error forces a re-initialisation, whose login is refused.
  ASSERT_TRUE(env_->faults()
                  .SetRules("C_SignInit rv=CKR_DEVICE_ERROR count=1\n"
                            "C_Login rv=CKR_PIN_INCORRECT\n")
                  .ok());
  absl::Status first =
      (*backend)
          ->Sign(EcdsaRequest(*key, "m"), Within(absl::Seconds(10)))
          .status();
  EXPECT_EQ(first.code(), absl::StatusCode::kUnavailable) << first;
  EXPECT_THAT(first.message(), HasSubstr("CKR_DEVICE_ERROR"));
  ASSERT_TRUE(WaitFor(
      [&] {
        return (*backend)->GetStatus().state() == v1::BACKEND_STATE_FAILED;
      },
      absl::Seconds(30)));
  v1::BackendStatus status = (*backend)->GetStatus();
  EXPECT_THAT(status.state_reason(), HasSubstr("token \"pin-at-reinit\""));
  EXPECT_THAT(status.state_reason(), HasSubstr("CKR_PIN_INCORRECT"));
  EXPECT_THAT(status.state_reason(), HasSubstr("will not log in again"));
  EXPECT_FALSE((*backend)->IsServing());
  EXPECT_FALSE(status.logged_in());

  // Requests fail fast, saying why; time passes (many backoff periods), the
  // rules are even lifted: no login is ever tried again.
  for (int i = 0; i < 20; ++i) {
    absl::Status refused =
        (*backend)
            ->Sign(EcdsaRequest(*key, "m"), Within(absl::Seconds(10)))
            .status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(refused.message(),
                HasSubstr("HSM backend \"pin-at-reinit\" failed"));
    EXPECT_THAT(refused.message(), HasSubstr("CKR_PIN_INCORRECT"));
    std::optional<v1::ErrorDetail> detail = GetErrorDetail(refused);
    ASSERT_TRUE(detail.has_value());
    EXPECT_EQ(detail->backend_code_name(), "CKR_PIN_INCORRECT");
    if (i == 10) {
      ASSERT_TRUE(env_->faults().Clear().ok());
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  const faulty_pkcs11::FunctionStats after = Logins();
  EXPECT_EQ(after.calls - before.calls, 1u);
  EXPECT_EQ(after.faults - before.faults, 1u);
  EXPECT_EQ((*backend)->GetStatus().state(), v1::BACKEND_STATE_FAILED);
  EXPECT_EQ((*backend)->GetStatus().reinitializations(), 0u);
}

}  // namespace
}  // namespace hsmd::fault_testing
