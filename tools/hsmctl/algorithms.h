// Names hsmctl accepts for algorithms, hashes, key types, curves and
// operations, mapped onto the hsmd.v1 API messages, and the reverse names
// for output. All parse errors are INVALID_ARGUMENT and list what is valid.
#ifndef HSMD_TOOLS_HSMCTL_ALGORITHMS_H_
#define HSMD_TOOLS_HSMCTL_ALGORITHMS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::hsmctl {

// --- Hashes: sha1 sha224 sha256 sha384 sha512 md5-sha1 sm3, and "none"
// (HASH_ALGORITHM_UNSPECIFIED, meaning raw input for rsa-pkcs1).
absl::StatusOr<v1::HashAlgorithm> ParseHash(absl::string_view what,
                                            absl::string_view name);
std::string HashName(v1::HashAlgorithm hash);
// Digest length in bytes; 0 for UNSPECIFIED.
size_t HashSize(v1::HashAlgorithm hash);
// OpenSSL's fetch name ("SHA256", "MD5-SHA1"), or "" for UNSPECIFIED.
std::string OpenSslDigestName(v1::HashAlgorithm hash);

// --- Signatures.

// RSA-PSS salt length choice. The API takes a byte count (or nothing, for
// the digest length); "max" is computed from the key size, and "auto"
// (accept any salt) only makes sense when verifying.
struct SaltLength {
  enum Kind { kDigest, kExplicit, kMax, kAuto };
  Kind kind = kDigest;
  uint32_t bytes = 0;  // for kExplicit
};

// Raw option values of `sign` / `verify`.
struct SignFlags {
  std::string alg;
  absl::optional<std::string> hash;
  absl::optional<std::string> salt_len;
  absl::optional<std::string> mgf1;
  // SM2 distinguishing ID, as text (--id) or hex (--id-hex).
  absl::optional<std::string> id;
  absl::optional<std::string> id_hex;
  bool digest_input = false;
};

struct SignOptions {
  // Salt length left unset here; see `salt`.
  v1::SignatureAlgorithm algorithm;
  SaltLength salt;
  // The input is a precomputed digest (or, for rsa-pkcs1 with hash none, a
  // complete DigestInfo; for sm2, e = SM3(Z || M)).
  bool digest_input = false;
  // sm2 with message input: the distinguishing ID that goes into Z
  // (client::kSm2DefaultId unless --id / --id-hex).
  std::string sm2_id;
};

// Accepts rsa-pkcs1 (pkcs1, rsassa-pkcs1-v1_5), rsa-pss (pss, rsassa-pss),
// ecdsa, ed25519 (eddsa), sm2, each optionally suffixed with a hash
// ("rsa-pkcs1-sha256", "ecdsa-sha384", "ecdsa-with-SHA256", "sm2-sm3").
// Checks that the options fit the scheme (e.g. --salt-len only with rsa-pss,
// --id only with sm2 and message input, sm2 only with sm3).
absl::StatusOr<SignOptions> ParseSignOptions(const SignFlags& flags);

// Largest RSA-PSS salt for a modulus of `modulus_bits` bits (RFC 8017
// emLen - hLen - 2), or an error if the key is too small for the hash.
absl::StatusOr<uint32_t> MaxPssSaltLength(uint32_t modulus_bits,
                                          v1::HashAlgorithm hash);

// "rsa-pss sha256 (mgf1 sha256, salt 32)" for messages.
std::string DescribeSignatureAlgorithm(const v1::SignatureAlgorithm& alg);

// --- Decryption / encryption.

struct CipherFlags {
  std::string alg;
  absl::optional<std::string> hash;
  absl::optional<std::string> mgf1;
  absl::optional<std::string> label_hex;
  // SM4: IV in hex (CBC) and padding (pkcs7 or none).
  absl::optional<std::string> iv_hex;
  absl::optional<std::string> padding;
};

enum class Sm4Padding { kPkcs7, kNone };

struct CipherOptions {
  // For sm4: the mode, and the IV when --iv gave one (else empty).
  v1::DecryptionAlgorithm algorithm;
  Sm4Padding padding = Sm4Padding::kPkcs7;
};

// Accepts rsa-pkcs1 (pkcs1), rsa-oaep (oaep, optionally "-sha256"), sm2,
// sm4-ecb and sm4-cbc. OAEP's hash defaults to sha1, as in OpenSSL and the
// PKCS#11 tokens that support only SHA-1 OAEP; the MGF1 hash defaults to the
// OAEP hash. --iv (16 bytes in hex) only with sm4-cbc, --padding only with
// sm4.
absl::StatusOr<CipherOptions> ParseCipherOptions(const CipherFlags& flags);
// ParseCipherOptions(flags).algorithm.
absl::StatusOr<v1::DecryptionAlgorithm> ParseCipherAlgorithm(
    const CipherFlags& flags);

// "rsa-oaep sha256 (mgf1 sha256)", "sm2", "sm4-cbc" for messages.
std::string DescribeCipherAlgorithm(const v1::DecryptionAlgorithm& alg);

// --- Keys.

// rsa | ec | ed25519.
absl::StatusOr<v1::KeyType> ParseKeyType(absl::string_view name);
// p256 | p384 | p521 (also P-256, prime256v1, secp256r1, ...).
absl::StatusOr<v1::Curve> ParseCurve(absl::string_view name);
// Comma-separated: sign, decrypt.
absl::StatusOr<std::vector<v1::Operation>> ParseOperations(
    absl::string_view list);

// "RSA", "EC", "Ed25519", "SM2", "SM4".
std::string KeyTypeName(v1::KeyType type);
std::string CurveName(v1::Curve curve);       // "P-256", ...
std::string OperationName(v1::Operation op);  // "sign", "decrypt", "encrypt"
// "RSA-2048", "EC P-256", "Ed25519", "SM2", "SM4-128".
std::string DescribeKeyType(const v1::Key& key);
// "sign,decrypt" ("-" when none).
std::string DescribeOperations(const v1::Key& key);
// Whether the key's allowed operations include `op`.
bool AllowsOperation(const v1::Key& key, v1::Operation op);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_ALGORITHMS_H_
