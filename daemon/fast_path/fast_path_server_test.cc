#include "daemon/fast_path/fast_path_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client_lib/grpc_framing.h"
#include "client_lib/http2_connection.h"
#include "gtest/gtest.h"

namespace hsmd::fast_path {
namespace {

using client::Deadline;
using client::EncodeGrpcMessage;
using client::Http2Connection;

constexpr char kEcho[] = "/test.Echo/Echo";
constexpr char kBlock[] = "/test.Echo/Block";

class FastPathServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MethodTable methods;
    methods.Add(kEcho, [](const service::CallInfo&, absl::string_view request,
                          std::string* response) {
      *response = EncodeGrpcMessage(request).value();
      return grpc::Status::OK;
    });
    methods.Add(kBlock, [this](const service::CallInfo&, absl::string_view,
                               std::string* response) {
      blocked_.Notify();
      release_.WaitForNotification();
      *response = EncodeGrpcMessage("released").value();
      return grpc::Status::OK;
    });
    methods_ = std::move(methods);
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (server_ != nullptr) {
      EXPECT_TRUE(server_->Close(absl::Now() + absl::Seconds(30)));
    }
    for (int fd : handed_to_grpc_) close(fd);
  }

  void StartServer(ServerOptions options = {}) {
    server_ = std::make_unique<FastPathServer>(
        methods_, &in_flight_,
        [this](int fd) {
          std::lock_guard<std::mutex> lock(mu_);
          handed_to_grpc_.push_back(fd);
          cv_.notify_all();
        },
        options);
  }

  // A connected client; the server end is adopted by the server.
  std::unique_ptr<Http2Connection> Connect(bool announce = true) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    auto connection = Http2Connection::FromConnectedSocket(
        fds[1], "test", 1 << 20, announce);
    EXPECT_TRUE(connection.ok()) << connection.status();
    server_->Adopt(fds[0], nullptr);
    return *std::move(connection);
  }

  absl::Status Call(Http2Connection& connection, absl::string_view path,
                    std::string* response = nullptr) {
    absl::string_view out;
    Http2Connection::Failure failure;
    absl::Status status =
        connection.Call(path, EncodeGrpcMessage("hello").value(),
                        Deadline::After(absl::Seconds(10)), &out, &failure);
    if (response != nullptr) *response = std::string(out);
    return status;
  }

  // The fds handed to gRPC, once there are `n`.
  std::vector<int> WaitForGrpc(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30),
                 [&] { return handed_to_grpc_.size() >= n; });
    return handed_to_grpc_;
  }

  MethodTable methods_;
  InFlightCalls in_flight_;
  std::unique_ptr<FastPathServer> server_;
  absl::Notification blocked_;
  absl::Notification release_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> handed_to_grpc_;
};

TEST_F(FastPathServerTest, ServesClientLibConnections) {
  StartServer();
  auto a = Connect();
  auto b = Connect();
  std::string response;
  ASSERT_TRUE(Call(*a, kEcho, &response).ok());
  EXPECT_EQ(response, "hello");
  ASSERT_TRUE(Call(*b, kEcho).ok());
  ASSERT_TRUE(Call(*a, kEcho).ok());
  EXPECT_EQ(server_->fast_path_connections(), 2u);
  EXPECT_EQ(server_->grpc_connections(), 0u);
}

TEST_F(FastPathServerTest, ThreadsOfClosedConnectionsServeTheNextOnes) {
  StartServer();
  for (int i = 0; i < 5; ++i) {
    auto client = Connect();
    ASSERT_TRUE(Call(*client, kEcho).ok());
    client.reset();
    // The thread parks once it has seen the EOF.
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (server_->parked_threads() != 1 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  EXPECT_EQ(server_->threads(), 1u);
  EXPECT_EQ(server_->fast_path_connections(), 5u);
}

TEST_F(FastPathServerTest, ParkedThreadsAreBoundedAndExpire) {
  ServerOptions options;
  options.max_idle_threads = 2;
  options.idle_thread_timeout = absl::Milliseconds(100);
  StartServer(options);
  {
    auto a = Connect();
    auto b = Connect();
    auto c = Connect();
    for (auto* client : {a.get(), b.get(), c.get()}) {
      ASSERT_TRUE(Call(*client, kEcho).ok());
    }
    EXPECT_EQ(server_->threads(), 3u);
  }
  // Three connections closed: two threads park, then expire too.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (server_->threads() != 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(server_->threads(), 0u);
  auto d = Connect();
  EXPECT_TRUE(Call(*d, kEcho).ok());
}

TEST_F(FastPathServerTest, OtherClientsGoToGrpcWithTheirBytesUnread) {
  StartServer();
  auto other = Connect(/*announce=*/false);
  // The client's opening leaves with its first call; the call itself
  // cannot complete here (no gRPC server behind the hand-off).
  absl::string_view out;
  Http2Connection::Failure failure;
  (void)other->Call(kEcho, EncodeGrpcMessage("x").value(),
                    Deadline::After(absl::Milliseconds(200)), &out, &failure);
  std::vector<int> fds = WaitForGrpc(1);
  ASSERT_EQ(fds.size(), 1u);
  char preface[24];
  ASSERT_EQ(read(fds[0], preface, sizeof(preface)), 24);
  EXPECT_EQ(std::string(preface, 24), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_EQ(server_->grpc_connections(), 1u);
  EXPECT_EQ(server_->fast_path_connections(), 0u);
}

TEST_F(FastPathServerTest, SilentClientGoesToGrpcAfterTheTimeout) {
  ServerOptions options;
  options.classify_timeout = absl::Milliseconds(50);
  StartServer(options);
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  server_->Adopt(fds[0], nullptr);
  EXPECT_EQ(WaitForGrpc(1).size(), 1u);
  close(fds[1]);
}

TEST_F(FastPathServerTest, ConnectionsBeyondTheCapGoToGrpc) {
  ServerOptions options;
  options.max_connections = 1;
  StartServer(options);
  auto first = Connect();
  ASSERT_TRUE(Call(*first, kEcho).ok());
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  server_->Adopt(fds[0], nullptr);
  std::vector<int> handed = WaitForGrpc(1);
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0], fds[0]);
  close(fds[1]);
  // The first connection still works.
  EXPECT_TRUE(Call(*first, kEcho).ok());
}

TEST_F(FastPathServerTest, CloseEndsIdleConnectionsAndRefusesNewOnes) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(Call(*client, kEcho).ok());
  EXPECT_TRUE(server_->Close(absl::Now() + absl::Seconds(30)));
  EXPECT_FALSE(Call(*client, kEcho).ok());
  auto late = Connect();
  absl::Status status = Call(*late, kEcho);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(WaitForGrpc(0).empty());
}

TEST_F(FastPathServerTest, CloseGivesUpOnACallBlockedInItsHandler) {
  StartServer();
  auto client = Connect();
  std::thread caller([&] { (void)Call(*client, kBlock); });
  blocked_.WaitForNotification();
  EXPECT_EQ(in_flight_.count(), 1);
  EXPECT_FALSE(server_->Close(absl::Now() + absl::Milliseconds(100)));
  release_.Notify();
  // Once the handler returns, its thread ends and the server is idle.
  EXPECT_TRUE(server_->Close(absl::Now() + absl::Seconds(30)));
  caller.join();
  EXPECT_EQ(in_flight_.count(), 0);
}

}  // namespace
}  // namespace hsmd::fast_path
