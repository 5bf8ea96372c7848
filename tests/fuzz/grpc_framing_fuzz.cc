// Fuzzes client_lib's gRPC wire-format decoders directly: the response body
// decoder (fed in input-chosen pieces), grpc-timeout, grpc-status,
// grpc-message percent-decoding and base64 metadata.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client_lib/grpc_framing.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace client = ::hsmd::client;

constexpr size_t kMaxMessageBytes = 512;

void FuzzDecoder(absl::string_view body, uint8_t split_seed) {
  client::GrpcMessageDecoder decoder(kMaxMessageBytes);
  // Twice: the second pass checks that Reset() forgets everything.
  for (int pass = 0; pass < 2; ++pass) {
    decoder.Reset(pass == 0 ? 256 * 1024 : 0);
    absl::string_view rest = body;
    size_t step = 1 + split_seed % 7;
    absl::Status status;
    while (!rest.empty() && status.ok()) {
      size_t n = std::min(step, rest.size());
      status = decoder.Feed(rest.substr(0, n));
      rest.remove_prefix(n);
      step = step * 3 % 11 + 1;
    }
    if (!status.ok()) {
      FUZZ_CHECK(!decoder.error().ok(), "error not sticky");
      FUZZ_CHECK(!decoder.Feed("x").ok(), "Feed after an error succeeded");
      continue;
    }
    absl::StatusOr<absl::string_view> message = decoder.Finish();
    if (message.ok()) {
      FUZZ_CHECK(message->size() <= kMaxMessageBytes, "message over limit");
      FUZZ_CHECK(body.size() == client::kGrpcFrameHeaderBytes + message->size(),
                 "one message must fill the body");
      FUZZ_CHECK(body.substr(client::kGrpcFrameHeaderBytes) == *message,
                 "decoded message differs");
    }
  }
}

void FuzzMetadata(absl::string_view value) {
  absl::StatusOr<absl::Duration> timeout = client::ParseGrpcTimeout(value);
  if (timeout.ok()) {
    FUZZ_CHECK(*timeout >= absl::ZeroDuration(), "negative timeout");
    std::string encoded = client::EncodeGrpcTimeout(*timeout);
    FUZZ_CHECK(encoded.size() <= client::kMaxGrpcTimeoutChars, encoded);
    absl::StatusOr<absl::Duration> again = client::ParseGrpcTimeout(encoded);
    FUZZ_CHECK(again.ok(), encoded);
    // Encoding rounds up (never shortens a deadline). It works in int64
    // nanoseconds, so timeouts beyond ~292 years saturate there ("2562048H")
    // rather than at the documented "99999999H"; both mean "no deadline".
    const absl::Duration representable =
        std::min(*timeout, absl::Nanoseconds(INT64_MAX));
    FUZZ_CHECK(*again >= representable, encoded);
  }
  absl::StatusOr<absl::StatusCode> code = client::ParseGrpcStatus(value);
  if (!code.ok()) FUZZ_CHECK(!code.status().message().empty(), "no message");
  std::string decoded = client::PercentDecodeGrpcMessage(value);
  FUZZ_CHECK(decoded.size() <= value.size(), "decoding grew the message");
  FUZZ_CHECK(client::PercentDecodeGrpcMessage(
                 client::PercentEncodeGrpcMessage(value)) == value,
             "percent-encoding does not round-trip");
  absl::StatusOr<std::string> binary = client::Base64Decode(value);
  if (binary.ok()) {
    FUZZ_CHECK(binary->size() <= value.size() * 3 / 4 + 2, "base64 grew");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  FuzzDecoder(rest, data[0]);
  FuzzMetadata(rest);
  (void)client::GrpcCodeFromHttpStatus(static_cast<int>(data[0]) * 3);
  if (size >= 5) {
    uint32_t error_code = static_cast<uint32_t>(data[1]) << 24 |
                          static_cast<uint32_t>(data[2]) << 16 |
                          static_cast<uint32_t>(data[3]) << 8 | data[4];
    (void)client::GrpcCodeFromHttp2Error(error_code);
  }
  return 0;
}
