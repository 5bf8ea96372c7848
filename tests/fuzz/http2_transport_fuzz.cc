// Fuzzes client_lib's HTTP/2 transport with hostile server bytes: the input
// (after a mode byte) is everything the "server" end of a socketpair sends,
// followed by EOF. A call over the other end must end with OK or an error,
// never a crash, a hang or a response larger than the configured limit.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client_lib/grpc_framing.h"
#include "client_lib/http2_connection.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/quiet_protobuf.h"

namespace {

using ::hsmd::client::Deadline;
using ::hsmd::client::EncodeGrpcMessage;
using ::hsmd::client::Http2Connection;

constexpr size_t kMaxResponseBytes = 1024;
// Stays below the socketpair's buffer, so writing it all never blocks.
constexpr size_t kMaxServerBytes = 64 * 1024;
// Only a watchdog: with the server's EOF already queued every call must end
// long before this; reaching it means the client ignored the EOF.
constexpr absl::Duration kHangDeadline = absl::Seconds(20);

// Mode byte bits.
constexpr uint8_t kCheckIdleFirst = 1;  // server bytes arrive while idle
constexpr uint8_t kSecondCall = 2;      // reuse the connection if usable

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void CallOnce(Http2Connection& connection) {
  std::string framed = EncodeGrpcMessage("\x0a\x03key").value();
  absl::string_view response;
  Http2Connection::Failure failure = Http2Connection::Failure::kNone;
  const Deadline deadline = Deadline::After(kHangDeadline);
  absl::Status status = connection.Call("/hsmd.v1.KeyService/Sign", framed,
                                        deadline, &response, &failure);
  // A DEADLINE_EXCEEDED status alone proves nothing (the server may send
  // grpc-status 4); running into the deadline itself means a hang.
  FUZZ_CHECK(!deadline.Expired(),
             "call ran into its deadline after the server's EOF: " +
                 status.ToString());
  // A failed call's message may legitimately be empty: it is the server's
  // grpc-message, relayed as sent.
  if (status.ok()) {
    FUZZ_CHECK(response.size() <= kMaxResponseBytes, "response over the limit");
    FUZZ_CHECK(failure == Http2Connection::Failure::kNone, "OK with failure");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hsmd::fuzz::QuietProtobufLogs();
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  absl::string_view server_bytes(reinterpret_cast<const char*>(data + 1),
                                 size - 1);
  if (server_bytes.size() > kMaxServerBytes) {
    server_bytes = server_bytes.substr(0, kMaxServerBytes);
  }
  int fds[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0,
             "socketpair");
  absl::StatusOr<std::unique_ptr<Http2Connection>> connection =
      Http2Connection::FromConnectedSocket(fds[0], "fuzz-server",
                                           kMaxResponseBytes);
  FUZZ_CHECK(connection.ok(), connection.status().ToString());
  FUZZ_CHECK(WriteAll(fds[1], server_bytes), "writing the server bytes");
  shutdown(fds[1], SHUT_WR);

  if (mode & kCheckIdleFirst) (void)(*connection)->CheckIdle();
  CallOnce(**connection);
  if ((mode & kSecondCall) && (*connection)->usable()) CallOnce(**connection);
  (*connection)->TrimBuffers();
  connection->reset();  // closes fds[0]
  close(fds[1]);
  return 0;
}
