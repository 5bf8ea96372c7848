// The backend error detail (hsmd.v1.ErrorDetail) carried on absl::Status.
//
// The daemon attaches it where an HSM call fails; the service edge serialises
// it into `grpc-status-details-bin`; client_lib restores it on the client's
// absl::Status, so the CK_RV name and number reach `hsmctl` and the provider.
#ifndef HSMD_COMMON_ERROR_DETAIL_H_
#define HSMD_COMMON_ERROR_DETAIL_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd {

// Type URL under which the detail is stored (in the absl::Status payload and
// in google.rpc.Status.details).
inline constexpr absl::string_view kErrorDetailTypeUrl =
    "type.googleapis.com/hsmd.v1.ErrorDetail";

// Attaches (replaces) the detail on a non-OK status.
void SetErrorDetail(absl::Status& status, const v1::ErrorDetail& detail);

// The detail attached to `status`, if any.
std::optional<v1::ErrorDetail> GetErrorDetail(const absl::Status& status);

// Serialises `status` (code, message, detail) as a google.rpc.Status, the
// payload of the `grpc-status-details-bin` trailer.
std::string StatusToRpcStatusProto(const absl::Status& status);

// Parses a serialised google.rpc.Status; returns an absl::Status with its
// code, message and (if present) hsmd ErrorDetail. A parse failure yields an
// INTERNAL status saying so.
absl::Status StatusFromRpcStatusProto(absl::string_view serialized);

// "CKR_KEY_HANDLE_INVALID (0x82)" style text for logs, or "" when absent.
std::string DescribeBackendCode(const absl::Status& status);

}  // namespace hsmd

#endif  // HSMD_COMMON_ERROR_DETAIL_H_
