// ECDH key agreement with a token key: CKM_ECDH1_DERIVE (CKD_NULL) into a
// temporary session secret whose value is read back and the object
// destroyed.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_DERIVE_H_
#define HSMD_DAEMON_BACKEND_PKCS11_DERIVE_H_

#include <p11-kit/pkcs11.h>

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::pkcs11 {

struct DerivePlan {
  // The peer's uncompressed point 0x04 || X || Y, checked on the key's curve.
  std::string peer_point;
  // Length of the shared secret (the curve's field size).
  size_t secret_length = 0;
};

// Validates `request` against `key`: INVALID_ARGUMENT for a missing
// algorithm, a key that is not EC (naming its type) or a peer key that is
// not a point on the key's curve; FAILED_PRECONDITION when the key does not
// allow derivation (CKA_DERIVE is false).
absl::StatusOr<DerivePlan> PlanDerive(const v1::Key& key,
                                      const v1::DeriveRequest& request);

// C_DeriveKey(CKM_ECDH1_DERIVE) with `key_handle` into a session-only
// CKK_GENERIC_SECRET (not sensitive, extractable), C_GetAttributeValue
// (CKA_VALUE), C_DestroyObject (also when reading fails). The public data is
// the raw point first; if the module rejects that parameter, the point
// wrapped in a DER OCTET STRING (as some modules want it). Errors carry the
// CK_RV (Pkcs11Error).
absl::StatusOr<std::string> RunDerive(CK_FUNCTION_LIST* fns,
                                      CK_SESSION_HANDLE session,
                                      CK_OBJECT_HANDLE key_handle,
                                      const DerivePlan& plan);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_DERIVE_H_
