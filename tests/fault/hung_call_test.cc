// A PKCS#11 call that hangs: the request ends at its deadline with
// DEADLINE_EXCEEDED, the stuck session stays out of the pool until the call
// returns, other sessions keep serving; also when the call is made on the
// caller's thread because the caller enforces the deadline. Also measures
// what running calls on a worker (needed for the former) costs per request.
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

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

class HungCallTest : public FaultEnvTest {};

// Waits until the module reports `n` hung C_Sign calls.
bool WaitForHungSigns(const FaultEnv& env, uint64_t n) {
  return WaitFor(
      [&] {
        absl::StatusOr<faulty_pkcs11::Stats> stats = env.faults().Sync();
        return stats.ok() && stats->For("C_Sign").hung >= n;
      },
      absl::Seconds(30));
}

struct HungRequest {
  absl::Status status;
  absl::Duration late;  // How long after its deadline it returned.
};

TEST_F(HungCallTest, HungSignEndsAtItsDeadlineOthersKeepServing) {
  Watchdog watchdog(absl::Seconds(90), "HungSignEndsAtItsDeadline");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("hang", /*pool_size=*/2);
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();

  // The next C_Sign hangs until the rule is removed.
  ASSERT_TRUE(env_->faults().SetRules("C_Sign hang count=1\n").ok());
  HungRequest hung;
  std::thread caller([&] {
    backend::RequestContext ctx = Within(absl::Milliseconds(500));
    hung.status = (*backend)->Sign(EcdsaRequest(*key, "hangs"), ctx).status();
    hung.late = absl::Now() - ctx.deadline;
  });
  ASSERT_TRUE(WaitForHungSigns(*env_, 1));
  // Load on the remaining session while the call hangs.
  SignerLoad load(**backend, *key, 3, absl::Seconds(10));
  caller.join();
  printf("hung C_Sign: the request returned %s after its deadline\n",
         absl::FormatDuration(hung.late).c_str());
  EXPECT_EQ(hung.status.code(), absl::StatusCode::kDeadlineExceeded)
      << hung.status;
  EXPECT_THAT(hung.status.message(), HasSubstr("did not finish before the "
                                               "request's deadline"));
  backend::Pkcs11BackendCounters counters = Counters(**backend);
  EXPECT_EQ(counters.calls_abandoned, 1u);
  EXPECT_EQ(counters.abandoned_calls_running, 1u);

  // Others keep being served, from the other session only: the stuck one
  // stays leased (were it lent out, SoftHSM would refuse C_SignInit on it
  // with CKR_OPERATION_ACTIVE and a signer would see an error).
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(load.WaitForSuccesses(20, absl::Seconds(30)));
    EXPECT_GE((*backend)->GetStatus().sessions_in_use(), 1u);
    EXPECT_EQ(Counters(**backend).abandoned_calls_running, 1u);
  }
  EXPECT_EQ(load.Stats().error_count(), 0u);

  // Released: the call completes (successfully, so its session goes back
  // to the pool rather than being replaced).
  ASSERT_TRUE(env_->faults().Clear().ok());
  ASSERT_TRUE(
      WaitFor([&] { return Counters(**backend).abandoned_calls_running == 0; },
              absl::Seconds(30)));
  ASSERT_TRUE(load.WaitForSuccesses(50, absl::Seconds(30)));
  load.Stop();
  const LoadStats stats = load.Stats();
  EXPECT_EQ(stats.error_count(), 0u)
      << (stats.errors.empty() ? "" : stats.error_samples.begin()->second);
  EXPECT_EQ(stats.wrong, 0u);
  counters = Counters(**backend);
  EXPECT_EQ(counters.calls_abandoned, 1u);
  EXPECT_EQ(counters.sessions_replaced, 0u);
  v1::BackendStatus status = (*backend)->GetStatus();
  EXPECT_EQ(status.sessions_in_use(), 0u);
  EXPECT_EQ(status.sessions_total(), 2u);
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_READY);
  absl::StatusOr<faulty_pkcs11::Stats> faults = env_->faults().Sync();
  ASSERT_TRUE(faults.ok()) << faults.status();
  EXPECT_EQ(faults->For("C_Sign").hung, 1u);
  EXPECT_EQ(faults->For("C_SignInit").faults, 0u);
}

// The same hang when the caller ends the request at its deadline itself
// (gRPC, for a client's deadline): the call is made on the caller's thread,
// which stays in it; the backend still counts it as abandoned once past the
// deadline, keeps its session out of the pool, and others keep serving.
TEST_F(HungCallTest, HungInlineCallHoldsOnlyItsSession) {
  Watchdog watchdog(absl::Seconds(90), "HungInlineCallHoldsOnlyItsSession");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("hang-inline", /*pool_size=*/2);
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();

  ASSERT_TRUE(env_->faults().SetRules("C_Sign hang count=1\n").ok());
  HungRequest hung;
  std::thread caller([&] {
    backend::RequestContext ctx = Within(absl::Milliseconds(300));
    ctx.caller_enforces_deadline = true;
    hung.status = (*backend)->Sign(EcdsaRequest(*key, "hangs"), ctx).status();
    hung.late = absl::Now() - ctx.deadline;
  });
  ASSERT_TRUE(WaitForHungSigns(*env_, 1));
  // Past the deadline the call counts as abandoned and running.
  ASSERT_TRUE(
      WaitFor([&] { return Counters(**backend).abandoned_calls_running == 1; },
              absl::Seconds(30)));
  EXPECT_EQ(Counters(**backend).calls_abandoned, 1u);
  {
    // Other callers, served by the other session.
    SignerLoad load(**backend, *key, 3, absl::Seconds(10));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(load.WaitForSuccesses(20, absl::Seconds(30)));
      EXPECT_GE((*backend)->GetStatus().sessions_in_use(), 1u);
      EXPECT_EQ(Counters(**backend).abandoned_calls_running, 1u);
    }
    load.Stop();
    EXPECT_EQ(load.Stats().error_count(), 0u);
    EXPECT_EQ(load.Stats().wrong, 0u);
  }
  ASSERT_TRUE(env_->faults().Clear().ok());
  caller.join();
  printf("hung inline C_Sign: returned %s after its deadline, when released\n",
         absl::FormatDuration(hung.late).c_str());
  // Its signature came too late for anyone: the request's answer is the
  // deadline.
  EXPECT_EQ(hung.status.code(), absl::StatusCode::kDeadlineExceeded)
      << hung.status;
  EXPECT_THAT(hung.status.message(), HasSubstr("did not finish before the "
                                               "request's deadline"));
  backend::Pkcs11BackendCounters counters = Counters(**backend);
  EXPECT_EQ(counters.calls_abandoned, 1u);
  EXPECT_EQ(counters.abandoned_calls_running, 0u);
  EXPECT_EQ(counters.sessions_replaced, 0u);
  v1::BackendStatus status = (*backend)->GetStatus();
  EXPECT_EQ(status.sessions_in_use(), 0u);
  EXPECT_EQ(status.sessions_total(), 2u);
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_READY);

  // The session went back to the pool and signs again.
  backend::RequestContext ctx = Within(absl::Seconds(30));
  ctx.caller_enforces_deadline = true;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<v1::SignResponse> response =
        (*backend)->Sign(EcdsaRequest(*key, "after"), ctx);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_TRUE(VerifyEcdsaSha256(*key, "after", response->signature()));
  }
}

TEST_F(HungCallTest, HungCallEndedByReinitialisationIsNotReused) {
  Watchdog watchdog(absl::Seconds(90), "HungCallEndedByReinitialisation");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("hang-reinit", /*pool_size=*/2);
  ASSERT_TRUE(options.ok()) << options.status();
  options->reinit_drain_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();

  absl::StatusOr<faulty_pkcs11::Stats> before = env_->faults().Sync();
  ASSERT_TRUE(before.ok()) << before.status();
  // The hang rule stays (spent) until the end: only C_Finalize can end the
  // hung call, as a real module's does.
  ASSERT_TRUE(env_->faults()
                  .SetRules("C_Sign hang count=1\n"
                            "C_GenerateRandom rv=CKR_DEVICE_ERROR count=1\n")
                  .ok());
  absl::Status hung;
  std::thread caller([&] {
    hung =
        (*backend)
            ->Sign(EcdsaRequest(*key, "hangs"), Within(absl::Milliseconds(300)))
            .status();
  });
  ASSERT_TRUE(WaitForHungSigns(*env_, before->For("C_Sign").hung + 1));
  caller.join();
  EXPECT_EQ(hung.code(), absl::StatusCode::kDeadlineExceeded) << hung;

  // A device error starts a re-initialisation, which waits for the stuck
  // call only up to reinit_drain_timeout, then C_Finalize ends it.
  absl::Status device_error =
      (*backend)->GenerateRandom(16, Within(absl::Seconds(10))).status();
  EXPECT_EQ(device_error.code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(WaitFor(
      [&] {
        return (*backend)->GetStatus().reinitializations() == 1 &&
               Counters(**backend).abandoned_calls_running == 0;
      },
      absl::Seconds(30)));
  EXPECT_TRUE((*backend)->IsServing());
  const std::string message = "after";
  absl::StatusOr<v1::SignResponse> response =
      (*backend)->Sign(EcdsaRequest(*key, message), Within(absl::Seconds(10)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(VerifyEcdsaSha256(*key, message, response->signature()));
  absl::StatusOr<faulty_pkcs11::Stats> faults = env_->faults().Sync();
  ASSERT_TRUE(faults.ok()) << faults.status();
  // The hung call was answered CKR_CRYPTOKI_NOT_INITIALIZED by C_Finalize.
  EXPECT_EQ(faults->For("C_Sign").hung - before->For("C_Sign").hung, 1u);
  EXPECT_EQ(faults->For("C_Sign").faults - before->For("C_Sign").faults, 1u);
  v1::BackendStatus status = (*backend)->GetStatus();
  EXPECT_EQ(status.sessions_total(), 2u);
}

// Not a pass/fail test: prints the cost of the worker hand-off that lets a
// request end at its deadline (finite deadline) against a call on the
// request's thread (no deadline).
TEST_F(HungCallTest, MeasuresTheWorkerHandOff) {
  Watchdog watchdog(absl::Seconds(100), "MeasuresTheWorkerHandOff");
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      env_->NewToken("handoff-cost");
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<v1::Key> key = GenerateP256(**backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr int kCalls = 200;  // Only the code path matters there.
#else
  constexpr int kCalls = 2000;
#endif
  auto per_call = [&](bool finite, bool sign, bool caller_enforces = false) {
    const absl::Time start = absl::Now();
    for (int i = 0; i < kCalls; ++i) {
      backend::RequestContext ctx;
      if (finite) ctx.deadline = absl::Now() + absl::Seconds(30);
      ctx.caller_enforces_deadline = caller_enforces;
      absl::Status status =
          sign ? (*backend)->Sign(EcdsaRequest(*key, "m"), ctx).status()
               : (*backend)->GenerateRandom(32, ctx).status();
      EXPECT_TRUE(status.ok()) << status;
    }
    return (absl::Now() - start) / kCalls;
  };
  per_call(true, true);  // Warm-up (workers started, key resolved).
  per_call(false, true);
  for (bool sign : {false, true}) {
    const absl::Duration inline_call = per_call(false, sign);
    const absl::Duration on_worker = per_call(true, sign);
    const absl::Duration watched = per_call(true, sign, true);
    printf(
        "%s: %s per call on the request's thread, %s on a worker "
        "(hand-off %s), %s on the request's thread with a deadline the "
        "caller enforces\n",
        sign ? "ECDSA P-256 sign" : "GenerateRandom(32)",
        absl::FormatDuration(inline_call).c_str(),
        absl::FormatDuration(on_worker).c_str(),
        absl::FormatDuration(on_worker - inline_call).c_str(),
        absl::FormatDuration(watched).c_str());
  }
  EXPECT_LE(Counters(**backend).worker_threads, 2u * 4 + 2);
}

}  // namespace
}  // namespace hsmd::fault_testing
