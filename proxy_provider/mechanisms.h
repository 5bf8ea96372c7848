// Translation of OpenSSL signature/decryption settings into hsmd's
// algorithm messages (pure functions, no RPC).
#ifndef HSMD_PROXY_PROVIDER_MECHANISMS_H_
#define HSMD_PROXY_PROVIDER_MECHANISMS_H_

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::proxy {

// A digest as OpenSSL names it, with hsmd's name for it if hsmd has one.
struct Digest {
  EvpMdPtr md;
  // HASH_ALGORITHM_UNSPECIFIED when hsmd has no such hash (e.g. SHA3-256).
  v1::HashAlgorithm hash = v1::HASH_ALGORITHM_UNSPECIFIED;
  size_t size = 0;
  std::string name;
};

// Fetches `name` ("SHA256", "SHA2-256", "sha256", "MD5-SHA1", ...) from
// `libctx`. INVALID_ARGUMENT for unknown names.
absl::StatusOr<Digest> LookupDigest(OSSL_LIB_CTX* libctx,
                                    absl::string_view name);

// The hash whose digests have `length` bytes (20 SHA-1, 28 SHA-224, 32
// SHA-256, 48 SHA-384, 64 SHA-512), for ECDSA input without a set digest.
absl::StatusOr<v1::HashAlgorithm> HashForDigestLength(size_t length);

// The PSS salt length for signing with an RSA key of `modulus_bits`, from
// OpenSSL's setting: a length >= 0, or RSA_PSS_SALTLEN_DIGEST (-1),
// RSA_PSS_SALTLEN_AUTO (-2, the maximum when signing), RSA_PSS_SALTLEN_MAX
// (-3), or -4 (OpenSSL 3.1's "auto-digestmax": the digest length, capped).
absl::StatusOr<uint32_t> PssSaltLength(int setting, int modulus_bits,
                                       size_t digest_size);

// DER DigestInfo { AlgorithmIdentifier(md, NULL), OCTET STRING digest }, the
// input of a raw RSA PKCS#1 v1.5 signature for hashes hsmd does not name.
absl::StatusOr<std::string> EncodeDigestInfo(const EVP_MD* md,
                                             absl::string_view digest);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_MECHANISMS_H_
