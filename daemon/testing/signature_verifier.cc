#include "daemon/testing/signature_verifier.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/hash_algorithms.h"

namespace hsmd::testing {
namespace {

std::string Errors() {
  std::string out;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::StatusOr<EvpPkeyPtr> ParseSpki(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("public key does not parse: ", Errors()));
  }
  return EvpPkeyPtr(pkey);
}

absl::StatusOr<std::string> Digest(const v1::SignRequest& request,
                                   v1::HashAlgorithm hash) {
  if (request.has_digest()) return request.digest();
  const EVP_MD* md = backend::HashEvpMd(hash);
  if (md == nullptr) return absl::InvalidArgumentError("no digest");
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(request.message().data(), request.message().size(), out, &len, md,
             nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace

absl::Status VerifySignature(const std::string& public_key_der,
                             const v1::SignRequest& request,
                             const std::string& signature) {
  absl::StatusOr<EvpPkeyPtr> pkey = ParseSpki(public_key_der);
  if (!pkey.ok()) return pkey.status();
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  const v1::SignatureAlgorithm& alg = request.algorithm();
  if (alg.has_ed25519()) {
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr,
                             pkey->get()) != 1) {
      return absl::InternalError(Errors());
    }
    int rc = EVP_DigestVerify(
        ctx.get(), sig, signature.size(),
        reinterpret_cast<const unsigned char*>(request.message().data()),
        request.message().size());
    if (rc != 1) {
      return absl::DataLossError(
          absl::StrCat("Ed25519 signature does not verify: ", Errors()));
    }
    return absl::OkStatus();
  }
  if (alg.has_sm2()) {
    // As a relying party does: SM3 over Z || M with the ID (GM/T 0009's
    // default when none is given), or the precomputed e.
    EvpPkeyCtxPtr pctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, pkey->get(), nullptr));
    if (pctx == nullptr) return absl::InternalError(Errors());
    int rc = 0;
    if (request.has_digest()) {
      if (EVP_PKEY_verify_init(pctx.get()) <= 0) {
        return absl::InternalError(Errors());
      }
      rc = EVP_PKEY_verify(
          pctx.get(), sig, signature.size(),
          reinterpret_cast<const unsigned char*>(request.digest().data()),
          request.digest().size());
    } else {
      const std::string id = alg.sm2().distinguishing_id().empty()
                                 ? "1234567812345678"
                                 : alg.sm2().distinguishing_id();
      if (EVP_PKEY_CTX_set1_id(pctx.get(), id.data(), id.size()) <= 0) {
        return absl::InternalError(Errors());
      }
      EvpMdCtxPtr ctx(EVP_MD_CTX_new());
      EVP_MD_CTX_set_pkey_ctx(ctx.get(), pctx.get());
      if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sm3(), nullptr,
                               pkey->get()) != 1) {
        return absl::InternalError(Errors());
      }
      rc = EVP_DigestVerify(
          ctx.get(), sig, signature.size(),
          reinterpret_cast<const unsigned char*>(request.message().data()),
          request.message().size());
    }
    if (rc != 1) {
      return absl::DataLossError(
          absl::StrCat("SM2 signature does not verify: ", Errors()));
    }
    return absl::OkStatus();
  }
  v1::HashAlgorithm hash = alg.has_rsa_pkcs1() ? alg.rsa_pkcs1().hash()
                           : alg.has_rsa_pss() ? alg.rsa_pss().hash()
                                               : alg.ecdsa().hash();
  std::string tbs;
  if (alg.has_rsa_pkcs1() && hash == v1::HASH_ALGORITHM_UNSPECIFIED) {
    tbs = request.digest();
  } else {
    absl::StatusOr<std::string> digest = Digest(request, hash);
    if (!digest.ok()) return digest.status();
    tbs = *digest;
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey->get(), nullptr));
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) <= 0) {
    return absl::InternalError(Errors());
  }
  bool ok = true;
  if (alg.has_rsa_pkcs1()) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) > 0;
    if (hash != v1::HASH_ALGORITHM_UNSPECIFIED) {
      ok = ok && EVP_PKEY_CTX_set_signature_md(ctx.get(),
                                               backend::HashEvpMd(hash)) > 0;
    }
  } else if (alg.has_rsa_pss()) {
    v1::HashAlgorithm mgf1 =
        alg.rsa_pss().mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
            ? hash
            : alg.rsa_pss().mgf1_hash();
    int salt = alg.rsa_pss().has_salt_length()
                   ? static_cast<int>(alg.rsa_pss().salt_length())
                   : static_cast<int>(backend::HashSize(hash));
    ok =
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) > 0 &&
        EVP_PKEY_CTX_set_signature_md(ctx.get(), backend::HashEvpMd(hash)) >
            0 &&
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), backend::HashEvpMd(mgf1)) > 0 &&
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), salt) > 0;
  }
  if (!ok) return absl::InternalError(Errors());
  int rc = EVP_PKEY_verify(ctx.get(), sig, signature.size(),
                           reinterpret_cast<const unsigned char*>(tbs.data()),
                           tbs.size());
  if (rc != 1) {
    return absl::DataLossError(
        absl::StrCat("signature does not verify: ", Errors()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncryptForKey(
    const std::string& public_key_der, const v1::DecryptionAlgorithm& algorithm,
    const std::string& plaintext) {
  absl::StatusOr<EvpPkeyPtr> pkey = ParseSpki(public_key_der);
  if (!pkey.ok()) return pkey.status();
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey->get(), nullptr));
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) <= 0) {
    return absl::InternalError(Errors());
  }
  if (algorithm.has_sm2()) {
    // OpenSSL's SM2 ciphertext (GM/T 0009 DER, C1 || C3 || C2): no options.
  } else if (algorithm.has_rsa_oaep()) {
    const v1::RsaOaepDecryption& oaep = algorithm.rsa_oaep();
    v1::HashAlgorithm mgf1 = oaep.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                                 ? oaep.hash()
                                 : oaep.mgf1_hash();
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(),
                                     backend::HashEvpMd(oaep.hash())) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), backend::HashEvpMd(mgf1)) <=
            0) {
      return absl::InternalError(Errors());
    }
    if (!oaep.label().empty()) {
      void* label = OPENSSL_memdup(oaep.label().data(), oaep.label().size());
      EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label,
                                       static_cast<int>(oaep.label().size()));
    }
  } else if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) <= 0) {
    return absl::InternalError(Errors());
  }
  const auto* in = reinterpret_cast<const unsigned char*>(plaintext.data());
  size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, in, plaintext.size()) <= 0) {
    return absl::InternalError(Errors());
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &len, in, plaintext.size()) <= 0) {
    return absl::InternalError(Errors());
  }
  out.resize(len);
  return out;
}

}  // namespace hsmd::testing
