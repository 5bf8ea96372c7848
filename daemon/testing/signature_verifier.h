// Verifies hsmd signatures and encrypts for hsmd decryptions with OpenSSL and
// the key's public half, the way a relying party would (test helper).
#ifndef HSMD_DAEMON_TESTING_SIGNATURE_VERIFIER_H_
#define HSMD_DAEMON_TESTING_SIGNATURE_VERIFIER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::testing {

// OK if `signature` is a valid signature by the key `public_key_der` (DER
// SubjectPublicKeyInfo) over the request's input with the request's
// algorithm; an error describing the failure otherwise.
absl::Status VerifySignature(const std::string& public_key_der,
                             const v1::SignRequest& request,
                             const std::string& signature);

// Encrypts `plaintext` for the RSA key with the given padding (rsa_pkcs1 or
// rsa_oaep with its parameters), or for an SM2 key (sm2: OpenSSL's
// ciphertext format). SM2 signatures are checked with SM3 and the request's
// distinguishing ID (default "1234567812345678").
absl::StatusOr<std::string> EncryptForKey(
    const std::string& public_key_der, const v1::DecryptionAlgorithm& algorithm,
    const std::string& plaintext);

}  // namespace hsmd::testing

#endif  // HSMD_DAEMON_TESTING_SIGNATURE_VERIFIER_H_
