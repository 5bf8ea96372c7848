// hsmd calls made on behalf of the provider, with errors phrased for users
// ("key not found: pkcs11:...").
#ifndef HSMD_PROXY_PROVIDER_REMOTE_H_
#define HSMD_PROXY_PROVIDER_REMOTE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hsmd/v1/hsmd.pb.h"
#include "proxy_provider/key.h"
#include "proxy_provider/provider_context.h"

namespace hsmd::proxy {

// Keys matching a `pkcs11:` URI (every key when empty).
absl::StatusOr<std::vector<v1::Key>> ListKeys(ProviderContext& provider,
                                              absl::string_view uri_filter);

// Signs `input` (a digest when `is_digest`, else the message) with an HSM
// key. Returns the signature.
absl::StatusOr<std::string> RemoteSign(ProviderContext& provider,
                                       const HsmKeyRef& key,
                                       const v1::SignatureAlgorithm& algorithm,
                                       bool is_digest, absl::string_view input);

// Decrypts with an HSM key. A failed decryption (bad padding, wrong key) is
// reported as a bare "decryption failed", with nothing that could serve as a
// padding oracle.
absl::StatusOr<std::string> RemoteDecrypt(
    ProviderContext& provider, const HsmKeyRef& key,
    const v1::DecryptionAlgorithm& algorithm, absl::string_view ciphertext);

// ECDH with an HSM key and the peer's public key (DER SubjectPublicKeyInfo).
// Returns the raw shared secret (the x-coordinate); the caller wipes it.
absl::StatusOr<std::string> RemoteDerive(ProviderContext& provider,
                                         const HsmKeyRef& key,
                                         absl::string_view peer_spki);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_REMOTE_H_
