#include "proxy_provider/remote.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/errors.h"

namespace hsmd::proxy {
namespace {

v1::KeyRef RefFor(const HsmKeyRef& key) {
  v1::KeyRef ref;
  if (!key.key_id.empty()) {
    ref.set_key_id(key.key_id);
  } else {
    ref.set_uri(key.uri);
  }
  return ref;
}

// Names the key in errors hsmd reports about it.
absl::Status ForKey(const absl::Status& status, const HsmKeyRef& key) {
  if (status.code() == absl::StatusCode::kNotFound) {
    absl::Status out(status.code(),
                     absl::StrCat("key not found: ", key.uri,
                                  " (hsmd: ", status.message(), ")"));
    // Keep the backend detail (CK_RV) for ErrorText.
    status.ForEachPayload(
        [&out](absl::string_view url, const absl::Cord& payload) {
          out.SetPayload(url, payload);
        });
    return out;
  }
  return status;
}

// For debug logs (lite messages have no DebugString).
std::string DescribeAlgorithm(const v1::SignatureAlgorithm& algorithm) {
  switch (algorithm.algorithm_case()) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      return absl::StrCat("RSA PKCS#1 v1.5, hash ",
                          v1::HashAlgorithm_Name(algorithm.rsa_pkcs1().hash()));
    case v1::SignatureAlgorithm::kRsaPss:
      return absl::StrCat(
          "RSA-PSS, hash ", v1::HashAlgorithm_Name(algorithm.rsa_pss().hash()),
          ", MGF1 ", v1::HashAlgorithm_Name(algorithm.rsa_pss().mgf1_hash()),
          ", salt ", algorithm.rsa_pss().salt_length());
    case v1::SignatureAlgorithm::kEcdsa:
      return absl::StrCat("ECDSA, hash ",
                          v1::HashAlgorithm_Name(algorithm.ecdsa().hash()));
    case v1::SignatureAlgorithm::kEd25519:
      return "Ed25519";
    case v1::SignatureAlgorithm::kSm2:
      return "SM2 (SM3)";
    default:
      return "no algorithm";
  }
}

}  // namespace

absl::StatusOr<std::vector<v1::Key>> ListKeys(ProviderContext& provider,
                                              absl::string_view uri_filter) {
  ASSIGN_OR_RETURN(client::Client * client, provider.client());
  v1::ListKeysRequest request;
  request.set_uri_filter(std::string(uri_filter));
  ASSIGN_OR_RETURN(v1::ListKeysResponse response,
                   client->ListKeys(request, provider.call_options()));
  HSMPROXY_DEBUG_LOG("ListKeys ", uri_filter, ": ", response.keys_size(),
                     " key(s)");
  return std::vector<v1::Key>(response.keys().begin(), response.keys().end());
}

absl::StatusOr<std::string> RemoteSign(ProviderContext& provider,
                                       const HsmKeyRef& key,
                                       const v1::SignatureAlgorithm& algorithm,
                                       bool is_digest,
                                       absl::string_view input) {
  ASSIGN_OR_RETURN(client::Client * client, provider.client());
  v1::SignRequest request;
  *request.mutable_key() = RefFor(key);
  *request.mutable_algorithm() = algorithm;
  if (is_digest) {
    request.set_digest(std::string(input));
  } else {
    request.set_message(std::string(input));
  }
  absl::StatusOr<v1::SignResponse> response =
      client->Sign(request, provider.call_options());
  if (!response.ok()) return ForKey(response.status(), key);
  HSMPROXY_DEBUG_LOG("signed ", input.size(),
                     is_digest ? "-byte digest" : "-byte message", " with ",
                     key.uri, " (", DescribeAlgorithm(algorithm), ")");
  return std::move(*response->mutable_signature());
}

absl::StatusOr<std::string> RemoteDecrypt(
    ProviderContext& provider, const HsmKeyRef& key,
    const v1::DecryptionAlgorithm& algorithm, absl::string_view ciphertext) {
  ASSIGN_OR_RETURN(client::Client * client, provider.client());
  v1::DecryptRequest request;
  *request.mutable_key() = RefFor(key);
  *request.mutable_algorithm() = algorithm;
  request.set_ciphertext(std::string(ciphertext));
  absl::StatusOr<v1::DecryptResponse> response =
      client->Decrypt(request, provider.call_options());
  if (!response.ok()) {
    if (response.status().code() == absl::StatusCode::kInvalidArgument) {
      // hsmd says only "decryption failed" for padding errors; say even
      // less, whatever the cause, so no detail can act as an oracle.
      return WithReason(absl::InvalidArgumentError(""), Reason::kDecryptFailed);
    }
    return ForKey(response.status(), key);
  }
  HSMPROXY_DEBUG_LOG("decrypted ", ciphertext.size(), " bytes with ", key.uri);
  return std::move(*response->mutable_plaintext());
}

absl::StatusOr<std::string> RemoteDerive(ProviderContext& provider,
                                         const HsmKeyRef& key,
                                         absl::string_view peer_spki) {
  ASSIGN_OR_RETURN(client::Client * client, provider.client());
  v1::DeriveRequest request;
  *request.mutable_key() = RefFor(key);
  request.mutable_ecdh()->set_peer_public_key(std::string(peer_spki));
  absl::StatusOr<v1::DeriveResponse> response =
      client->Derive(request, provider.call_options());
  if (!response.ok()) return ForKey(response.status(), key);
  HSMPROXY_DEBUG_LOG("derived a ", response->shared_secret().size(),
                     "-byte ECDH secret with ", key.uri);
  return std::move(*response->mutable_shared_secret());
}

}  // namespace hsmd::proxy
