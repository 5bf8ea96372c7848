// The fast path inside a real Server: which connections it serves, that it
// answers exactly as the gRPC server does (results, errors and their
// details, deadlines), and that shutdown drains it like the gRPC server.
#include <grpcpp/client_context.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client_lib/client.h"
#include "common/error_detail.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/testing/fake_daemon.h"
#include "daemon/testing/signature_verifier.h"
#include "daemon/testing/test_daemon.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::testing {
namespace {

using backend::FakeBackend;
using ::testing::HasSubstr;

class TransportTest : public ::testing::Test {
 protected:
  void Start(bool fast_path = true) {
    config::Config config = TestConfig();
    config.mutable_listen()->set_fast_path(fast_path);
    absl::StatusOr<FakeDaemon> started = StartFakeDaemon(config);
    ASSERT_TRUE(started.ok()) << started.status();
    daemon_ = std::move(started->daemon);
    fake_ = started->fake;
    key_ = started->key;
    sign_ = started->sign;
  }

  std::unique_ptr<client::Client> NewClient() {
    client::ClientOptions options;
    options.socket_path = daemon_->socket_path();
    auto c = client::Client::New(options);
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }

  v1::ConnectionCounts Connections() {
    v1::GetStatusResponse status;
    EXPECT_TRUE(daemon_->admin().GetStatus(Context().get(), {}, &status).ok());
    return status.connections();
  }

  // Used by hooks running on the daemon's threads: declared before daemon_,
  // so they outlive it.
  absl::Notification release_;
  std::atomic<bool> hang_next_{true};
  FakeBackend* fake_ = nullptr;
  v1::Key key_;
  v1::SignRequest sign_;
  std::unique_ptr<TestDaemon> daemon_;
};

TEST_F(TransportTest, ClientLibIsServedOnTheFastPathOthersByGrpc) {
  Start();
  auto c = NewClient();
  absl::StatusOr<v1::SignResponse> signed_fast = c->Sign(sign_);
  ASSERT_TRUE(signed_fast.ok()) << signed_fast.status();
  EXPECT_EQ(signed_fast->key_id(), key_.key_id());
  v1::SignResponse signed_grpc;
  ASSERT_TRUE(daemon_->keys().Sign(Context().get(), sign_, &signed_grpc).ok());
  EXPECT_EQ(signed_grpc.key_id(), key_.key_id());
  // Both signatures verify with the key's public key.
  for (const std::string& signature :
       {signed_fast->signature(), signed_grpc.signature()}) {
    absl::Status verified =
        VerifySignature(key_.public_key_der(), sign_, signature);
    EXPECT_TRUE(verified.ok()) << verified;
  }

  const v1::ConnectionCounts counts = Connections();
  EXPECT_EQ(counts.fast_path(), 1u);
  EXPECT_EQ(counts.grpc(), 1u);  // the test's gRPC channel
  // GetStatus through client_lib reports the same.
  absl::StatusOr<v1::GetStatusResponse> status =
      c->GetStatus(v1::GetStatusRequest());
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->connections().fast_path(), 1u);

  // Stats count both transports' requests alike.
  v1::GetStatsResponse stats;
  ASSERT_TRUE(daemon_->admin().GetStats(Context().get(), {}, &stats).ok());
  uint64_t signs = 0;
  for (const v1::OperationStats& op : stats.operations()) {
    if (op.operation() == "Sign") signs += op.count();
  }
  EXPECT_EQ(signs, 2u);
}

TEST_F(TransportTest, ClientLibWithoutTheAnnouncementIsServedByGrpc) {
  Start();
  client::ClientOptions options;
  options.socket_path = daemon_->socket_path();
  options.fast_path = false;
  auto c = client::Client::New(options);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Sign(sign_).ok());
  EXPECT_EQ(Connections().fast_path(), 0u);
  EXPECT_EQ(Connections().grpc(), 2u);
}

TEST_F(TransportTest, FastPathOffServesEverythingWithGrpc) {
  Start(/*fast_path=*/false);
  auto c = NewClient();
  ASSERT_TRUE(c->Sign(sign_).ok());
  EXPECT_EQ(Connections().fast_path(), 0u);
  EXPECT_EQ(Connections().grpc(), 2u);
}

TEST_F(TransportTest, ErrorsAreTheSameOnBothTransports) {
  Start();
  auto c = NewClient();
  // A client mistake.
  v1::SignRequest unknown = sign_;
  unknown.mutable_key()->set_uri("pkcs11:token=fake;object=nope");
  absl::Status fast = c->Sign(unknown).status();
  v1::SignResponse response;
  grpc::Status slow = daemon_->keys().Sign(Context().get(), unknown, &response);
  EXPECT_EQ(static_cast<int>(fast.code()), static_cast<int>(slow.error_code()));
  EXPECT_EQ(fast.message(), slow.error_message());
  EXPECT_EQ(fast.code(), absl::StatusCode::kNotFound) << fast;

  // A validation error.
  v1::SignRequest empty;
  fast = c->Sign(empty).status();
  slow = daemon_->keys().Sign(Context().get(), empty, &response);
  EXPECT_EQ(fast.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fast.message(), slow.error_message());

  // An HSM error with its detail.
  fake_->FailNext("Sign", DeviceError());
  fast = c->Sign(sign_).status();
  EXPECT_EQ(fast.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(fast.message(), kDeviceErrorMessage);
  std::optional<v1::ErrorDetail> got = GetErrorDetail(fast);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->backend_code_name(), "CKR_DEVICE_ERROR");
  EXPECT_EQ(got->backend_function(), "C_Sign");
  EXPECT_EQ(got->key(), key_.uri());
}

TEST_F(TransportTest, ClientDeadlineEndsAHungCallAndOthersGoOn) {
  Start();
  // Members, not locals: the hung call's thread may still be leaving the
  // hook when the test body ends.
  fake_->SetCallHook([this](absl::string_view method) {
    if (method == "Sign" && hang_next_.exchange(false)) {
      release_.WaitForNotification();
    }
  });
  auto stuck = NewClient();
  client::CallOptions call;
  call.timeout = absl::Milliseconds(200);
  absl::Status status = stuck->Sign(sign_, call).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  // While that call still holds its connection's thread in the backend,
  // other clients are served.
  auto other = NewClient();
  EXPECT_TRUE(other->Sign(sign_).ok());
  release_.Notify();
  // The client dropped the connection it gave up on and opens another.
  absl::StatusOr<v1::SignResponse> again = stuck->Sign(sign_);
  EXPECT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Connections().fast_path(), 3u);
}

TEST_F(TransportTest, ShutdownDrainsFastPathCalls) {
  Start();
  auto busy = NewClient();
  auto idle = NewClient();
  ASSERT_TRUE(idle->Sign(sign_).ok());  // its connection is open and idle
  absl::Notification entered;
  absl::Notification release;
  fake_->SetCallHook([&](absl::string_view method) {
    if (method != "Sign" || entered.HasBeenNotified()) return;
    entered.Notify();
    release.WaitForNotification();
  });
  absl::StatusOr<v1::SignResponse> in_flight;
  std::thread caller([&] { in_flight = busy->Sign(sign_); });
  entered.WaitForNotification();
  std::thread stopper([&] { daemon_->server().Shutdown(absl::Seconds(30)); });
  // Until the drain begins the idle connection still signs; then it is
  // refused while the busy call keeps running.
  absl::Status refused;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (refused.ok() && absl::Now() < give_up) {
    refused = idle->Sign(sign_).status();
    if (refused.ok()) absl::SleepFor(absl::Milliseconds(5));
  }
  release.Notify();
  caller.join();
  stopper.join();
  EXPECT_TRUE(in_flight.ok()) << in_flight.status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("shutting down"));
}

}  // namespace
}  // namespace hsmd::testing
