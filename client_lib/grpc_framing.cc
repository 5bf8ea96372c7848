#include "client_lib/grpc_framing.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hsmd::client {
namespace {

// Shortens untrusted input quoted in error messages.
std::string Quote(absl::string_view value) {
  constexpr size_t kMax = 32;
  std::string out;
  for (char c : value.substr(0, kMax)) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(c));
    }
  }
  if (value.size() > kMax) out += "...";
  return absl::StrCat("'", out, "'");
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Value of a standard base64 character, or -1.
int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

struct TimeoutUnit {
  char symbol;
  int64_t nanos;
  // How many of this unit make one of the next coarser unit (0 for the last).
  int64_t ratio_to_next;
};

constexpr TimeoutUnit kTimeoutUnits[] = {
    {'n', 1, 1000},
    {'u', 1000, 1000},
    {'m', 1000 * 1000, 1000},
    {'S', int64_t{1000} * 1000 * 1000, 60},
    {'M', int64_t{60} * 1000 * 1000 * 1000, 60},
    {'H', int64_t{3600} * 1000 * 1000 * 1000, 0},
};
constexpr int64_t kMaxTimeoutValue = 99999999;

}  // namespace

void WriteGrpcFrameHeader(uint32_t length, char* out) {
  out[0] = 0;  // Not compressed.
  out[1] = static_cast<char>((length >> 24) & 0xff);
  out[2] = static_cast<char>((length >> 16) & 0xff);
  out[3] = static_cast<char>((length >> 8) & 0xff);
  out[4] = static_cast<char>(length & 0xff);
}

absl::StatusOr<std::string> EncodeGrpcMessage(absl::string_view message) {
  if (message.size() > kMaxGrpcMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("request message of %d bytes exceeds gRPC's 4 GiB "
                        "frame limit",
                        message.size()));
  }
  std::string out(kGrpcFrameHeaderBytes + message.size(), '\0');
  WriteGrpcFrameHeader(static_cast<uint32_t>(message.size()), out.data());
  std::memcpy(out.data() + kGrpcFrameHeaderBytes, message.data(),
              message.size());
  return out;
}

GrpcMessageDecoder::GrpcMessageDecoder(size_t max_message_bytes)
    : max_message_bytes_(max_message_bytes) {}

void GrpcMessageDecoder::Reset(size_t keep_capacity) {
  header_have_ = 0;
  in_payload_ = false;
  payload_expected_ = 0;
  messages_ = 0;
  error_ = absl::OkStatus();
  if (message_.capacity() > keep_capacity) {
    std::string().swap(message_);
  } else {
    message_.clear();
  }
}

absl::Status GrpcMessageDecoder::Fail(absl::Status status) {
  error_ = std::move(status);
  return error_;
}

absl::Status GrpcMessageDecoder::Feed(absl::string_view data) {
  if (!error_.ok()) return error_;
  while (!data.empty()) {
    if (!in_payload_) {
      size_t take = std::min(kGrpcFrameHeaderBytes - header_have_, data.size());
      std::memcpy(header_ + header_have_, data.data(), take);
      header_have_ += take;
      data.remove_prefix(take);
      if (header_have_ < kGrpcFrameHeaderBytes) break;
      header_have_ = 0;
      const unsigned char flags = static_cast<unsigned char>(header_[0]);
      if (flags == 1) {
        return Fail(absl::InternalError(
            "hsmd sent a compressed response message although the client "
            "never offers compression"));
      }
      if (flags != 0) {
        return Fail(absl::InternalError(absl::StrFormat(
            "malformed gRPC frame from hsmd: flags byte 0x%02x", flags)));
      }
      if (messages_ > 0) {
        return Fail(absl::InternalError(
            "hsmd sent more than one response message for a unary call"));
      }
      const auto b = [this](int i) {
        return static_cast<size_t>(static_cast<unsigned char>(header_[i]));
      };
      payload_expected_ = (b(1) << 24) | (b(2) << 16) | (b(3) << 8) | b(4);
      if (payload_expected_ > max_message_bytes_) {
        return Fail(absl::ResourceExhaustedError(absl::StrFormat(
            "response message of %d bytes exceeds the client's limit of %d "
            "bytes (max_response_bytes)",
            payload_expected_, max_message_bytes_)));
      }
      message_.clear();
      message_.reserve(payload_expected_);
      in_payload_ = true;
    }
    size_t take = std::min(payload_expected_ - message_.size(), data.size());
    message_.append(data.data(), take);
    data.remove_prefix(take);
    if (message_.size() == payload_expected_) {
      in_payload_ = false;
      ++messages_;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::string_view> GrpcMessageDecoder::Finish() const {
  if (!error_.ok()) return error_;
  if (in_payload_) {
    return absl::InternalError(absl::StrFormat(
        "response from hsmd ends inside a message (%d of %d bytes)",
        message_.size(), payload_expected_));
  }
  if (header_have_ > 0) {
    return absl::InternalError(absl::StrFormat(
        "response from hsmd ends inside a message header (%d of 5 bytes)",
        header_have_));
  }
  if (messages_ == 0) {
    return absl::InternalError(
        "hsmd reported success but sent no response message");
  }
  return absl::string_view(message_);
}

std::string EncodeGrpcTimeout(absl::Duration timeout) {
  const int64_t nanos = absl::ToInt64Nanoseconds(timeout);
  if (nanos <= 0) return "1n";
  for (size_t i = 0; i < std::size(kTimeoutUnits); ++i) {
    const TimeoutUnit& unit = kTimeoutUnits[i];
    int64_t value = nanos / unit.nanos + (nanos % unit.nanos != 0 ? 1 : 0);
    if (value > kMaxTimeoutValue) continue;
    // Prefer the coarsest unit that keeps the (rounded-up) value exact.
    size_t u = i;
    while (kTimeoutUnits[u].ratio_to_next != 0 &&
           value % kTimeoutUnits[u].ratio_to_next == 0) {
      value /= kTimeoutUnits[u].ratio_to_next;
      ++u;
    }
    return absl::StrCat(value, absl::string_view(&kTimeoutUnits[u].symbol, 1));
  }
  return "99999999H";
}

absl::StatusOr<absl::Duration> ParseGrpcTimeout(absl::string_view value) {
  if (value.size() < 2 || value.size() > kMaxGrpcTimeoutChars) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed grpc-timeout ", Quote(value),
                     ": expected 1 to 8 digits and a unit"));
  }
  int64_t number = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed grpc-timeout ", Quote(value), ": non-digit in value"));
    }
    number = number * 10 + (c - '0');
  }
  const char symbol = value.back();
  for (const TimeoutUnit& unit : kTimeoutUnits) {
    if (unit.symbol == symbol) return absl::Nanoseconds(number) * unit.nanos;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "malformed grpc-timeout ", Quote(value), ": unknown unit (H M S m u n)"));
}

std::string PercentDecodeGrpcMessage(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size() &&
        HexValue(value[i + 1]) >= 0 && HexValue(value[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(value[i + 1]) * 16 +
                                      HexValue(value[i + 2])));
      i += 2;
    } else {
      out.push_back(value[i]);
    }
  }
  return out;
}

std::string PercentEncodeGrpcMessage(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7e || c == '%') {
      absl::StrAppendFormat(&out, "%%%02X", byte);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<std::string> Base64Decode(absl::string_view value) {
  // Padding is optional, but if present it must complete the last quantum.
  size_t padding = 0;
  while (padding < 2 && !value.empty() && value.back() == '=') {
    value.remove_suffix(1);
    ++padding;
  }
  if (padding > 0 && (value.size() + padding) % 4 != 0) {
    return absl::InvalidArgumentError(
        "malformed base64: padding does not complete a 4-character group");
  }
  if (value.size() % 4 == 1) {
    return absl::InvalidArgumentError(
        "malformed base64: length leaves a dangling character");
  }
  std::string out;
  out.reserve(value.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const int v = Base64Value(value[i]);
    if (v < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("malformed base64: invalid character %s at offset %d",
                          Quote(value.substr(i, 1)), i));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

absl::StatusOr<absl::StatusCode> ParseGrpcStatus(absl::string_view value) {
  if (value.empty() || value.size() > 9) {
    return absl::InternalError(
        absl::StrCat("malformed grpc-status ", Quote(value), " from hsmd"));
  }
  int code = 0;
  for (char c : value) {
    if (c < '0' || c > '9') {
      return absl::InternalError(
          absl::StrCat("malformed grpc-status ", Quote(value), " from hsmd"));
    }
    code = code * 10 + (c - '0');
  }
  if (code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::StatusCode::kUnknown;
  }
  return static_cast<absl::StatusCode>(code);
}

absl::StatusCode GrpcCodeFromHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInternal;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::StatusCode GrpcCodeFromHttp2Error(uint32_t error_code) {
  switch (error_code) {
    case 0x7:  // REFUSED_STREAM: not processed, safe to retry.
      return absl::StatusCode::kUnavailable;
    case 0x8:  // CANCEL
      return absl::StatusCode::kCancelled;
    case 0xb:  // ENHANCE_YOUR_CALM
      return absl::StatusCode::kResourceExhausted;
    case 0xc:  // INADEQUATE_SECURITY
      return absl::StatusCode::kPermissionDenied;
    default:  // NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, ...
      return absl::StatusCode::kInternal;
  }
}

}  // namespace hsmd::client
