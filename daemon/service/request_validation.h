// Checks on requests that need no knowledge of the key: presence of required
// fields, sizes against the configured limits, and parameter combinations
// that are wrong for any key (e.g. a SHA-256 digest that is not 32 bytes).
// Everything that depends on the key (its type, size, allowed operations,
// RSA-PSS salt range) is checked by the backend. Errors are INVALID_ARGUMENT
// with the field path first, e.g. "key.uri: is 5000 bytes; the limit is
// 4096".
#ifndef HSMD_DAEMON_SERVICE_REQUEST_VALIDATION_H_
#define HSMD_DAEMON_SERVICE_REQUEST_VALIDATION_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::service {

// Longest key URI or URI filter accepted.
inline constexpr size_t kMaxUriBytes = 4096;
// Longest key label (GenerateKey, ListKeys filter) and CKA_ID accepted.
inline constexpr size_t kMaxLabelBytes = 256;
inline constexpr size_t kMaxIdBytes = 256;

struct RequestLimits {
  // Largest message / digest / plaintext / ciphertext / OAEP label.
  uint32_t max_message_bytes = 1 << 20;
  // Largest GenerateRandom length.
  uint32_t max_random_bytes = 65536;
  // Most keys in one ListKeys answer.
  uint32_t max_list_results = 1000;
};

absl::Status ValidateKeyRef(const v1::KeyRef& ref, absl::string_view field);
absl::Status ValidateListKeys(const v1::ListKeysRequest& request);
absl::Status ValidateGetKey(const v1::GetKeyRequest& request);
absl::Status ValidateSign(const v1::SignRequest& request,
                          const RequestLimits& limits);
absl::Status ValidateDecrypt(const v1::DecryptRequest& request,
                             const RequestLimits& limits);
absl::Status ValidateEncrypt(const v1::EncryptRequest& request,
                             const RequestLimits& limits);
// Peer keys larger than this are rejected before any parsing (a P-521 SPKI
// is 158 bytes).
inline constexpr size_t kMaxPeerPublicKeyBytes = 1024;
absl::Status ValidateDerive(const v1::DeriveRequest& request);
absl::Status ValidateGenerateRandom(const v1::GenerateRandomRequest& request,
                                    const RequestLimits& limits);
absl::Status ValidateGenerateKey(const v1::GenerateKeyRequest& request);
absl::Status ValidateDeleteKey(const v1::DeleteKeyRequest& request);

// The reference as text for logs and error details: the URI (with any
// pin-value / pin-source value replaced by "REDACTED", truncated to 512
// bytes) or "key_id:<id>". Empty when unset.
std::string DescribeKeyRef(const v1::KeyRef& ref);

// The mechanism of a request, for the audit trail: "ecdsa-sha-256",
// "rsa-pkcs1-sha-256", "rsa-pkcs1-raw", "rsa-pss-sha-256-mgf1-sha-256-salt-32",
// "ed25519", "sm2-sm3", "rsa-oaep-sha-1-mgf1-sha-1", "rsa-pkcs1", "sm2",
// "sm4-cbc"; "+digest" when the client sent a digest. Empty when no
// algorithm is set.
std::string DescribeMechanism(const v1::SignRequest& request);
std::string DescribeMechanism(const v1::DecryptRequest& request);
std::string DescribeMechanism(const v1::EncryptRequest& request);
// "ecdh" for Derive.
std::string DescribeMechanism(const v1::DeriveRequest& request);

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_REQUEST_VALIDATION_H_
