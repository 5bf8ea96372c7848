// SM2 signature pieces hsmproxy computes locally (GB/T 32918.2, GM/T 0009),
// so hsmd receives only the 32-byte digest e:
//
//   Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)
//   e = SM3(Z || M)
//
// ENTL is the ID's length in bits (2 bytes, big-endian); a, b, xG, yG are the
// curve's coefficients and base point, xA, yA the signer's public point, all
// as field-size big-endian byte strings.
#ifndef HSMD_PROXY_PROVIDER_SM2_H_
#define HSMD_PROXY_PROVIDER_SM2_H_

#include <openssl/evp.h>

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::proxy {

// The distinguishing ID GM/T 0009 prescribes when none is agreed. (OpenSSL
// 3.0's own default is the empty ID.)
inline constexpr char kSm2DefaultId[] = "1234567812345678";

// ENTL is 16 bits of *bits*: at most 8191 bytes.
inline constexpr size_t kSm2MaxIdBytes = 0xffff / 8;

inline constexpr size_t kSm3DigestBytes = 32;

// Z for `public_key` (an SM2 key with its public point) and `id`.
// INVALID_ARGUMENT for an ID over kSm2MaxIdBytes or a key without an SM2
// public point.
absl::StatusOr<std::string> Sm2Z(OSSL_LIB_CTX* libctx,
                                 const EVP_PKEY* public_key,
                                 absl::string_view id);

// DER AlgorithmIdentifier of SM2-with-SM3 (OID 1.2.156.10197.1.501, no
// parameters), as OpenSSL's default provider writes it into certificates.
absl::StatusOr<std::string> Sm2WithSm3AlgorithmId();

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_SM2_H_
