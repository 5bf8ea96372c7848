// SIGTERM while many requests are in flight, with hsmd loading the
// fault-injecting PKCS#11 module (over the token `hsmd --demo` made) so the
// requests can be held inside C_Sign for as long as the test needs:
//  * within limits.shutdown_grace_ms, every in-flight request completes
//    with a valid signature, new requests (new connection or an idle one
//    opened before) are refused with UNAVAILABLE naming hsmd, and hsmd exits
//    0;
//  * past the grace, the requests still running are cancelled and hsmd
//    exits 0 although the module still holds them.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client_lib/client.h"
#include "daemon/testing/signature_verifier.h"
#include "daemon/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faulty_pkcs11/control.h"
#include "tests/robustness/hsmd_process.h"

namespace hsmd::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kInFlight = 12;
constexpr absl::Duration kTimeout = absl::Seconds(60);

struct Call {
  v1::SignRequest request;
  absl::StatusOr<v1::SignResponse> response = absl::UnknownError("not run");
};

class GracefulShutdownTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The demo token with its keys, made once; the daemon that made it is
    // stopped so each test's hsmd has the token to itself.
    absl::StatusOr<std::string> dir = ShortTempDir();
    ASSERT_TRUE(dir.ok());
    dir_ = new std::string(*dir);
    absl::StatusOr<std::unique_ptr<Subprocess>> demo = StartDemoHsmd(*dir_);
    ASSERT_TRUE(demo.ok()) << demo.status();
    (*demo)->Signal(SIGTERM);
    absl::StatusOr<int> code = (*demo)->Wait(kTimeout);
    ASSERT_TRUE(code.ok() && *code == 0) << (*demo)->Stderr();
  }
  static void TearDownTestSuite() {
    std::string rm = absl::StrCat("rm -rf ", *dir_);
    EXPECT_EQ(system(rm.c_str()), 0);
    delete dir_;
  }

  // hsmd on the demo token through the faulty module, with 16 sessions
  // (every in-flight request holds one) and `grace_ms`.
  void StartDaemon(int grace_ms) {
    socket_ = *dir_ + "/f.sock";
    const std::string config = *dir_ + "/faulty.conf";
    std::ofstream(config) << absl::StrCat(
        "listen { socket_path: \"", socket_, "\" socket_mode: \"0600\" }\n",
        "backends { name: \"hsm\" pkcs11 {\n", "  module_path: \"",
        RunfilePath("tests/faulty_pkcs11/libfaulty_pkcs11.so"), "\"\n",
        "  token_label: \"demo\"\n", "  pin { file: \"", *dir_,
        "/user.pin\" }\n", "  session_pool_size: 16\n} }\n",
        "limits { shutdown_grace_ms: ", grace_ms, " }\n");
    faults_ = std::make_unique<faulty_pkcs11::FaultControl>(
        *dir_ + "/faults", *dir_ + "/faults.stats");
    ASSERT_TRUE(faults_->Clear().ok());
    absl::StatusOr<std::unique_ptr<Subprocess>> daemon = StartHsmd(
        config, socket_,
        {absl::StrCat("SOFTHSM2_CONF=", *dir_, "/softhsm2.conf"),
         absl::StrCat("FAULTY_PKCS11_CONTROL=", faults_->control_path()),
         absl::StrCat("FAULTY_PKCS11_STATS=", faults_->stats_path())});
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
    std::unique_ptr<client::Client> probe = NewClient(socket_);
    absl::StatusOr<std::string> spki = PublicKeyOf(*probe, kDemoEcKey);
    ASSERT_TRUE(spki.ok()) << spki.status();
    spki_ = *spki;
  }

  // Starts kInFlight signing requests (one connection each) and returns
  // once all of them are held inside C_Sign by a `hang` rule.
  void StartHeldRequests() {
    ASSERT_TRUE(faults_->SetRules("C_Sign hang").ok());
    absl::StatusOr<faulty_pkcs11::Stats> before = faults_->Sync();
    ASSERT_TRUE(before.ok()) << before.status();
    const uint64_t hung_before = before->For("C_Sign").hung;
    calls_.resize(kInFlight);
    for (int i = 0; i < kInFlight; ++i) {
      calls_[i].request =
          EcdsaSignRequest(kDemoEcKey, absl::StrCat("in flight #", i));
      threads_.emplace_back([this, i] {
        std::unique_ptr<client::Client> client = NewClient(socket_);
        client::CallOptions options;
        options.timeout = kTimeout;
        calls_[i].response = client->Sign(calls_[i].request, options);
      });
    }
    const absl::Time limit = absl::Now() + kTimeout;
    uint64_t hung = 0;
    while (hung < hung_before + kInFlight && absl::Now() < limit) {
      absl::StatusOr<faulty_pkcs11::Stats> stats = faults_->Sync();
      ASSERT_TRUE(stats.ok()) << stats.status();
      hung = stats->For("C_Sign").hung;
      if (hung < hung_before + kInFlight) absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(hung, hung_before + kInFlight) << "requests did not reach C_Sign";
  }

  void JoinRequests() {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  static std::string* dir_;
  std::string socket_;
  std::string spki_;
  std::unique_ptr<faulty_pkcs11::FaultControl> faults_;
  std::unique_ptr<Subprocess> daemon_;
  std::vector<Call> calls_;
  std::vector<std::thread> threads_;
};

std::string* GracefulShutdownTest::dir_ = nullptr;

TEST_F(GracefulShutdownTest, InFlightRequestsFinishNewOnesAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(/*grace_ms=*/60000));
  // An idle client whose connection was opened before the shutdown.
  std::unique_ptr<client::Client> idle = NewClient(socket_);
  ASSERT_TRUE(
      idle->Sign(EcdsaSignRequest(kDemoEcKey, "before the shutdown")).ok());
  ASSERT_NO_FATAL_FAILURE(StartHeldRequests());

  daemon_->Signal(SIGTERM);
  ASSERT_TRUE(WaitForLog(*daemon_, "msg=\"shutting down\"", kTimeout).ok());
  // New requests, on the idle connection and on a new one, are refused
  // while the held ones are still running.
  std::unique_ptr<client::Client> late = NewClient(socket_);
  // On the open connection hsmd answers itself; a new connection finds the
  // socket closed.
  const std::pair<client::Client*, const char*> cases[] = {
      {idle.get(), "hsmd is shutting down"},
      {late.get(), "hsmd unavailable at"}};
  for (const auto& [client, expected] : cases) {
    absl::StatusOr<v1::SignResponse> refused =
        client->Sign(EcdsaSignRequest(kDemoEcKey, "after SIGTERM"));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable)
        << refused.status();
    EXPECT_THAT(refused.status().message(), HasSubstr(expected));
    printf("new request during the drain: %s\n",
           refused.status().ToString().c_str());
  }
  EXPECT_TRUE(daemon_->Running());

  // Let the held requests go: each completes with a valid signature.
  const absl::Time released = absl::Now();
  ASSERT_TRUE(faults_->Clear().ok());
  JoinRequests();
  for (int i = 0; i < kInFlight; ++i) {
    ASSERT_TRUE(calls_[i].response.ok())
        << "request " << i << ": " << calls_[i].response.status();
    EXPECT_TRUE(VerifySignature(spki_, calls_[i].request,
                                calls_[i].response->signature())
                    .ok())
        << "request " << i;
  }
  absl::StatusOr<int> code = daemon_->Wait(kTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << daemon_->Stderr();
  printf("%d in-flight requests drained; hsmd exited %s after they were "
         "released\n",
         kInFlight, absl::FormatDuration(absl::Now() - released).c_str());
  const std::string log = daemon_->Stderr();
  EXPECT_THAT(log, HasSubstr("hsmd stopped"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("grace period over")));
}

TEST_F(GracefulShutdownTest, PastTheGraceRequestsAreCancelledAndHsmdExits) {
  constexpr int kGraceMs = 300;
  ASSERT_NO_FATAL_FAILURE(StartDaemon(kGraceMs));
  ASSERT_NO_FATAL_FAILURE(StartHeldRequests());

  const absl::Time signalled = absl::Now();
  daemon_->Signal(SIGTERM);
  // The module never lets the calls go: only the grace period ends them.
  absl::StatusOr<int> code = daemon_->Wait(kTimeout);
  const absl::Duration exit_time = absl::Now() - signalled;
  // Joined first: an early return must not leave them running.
  JoinRequests();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << daemon_->Stderr();
  std::map<std::string, int> errors;
  for (int i = 0; i < kInFlight; ++i) {
    ASSERT_FALSE(calls_[i].response.ok()) << "request " << i;
    errors[calls_[i].response.status().ToString()]++;
  }
  const std::string log = daemon_->Stderr();
  EXPECT_THAT(log, HasSubstr("grace period over"));
  EXPECT_THAT(log, HasSubstr("still blocked in a backend call"));
  EXPECT_THAT(log, HasSubstr("hsmd stopped"));
  printf("grace %d ms: hsmd exited %s after SIGTERM; the %d held requests "
         "got:\n",
         kGraceMs, absl::FormatDuration(exit_time).c_str(), kInFlight);
  for (const auto& [text, count] : errors) printf("  %d x %s\n", count, text.c_str());
  ASSERT_TRUE(faults_->Clear().ok());
}

}  // namespace
}  // namespace hsmd::testing
