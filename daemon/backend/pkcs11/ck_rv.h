// CK_RV names and the mapping of failed PKCS#11 calls to absl::Status.
//
// Every HSM failure leaves the backend as an absl::Status with a canonical
// code chosen here and an hsmd.v1.ErrorDetail payload (backend_kind "pkcs11",
// the CKR_ name and number, the function that failed), so the code reaches
// clients unchanged through the service edge.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_CK_RV_H_
#define HSMD_DAEMON_BACKEND_PKCS11_CK_RV_H_

#include <p11-kit/pkcs11.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hsmd::backend::pkcs11 {

inline constexpr absl::string_view kBackendKind = "pkcs11";

// "CKR_PIN_INCORRECT"; unknown codes as "CKR_VENDOR_DEFINED+0x1" or
// "CKR_0x000001ff".
std::string CkRvName(CK_RV rv);

// The canonical code for a failed call (see Pkcs11Error).
absl::StatusCode CkRvToStatusCode(CK_RV rv);

// A status for `rv` returned by `function` (e.g. "C_Sign"). The message reads
// "<context>: C_Sign failed: CKR_X (0x..)<hint>", where the hint explains the
// common codes (PIN rejected, token removed, ...). `rv` must not be CKR_OK.
absl::Status Pkcs11Error(CK_RV rv, absl::string_view function,
                         absl::string_view context = "");

// The CK_RV carried by a status made by Pkcs11Error, if any.
std::optional<CK_RV> GetCkRv(const absl::Status& status);

// Sets ErrorDetail.key (the key reference the request named) on `status`,
// adding a detail if there is none.
void SetErrorKey(absl::Status& status, absl::string_view key);

// Error classes the backend reacts to.
// The object handle no longer names an object: re-resolve the key by URI.
bool IsStaleHandle(CK_RV rv);
// The session is unusable: replace it instead of returning it to the pool.
bool IsBrokenSession(CK_RV rv);
// The module or device is gone: the token must be re-initialised.
bool IsDeviceFault(CK_RV rv);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_CK_RV_H_
