// A fake hsmd that speaks raw HTTP/2 frames, for the responses a real gRPC
// server never produces on demand (RST_STREAM, GOAWAY, EOF mid-response,
// malformed frames, missing grpc-status, compressed or oversized messages).
//
// It parses just enough of the client's frames to know when a request is
// complete, decodes the request headers with nghttp2's HPACK inflater, grants
// flow control for received DATA, and writes whatever the script returns.
// Serves on one end of a socketpair (for Http2Connection) or on a Unix socket
// path, one connection after another (for Client).
#ifndef HSMD_CLIENT_LIB_TESTING_SCRIPTED_HTTP2_SERVER_H_
#define HSMD_CLIENT_LIB_TESTING_SCRIPTED_HTTP2_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::client::testing {

// Frame builders (RFC 9113 section 4.1).
inline constexpr uint8_t kFrameData = 0x0, kFrameHeaders = 0x1,
                         kFrameRstStream = 0x3, kFrameSettings = 0x4,
                         kFrameGoaway = 0x7, kFrameWindowUpdate = 0x8;
inline constexpr uint8_t kFlagEndStream = 0x1, kFlagEndHeaders = 0x4,
                         kFlagPadded = 0x8, kFlagPriority = 0x20;

using HeaderFields = std::vector<std::pair<std::string, std::string>>;

std::string BigEndian32(uint32_t value);
std::string Http2Frame(uint8_t type, uint8_t flags, uint32_t stream,
                       absl::string_view payload);
// A HEADERS frame of literal fields without indexing (stateless HPACK).
std::string HeadersFrame(uint32_t stream, const HeaderFields& fields,
                         bool end_stream);
std::string DataFrame(uint32_t stream, absl::string_view payload,
                      bool end_stream);
// :status 200 and content-type application/grpc.
const HeaderFields& GrpcResponseHeaders();
// Response headers, one DATA frame with `message` framed, trailers with
// grpc-status 0.
std::string OkGrpcResponse(uint32_t stream, absl::string_view message);
// One HEADERS frame with END_STREAM: response headers plus `fields`.
std::string TrailersOnlyResponse(uint32_t stream, const HeaderFields& fields);

struct ScriptedRequest {
  // 0 for the first connection accepted, 1 for the next, ...
  int connection = 0;
  uint32_t stream = 0;
  std::map<std::string, std::string> headers;
  // The DATA payloads (the gRPC-framed request).
  std::string body;
};

struct ScriptedReply {
  std::string bytes;
  // Close the connection after writing `bytes`.
  bool close_after = false;
  // Stop reading but keep the connection open (until Stop()): the client's
  // next write fails with EPIPE although it sees no EOF.
  bool stop_reading_after = false;
};

class ScriptedHttp2Server {
 public:
  using Script = std::function<ScriptedReply(const ScriptedRequest&)>;

  struct Options {
    // Run the script as soon as the request headers arrive.
    bool respond_on_headers = false;
    // Send WINDOW_UPDATEs for received DATA.
    bool grant_flow_control = true;
  };

  // Serves one end of a socketpair; take the other with TakeClientFd().
  static std::unique_ptr<ScriptedHttp2Server> OverSocketpair(Script script,
                                                             Options options);
  // Listens on `socket_path` and serves connections one after another.
  static absl::StatusOr<std::unique_ptr<ScriptedHttp2Server>> Listen(
      const std::string& socket_path, Script script, Options options);

  ~ScriptedHttp2Server();
  ScriptedHttp2Server(const ScriptedHttp2Server&) = delete;
  ScriptedHttp2Server& operator=(const ScriptedHttp2Server&) = delete;

  // The client end of the socketpair (ownership passes to the caller).
  int TakeClientFd();

  // Requests completed so far, in order.
  std::vector<ScriptedRequest> requests();

  // Connections the server has finished with (closed or stopped reading).
  int connections_done() const { return connections_done_; }

  // Stops serving and closes the server side now.
  void Stop();

 private:
  ScriptedHttp2Server(Script script, Options options)
      : script_(std::move(script)), options_(options) {}

  // Takes ownership of `fd`.
  void ServeConnection(int fd, int connection);
  void AcceptLoop();

  Script script_;
  Options options_;
  int client_fd_ = -1;
  int listen_fd_ = -1;
  std::string socket_path_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_done_{0};
  std::mutex mu_;
  std::vector<ScriptedRequest> requests_;
  // Connections kept open after stop_reading_after, closed by Stop().
  std::vector<int> lingering_fds_;
  std::thread thread_;
};

}  // namespace hsmd::client::testing

#endif  // HSMD_CLIENT_LIB_TESTING_SCRIPTED_HTTP2_SERVER_H_
