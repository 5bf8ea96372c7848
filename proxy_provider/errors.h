// hsmproxy's error reasons, as OpenSSL shows them.
//
// Everything inside the provider returns absl::Status. At the OpenSSL edge a
// failed status becomes one entry on OpenSSL's error queue: library
// "hsmproxy", a reason from the table below (chosen from the status code, or
// set explicitly with WithReason), and the status message as the error data,
// so `openssl` prints e.g.
//   ...:error:80000001:hsmproxy::hsmd unavailable:...:hsmd unavailable at
//   /run/hsmd/hsmd.sock: connection refused
#ifndef HSMD_PROXY_PROVIDER_ERRORS_H_
#define HSMD_PROXY_PROVIDER_ERRORS_H_

#include <openssl/core.h>

#include <string>

#include "absl/status/status.h"

namespace hsmd::proxy {

// Stable numbers: they appear in printed error codes.
enum class Reason : int {
  kHsmdUnavailable = 1,
  kKeyNotFound = 2,
  kPermissionDenied = 3,
  kInvalidArgument = 4,
  kOperationNotAllowed = 5,
  kTimeout = 6,
  kHsmdBusy = 7,
  kHsmdError = 8,
  kDecryptFailed = 9,
  kUnsupported = 10,
  kNoPrivateKey = 11,
  kBadUri = 12,
  kBufferTooSmall = 13,
  kInternal = 14,
  kBadConfig = 15,
};

// {reason, text} pairs, terminated by {0, NULL}, for the provider's
// get_reason_strings.
const OSSL_ITEM* ReasonStrings();

// The text for `reason` ("hsmd unavailable", ...).
const char* ReasonText(Reason reason);

// Returns `status` marked with an explicit reason (a payload), which wins
// over the code-based mapping in ReasonOf.
absl::Status WithReason(absl::Status status, Reason reason);

// The reason for a non-OK status: the explicit one if set, else from the
// code (UNAVAILABLE -> hsmd unavailable, NOT_FOUND -> key not found, ...).
Reason ReasonOf(const absl::Status& status);

// The error data shown after the reason: the status message plus the HSM's
// own code when hsmd sent one, e.g. "... [CKR_KEY_HANDLE_INVALID (0x82)]".
std::string ErrorText(const absl::Status& status);

// Convenience constructors for local errors with a fixed reason.
absl::Status UnsupportedError(absl::string_view message);
absl::Status NoPrivateKeyError(absl::string_view message);
absl::Status BufferTooSmallError(size_t needed, size_t given);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_ERRORS_H_
