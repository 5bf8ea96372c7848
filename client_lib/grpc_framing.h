// The pieces of the gRPC-over-HTTP/2 wire format (grpc's doc/PROTOCOL-HTTP2.md)
// that client_lib needs, as pure functions over bytes so they can be unit
// tested and fuzzed without a socket.
#ifndef HSMD_CLIENT_LIB_GRPC_FRAMING_H_
#define HSMD_CLIENT_LIB_GRPC_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hsmd::client {

// Length-Prefixed-Message: 1 byte compressed flag + 4 bytes big-endian length.
inline constexpr size_t kGrpcFrameHeaderBytes = 5;
// The length field is 32 bits.
inline constexpr size_t kMaxGrpcMessageBytes = 0xffffffffu;

// Writes the uncompressed message prefix for a message of `length` bytes to
// out[0..4].
void WriteGrpcFrameHeader(uint32_t length, char* out);

// Prefix + message. INVALID_ARGUMENT if the message exceeds 4 GiB - 1.
absl::StatusOr<std::string> EncodeGrpcMessage(absl::string_view message);

// Incremental decoder of a unary response body: the DATA payloads of one
// stream in order, split anywhere. Exactly one uncompressed message of at
// most `max_message_bytes` is accepted. Errors are sticky until Reset().
// The buffer is reused across calls so steady-state calls do not allocate.
class GrpcMessageDecoder {
 public:
  explicit GrpcMessageDecoder(size_t max_message_bytes);

  // Forgets everything from the previous response; keeps the buffer unless it
  // grew beyond `keep_capacity` bytes (a large response is not held forever).
  void Reset(size_t keep_capacity = 256 * 1024);

  // Consumes the next chunk of the body. RESOURCE_EXHAUSTED for a message over
  // the limit, INTERNAL for a compressed or malformed frame or a second
  // message.
  absl::Status Feed(absl::string_view data);

  // At the end of a successful response: the message (valid until the next
  // Reset/Feed). INTERNAL if the body ended inside a frame or held no message.
  absl::StatusOr<absl::string_view> Finish() const;

  const absl::Status& error() const { return error_; }

 private:
  absl::Status Fail(absl::Status status);

  size_t max_message_bytes_;
  char header_[kGrpcFrameHeaderBytes];
  size_t header_have_ = 0;
  // Set while the payload of the current message is being read.
  bool in_payload_ = false;
  size_t payload_expected_ = 0;
  int messages_ = 0;
  std::string message_;
  absl::Status error_;
};

// Longest grpc-timeout value: 8 digits and a unit.
inline constexpr size_t kMaxGrpcTimeoutChars = 9;

// The grpc-timeout header value for `timeout`: the finest unit whose value
// fits in 8 digits, rounded up (the server must not see a shorter deadline
// than the client's), then the coarsest unit that represents that value
// exactly, e.g. 1.5 s -> "1500m", 30 s -> "30S". Non-positive timeouts encode
// as "1n"; huge ones saturate at "99999999H".
std::string EncodeGrpcTimeout(absl::Duration timeout);

// Parses a grpc-timeout value ("1500m"). INVALID_ARGUMENT names the problem.
absl::StatusOr<absl::Duration> ParseGrpcTimeout(absl::string_view value);

// Decodes a percent-encoded grpc-message. Per the spec a malformed escape is
// never an error: it is kept verbatim.
std::string PercentDecodeGrpcMessage(absl::string_view value);

// Percent-encodes a grpc-message as servers do (bytes outside 0x20..0x7e and
// '%' become %XX). Used by tests and kept beside its inverse.
std::string PercentEncodeGrpcMessage(absl::string_view value);

// Decodes standard base64 (RFC 4648 section 4) with or without '=' padding,
// as used by "-bin" metadata such as grpc-status-details-bin.
absl::StatusOr<std::string> Base64Decode(absl::string_view value);

// Parses the decimal grpc-status value. Numbers outside the known codes map
// to UNKNOWN (as the spec asks); anything that is not a number is an
// INTERNAL error naming the value.
absl::StatusOr<absl::StatusCode> ParseGrpcStatus(absl::string_view value);

// gRPC's "HTTP to gRPC Status Code Mapping" for a non-200 :status.
absl::StatusCode GrpcCodeFromHttpStatus(int http_status);

// gRPC's mapping of an HTTP/2 RST_STREAM error code to a status code.
absl::StatusCode GrpcCodeFromHttp2Error(uint32_t error_code);

}  // namespace hsmd::client

#endif  // HSMD_CLIENT_LIB_GRPC_FRAMING_H_
