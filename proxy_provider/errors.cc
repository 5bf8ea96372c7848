#include "proxy_provider/errors.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/error_detail.h"

namespace hsmd::proxy {
namespace {

constexpr absl::string_view kReasonPayloadUrl = "type.hsmproxy/reason";

const OSSL_ITEM kReasonStrings[] = {
    {static_cast<unsigned int>(Reason::kHsmdUnavailable),
     const_cast<char*>("hsmd unavailable")},
    {static_cast<unsigned int>(Reason::kKeyNotFound),
     const_cast<char*>("key not found")},
    {static_cast<unsigned int>(Reason::kPermissionDenied),
     const_cast<char*>("permission denied")},
    {static_cast<unsigned int>(Reason::kInvalidArgument),
     const_cast<char*>("invalid argument")},
    {static_cast<unsigned int>(Reason::kOperationNotAllowed),
     const_cast<char*>("operation not allowed for this key")},
    {static_cast<unsigned int>(Reason::kTimeout),
     const_cast<char*>("hsmd did not answer in time")},
    {static_cast<unsigned int>(Reason::kHsmdBusy),
     const_cast<char*>("hsmd busy")},
    {static_cast<unsigned int>(Reason::kHsmdError),
     const_cast<char*>("hsmd error")},
    {static_cast<unsigned int>(Reason::kDecryptFailed),
     const_cast<char*>("decryption failed")},
    {static_cast<unsigned int>(Reason::kUnsupported),
     const_cast<char*>("wrong algorithm or unsupported parameters")},
    {static_cast<unsigned int>(Reason::kNoPrivateKey),
     const_cast<char*>("no private key")},
    {static_cast<unsigned int>(Reason::kBadUri),
     const_cast<char*>("bad key URI")},
    {static_cast<unsigned int>(Reason::kBufferTooSmall),
     const_cast<char*>("output buffer too small")},
    {static_cast<unsigned int>(Reason::kInternal),
     const_cast<char*>("internal error")},
    {static_cast<unsigned int>(Reason::kBadConfig),
     const_cast<char*>("bad configuration")},
    {0, nullptr},
};

Reason ReasonForCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
      return Reason::kHsmdUnavailable;
    case absl::StatusCode::kNotFound:
      return Reason::kKeyNotFound;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return Reason::kPermissionDenied;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return Reason::kInvalidArgument;
    case absl::StatusCode::kFailedPrecondition:
      return Reason::kOperationNotAllowed;
    case absl::StatusCode::kDeadlineExceeded:
      return Reason::kTimeout;
    case absl::StatusCode::kResourceExhausted:
      return Reason::kHsmdBusy;
    case absl::StatusCode::kUnimplemented:
      return Reason::kUnsupported;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOk:
    default:
      return Reason::kHsmdError;
  }
}

}  // namespace

const OSSL_ITEM* ReasonStrings() { return kReasonStrings; }

const char* ReasonText(Reason reason) {
  for (const OSSL_ITEM* item = kReasonStrings; item->ptr != nullptr; ++item) {
    if (item->id == static_cast<unsigned int>(reason)) {
      return static_cast<const char*>(item->ptr);
    }
  }
  return "unknown reason";
}

absl::Status WithReason(absl::Status status, Reason reason) {
  if (status.ok()) return status;
  status.SetPayload(kReasonPayloadUrl,
                    absl::Cord(absl::StrCat(static_cast<int>(reason))));
  return status;
}

Reason ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayloadUrl);
  if (payload.has_value()) {
    int value = 0;
    if (absl::SimpleAtoi(std::string(*payload), &value)) {
      return static_cast<Reason>(value);
    }
  }
  return ReasonForCode(status.code());
}

std::string ErrorText(const absl::Status& status) {
  std::string text(status.message());
  std::string backend = DescribeBackendCode(status);
  if (!backend.empty()) absl::StrAppend(&text, " [", backend, "]");
  return text;
}

absl::Status UnsupportedError(absl::string_view message) {
  return WithReason(absl::InvalidArgumentError(message), Reason::kUnsupported);
}

absl::Status NoPrivateKeyError(absl::string_view message) {
  return WithReason(absl::FailedPreconditionError(message),
                    Reason::kNoPrivateKey);
}

absl::Status BufferTooSmallError(size_t needed, size_t given) {
  return WithReason(
      absl::InvalidArgumentError(absl::StrCat("output buffer of ", given,
                                              " bytes, ", needed, " needed")),
      Reason::kBufferTooSmall);
}

}  // namespace hsmd::proxy
