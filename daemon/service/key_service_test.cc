// KeyService / AdminService over a real Unix socket with the fake backend:
// the shared conformance suite, plus what only a fake can provoke (HSM
// error codes, slow calls, a backend that is not ready).
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/error_detail.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/logging.h"
#include "daemon/testing/fake_daemon.h"
#include "daemon/testing/service_conformance.h"
#include "daemon/testing/test_daemon.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::testing {
namespace {

using backend::FakeBackend;
using ::testing::HasSubstr;

absl::StatusOr<std::vector<std::unique_ptr<backend::Backend>>> FakeBackends() {
  std::vector<std::unique_ptr<backend::Backend>> backends;
  absl::StatusOr<std::unique_ptr<FakeBackend>> fake =
      FakeBackend::New({.name = "fake", .token_label = "fake"});
  if (!fake.ok()) return fake.status();
  backends.push_back(*std::move(fake));
  return backends;
}

INSTANTIATE_TEST_SUITE_P(Fake, ServiceConformanceTest,
                         ::testing::Values(ServiceTestBackend{
                             "fake", FakeBackends, /*concurrency_seconds=*/3}));

class FakeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<FakeDaemon> started = StartFakeDaemon();
    ASSERT_TRUE(started.ok()) << started.status();
    daemon_ = std::move(started->daemon);
    fake_ = started->fake;
    key_ = started->key;
    sign_ = started->sign;
  }

  FakeBackend* fake_ = nullptr;
  v1::Key key_;
  v1::SignRequest sign_;
  std::unique_ptr<TestDaemon> daemon_;
};

TEST_F(FakeServiceTest, HsmErrorDetailReachesTheClient) {
  fake_->FailNext("Sign", DeviceError());

  v1::SignResponse response;
  grpc::Status s = daemon_->keys().Sign(Context().get(), sign_, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(s.error_message(), kDeviceErrorMessage);
  ASSERT_FALSE(s.error_details().empty());
  absl::Status decoded = StatusFromRpcStatusProto(s.error_details());
  EXPECT_EQ(decoded.code(), absl::StatusCode::kInternal);
  std::optional<v1::ErrorDetail> got = GetErrorDetail(decoded);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->backend_kind(), "pkcs11");
  EXPECT_EQ(got->backend_code_name(), "CKR_DEVICE_ERROR");
  EXPECT_EQ(got->backend_code(), 0x30u);
  EXPECT_EQ(got->backend_function(), "C_Sign");
  // The service fills in the key the request named.
  EXPECT_EQ(got->key(), key_.uri());

  // Stats count it by gRPC code and by backend code, under the key.
  v1::GetStatsResponse stats;
  ASSERT_TRUE(daemon_->admin().GetStats(Context().get(), {}, &stats).ok());
  bool found = false;
  for (const v1::OperationStats& op : stats.operations()) {
    if (op.operation() == "Sign" && op.key_id() == key_.key_id()) {
      found = true;
      EXPECT_EQ(op.error_count(), 1u);
      EXPECT_EQ(op.errors_by_code().at("INTERNAL"), 1u);
      EXPECT_EQ(op.errors_by_code().at("CKR_DEVICE_ERROR"), 1u);
    }
  }
  EXPECT_TRUE(found) << stats.DebugString();

  // The fault was one-shot.
  EXPECT_TRUE(daemon_->keys().Sign(Context().get(), sign_, &response).ok());
}

TEST_F(FakeServiceTest, ClientDeadlineReachesTheBackend) {
  fake_->SetDelay("Sign", absl::Seconds(20));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(200));
  v1::SignResponse response;
  grpc::Status s = daemon_->keys().Sign(&context, sign_, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  fake_->ClearFaults();
  EXPECT_TRUE(daemon_->keys().Sign(Context().get(), sign_, &response).ok());
}

TEST_F(FakeServiceTest, DefaultDeadlineAppliesWithoutClientDeadline) {
  // TestConfig's default_deadline_ms is the proto default (10 s); a backend
  // call slower than that ends with DEADLINE_EXCEEDED from the backend even
  // though the client set no deadline.
  config::Config config = TestConfig();
  config.mutable_limits()->set_default_deadline_ms(100);
  auto fake = FakeBackend::New({.name = "slow"});
  ASSERT_TRUE(fake.ok());
  (*fake)->SetDelay("GenerateRandom", absl::Seconds(20));
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(fake));
  auto daemon = TestDaemon::Start(std::move(backends), config);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  grpc::ClientContext context;  // No deadline.
  v1::GenerateRandomRequest request;
  request.set_length(8);
  v1::GenerateRandomResponse response;
  grpc::Status s =
      (*daemon)->keys().GenerateRandom(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
}

TEST_F(FakeServiceTest, NotReadyBackendIsUnavailable) {
  fake_->SetServing(false, "token not present");
  v1::SignResponse response;
  grpc::Status s = daemon_->keys().Sign(Context().get(), sign_, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::GetStatusResponse status;
  ASSERT_TRUE(daemon_->admin().GetStatus(Context().get(), {}, &status).ok());
  EXPECT_EQ(status.backends(0).state(), v1::BACKEND_STATE_STARTING);
  EXPECT_EQ(status.backends(0).state_reason(), "token not present");
}

TEST_F(FakeServiceTest, LogsOneLinePerRequestWithoutSecrets) {
  std::mutex mu;
  std::vector<std::string> lines;
  log::SetSinkForTesting([&](absl::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  // The test daemon keeps an audit trail, so a successful request's own
  // line is written at debug level only.
  log::Configure(log::Level::kDebug, log::Format::kText);
  v1::SignResponse response;
  ASSERT_TRUE(daemon_->keys().Sign(Context().get(), sign_, &response).ok());
  v1::SignRequest with_pin = sign_;
  with_pin.mutable_key()->set_uri("pkcs11:object=ec?pin-value=98765432");
  EXPECT_FALSE(daemon_->keys().Sign(Context().get(), with_pin, &response).ok());
  log::SetSinkForTesting(nullptr);
  log::Configure(log::Level::kInfo, log::Format::kText);

  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::string> requests;
  for (const std::string& line : lines) {
    if (line.find("msg=request") != std::string::npos) {
      requests.push_back(line);
    }
    EXPECT_THAT(line, ::testing::Not(HasSubstr("98765432")));
  }
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_THAT(requests[0], HasSubstr("method=Sign"));
  // The caller as the kernel reported it for this connection.
  EXPECT_THAT(requests[0], HasSubstr(absl::StrCat("uid=", getuid(), " ")));
  EXPECT_THAT(requests[0], HasSubstr(absl::StrCat("pid=", getpid(), " ")));
  EXPECT_THAT(requests[0], HasSubstr(absl::StrCat("key_id=", key_.key_id())));
  EXPECT_THAT(requests[0], HasSubstr("status=OK"));
  EXPECT_THAT(requests[0], HasSubstr("level=debug"));
  EXPECT_THAT(requests[0], HasSubstr("latency_us="));
  EXPECT_THAT(requests[1], HasSubstr("status=INVALID_ARGUMENT"));
  EXPECT_THAT(requests[1], HasSubstr("level=info"));
  EXPECT_THAT(requests[1], HasSubstr("pin-value=REDACTED"));
}

// limits.max_list_results: a search matching more keys than the limit
// fails as a whole, naming the count and the limit; narrower ones work, up
// to exactly the limit.
TEST(ListKeysLimitTest, TooManyMatchesIsAClearErrorNotATruncatedList) {
  auto fake = FakeBackend::New({.name = "fake", .token_label = "fake"});
  ASSERT_TRUE(fake.ok());
  for (const char* label : {"web", "web", "web", "db"}) {
    v1::GenerateKeyRequest request;
    request.set_label(label);
    request.set_key_type(v1::KEY_TYPE_EC);
    request.set_curve(v1::CURVE_P256);
    ASSERT_TRUE((*fake)->GenerateKey(request, {}).ok());
  }
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(fake));
  config::Config config = TestConfig();
  config.mutable_limits()->set_max_list_results(3);
  auto daemon = TestDaemon::Start(std::move(backends), config);
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  v1::ListKeysResponse response;
  grpc::Status s = (*daemon)->keys().ListKeys(Context().get(), {}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "ListKeys matched 4 keys, more than limits.max_list_results (3); "
            "narrow the search with uri_filter or label");
  EXPECT_EQ(response.keys_size(), 0);

  v1::ListKeysRequest web;
  web.set_label("web");
  s = (*daemon)->keys().ListKeys(Context().get(), web, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.keys_size(), 3);

  v1::ListKeysRequest db;
  db.set_uri_filter("pkcs11:object=db");
  s = (*daemon)->keys().ListKeys(Context().get(), db, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.keys_size(), 1);
}

// Holds every GenerateRandom inside the fake backend until released, and
// counts how many are inside at once.
class Gate {
 public:
  void Enter() {
    std::unique_lock<std::mutex> lock(mu_);
    ++inside_;
    max_inside_ = std::max(max_inside_, inside_);
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    --inside_;
  }
  // Waits until `n` calls are inside (false after 30 s).
  bool WaitInside(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30),
                        [&] { return inside_ >= n; });
  }
  int inside() {
    std::lock_guard<std::mutex> lock(mu_);
    return inside_;
  }
  int max_inside() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_inside_;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int inside_ = 0;
  int max_inside_ = 0;
  bool open_ = false;
};

// limits.max_streams_per_connection is announced to clients: a gRPC client
// sending 6 calls on one connection has at most that many running in the
// daemon at once and the rest wait their turn; all complete. Without the
// limit (the default, 100) all 6 run at once.
class StreamLimitTest : public ::testing::TestWithParam<int> {};

TEST_P(StreamLimitTest, OneConnectionGetsAtMostTheLimitAtOnce) {
  constexpr int kCalls = 6;
  const int limit = GetParam();
  auto fake = FakeBackend::New({.name = "fake", .token_label = "fake"});
  ASSERT_TRUE(fake.ok());
  FakeBackend* backend = fake->get();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(fake));
  config::Config config = TestConfig();
  config.mutable_limits()->set_max_streams_per_connection(limit);
  auto daemon = TestDaemon::Start(std::move(backends), config);
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  v1::GenerateRandomRequest request;
  request.set_length(8);
  v1::GenerateRandomResponse response;
  // Connected (and the server's SETTINGS received) before the burst.
  ASSERT_TRUE((*daemon)
                  ->keys()
                  .GenerateRandom(Context().get(), request, &response)
                  .ok());
  Gate gate;
  backend->SetCallHook([&gate](absl::string_view method) {
    if (method == "GenerateRandom") gate.Enter();
  });
  std::vector<grpc::Status> results(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRandomResponse r;
      results[i] =
          (*daemon)->keys().GenerateRandom(Context().get(), request, &r);
    });
  }
  const int expected = std::min(limit, kCalls);
  EXPECT_TRUE(gate.WaitInside(expected));
  if (limit < kCalls) {
    // Give a call beyond the limit every chance to arrive; none may.
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_EQ(gate.inside(), limit);
  }
  gate.Open();
  for (std::thread& t : threads) t.join();
  backend->SetCallHook(nullptr);
  EXPECT_EQ(gate.max_inside(), expected);
  for (const grpc::Status& status : results) {
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
}

INSTANTIATE_TEST_SUITE_P(Limits, StreamLimitTest, ::testing::Values(2, 100));

}  // namespace
}  // namespace hsmd::testing
