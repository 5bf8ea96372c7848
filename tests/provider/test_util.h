// Helpers shared by the provider tests (in-process with the fake hsmd, and
// against a real hsmd with hsmproxy.so).
#ifndef HSMD_TESTS_PROVIDER_TEST_UTIL_H_
#define HSMD_TESTS_PROVIDER_TEST_UTIL_H_

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"

namespace hsmd::testing {

using SslCtxPtr = OpenSslPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = OpenSslPtr<SSL, SSL_free>;
using OsslLibCtxPtr = OpenSslPtr<OSSL_LIB_CTX, OSSL_LIB_CTX_free>;

// Everything on OpenSSL's error queue as text (and clears it).
std::string DrainErrors();

// The first key of `expected_type` (OSSL_STORE_INFO_PKEY / _PUBKEY) that
// OSSL_STORE finds at `uri`; the error text on failure.
absl::StatusOr<EvpPkeyPtr> LoadKey(OSSL_LIB_CTX* libctx, const std::string& uri,
                                   int expected_type);
// The first certificate at `uri`.
absl::StatusOr<X509Ptr> LoadCertificate(OSSL_LIB_CTX* libctx,
                                        const std::string& uri);

// A public key from DER SubjectPublicKeyInfo, in `libctx`.
EvpPkeyPtr PublicKeyFromSpki(OSSL_LIB_CTX* libctx, const std::string& spki);
// DER SubjectPublicKeyInfo of any key.
std::string SpkiOf(EVP_PKEY* pkey);

// Applies settings to the EVP_PKEY_CTX of a signature or cipher operation.
using CtxSetup = std::function<bool(EVP_PKEY_CTX*)>;

// EVP_DigestSign with `md` ("" or nullptr for Ed25519), checking the size
// query first.
absl::StatusOr<std::string> DigestSign(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                       const char* md,
                                       const std::string& message,
                                       const CtxSetup& setup = nullptr);
absl::StatusOr<bool> DigestVerify(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                  const char* md, const std::string& message,
                                  const std::string& signature,
                                  const CtxSetup& setup = nullptr);

// EVP_PKEY_sign / EVP_PKEY_verify on pre-hashed input.
absl::StatusOr<std::string> PkeySign(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                     const std::string& tbs,
                                     const CtxSetup& setup = nullptr);
absl::StatusOr<bool> PkeyVerify(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                const std::string& tbs,
                                const std::string& signature,
                                const CtxSetup& setup = nullptr);

absl::StatusOr<std::string> PkeyEncrypt(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                        const std::string& plaintext,
                                        const CtxSetup& setup = nullptr);
absl::StatusOr<std::string> PkeyDecrypt(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                        const std::string& ciphertext,
                                        const CtxSetup& setup = nullptr);

// EVP_PKEY_derive of `key` with `peer` (size query, then the secret).
absl::StatusOr<std::string> PkeyDerive(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                       EVP_PKEY* peer,
                                       const CtxSetup& setup = nullptr);

// Digest of `data` with `md` in the default library context.
std::string Hash(const char* md, const std::string& data);

// A self-signed certificate for `key`, signed with `key` (X509_sign, which
// needs the provider's algorithm-id) using `md` (nullptr for Ed25519).
absl::StatusOr<X509Ptr> SelfSignedCertificate(EVP_PKEY* key, const char* md,
                                              const std::string& cn);

// One full TLS handshake between a server using `cert` + `key` and a client
// (in `client_libctx`) that trusts `cert`, over a memory BIO pair, with
// `version` (TLS1_2_VERSION / TLS1_3_VERSION). Then 1 KiB each way.
// `cipher_list` (TLS 1.2 only) restricts the cipher suites, e.g. to RSA key
// exchange.
absl::Status TlsHandshake(OSSL_LIB_CTX* server_libctx, X509* cert,
                          EVP_PKEY* key, OSSL_LIB_CTX* client_libctx,
                          int version, const char* cipher_list = nullptr);

// Runs `fn` in a forked child with an alarm() watchdog of `seconds`; returns
// the child's exit status as "exit N" / "signal N" / "" for exit 0.
std::string RunInChild(const std::function<int()>& fn, int seconds);

}  // namespace hsmd::testing

#endif  // HSMD_TESTS_PROVIDER_TEST_UTIL_H_
