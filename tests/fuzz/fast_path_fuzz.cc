// Fuzzes hsmd's fast path (daemon/fast_path/connection.h) with hostile client
// bytes: the input (after a mode byte) is everything the "client" end of a
// socketpair sends, followed by EOF, while fast_path::Connection::Serve runs
// on the other end and a drain thread reads whatever hsmd answers. Serve must
// return (no hang), no call may stay in flight, and nothing may crash or
// leak, whatever the bytes.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/error_detail.h"
#include "common/fast_path.h"
#include "daemon/fast_path/connection.h"
#include "daemon/fast_path/method_table.h"
#include "daemon/in_flight_calls.h"
#include "hsmd/v1/hsmd.pb.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/quiet_protobuf.h"

namespace {

using ::hsmd::InFlightCalls;
using ::hsmd::fast_path::Connection;
using ::hsmd::fast_path::ConnectionOptions;
using ::hsmd::fast_path::MethodTable;

// Client bytes per input: more only repeats what smaller inputs reach, and
// this much (with the opening) fits in a socketpair's buffer, so writing it
// never blocks.
constexpr size_t kMaxClientBytes = 64 * 1024;
// Only a watchdog: with the client's EOF queued, Serve must end long before.
constexpr auto kHangDeadline = std::chrono::seconds(20);
// The large response: several DATA frames, beyond the client's default
// 64 KiB window only together with other calls, so flow control matters.
constexpr size_t kLargeResponseBytes = 20 * 1024;

// Mode byte bits.
constexpr uint8_t kPrependOpening = 1;  // a valid client_lib opening first
constexpr uint8_t kSmallLimits = 2;     // tight ConnectionOptions

constexpr char kSignPath[] = "/hsmd.v1.KeyService/Sign";
constexpr char kGetKeyPath[] = "/hsmd.v1.KeyService/GetKey";
constexpr char kRandomPath[] = "/hsmd.v1.KeyService/GenerateRandom";

// gRPC's length-prefixed framing of one uncompressed message.
std::string FrameMessage(const std::string& message) {
  const uint32_t n = static_cast<uint32_t>(message.size());
  std::string framed = {'\0', static_cast<char>(n >> 24),
                        static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                        static_cast<char>(n)};
  return framed + message;
}

// What client_lib sends first: the HTTP/2 client preface and a SETTINGS
// frame carrying the fast-path marker (common/fast_path.h).
std::string ClientOpening() {
  std::string opening = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const char settings[] = {
      0, 0, 6,  // length: one entry
      4,        // SETTINGS
      0,        // flags
      0, 0, 0, 0,
      static_cast<char>(hsmd::kFastPathSettingId >> 8),
      static_cast<char>(hsmd::kFastPathSettingId & 0xff),
      static_cast<char>(hsmd::kFastPathSettingValue >> 24),
      static_cast<char>(hsmd::kFastPathSettingValue >> 16),
      static_cast<char>(hsmd::kFastPathSettingValue >> 8),
      static_cast<char>(hsmd::kFastPathSettingValue)};
  opening.append(settings, sizeof(settings));
  return opening;
}

// Handlers shaped like the real ones: parse the request, fail with
// INVALID_ARGUMENT on a bad one, answer with one framed message or a status
// carrying an ErrorDetail.
MethodTable MakeMethods(const InFlightCalls* in_flight) {
  MethodTable methods;
  methods.Add(kSignPath, [in_flight](const hsmd::service::CallInfo&,
                                     absl::string_view request,
                                     std::string* response) {
    FUZZ_CHECK(in_flight->count() == 1, "a running call is not in flight");
    hsmd::v1::SignRequest sign;
    if (!sign.ParseFromArray(request.data(), static_cast<int>(request.size()))) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "cannot parse the SignRequest");
    }
    if (!sign.has_key() || sign.input_case() == hsmd::v1::SignRequest::INPUT_NOT_SET) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "SignRequest needs a key and a message or digest");
    }
    hsmd::v1::SignResponse answer;
    answer.set_signature(std::string(64, '\x5a'));
    answer.set_key_id(sign.key().uri().substr(0, 32));
    *response = FrameMessage(answer.SerializeAsString());
    return grpc::Status::OK;
  });
  methods.Add(kGetKeyPath, [in_flight](const hsmd::service::CallInfo&,
                                       absl::string_view, std::string*) {
    FUZZ_CHECK(in_flight->count() == 1, "a running call is not in flight");
    absl::Status status =
        absl::NotFoundError("no key matches \"pkcs11:object=x\" (100% sure)");
    hsmd::v1::ErrorDetail detail;
    detail.set_backend_kind("pkcs11");
    detail.set_backend_code_name("CKR_KEY_HANDLE_INVALID");
    detail.set_backend_code(0x60);
    detail.set_backend_function("C_FindObjects");
    hsmd::SetErrorDetail(status, detail);
    // What daemon/service's ToGrpcStatus builds from such a status.
    return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                        std::string(status.message()),
                        hsmd::StatusToRpcStatusProto(status));
  });
  methods.Add(kRandomPath, [in_flight](const hsmd::service::CallInfo&,
                                       absl::string_view request,
                                       std::string* response) {
    FUZZ_CHECK(in_flight->count() == 1, "a running call is not in flight");
    hsmd::v1::GenerateRandomRequest random;
    if (!random.ParseFromArray(request.data(),
                               static_cast<int>(request.size()))) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "cannot parse the GenerateRandomRequest");
    }
    hsmd::v1::GenerateRandomResponse answer;
    answer.set_data(std::string(kLargeResponseBytes, '\xa5'));
    *response = FrameMessage(answer.SerializeAsString());
    return grpc::Status::OK;
  });
  return methods;
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads what hsmd sends until it closes its end, so Serve never blocks on a
// full socket buffer. Checks that hsmd's first frame is its SETTINGS, as
// RFC 9113 section 3.4 requires of a server.
void Drain(int fd) {
  std::string head;
  char buffer[16 * 1024];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (head.size() < 9) {
      head.append(buffer, std::min<size_t>(static_cast<size_t>(n), 9));
    }
  }
  if (!head.empty()) {
    FUZZ_CHECK(head.size() >= 9, "hsmd sent a truncated first frame");
    FUZZ_CHECK(head[3] == 4 && (head[4] & 1) == 0 &&
                   head.substr(5, 4) == std::string(4, '\0'),
               "hsmd's first frame is not its SETTINGS");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hsmd::fuzz::QuietProtobufLogs();
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  absl::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  if (body.size() > kMaxClientBytes) body = body.substr(0, kMaxClientBytes);
  const std::string client_bytes =
      (mode & kPrependOpening) ? ClientOpening() + std::string(body)
                               : std::string(body);

  ConnectionOptions options;
  if (mode & kSmallLimits) {
    options.max_request_bytes = 1024;
    options.max_concurrent_streams = 2;
    options.max_header_bytes = 512;
  }
  InFlightCalls in_flight;
  const MethodTable methods = MakeMethods(&in_flight);

  int fds[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0,
             "socketpair");
  const int server_fd = fds[0];
  const int client_fd = fds[1];
  // All of it fits in the socket buffer: the client has spoken and hung up
  // before Serve reads its first byte.
  FUZZ_CHECK(WriteAll(client_fd, client_bytes), "writing the client bytes");
  shutdown(client_fd, SHUT_WR);

  std::mutex mu;
  std::condition_variable served;
  bool done = false;
  absl::Status serve_status;
  std::thread server([&] {
    absl::Status status;
    {
      Connection connection(server_fd, nullptr, &methods, &in_flight, options);
      status = connection.Serve();
    }
    // The drain's EOF.
    close(server_fd);
    std::lock_guard<std::mutex> lock(mu);
    serve_status = status;
    done = true;
    served.notify_all();
  });
  std::thread drain([client_fd] { Drain(client_fd); });

  {
    std::unique_lock<std::mutex> lock(mu);
    const bool returned =
        served.wait_for(lock, kHangDeadline, [&done] { return done; });
    FUZZ_CHECK(returned, "Serve did not return after the client's EOF");
  }
  server.join();
  drain.join();
  close(client_fd);

  FUZZ_CHECK(in_flight.count() == 0,
             absl::StrCat(in_flight.count(), " calls still in flight"));
  // A failed Serve says why (the daemon logs it).
  FUZZ_CHECK(serve_status.ok() || !serve_status.message().empty(),
             "Serve failed without a message: " + serve_status.ToString());
  return 0;
}
