// The token is "removed" (every call fails with CKR_DEVICE_REMOVED and the
// slot shows no token) under continuous signing load, then comes back: the
// backend stops serving, callers get UNAVAILABLE at once, the backend
// re-initialises the module by itself and serves again; no signature is
// ever wrong. Prints the recovery time (outage end → first success).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

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

constexpr char kRemoval[] = "* rv=CKR_DEVICE_REMOVED\ntoken_absent\n";
constexpr int kSigners = 4;

class TokenRemovalTest : public FaultEnvTest {};

struct Outage {
  bool saw_reinitializing = false;
  bool saw_not_serving = false;
  absl::Duration recovery = absl::InfiniteDuration();
};

// Removes the token for `length` under `load`, then restores it and waits
// for the first success of a request started after that.
Outage RunOutage(const FaultEnv& env, backend::Backend& backend,
                 SignerLoad& load, absl::Duration length) {
  Outage outage;
  const absl::Time start = absl::Now();
  EXPECT_TRUE(env.faults().SetRules(kRemoval).ok());
  while (absl::Now() - start < length) {
    if (!backend.IsServing()) outage.saw_not_serving = true;
    v1::BackendStatus status = backend.GetStatus();
    if (status.state() == v1::BACKEND_STATE_REINITIALIZING) {
      outage.saw_reinitializing = true;
      EXPECT_THAT(status.state_reason(), HasSubstr("CKR_DEVICE_REMOVED"));
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  const absl::Time end = absl::Now();
  load.Mark(end);
  EXPECT_TRUE(env.faults().Clear().ok());
  std::optional<absl::Time> first =
      load.WaitForFirstSuccessAfterMark(absl::Seconds(60));
  EXPECT_TRUE(first.has_value()) << "no success after the token came back";
  if (first.has_value()) outage.recovery = *first - end;
  return outage;
}

void ExpectOnlyUnavailable(const LoadStats& stats) {
  EXPECT_EQ(stats.wrong, 0u) << "a signature did not verify";
  for (const auto& [code, count] : stats.errors) {
    EXPECT_EQ(code, absl::StatusCode::kUnavailable)
        << count << " errors like: " << stats.error_samples.at(code);
  }
}

TEST_F(TokenRemovalTest, TwoSecondRemovalWithDefaultBackoff) {
  Watchdog watchdog(absl::Seconds(90), "TwoSecondRemovalWithDefaultBackoff");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("removal-long");
  ASSERT_TRUE(options.ok()) << options.status();
  // The production defaults (100 ms doubling to 5 s).
  const backend::Pkcs11BackendOptions defaults;
  options->reinit_backoff_initial = defaults.reinit_backoff_initial;
  options->reinit_backoff_max = defaults.reinit_backoff_max;
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();

  SignerLoad load(**backend, *key, kSigners, absl::Seconds(5));
  ASSERT_TRUE(load.WaitForSuccesses(50, absl::Seconds(30)));
  const Outage outage = RunOutage(*env_, **backend, load, absl::Seconds(2));
  ASSERT_TRUE(load.WaitForSuccesses(50, absl::Seconds(30)));
  load.Stop();

  const LoadStats stats = load.Stats();
  printf(
      "2 s removal, default backoff: recovery (outage end -> first "
      "success) %s; %llu signatures verified, %llu UNAVAILABLE, max "
      "latency of a failed call %s\n",
      absl::FormatDuration(outage.recovery).c_str(),
      static_cast<unsigned long long>(stats.ok),
      static_cast<unsigned long long>(stats.error_count()),
      absl::FormatDuration(stats.max_error_latency).c_str());
  EXPECT_TRUE(outage.saw_not_serving);
  EXPECT_TRUE(outage.saw_reinitializing);
  EXPECT_GT(stats.error_count(), 0u);
  ExpectOnlyUnavailable(stats);
  if (stats.errors.count(absl::StatusCode::kUnavailable)) {
    EXPECT_THAT(stats.error_samples.at(absl::StatusCode::kUnavailable),
                HasSubstr("CKR_DEVICE_REMOVED"));
  }
  v1::BackendStatus status = (*backend)->GetStatus();
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_READY);
  EXPECT_TRUE((*backend)->IsServing());
  EXPECT_EQ(status.reinitializations(), 1u);
  EXPECT_TRUE(status.logged_in());
  EXPECT_EQ(status.token_label(), "removal-long");
  EXPECT_GE(Counters(**backend).reinit_attempts, 2u);
}

TEST_F(TokenRemovalTest, TwentyShortRemovals) {
  Watchdog watchdog(absl::Seconds(100), "TwentyShortRemovals");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("removal-short");
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();

  SignerLoad load(**backend, *key, kSigners, absl::Seconds(5));
  std::vector<absl::Duration> recoveries;
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_TRUE(load.WaitForSuccesses(20, absl::Seconds(30)))
        << "round " << round;
    const Outage outage =
        RunOutage(*env_, **backend, load, absl::Milliseconds(300));
    EXPECT_TRUE(outage.saw_not_serving) << "round " << round;
    EXPECT_TRUE(outage.saw_reinitializing) << "round " << round;
    recoveries.push_back(outage.recovery);
  }
  ASSERT_TRUE(load.WaitForSuccesses(20, absl::Seconds(30)));
  load.Stop();

  const LoadStats stats = load.Stats();
  std::sort(recoveries.begin(), recoveries.end());
  printf(
      "%d x 300 ms removal, backoff 20..200 ms: recovery min %s, median "
      "%s, max %s; %llu signatures verified, %llu UNAVAILABLE, max "
      "latency of a failed call %s\n",
      kRounds, absl::FormatDuration(recoveries.front()).c_str(),
      absl::FormatDuration(recoveries[recoveries.size() / 2]).c_str(),
      absl::FormatDuration(recoveries.back()).c_str(),
      static_cast<unsigned long long>(stats.ok),
      static_cast<unsigned long long>(stats.error_count()),
      absl::FormatDuration(stats.max_error_latency).c_str());
  ExpectOnlyUnavailable(stats);
  v1::BackendStatus status = (*backend)->GetStatus();
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(status.reinitializations(), static_cast<uint64_t>(kRounds));
}

}  // namespace
}  // namespace hsmd::fault_testing
