// grpc.health.v1 as clients see it: NOT_SERVING until every backend is
// ready, SERVING after, and back to NOT_SERVING when a backend stops.
#include <grpcpp/client_context.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/testing/test_daemon.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

const char* const kServices[] = {"", "hsmd.v1.KeyService",
                                 "hsmd.v1.AdminService"};

HealthCheckResponse::ServingStatus Check(Health::Stub& stub,
                                         const std::string& service) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  grpc::Status s = stub.Check(&context, request, &response);
  EXPECT_TRUE(s.ok()) << service << ": " << s.error_message();
  return response.status();
}

// Polls until `service` reports `want` (the health thread publishes changes
// within its poll interval); fails after a generous bound instead of
// hanging.
bool WaitFor(Health::Stub& stub, const std::string& service,
             HealthCheckResponse::ServingStatus want) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (Check(stub, service) == want) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

TEST(HealthTest, NotServingUntilTheBackendIsReady) {
  auto fake = backend::FakeBackend::New({.name = "late", .serving = false});
  ASSERT_TRUE(fake.ok());
  backend::FakeBackend* backend = fake->get();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(fake));
  auto daemon = testing::TestDaemon::Start(std::move(backends));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto stub = Health::NewStub((*daemon)->NewChannel());

  for (const char* service : kServices) {
    EXPECT_EQ(Check(*stub, service), HealthCheckResponse::NOT_SERVING)
        << service;
  }
  EXPECT_FALSE((*daemon)->server().serving());

  backend->SetServing(true);
  for (const char* service : kServices) {
    EXPECT_TRUE(WaitFor(*stub, service, HealthCheckResponse::SERVING))
        << service;
  }
  EXPECT_TRUE((*daemon)->server().serving());

  // A later state change (e.g. the token is removed) shows up too.
  backend->SetServing(false, "token removed");
  for (const char* service : kServices) {
    EXPECT_TRUE(WaitFor(*stub, service, HealthCheckResponse::NOT_SERVING))
        << service;
  }

  // Unknown services are NOT_FOUND, as the protocol specifies.
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("no.such.Service");
  HealthCheckResponse response;
  EXPECT_EQ(stub->Check(&context, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST(HealthTest, AllBackendsMustServe) {
  auto a = backend::FakeBackend::New({.name = "a"});
  auto b = backend::FakeBackend::New({.name = "b", .serving = false});
  ASSERT_TRUE(a.ok() && b.ok());
  backend::FakeBackend* late = b->get();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(a));
  backends.push_back(*std::move(b));
  auto daemon = testing::TestDaemon::Start(std::move(backends));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto stub = Health::NewStub((*daemon)->NewChannel());
  EXPECT_EQ(Check(*stub, ""), HealthCheckResponse::NOT_SERVING);
  // Per backend: "backend/NAME" follows that backend alone.
  EXPECT_EQ(Check(*stub, "backend/a"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check(*stub, "backend/b"), HealthCheckResponse::NOT_SERVING);
  late->SetServing(true);
  EXPECT_TRUE(WaitFor(*stub, "", HealthCheckResponse::SERVING));
  EXPECT_TRUE(WaitFor(*stub, "backend/b", HealthCheckResponse::SERVING));
  EXPECT_EQ(Check(*stub, "backend/a"), HealthCheckResponse::SERVING);
}

TEST(HealthTest, NotServingAfterShutdown) {
  auto fake = backend::FakeBackend::New({.name = "x"});
  ASSERT_TRUE(fake.ok());
  backend::FakeBackend* backend = fake->get();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(fake));
  auto daemon = testing::TestDaemon::Start(std::move(backends));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto stub = Health::NewStub((*daemon)->NewChannel());
  EXPECT_EQ(Check(*stub, ""), HealthCheckResponse::SERVING);
  (*daemon)->server().Shutdown(absl::Seconds(1));
  EXPECT_FALSE((*daemon)->server().serving());
  EXPECT_TRUE(backend->shut_down());
  struct stat st;
  EXPECT_NE(stat((*daemon)->socket_path().c_str(), &st), 0)
      << "socket file not removed";
}

}  // namespace
}  // namespace hsmd
