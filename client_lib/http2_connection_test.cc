// Http2Connection against a scripted server writing raw HTTP/2 frames over a
// socketpair (testing/scripted_http2_server.h). Wire compatibility with real
// gRPC is client_test's job.
#include "client_lib/http2_connection.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "client_lib/grpc_framing.h"
#include "client_lib/testing/scripted_http2_server.h"
#include "common/error_detail.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::client {
namespace {

using ::testing::HasSubstr;
using Failure = Http2Connection::Failure;
using testing::BigEndian32;
using testing::DataFrame;
using testing::GrpcResponseHeaders;
using testing::HeadersFrame;
using testing::Http2Frame;
using testing::OkGrpcResponse;
using testing::ScriptedHttp2Server;
using testing::TrailersOnlyResponse;
using Request = testing::ScriptedRequest;
using Reply = testing::ScriptedReply;

constexpr char kPeer[] = "/test/hsmd.sock";

std::string GrpcMessage(absl::string_view message) {
  return EncodeGrpcMessage(message).value();
}

// A scripted server on a socketpair plus the connection on its other end.
class ScriptedServer {
 public:
  explicit ScriptedServer(ScriptedHttp2Server::Script script,
                          ScriptedHttp2Server::Options options = {})
      : server_(
            ScriptedHttp2Server::OverSocketpair(std::move(script), options)) {}

  std::unique_ptr<Http2Connection> Connect(size_t max_response = 1 << 20) {
    absl::StatusOr<std::unique_ptr<Http2Connection>> connection =
        Http2Connection::FromConnectedSocket(server_->TakeClientFd(), kPeer,
                                             max_response);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.ok() ? *std::move(connection) : nullptr;
  }

  std::vector<Request> requests() { return server_->requests(); }
  void CloseNow() { server_->Stop(); }

 private:
  std::unique_ptr<ScriptedHttp2Server> server_;
};

struct Result {
  absl::Status status;
  std::string message;
  Failure failure = Failure::kNone;
};

Result DoCall(Http2Connection& connection, absl::string_view request = "ping",
              absl::Duration timeout = absl::Seconds(10)) {
  const std::string framed = GrpcMessage(request);
  absl::string_view message;
  Result result;
  result.status =
      connection.Call("/hsmd.v1.KeyService/Sign", framed,
                      Deadline::After(timeout), &message, &result.failure);
  result.message = std::string(message);
  return result;
}

TEST(Http2ConnectionTest, OkCallSendsGrpcRequestHeaders) {
  ScriptedServer server([](const Request& request) {
    return Reply{OkGrpcResponse(request.stream, "pong")};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection, "ping", absl::Seconds(30));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.message, "pong");
  EXPECT_EQ(result.failure, Failure::kNone);
  EXPECT_TRUE(connection->usable());

  std::vector<Request> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  std::map<std::string, std::string>& headers = requests[0].headers;
  EXPECT_EQ(headers[":method"], "POST");
  EXPECT_EQ(headers[":scheme"], "http");
  EXPECT_EQ(headers[":path"], "/hsmd.v1.KeyService/Sign");
  EXPECT_EQ(headers[":authority"], "localhost");
  EXPECT_EQ(headers["content-type"], "application/grpc");
  EXPECT_EQ(headers["te"], "trailers");
  EXPECT_EQ(headers["user-agent"], "hsmd-client_lib/1");
  absl::StatusOr<absl::Duration> timeout =
      ParseGrpcTimeout(headers["grpc-timeout"]);
  ASSERT_TRUE(timeout.ok()) << headers["grpc-timeout"];
  EXPECT_GT(*timeout, absl::ZeroDuration());
  EXPECT_LE(*timeout, absl::Seconds(30));
  EXPECT_EQ(requests[0].body, GrpcMessage("ping"));
}

TEST(Http2ConnectionTest, SequentialCallsUseNewStreamsOnOneConnection) {
  ScriptedServer server([](const Request& request) {
    return Reply{OkGrpcResponse(request.stream, request.body.substr(5))};
  });
  auto connection = server.Connect();
  for (const char* text : {"one", "two", "three"}) {
    Result result = DoCall(*connection, text);
    ASSERT_TRUE(result.status.ok()) << result.status;
    EXPECT_EQ(result.message, text);
  }
  std::vector<Request> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].stream, 1u);
  EXPECT_EQ(requests[1].stream, 3u);
  EXPECT_EQ(requests[2].stream, 5u);
}

TEST(Http2ConnectionTest, MessageSplitIntoOneByteDataFrames) {
  ScriptedServer server([](const Request& request) {
    std::string bytes =
        HeadersFrame(request.stream, GrpcResponseHeaders(), false);
    for (char c : GrpcMessage("fragmented response")) {
      bytes += DataFrame(request.stream, absl::string_view(&c, 1), false);
    }
    bytes += HeadersFrame(request.stream, {{"grpc-status", "0"}}, true);
    return Reply{bytes};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.message, "fragmented response");
}

TEST(Http2ConnectionTest, LargeRequestFollowsFlowControl) {
  ScriptedServer server([](const Request& request) {
    return Reply{
        OkGrpcResponse(request.stream, std::to_string(request.body.size()))};
  });
  auto connection = server.Connect();
  const std::string big(1 << 20, 'b');
  Result result = DoCall(*connection, big);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.message, std::to_string(big.size() + 5));
  EXPECT_EQ(server.requests()[0].body, GrpcMessage(big));
}

TEST(Http2ConnectionTest, EarlyAnswerEndsCallWithoutSendingWholeRequest) {
  ScriptedHttp2Server::Options options;
  options.respond_on_headers = true;
  options.grant_flow_control = false;
  ScriptedServer server(
      [](const Request& request) {
        return Reply{TrailersOnlyResponse(
            request.stream,
            {{"grpc-status", "8"}, {"grpc-message", "request too large"}})};
      },
      options);
  auto connection = server.Connect();
  Result result = DoCall(*connection, std::string(1 << 20, 'x'));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(result.status.message(), "request too large");
}

TEST(Http2ConnectionTest, TrailersOnlyErrorWithPercentEncodedMessage) {
  ScriptedServer server([](const Request& request) {
    return Reply{TrailersOnlyResponse(
        request.stream,
        {{"grpc-status", "5"},
         {"grpc-message", PercentEncodeGrpcMessage("нет ключа %/\n")}})};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status.message(), "нет ключа %/\n");
  EXPECT_EQ(result.failure, Failure::kOther);
  EXPECT_TRUE(connection->usable());
  // The connection carries the next call.
  EXPECT_EQ(DoCall(*connection).status.code(), absl::StatusCode::kNotFound);
}

TEST(Http2ConnectionTest, ErrorDetailFromStatusDetailsBin) {
  absl::Status server_status = absl::PermissionDeniedError("not yours");
  v1::ErrorDetail detail;
  detail.set_backend_code_name("CKR_USER_NOT_LOGGED_IN");
  detail.set_backend_code(0x101);
  SetErrorDetail(server_status, detail);
  std::string details_bin =
      absl::Base64Escape(StatusToRpcStatusProto(server_status));
  while (!details_bin.empty() && details_bin.back() == '=') {
    details_bin.pop_back();  // gRPC sends it unpadded.
  }
  ScriptedServer server([&](const Request& request) {
    return Reply{TrailersOnlyResponse(
        request.stream, {{"grpc-status", "7"},
                         {"grpc-message", "not yours"},
                         {"grpc-status-details-bin", details_bin}})};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(result.status.message(), "not yours");
  std::optional<v1::ErrorDetail> got = GetErrorDetail(result.status);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->backend_code_name(), "CKR_USER_NOT_LOGGED_IN");
  EXPECT_EQ(got->backend_code(), 0x101u);
}

TEST(Http2ConnectionTest, UnreadableStatusDetailsKeepCodeAndMessage) {
  ScriptedServer server([](const Request& request) {
    return Reply{TrailersOnlyResponse(
        request.stream, {{"grpc-status", "9"},
                         {"grpc-message", "busy"},
                         {"grpc-status-details-bin", "!!not base64"}})};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status.message(), HasSubstr("busy"));
  EXPECT_THAT(result.status.message(),
              HasSubstr("unreadable grpc-status-details-bin"));
  EXPECT_FALSE(GetErrorDetail(result.status).has_value());
}

TEST(Http2ConnectionTest, MissingGrpcStatus) {
  ScriptedServer server([](const Request& request) {
    return Reply{HeadersFrame(request.stream, GrpcResponseHeaders(), false) +
                 DataFrame(request.stream, GrpcMessage("x"), true)};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status.message(), HasSubstr("missing grpc-status"));
}

TEST(Http2ConnectionTest, MalformedGrpcStatus) {
  ScriptedServer server([](const Request& request) {
    return Reply{TrailersOnlyResponse(request.stream, {{"grpc-status", "OK"}})};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status.message(), HasSubstr("malformed grpc-status"));
}

TEST(Http2ConnectionTest, WrongContentType) {
  ScriptedServer server([](const Request& request) {
    return Reply{HeadersFrame(request.stream,
                              {{":status", "200"},
                               {"content-type", "text/html"},
                               {"grpc-status", "0"}},
                              true)};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status.message(), HasSubstr("text/html"));
}

TEST(Http2ConnectionTest, HttpStatusMapsToGrpcCode) {
  for (const auto& [http, code] :
       std::vector<std::pair<std::string, absl::StatusCode>>{
           {"503", absl::StatusCode::kUnavailable},
           {"404", absl::StatusCode::kUnimplemented},
           {"401", absl::StatusCode::kUnauthenticated},
           {"500", absl::StatusCode::kUnknown}}) {
    ScriptedServer server([http = http](const Request& request) {
      return Reply{HeadersFrame(request.stream, {{":status", http}}, true)};
    });
    auto connection = server.Connect();
    Result result = DoCall(*connection);
    EXPECT_EQ(result.status.code(), code) << http;
    EXPECT_THAT(result.status.message(), HasSubstr("HTTP status " + http));
  }
}

TEST(Http2ConnectionTest, RefusedStreamIsRetryable) {
  ScriptedServer server([](const Request& request) {
    return Reply{Http2Frame(testing::kFrameRstStream, 0, request.stream,
                            BigEndian32(0x7))};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.failure, Failure::kRefused);
  EXPECT_THAT(result.status.message(), HasSubstr("REFUSED_STREAM"));
  EXPECT_TRUE(connection->usable());
}

TEST(Http2ConnectionTest, ResetAfterHeadersIsNotRetryable) {
  ScriptedServer server([](const Request& request) {
    return Reply{HeadersFrame(request.stream, GrpcResponseHeaders(), false) +
                 Http2Frame(testing::kFrameRstStream, 0, request.stream,
                            BigEndian32(0x2))};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(result.failure, Failure::kOther);
  EXPECT_THAT(result.status.message(), HasSubstr("INTERNAL_ERROR"));
}

TEST(Http2ConnectionTest, GoawayBelowOurStreamRefusesIt) {
  ScriptedServer server([](const Request& /*request*/) {
    return Reply{Http2Frame(testing::kFrameGoaway, 0, 0,
                            BigEndian32(0) + BigEndian32(0)),
                 /*close_after=*/true};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.failure, Failure::kRefused);
  EXPECT_FALSE(connection->usable());
}

TEST(Http2ConnectionTest, GoawayCoveringOurStreamLetsItFinish) {
  ScriptedServer server([](const Request& request) {
    return Reply{Http2Frame(testing::kFrameGoaway, 0, 0,
                            BigEndian32(request.stream) + BigEndian32(0)) +
                 OkGrpcResponse(request.stream, "last one")};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.message, "last one");
  EXPECT_FALSE(connection->usable());
}

TEST(Http2ConnectionTest, EofMidResponse) {
  ScriptedServer server([](const Request& request) {
    return Reply{HeadersFrame(request.stream, GrpcResponseHeaders(), false),
                 /*close_after=*/true};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.status.message(),
            "hsmd unavailable at /test/hsmd.sock: connection closed by hsmd");
  EXPECT_EQ(result.failure, Failure::kOther);
  EXPECT_FALSE(connection->usable());
}

TEST(Http2ConnectionTest, PeerClosedBeforeRequestIsDetectedWhileIdle) {
  ScriptedServer server([](const Request& request) {
    return Reply{OkGrpcResponse(request.stream, "unused")};
  });
  auto connection = server.Connect();
  server.CloseNow();
  EXPECT_FALSE(connection->CheckIdle());
  EXPECT_FALSE(connection->usable());
}

TEST(Http2ConnectionTest, PeerClosedBeforeRequestMeansNotSent) {
  ScriptedServer server([](const Request& request) {
    return Reply{OkGrpcResponse(request.stream, "unused")};
  });
  auto connection = server.Connect();
  server.CloseNow();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.failure, Failure::kNotSent);
  EXPECT_THAT(result.status.message(), HasSubstr("/test/hsmd.sock"));
}

TEST(Http2ConnectionTest, CompressedMessageIsRejectedAndConnectionSurvives) {
  int calls = 0;
  ScriptedServer server([&calls](const Request& request) {
    if (++calls > 1) return Reply{OkGrpcResponse(request.stream, "plain")};
    std::string message = GrpcMessage("gzip?");
    message[0] = 1;
    return Reply{HeadersFrame(request.stream, GrpcResponseHeaders(), false) +
                 DataFrame(request.stream, message, false) +
                 HeadersFrame(request.stream, {{"grpc-status", "0"}}, true)};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status.message(), HasSubstr("compressed"));
  ASSERT_TRUE(connection->usable());
  Result next = DoCall(*connection);
  ASSERT_TRUE(next.status.ok()) << next.status;
  EXPECT_EQ(next.message, "plain");
}

TEST(Http2ConnectionTest, OversizedMessageIsRejectedAndConnectionSurvives) {
  ScriptedServer server([](const Request& request) {
    return Reply{OkGrpcResponse(request.stream, request.body.substr(5))};
  });
  auto connection = server.Connect(/*max_response=*/64);
  Result result = DoCall(*connection, std::string(65, 'L'));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(result.status.message(), HasSubstr("65 bytes"));
  ASSERT_TRUE(connection->usable());
  Result next = DoCall(*connection, std::string(64, 's'));
  ASSERT_TRUE(next.status.ok()) << next.status;
  EXPECT_EQ(next.message, std::string(64, 's'));
}

TEST(Http2ConnectionTest, DeadlineWithSilentServer) {
  ScriptedServer server([](const Request&) { return Reply{}; });
  auto connection = server.Connect();
  Result result = DoCall(*connection, "ping", absl::Milliseconds(100));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status.message(), HasSubstr("100ms"));
  EXPECT_FALSE(connection->usable());
}

TEST(Http2ConnectionTest, ExpiredDeadlineSendsNothing) {
  ScriptedServer server([](const Request& request) {
    return Reply{OkGrpcResponse(request.stream, "late")};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection, "ping", absl::ZeroDuration());
  EXPECT_EQ(result.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(result.failure, Failure::kNotSent);
  EXPECT_TRUE(connection->usable());
}

TEST(Http2ConnectionTest, ProtocolViolationBreaksConnection) {
  ScriptedServer server([](const Request& /*request*/) {
    // DATA on stream 0 is a connection error (PROTOCOL_ERROR).
    return Reply{DataFrame(0, "garbage", false)};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_FALSE(result.status.ok());
  EXPECT_EQ(result.failure, Failure::kOther);
  EXPECT_FALSE(connection->usable());
}

TEST(Http2ConnectionTest, NonHttp2BytesBreakConnection) {
  ScriptedServer server([](const Request& /*request*/) {
    return Reply{"HTTP/1.1 400 Bad Request\r\n\r\n", /*close_after=*/true};
  });
  auto connection = server.Connect();
  Result result = DoCall(*connection);
  EXPECT_FALSE(result.status.ok());
  EXPECT_FALSE(connection->usable());
}

TEST(DeadlineTest, CappedAtTakesTheEarlier) {
  const Deadline far = Deadline::After(absl::Hours(1));
  EXPECT_LE(far.CappedAt(absl::Seconds(1)).Remaining(), absl::Seconds(1));
  const Deadline near = Deadline::After(absl::Seconds(1));
  EXPECT_LE(near.CappedAt(absl::Hours(1)).Remaining(), absl::Seconds(1));
  EXPECT_FALSE(Deadline::After(absl::InfiniteDuration()).Expired());
  EXPECT_TRUE(Deadline::After(-absl::Seconds(1)).Expired());
}

}  // namespace
}  // namespace hsmd::client
