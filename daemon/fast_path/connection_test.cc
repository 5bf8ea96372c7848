#include "daemon/fast_path/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client_lib/grpc_framing.h"
#include "client_lib/http2_connection.h"
#include "common/error_detail.h"
#include "daemon/service/status_mapping.h"
#include "gtest/gtest.h"

namespace hsmd::fast_path {
namespace {

using client::Deadline;
using client::EncodeGrpcMessage;
using client::Http2Connection;

constexpr char kEcho[] = "/test.Echo/Echo";
constexpr char kFail[] = "/test.Echo/Fail";
constexpr char kWhoAmI[] = "/test.Echo/WhoAmI";

std::string Frame(absl::string_view message) {
  return EncodeGrpcMessage(message).value();
}

TEST(ParseGrpcTimeoutTest, AcceptsEveryUnit) {
  EXPECT_EQ(ParseGrpcTimeout("2H"), absl::Hours(2));
  EXPECT_EQ(ParseGrpcTimeout("3M"), absl::Minutes(3));
  EXPECT_EQ(ParseGrpcTimeout("10S"), absl::Seconds(10));
  EXPECT_EQ(ParseGrpcTimeout("250m"), absl::Milliseconds(250));
  EXPECT_EQ(ParseGrpcTimeout("99999999u"), absl::Microseconds(99999999));
  EXPECT_EQ(ParseGrpcTimeout("7n"), absl::Nanoseconds(7));
}

TEST(ParseGrpcTimeoutTest, RejectsMalformedValues) {
  for (const char* bad :
       {"", "S", "10", "10s", "-1S", "123456789S", "1.5S", " 1S", "1 S"}) {
    EXPECT_FALSE(ParseGrpcTimeout(bad).has_value()) << bad;
  }
}

TEST(PercentEncodeTest, EncodesWhatGrpcRequires) {
  EXPECT_EQ(PercentEncode("plain text: ok"), "plain text: ok");
  EXPECT_EQ(PercentEncode("100%"), "100%25");
  EXPECT_EQ(PercentEncode("a\nb"), "a%0Ab");
  EXPECT_EQ(PercentEncode("\xc3\xa9"), "%C3%A9");
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server_fd_ = fds[0];
    client_fd_ = fds[1];
    methods_.Add(kEcho, [this](const service::CallInfo& call,
                               absl::string_view request,
                               std::string* response) {
      last_deadline_ = call.deadline;
      in_flight_during_call_ = in_flight_.count();
      *response = Frame(absl::StrCat("echo:", request));
      return grpc::Status::OK;
    });
    methods_.Add(kFail, [](const service::CallInfo&, absl::string_view,
                           std::string*) {
      absl::Status status =
          absl::NotFoundError("no key \"x\" (100% sure)\non this token");
      v1::ErrorDetail detail;
      detail.set_backend_kind("pkcs11");
      detail.set_backend_code_name("CKR_KEY_HANDLE_INVALID");
      detail.set_backend_code(0x60);
      SetErrorDetail(status, detail);
      return service::ToGrpcStatus(status);
    });
    methods_.Add(kWhoAmI, [](const service::CallInfo& call, absl::string_view,
                             std::string* response) {
      *response = Frame(call.peer == nullptr
                            ? "nobody"
                            : absl::StrCat("uid ", call.peer->uid));
      return grpc::Status::OK;
    });
  }

  void TearDown() override {
    client_.reset();
    if (client_fd_ >= 0) close(client_fd_);
    if (server_.joinable()) server_.join();
    close(server_fd_);
  }

  void StartServer(ConnectionOptions options = {},
                   std::shared_ptr<const PeerIdentity> peer = nullptr) {
    server_ = std::thread([this, options, peer] {
      Connection connection(server_fd_, peer, &methods_, &in_flight_,
                            options);
      serve_status_ = connection.Serve();
      calls_served_ = connection.calls();
    });
  }

  // A client_lib connection over the socketpair (it owns client_fd_).
  Http2Connection& Client() {
    if (client_ == nullptr) {
      auto connection =
          Http2Connection::FromConnectedSocket(client_fd_, "test", 1 << 20);
      EXPECT_TRUE(connection.ok()) << connection.status();
      client_ = *std::move(connection);
      client_fd_ = -1;
    }
    return *client_;
  }

  absl::Status Call(absl::string_view path, absl::string_view framed,
                    std::string* response = nullptr,
                    absl::Duration timeout = absl::Seconds(10)) {
    absl::string_view out;
    Http2Connection::Failure failure;
    absl::Status status = Client().Call(path, framed, Deadline::After(timeout),
                                        &out, &failure);
    if (response != nullptr) *response = std::string(out);
    return status;
  }

  int server_fd_ = -1;
  int client_fd_ = -1;
  MethodTable methods_;
  InFlightCalls in_flight_;
  std::thread server_;
  absl::Status serve_status_;
  uint64_t calls_served_ = 0;
  std::unique_ptr<Http2Connection> client_;
  std::optional<absl::Time> last_deadline_;
  int64_t in_flight_during_call_ = -1;
};

TEST_F(ConnectionTest, ServesSequentialCallsOnOneConnection) {
  StartServer();
  for (int i = 0; i < 5; ++i) {
    std::string response;
    const std::string request = absl::StrCat("request ", i);
    ASSERT_TRUE(Call(kEcho, Frame(request), &response).ok());
    EXPECT_EQ(response, absl::StrCat("echo:", request));
  }
  EXPECT_EQ(in_flight_during_call_, 1);
  client_.reset();  // EOF: Serve ends cleanly.
  server_.join();
  EXPECT_EQ(in_flight_.count(), 0);
  EXPECT_TRUE(serve_status_.ok()) << serve_status_;
  EXPECT_EQ(calls_served_, 5u);
}

TEST_F(ConnectionTest, PassesTheClientDeadline) {
  StartServer();
  const absl::Time before = absl::Now();
  ASSERT_TRUE(Call(kEcho, Frame("x"), nullptr, absl::Seconds(7)).ok());
  ASSERT_TRUE(last_deadline_.has_value());
  EXPECT_GT(*last_deadline_, before + absl::Seconds(6));
  EXPECT_LE(*last_deadline_, absl::Now() + absl::Seconds(7));
}

TEST_F(ConnectionTest, PassesThePeerIdentity) {
  auto peer = std::make_shared<PeerIdentity>();
  peer->uid = 4242;
  StartServer({}, peer);
  std::string response;
  ASSERT_TRUE(Call(kWhoAmI, Frame(""), &response).ok());
  EXPECT_EQ(response, "uid 4242");
}

TEST_F(ConnectionTest, ErrorsKeepCodeMessageAndDetail) {
  StartServer();
  absl::Status status = Call(kFail, Frame(""));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "no key \"x\" (100% sure)\non this token");
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_code_name(), "CKR_KEY_HANDLE_INVALID");
  EXPECT_EQ(detail->backend_code(), 0x60u);
  // The connection serves on after an error.
  EXPECT_TRUE(Call(kEcho, Frame("again")).ok());
}

TEST_F(ConnectionTest, UnknownMethodIsUnimplemented) {
  StartServer();
  absl::Status status = Call("/hsmd.v1.KeyService/Nope", Frame(""));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(status.message().find("unknown method /hsmd.v1.KeyService/Nope"),
            std::string::npos)
      << status;
}

TEST_F(ConnectionTest, OversizedRequestIsResourceExhausted) {
  ConnectionOptions options;
  options.max_request_bytes = 1000;
  StartServer(options);
  absl::Status status = Call(kEcho, Frame(std::string(1001, 'a')));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("limit of 1000 bytes"), std::string::npos)
      << status;
  std::string response;
  ASSERT_TRUE(Call(kEcho, Frame(std::string(1000, 'a')), &response).ok());
  EXPECT_EQ(response.size(), 1005u);
}

TEST_F(ConnectionTest, BadFramingNamesTheProblem) {
  StartServer();
  std::string compressed = Frame("abc");
  compressed[0] = 1;
  absl::Status status = Call(kEcho, compressed);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(status.message().find("compressed"), std::string::npos) << status;

  std::string short_message = Frame("abcdef");
  short_message.pop_back();
  status = Call(kEcho, short_message);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("announces 6 bytes but 5 follow"),
            std::string::npos)
      << status;

  status = Call(kEcho, Frame("a") + Frame("b"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);

  status = Call(kEcho, "");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("no gRPC message"), std::string::npos)
      << status;
  EXPECT_TRUE(Call(kEcho, Frame("fine")).ok());
}

TEST_F(ConnectionTest, GarbageEndsOnlyThisConnection) {
  StartServer();
  const std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(client_fd_, garbage.data(), garbage.size()),
            static_cast<ssize_t>(garbage.size()));
  server_.join();
  EXPECT_EQ(serve_status_.code(), absl::StatusCode::kInvalidArgument)
      << serve_status_;
  EXPECT_NE(serve_status_.message().find("HTTP/2"), std::string::npos);
}

TEST_F(ConnectionTest, ShutdownOfTheSocketEndsServe) {
  StartServer();
  ASSERT_TRUE(Call(kEcho, Frame("x")).ok());
  shutdown(server_fd_, SHUT_RDWR);
  server_.join();
  EXPECT_EQ(calls_served_, 1u);
}

}  // namespace
}  // namespace hsmd::fast_path
