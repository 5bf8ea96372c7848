// Public-key operations hsmctl performs locally with OpenSSL, using the
// public key hsmd returns (GetKey): signature verification, encryption, and
// PEM rendering. Nothing here talks to hsmd; `verify` never sends the
// signature anywhere.
#ifndef HSMD_TOOLS_HSMCTL_LOCAL_CRYPTO_H_
#define HSMD_TOOLS_HSMCTL_LOCAL_CRYPTO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "hsmd/v1/hsmd.pb.h"
#include "tools/hsmctl/algorithms.h"

namespace hsmd::hsmctl {

// Parses a DER SubjectPublicKeyInfo.
absl::StatusOr<EvpPkeyPtr> ParsePublicKeyDer(absl::string_view der);

// The public half of `key`; a usage error naming the key for keys without
// one (SM4).
absl::StatusOr<EvpPkeyPtr> PublicKeyOf(const v1::Key& key);

// The DER SubjectPublicKeyInfo of a public key given as PEM ("-----BEGIN
// PUBLIC KEY-----", as `openssl pkey -pubout` writes it) or as DER; a usage
// error naming `what` for anything else.
absl::StatusOr<std::string> PublicKeyDerFromFile(absl::string_view what,
                                                 absl::string_view data);

// "-----BEGIN PUBLIC KEY-----" PEM of a DER SubjectPublicKeyInfo.
absl::StatusOr<std::string> PublicKeyDerToPem(absl::string_view der);

struct CertificateSummary {
  std::string subject;
  std::string issuer;
  std::string not_before;
  std::string not_after;
  std::string pem;
};

// Subject, issuer, validity and PEM of a DER X.509 certificate.
absl::StatusOr<CertificateSummary> SummarizeCertificate(absl::string_view der);

// A usage error if `input` cannot be a digest for `options` (its length
// differs from the hash's). No-op unless options.digest_input.
absl::Status CheckDigestInput(const SignOptions& options,
                              absl::string_view input);

// Verifies `signature` over `input` (the message, or the digest when
// options.digest_input) with `public_key`. SM2 uses SM3 and options.sm2_id.
// Returns false when the signature does not match; a usage error when the
// algorithm or its parameters cannot be used with the key (e.g. ecdsa with an
// RSA key).
absl::StatusOr<bool> VerifySignature(EVP_PKEY* public_key,
                                     const SignOptions& options,
                                     absl::string_view input,
                                     absl::string_view signature);

// RSA encryption (PKCS#1 v1.5 or OAEP) or SM2 encryption (OpenSSL's DER
// ciphertext, as `openssl pkeyutl -encrypt` writes) with `public_key`. A
// usage error when the algorithm does not fit the key.
absl::StatusOr<std::string> EncryptWithPublicKey(
    EVP_PKEY* public_key, const v1::DecryptionAlgorithm& alg,
    absl::string_view plaintext);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_LOCAL_CRYPTO_H_
