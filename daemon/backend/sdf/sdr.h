// SDR_* error code names and the mapping of failed SDF calls to absl::Status.
//
// Every device failure leaves the SDF backend as an absl::Status with a
// canonical code chosen here and an hsmd.v1.ErrorDetail payload
// (backend_kind "sdf", the SDR_ name and number, the function that failed),
// so the code reaches clients unchanged through the service edge.
#ifndef HSMD_DAEMON_BACKEND_SDF_SDR_H_
#define HSMD_DAEMON_BACKEND_SDF_SDR_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hsmd::backend::sdf {

inline constexpr absl::string_view kBackendKind = "sdf";

// "SDR_KEYNOTEXIST"; other codes in the standard's range as
// "SDR_BASE+0x2f", vendor codes as "SDR_0x0a000001".
std::string SdrName(int code);

// The canonical code for a failed call:
//   SDR_KEYNOTEXIST                                  NOT_FOUND
//   SDR_INARGERR, SDR_ENCDATAERR, SDR_ALGNOTSUPPORT,
//   SDR_ALGMODNOTSUPPORT, SDR_KEYTYPEERR, SDR_KEYERR,
//   SDR_VERIFYERR                                    INVALID_ARGUMENT
//   SDR_PRKRERR                                      PERMISSION_DENIED
//   SDR_PARDENY, SDR_STEPERR                         FAILED_PRECONDITION
//   SDR_COMMFAIL, SDR_HARDFAIL, SDR_OPENDEVICE,
//   SDR_OPENSESSION                                  UNAVAILABLE
//   SDR_NOBUFFER                                     RESOURCE_EXHAUSTED
//   SDR_NOTSUPPORT                                   UNIMPLEMENTED
//   anything else (SDR_UNKNOWERR, SDR_SIGNERR, ...)  INTERNAL
absl::StatusCode SdrToStatusCode(int code);

// A status for `code` returned by `function` (e.g. "SDF_InternalSign_ECC").
// The message reads "<context>: SDF_X failed: SDR_Y (0x..)<: hint>".
// `code` must not be SDR_OK.
absl::Status SdfError(int code, absl::string_view function,
                      absl::string_view context = "");

// The SDR code carried by a status made by SdfError, if any.
std::optional<int> GetSdrCode(const absl::Status& status);

// Sets ErrorDetail.key (the key reference the request named) on `status`,
// adding a detail if there is none.
void SetErrorKey(absl::Status& status, absl::string_view key);

// Error classes the backend reacts to.
// The device is unreachable or broken: close and reopen it.
bool IsDeviceFault(int code);
// The session handle is no longer valid: replace the session.
bool IsBrokenSession(int code);
// SDF_GetPrivateKeyAccessRight refused the password: never try again.
bool IsPasswordRejection(int code);

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_SDR_H_
