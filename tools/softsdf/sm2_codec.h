// Conversions between the GM/T 0018 SM2 structures and the encodings OpenSSL
// uses: EVP_PKEY public keys, DER ECDSA-Sig-Value signatures, GM/T 0009
// SM2Cipher DER ciphertexts (C1 || C3 || C2 as SEQUENCE { x INTEGER,
// y INTEGER, hash OCTET STRING (32), ciphertext OCTET STRING }), and the SM2
// Z value of GB/T 32918.2. Shared by the software SDF device and the SDF
// backend.
#ifndef HSMD_TOOLS_SOFTSDF_SM2_CODEC_H_
#define HSMD_TOOLS_SOFTSDF_SM2_CODEC_H_

#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "common/sm2.h"
#include "daemon/backend/sdf/gmt0018.h"

namespace hsmd::softsdf {

// An SM2 public key from the standard's structure (bits 256, coordinates
// right-aligned); rejects other sizes and points not on the curve.
absl::StatusOr<EvpPkeyPtr> Sm2PublicKeyFromRef(const ECCrefPublicKey& ref);
// Fills `ref` from an SM2 key (public or private).
absl::Status Sm2PublicKeyToRef(const EVP_PKEY* key, ECCrefPublicKey* ref);
// Fills `ref` with the private scalar of an SM2 key.
absl::Status Sm2PrivateKeyToRef(const EVP_PKEY* key, ECCrefPrivateKey* ref);

// ECCSignature <-> DER ECDSA-Sig-Value (OpenSSL's SM2 signature format).
absl::StatusOr<std::string> SignatureToDer(const ECCSignature& sig);
absl::Status SignatureFromDer(absl::string_view der, ECCSignature* sig);

// The SM2Cipher DER of `cipher`, reading cipher.L bytes of C; fails if L is 0
// or above `max_c_len` (the caller's bound on the buffer behind C).
absl::StatusOr<std::string> CipherToDer(const ECCCipher& cipher,
                                        size_t max_c_len);
// Fills `cipher` from SM2Cipher DER; `c_capacity` is the room behind C.
absl::Status CipherFromDer(absl::string_view der, size_t c_capacity,
                           ECCCipher* cipher);

// An ECCCipher allocated with room for its C bytes.
class EccCipherBuffer {
 public:
  explicit EccCipherBuffer(size_t c_capacity);
  ECCCipher* get() { return reinterpret_cast<ECCCipher*>(bytes_.get()); }
  const ECCCipher* get() const {
    return reinterpret_cast<const ECCCipher*>(bytes_.get());
  }
  size_t c_capacity() const { return c_capacity_; }

 private:
  size_t c_capacity_;
  std::unique_ptr<unsigned char[]> bytes_;
};

absl::StatusOr<EccCipherBuffer> CipherFromDer(absl::string_view der);

// Z (common/sm2.h) for the public key in the standard's structure; `id` must
// be 1..kSm2MaxIdBytes bytes (the device interface has no "empty ID").
absl::StatusOr<std::string> Sm2Z(const ECCrefPublicKey& ref,
                                 absl::string_view id);

}  // namespace hsmd::softsdf

#endif  // HSMD_TOOLS_SOFTSDF_SM2_CODEC_H_
