// A PKCS#11 call that hangs under hsmd's gRPC service. Requests with a
// client deadline make their PKCS#11 call on the gRPC thread (no worker
// hand-off); the guarantee still holds end to end: the client's request
// ends at its deadline with DEADLINE_EXCEEDED while the call hangs, other
// clients keep being served by the other session, the stuck session is not
// lent out, and once the call returns its session goes back to the pool.
#include <grpcpp/client_context.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/testing/test_daemon.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.grpc.pb.h"
#include "tests/fault/fault_env.h"

namespace hsmd::fault_testing {
namespace {

template <typename F>
bool WaitFor(F condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

std::unique_ptr<grpc::ClientContext> ContextWithin(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(timeout));
  return context;
}

TEST(GrpcHungCallTest, ClientDeadlineEndsTheRequestOthersKeepServing) {
  Watchdog watchdog(absl::Seconds(90), "GrpcHungCall");
  absl::StatusOr<std::unique_ptr<FaultEnv>> env = FaultEnv::New();
  ASSERT_TRUE(env.ok()) << env.status();
  absl::StatusOr<backend::Pkcs11BackendOptions> options =
      (*env)->NewToken("grpc-hang", /*pool_size=*/2);
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> made =
      backend::NewPkcs11Backend(*options);
  ASSERT_TRUE(made.ok()) << made.status();
  backend::Backend* backend = made->get();
  absl::StatusOr<v1::Key> key = GenerateP256(*backend, "k");
  ASSERT_TRUE(key.ok()) << key.status();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(made));
  absl::StatusOr<std::unique_ptr<testing::TestDaemon>> daemon =
      testing::TestDaemon::Start(std::move(backends));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto counters = [&] {
    absl::StatusOr<backend::Pkcs11BackendCounters> c =
        backend::GetPkcs11BackendCounters(*backend);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : backend::Pkcs11BackendCounters{};
  };
  auto sign = [&](const std::string& message, absl::Duration timeout,
                  v1::SignResponse* response) {
    return (*daemon)->keys().Sign(ContextWithin(timeout).get(),
                                  EcdsaRequest(*key, message), response);
  };
  v1::SignResponse response;
  ASSERT_TRUE(sign("warm-up", absl::Seconds(30), &response).ok());
  const uint32_t workers_before = counters().worker_threads;

  ASSERT_TRUE((*env)->faults().SetRules("C_Sign hang count=1\n").ok());
  grpc::Status hung;
  absl::Duration hung_after;
  std::thread caller([&] {
    v1::SignResponse lost;
    const absl::Time start = absl::Now();
    hung = sign("hangs", absl::Milliseconds(500), &lost);
    hung_after = absl::Now() - start;
  });
  // The request ends while its C_Sign still hangs (the fault is cleared
  // only after the join).
  caller.join();
  printf("hung C_Sign: the client's request ended after %s (deadline 500ms)\n",
         absl::FormatDuration(hung_after).c_str());
  EXPECT_EQ(hung.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << hung.error_message();
  absl::StatusOr<faulty_pkcs11::Stats> faults = (*env)->faults().Sync();
  ASSERT_TRUE(faults.ok()) << faults.status();
  EXPECT_EQ(faults->For("C_Sign").hung, 1u);
  ASSERT_TRUE(WaitFor([&] { return counters().abandoned_calls_running == 1; },
                      absl::Seconds(30)));
  EXPECT_EQ(counters().calls_abandoned, 1u);

  // Other clients are served, by the other session only (were the stuck
  // one lent out, SoftHSM would refuse C_SignInit on it).
  for (int i = 0; i < 20; ++i) {
    const std::string message = "while hung " + std::to_string(i);
    grpc::Status status = sign(message, absl::Seconds(30), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(VerifyEcdsaSha256(*key, message, response.signature()));
  }
  EXPECT_EQ(backend->GetStatus().sessions_in_use(), 1u);
  EXPECT_EQ(counters().abandoned_calls_running, 1u);

  // Released: the call returns on its gRPC thread and the session goes
  // back to the pool, not replaced.
  ASSERT_TRUE((*env)->faults().Clear().ok());
  ASSERT_TRUE(WaitFor([&] { return counters().abandoned_calls_running == 0; },
                      absl::Seconds(30)));
  ASSERT_TRUE(
      WaitFor([&] { return backend->GetStatus().sessions_in_use() == 0; },
              absl::Seconds(30)));
  backend::Pkcs11BackendCounters after = counters();
  EXPECT_EQ(after.calls_abandoned, 1u);
  EXPECT_EQ(after.sessions_replaced, 0u);
  // Requests with a client deadline never needed a worker.
  EXPECT_EQ(after.worker_threads, workers_before);
  EXPECT_EQ(backend->GetStatus().sessions_total(), 2u);
  for (int i = 0; i < 4; ++i) {
    grpc::Status status = sign("after", absl::Seconds(30), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(VerifyEcdsaSha256(*key, "after", response.signature()));
  }
}

}  // namespace
}  // namespace hsmd::fault_testing
