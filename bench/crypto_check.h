// OpenSSL helpers shared by the variants: public keys, result checks, the
// OAEP test ciphertext, and per-thread hashing. All in the default library
// context, never in one that holds hsmproxy.
#ifndef HSMD_BENCH_CRYPTO_CHECK_H_
#define HSMD_BENCH_CRYPTO_CHECK_H_

#include <openssl/evp.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/variant.h"
#include "common/openssl_ptr.h"

namespace hsmd::bench {

// OpenSSL's error queue as text (and clears it).
std::string OpenSslErrors();
// `what` failed, with OpenSSL's errors.
absl::Status OpenSslError(absl::string_view what);

absl::StatusOr<EvpPkeyPtr> PublicKeyFromSpki(absl::string_view der);
absl::StatusOr<std::string> SpkiOf(EVP_PKEY* key);

// How a signature is encoded: what EVP returns (DER for ECDSA), or what
// PKCS#11 returns (r || s for ECDSA).
enum class SignatureForm { kEvp, kPkcs11 };

// OK when `output` is a correct result of `op` for `public_key`.
absl::Status CheckOutput(Op op, EVP_PKEY* public_key, absl::string_view output,
                         SignatureForm form);

// OAEP (SHA-1, MGF1-SHA-1, no label) encryption of OaepPlaintext().
absl::StatusOr<std::string> OaepCiphertext(EVP_PKEY* public_key);

// DER DigestInfo prefix of a SHA-256 digest (PKCS#1 v1.5 signatures over
// CKM_RSA_PKCS).
absl::string_view Sha256DigestInfoPrefix();

// A reusable hashing context for one thread.
class Hasher {
 public:
  static absl::StatusOr<Hasher> New(const char* digest);
  // Writes the digest of `data` to `out` (at least EVP_MAX_MD_SIZE bytes)
  // and returns its length.
  absl::StatusOr<size_t> Digest(absl::string_view data, unsigned char* out);

 private:
  Hasher(EvpMdPtr md, EvpMdCtxPtr ctx)
      : md_(std::move(md)), ctx_(std::move(ctx)) {}
  EvpMdPtr md_;
  EvpMdCtxPtr ctx_;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_CRYPTO_CHECK_H_
