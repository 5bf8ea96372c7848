// Key pair generation inside the token.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_KEYGEN_H_
#define HSMD_DAEMON_BACKEND_PKCS11_KEYGEN_H_

#include <p11-kit/pkcs11.h>

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::pkcs11 {

inline constexpr size_t kMaxLabelLength = 256;
inline constexpr size_t kMaxIdLength = 64;

// INVALID_ARGUMENT naming the problem: missing or over-long label, over-long
// id, key type (RSA 2048/3072/4096, EC P-256/384/521, Ed25519), operations
// that do not fit the key type.
absl::Status ValidateGenerateKeyRequest(const v1::GenerateKeyRequest& request);

// The operations the private key will allow (the request's, or the default:
// SIGN, plus DECRYPT for RSA).
bool AllowsOperation(const v1::GenerateKeyRequest& request,
                     v1::Operation operation);

struct KeyPairHandles {
  CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
};

// C_GenerateKeyPair of a validated request with CKA_LABEL = request.label()
// and CKA_ID = `id`. The private key is a token object, private, sensitive
// and not extractable.
absl::StatusOr<KeyPairHandles> GenerateKeyPair(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session,
    const v1::GenerateKeyRequest& request, absl::string_view id);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_KEYGEN_H_
