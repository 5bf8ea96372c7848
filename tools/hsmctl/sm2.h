// SM2 pieces hsmctl computes locally (GB/T 32918.2, GM/T 0009), so that hsmd
// receives only the 32-byte digest e of a message, however large:
//
//   Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)
//   e = SM3(Z || M)
//
// ENTL is the ID's length in bits (2 bytes, big-endian); a, b, xG, yG are the
// SM2 curve's coefficients and base point, xA, yA the signer's public point,
// each as a 32-byte big-endian string.
#ifndef HSMD_TOOLS_HSMCTL_SM2_H_
#define HSMD_TOOLS_HSMCTL_SM2_H_

#include <openssl/evp.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::hsmctl {

// True for a key OpenSSL treats as SM2 (an EC key on the SM2 curve, decoded
// from hsmd's SubjectPublicKeyInfo).
bool IsSm2Key(const EVP_PKEY* key);

// Z for `public_key` and the distinguishing ID `id`. INVALID_ARGUMENT for a
// key that is not SM2 or an ID over client::kSm2MaxIdBytes.
absl::StatusOr<std::string> Sm2Z(const EVP_PKEY* public_key,
                                 absl::string_view id);

// e = SM3(Z || message), the value an SM2 signature signs.
absl::StatusOr<std::string> Sm2Digest(const EVP_PKEY* public_key,
                                      absl::string_view id,
                                      absl::string_view message);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_SM2_H_
