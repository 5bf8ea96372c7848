// SM2 signature pieces computed outside the HSM (GB/T 32918.2, GM/T 0009), so
// a device or hsmd is sent only the 32-byte digest e of a message, however
// large:
//
//   Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)
//   e = SM3(Z || M)
//
// ENTL is the ID's length in bits (2 bytes, big-endian); a, b, xG, yG are the
// SM2 curve's coefficients and base point, xA, yA the signer's public point,
// each a 32-byte big-endian string. Used by hsmproxy, hsmctl, the SDF backend
// and the software SDF device, so all four agree by construction.
#ifndef HSMD_COMMON_SM2_H_
#define HSMD_COMMON_SM2_H_

#include <openssl/evp.h>

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd {

// The distinguishing ID GM/T 0009 prescribes when none is agreed. (OpenSSL
// 3.0's own default is the empty ID: name this one when verifying there.)
inline constexpr char kSm2DefaultId[] = "1234567812345678";

// ENTL holds the ID's length in *bits* on 16 bits: at most 8191 bytes.
inline constexpr size_t kSm2MaxIdBytes = 0xffff / 8;

inline constexpr size_t kSm3DigestBytes = 32;

// True for a key OpenSSL treats as SM2 (an EC key on the SM2 curve).
bool IsSm2Key(const EVP_PKEY* key);

// Z for the public point of `key` (public or private SM2 key) and `id`.
// INVALID_ARGUMENT for a key that is not SM2 or an ID over kSm2MaxIdBytes.
// SM3 and the curve come from `libctx` with `propq` (a provider passes its
// library context and "provider=default" so it never calls itself).
// Leaves the OpenSSL error queue as it found it.
absl::StatusOr<std::string> Sm2Z(const EVP_PKEY* key, absl::string_view id,
                                 OSSL_LIB_CTX* libctx = nullptr,
                                 const char* propq = nullptr);

// e = SM3(Z || message), the value an SM2 signature signs.
absl::StatusOr<std::string> Sm2Digest(const EVP_PKEY* key, absl::string_view id,
                                      absl::string_view message,
                                      OSSL_LIB_CTX* libctx = nullptr,
                                      const char* propq = nullptr);

}  // namespace hsmd

#endif  // HSMD_COMMON_SM2_H_
