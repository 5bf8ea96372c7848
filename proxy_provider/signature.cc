#include "proxy_provider/signature.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/errors.h"
#include "proxy_provider/key.h"
#include "proxy_provider/mechanisms.h"
#include "proxy_provider/provider_context.h"
#include "proxy_provider/remote.h"
#include "proxy_provider/report.h"
#include "proxy_provider/signature_edge.h"

namespace hsmd::proxy {
namespace {

enum class Family { kRsa, kEcdsa, kEd25519 };

using Op = SignatureOp;

const char* FamilyName(Family family) {
  switch (family) {
    case Family::kRsa:
      return "RSA";
    case Family::kEcdsa:
      return "ECDSA";
    case Family::kEd25519:
      return "Ed25519";
  }
  return "?";
}

bool FamilyAccepts(Family family, KeyKind kind) {
  switch (family) {
    case Family::kRsa:
      return kind == KeyKind::kRsa || kind == KeyKind::kRsaPss;
    case Family::kEcdsa:
      return kind == KeyKind::kEc;
    case Family::kEd25519:
      return kind == KeyKind::kEd25519;
  }
  return false;
}

std::string ToString(const unsigned char* data, size_t length) {
  return std::string(reinterpret_cast<const char*>(data), length);
}

class SignatureContext {
 public:
  SignatureContext(ProviderContext* provider, Family family)
      : provider_(provider), family_(family) {}

  ProviderContext* provider() const { return provider_; }

  absl::Status Init(Op op, std::shared_ptr<Key> key, const char* mdname,
                    const OSSL_PARAM* params);

  // `sig` nullptr asks for the maximum size.
  absl::StatusOr<size_t> Sign(unsigned char* sig, size_t sigsize,
                              const unsigned char* tbs, size_t tbslen);
  absl::StatusOr<bool> Verify(const unsigned char* sig, size_t siglen,
                              const unsigned char* tbs, size_t tbslen);
  absl::StatusOr<size_t> VerifyRecover(unsigned char* out, size_t outsize,
                                       const unsigned char* sig, size_t siglen);
  absl::Status DigestUpdate(const unsigned char* data, size_t length);
  absl::StatusOr<size_t> DigestSignFinal(unsigned char* sig, size_t sigsize);
  absl::StatusOr<bool> DigestVerifyFinal(const unsigned char* sig,
                                         size_t siglen);
  // One-shot digest_sign / digest_verify (Ed25519).
  absl::StatusOr<size_t> DigestSignOneShot(unsigned char* sig, size_t sigsize,
                                           const unsigned char* tbs,
                                           size_t tbslen);
  absl::StatusOr<bool> DigestVerifyOneShot(const unsigned char* sig,
                                           size_t siglen,
                                           const unsigned char* tbs,
                                           size_t tbslen);

  absl::Status SetParams(const OSSL_PARAM* params);
  absl::Status GetParams(OSSL_PARAM* params);

  absl::StatusOr<std::unique_ptr<SignatureContext>> Dup() const;

 private:
  // The shadow for parameters, made now if Init deferred it.
  absl::StatusOr<EVP_PKEY_CTX*> shadow() {
    if (family_ == Family::kEd25519) {
      return EVP_MD_CTX_get_pkey_ctx(shadow_md_.get());
    }
    if (shadow_deferred_) RETURN_IF_ERROR(MakeDeferredShadow());
    return shadow_.get();
  }
  absl::Status MakeDeferredShadow();
  // True when the key's private half is here (a software key): the shadow
  // signs.
  bool SignsLocally() const { return !key_->is_hsm(); }

  absl::Status InitShadow(const char* mdname, const OSSL_PARAM* params);
  absl::StatusOr<size_t> MaxSignatureSize() const;
  absl::StatusOr<size_t> RemoteSignDigest(unsigned char* sig, size_t sigsize,
                                          const unsigned char* tbs,
                                          size_t tbslen);
  absl::StatusOr<v1::SignatureAlgorithm> RsaAlgorithm(std::string& input,
                                                      size_t tbslen);
  absl::StatusOr<std::string> FinishDigest();

  ProviderContext* const provider_;
  const Family family_;
  Op op_ = Op::kNone;
  std::shared_ptr<Key> key_;
  // RSA/ECDSA: default-provider context on the key (sign/verify/recover).
  EvpPkeyCtxPtr shadow_;
  // ECDSA digest signing with an HSM key and no parameters (a TLS
  // handshake's CertificateVerify): the shadow would only hold the digest,
  // which mdname_ has, so it is made only if parameters are set or read.
  // That saves ~40% of EVP_DigestSignInit's cost per signature.
  bool shadow_deferred_ = false;
  // Ed25519: default-provider DigestSign/DigestVerify context.
  EvpMdCtxPtr shadow_md_;
  // digest_sign/digest_verify hashing (RSA/ECDSA).
  EvpMdCtxPtr digest_;
  std::string mdname_;
};

absl::Status SignatureContext::Init(Op op, std::shared_ptr<Key> key,
                                    const char* mdname,
                                    const OSSL_PARAM* params) {
  if (key == nullptr) {
    // OpenSSL re-initialises an operation with a NULL key to mean "the same
    // key as before" (e.g. EVP_DigestSignInit(ctx, NULL, md, NULL, NULL)).
    key = key_;
  }
  if (key == nullptr || key->pkey() == nullptr) {
    return absl::InvalidArgumentError("no key given");
  }
  if (!FamilyAccepts(family_, key->kind())) {
    return UnsupportedError(absl::StrCat(FamilyName(family_),
                                         " signatures need another key type "
                                         "than ",
                                         key->Describe()));
  }
  if (IsSigning(op) && !key->Has(OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) {
    return NoPrivateKeyError(absl::StrCat("cannot sign with ", key->Describe(),
                                          ": it has no private key"));
  }
  op_ = op;
  key_ = std::move(key);
  shadow_.reset();
  shadow_deferred_ = false;
  shadow_md_.reset();
  digest_.reset();
  mdname_.clear();
  RETURN_IF_ERROR(InitShadow(mdname, params));
  HSMPROXY_DEBUG_LOG(FamilyName(family_), " ",
                     IsSigning(op_) ? "sign" : "verify", " init with ",
                     key_->Describe(), mdname_.empty() ? "" : ", digest ",
                     mdname_);
  return absl::OkStatus();
}

absl::Status SignatureContext::InitShadow(const char* mdname,
                                          const OSSL_PARAM* params) {
  OSSL_LIB_CTX* libctx = provider_->libctx();
  if (family_ == Family::kEd25519) {
    if (!IsDigestOp(op_)) {
      return UnsupportedError(
          "Ed25519 signs whole messages: use EVP_DigestSign");
    }
    if (mdname != nullptr && mdname[0] != '\0') {
      return UnsupportedError(
          absl::StrCat("Ed25519 takes no digest (got ", mdname, ")"));
    }
    shadow_md_.reset(EVP_MD_CTX_new());
    if (shadow_md_ == nullptr)
      return absl::ResourceExhaustedError("out of memory");
    int rc =
        (op_ == Op::kDigestSign && SignsLocally())
            ? EVP_DigestSignInit_ex(shadow_md_.get(), nullptr, nullptr, libctx,
                                    kDefaultProviderQuery, key_->pkey(), params)
            : EVP_DigestVerifyInit_ex(shadow_md_.get(), nullptr, nullptr,
                                      libctx, kDefaultProviderQuery,
                                      key_->pkey(), params);
    if (rc != 1) return UnsupportedError("Ed25519 parameters rejected");
    return absl::OkStatus();
  }

  if (family_ == Family::kEcdsa && op_ == Op::kDigestSign && !SignsLocally() &&
      (params == nullptr || params[0].key == nullptr) && mdname != nullptr &&
      mdname[0] != '\0') {
    ASSIGN_OR_RETURN(Digest digest, provider_->LookupDigest(mdname));
    // Only digests the default provider's ECDSA surely accepts; anything
    // else is checked by a shadow now, as before.
    switch (digest.hash) {
      case v1::HASH_ALGORITHM_SHA1:
      case v1::HASH_ALGORITHM_SHA224:
      case v1::HASH_ALGORITHM_SHA256:
      case v1::HASH_ALGORITHM_SHA384:
      case v1::HASH_ALGORITHM_SHA512: {
        digest_.reset(EVP_MD_CTX_new());
        if (digest_ == nullptr ||
            EVP_DigestInit_ex2(digest_.get(), digest.md.get(), nullptr) != 1) {
          return absl::InternalError("could not start the digest");
        }
        mdname_ = mdname;
        shadow_deferred_ = true;
        return absl::OkStatus();
      }
      default:
        break;
    }
  }
  shadow_.reset(
      EVP_PKEY_CTX_new_from_pkey(libctx, key_->pkey(), kDefaultProviderQuery));
  if (shadow_ == nullptr) {
    return absl::InternalError("could not create a default-provider context");
  }
  int rc = 0;
  switch (op_) {
    case Op::kSign:
    case Op::kDigestSign:
      // For an HSM key the shadow only validates and reports parameters;
      // verify mode needs just the public key.
      rc = SignsLocally() ? EVP_PKEY_sign_init_ex(shadow_.get(), nullptr)
                          : EVP_PKEY_verify_init_ex(shadow_.get(), nullptr);
      break;
    case Op::kVerify:
    case Op::kDigestVerify:
      rc = EVP_PKEY_verify_init_ex(shadow_.get(), nullptr);
      break;
    case Op::kVerifyRecover:
      rc = EVP_PKEY_verify_recover_init_ex(shadow_.get(), nullptr);
      break;
    case Op::kNone:
      break;
  }
  if (rc != 1)
    return UnsupportedError("the key cannot be used for this operation");

  if (IsDigestOp(op_)) {
    if (mdname == nullptr || mdname[0] == '\0') {
      return UnsupportedError(absl::StrCat(
          "digest signing with ", FamilyName(family_), " needs a digest"));
    }
    ASSIGN_OR_RETURN(Digest digest, provider_->LookupDigest(mdname));
    const OSSL_PARAM set_digest[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST,
                                         const_cast<char*>(mdname), 0),
        OSSL_PARAM_END,
    };
    if (EVP_PKEY_CTX_set_params(shadow_.get(), set_digest) != 1) {
      return UnsupportedError("digest rejected");
    }
    digest_.reset(EVP_MD_CTX_new());
    if (digest_ == nullptr ||
        EVP_DigestInit_ex2(digest_.get(), digest.md.get(), nullptr) != 1) {
      return absl::InternalError("could not start the digest");
    }
    mdname_ = mdname;
  }
  if (params != nullptr && params[0].key != nullptr &&
      EVP_PKEY_CTX_set_params(shadow_.get(), params) != 1) {
    return UnsupportedError("signature parameters rejected");
  }
  return absl::OkStatus();
}

absl::Status SignatureContext::MakeDeferredShadow() {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(
      provider_->libctx(), key_->pkey(), kDefaultProviderQuery));
  if (ctx == nullptr) {
    return absl::InternalError("could not create a default-provider context");
  }
  if (EVP_PKEY_verify_init_ex(ctx.get(), nullptr) != 1) {
    return UnsupportedError("the key cannot be used for this operation");
  }
  const OSSL_PARAM set_digest[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST,
                                       mdname_.data(), 0),
      OSSL_PARAM_END,
  };
  if (EVP_PKEY_CTX_set_params(ctx.get(), set_digest) != 1) {
    return UnsupportedError("digest rejected");
  }
  shadow_ = std::move(ctx);
  shadow_deferred_ = false;
  return absl::OkStatus();
}

absl::StatusOr<size_t> SignatureContext::MaxSignatureSize() const {
  int size = EVP_PKEY_get_size(key_->pkey());
  if (size <= 0) return absl::InternalError("unknown signature size");
  return static_cast<size_t>(size);
}

absl::StatusOr<v1::SignatureAlgorithm> SignatureContext::RsaAlgorithm(
    std::string& input, size_t tbslen) {
  int pad = 0;
  char md[80] = "";
  OSSL_PARAM get[] = {
      OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, &pad),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, md, sizeof(md)),
      OSSL_PARAM_END,
  };
  if (EVP_PKEY_CTX_get_params(shadow_.get(), get) != 1) {
    return absl::InternalError("could not read the RSA signature settings");
  }
  v1::SignatureAlgorithm algorithm;
  absl::StatusOr<Digest> digest = absl::NotFoundError("no digest");
  if (md[0] != '\0') {
    digest = provider_->LookupDigest(md);
    if (!digest.ok()) return digest.status();
    if (tbslen != digest->size) {
      return absl::InvalidArgumentError(
          absl::StrCat("a ", digest->name, " digest has ", digest->size,
                       " bytes, got ", tbslen));
    }
  }
  switch (pad) {
    case RSA_PKCS1_PADDING: {
      auto* pkcs1 = algorithm.mutable_rsa_pkcs1();
      if (!digest.ok()) {
        // No digest: `input` is the complete data to pad (e.g. a DigestInfo
        // from scripts/sign-file).
        pkcs1->set_hash(v1::HASH_ALGORITHM_UNSPECIFIED);
      } else if (digest->hash != v1::HASH_ALGORITHM_UNSPECIFIED) {
        pkcs1->set_hash(digest->hash);
      } else {
        // hsmd does not know this hash: sign its DigestInfo raw, which is
        // the same PKCS#1 v1.5 signature.
        ASSIGN_OR_RETURN(input, EncodeDigestInfo(digest->md.get(), input));
        pkcs1->set_hash(v1::HASH_ALGORITHM_UNSPECIFIED);
      }
      return algorithm;
    }
    case RSA_PKCS1_PSS_PADDING: {
      if (!digest.ok()) {
        return UnsupportedError("RSA-PSS signing needs a digest");
      }
      if (digest->hash == v1::HASH_ALGORITHM_UNSPECIFIED ||
          digest->hash == v1::HASH_ALGORITHM_MD5_SHA1) {
        return UnsupportedError(
            absl::StrCat("hsmd cannot do RSA-PSS with ", digest->name));
      }
      int saltlen = RSA_PSS_SALTLEN_AUTO;
      char mgf1[80] = "";
      OSSL_PARAM get_pss[] = {
          OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &saltlen),
          OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, mgf1,
                                 sizeof(mgf1)),
          OSSL_PARAM_END,
      };
      if (EVP_PKEY_CTX_get_params(shadow_.get(), get_pss) != 1) {
        return absl::InternalError("could not read the PSS settings");
      }
      auto* pss = algorithm.mutable_rsa_pss();
      pss->set_hash(digest->hash);
      if (mgf1[0] != '\0') {
        ASSIGN_OR_RETURN(Digest mgf1_digest, provider_->LookupDigest(mgf1));
        if (mgf1_digest.hash == v1::HASH_ALGORITHM_UNSPECIFIED ||
            mgf1_digest.hash == v1::HASH_ALGORITHM_MD5_SHA1) {
          return UnsupportedError(
              absl::StrCat("hsmd cannot use ", mgf1_digest.name, " for MGF1"));
        }
        pss->set_mgf1_hash(mgf1_digest.hash);
      } else {
        pss->set_mgf1_hash(digest->hash);
      }
      ASSIGN_OR_RETURN(uint32_t salt,
                       PssSaltLength(saltlen, EVP_PKEY_get_bits(key_->pkey()),
                                     digest->size));
      pss->set_salt_length(salt);
      return algorithm;
    }
    case RSA_NO_PADDING:
      return UnsupportedError(
          "raw RSA (no padding) is not available for HSM keys");
    case RSA_X931_PADDING:
      return UnsupportedError("X9.31 padding is not available for HSM keys");
    default:
      return UnsupportedError(absl::StrCat("RSA padding mode ", pad,
                                           " is not available for HSM keys"));
  }
}

absl::StatusOr<size_t> SignatureContext::RemoteSignDigest(
    unsigned char* sig, size_t sigsize, const unsigned char* tbs,
    size_t tbslen) {
  ASSIGN_OR_RETURN(size_t max_size, MaxSignatureSize());
  if (sig == nullptr) return max_size;
  if (sigsize < max_size) return BufferTooSmallError(max_size, sigsize);
  std::string input = ToString(tbs, tbslen);
  v1::SignatureAlgorithm algorithm;
  if (family_ == Family::kRsa) {
    ASSIGN_OR_RETURN(algorithm, RsaAlgorithm(input, tbslen));
  } else {
    char md[80] = "";
    OSSL_PARAM get[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, md, sizeof(md)),
        OSSL_PARAM_END,
    };
    if (shadow_deferred_) {
      // Init checked the name (an hsmd hash, shorter than md).
      std::snprintf(md, sizeof(md), "%s", mdname_.c_str());
    } else if (EVP_PKEY_CTX_get_params(shadow_.get(), get) != 1) {
      md[0] = '\0';
    }
    v1::HashAlgorithm hash = v1::HASH_ALGORITHM_UNSPECIFIED;
    if (md[0] != '\0') {
      ASSIGN_OR_RETURN(Digest digest, provider_->LookupDigest(md));
      if (tbslen != digest.size) {
        return absl::InvalidArgumentError(
            absl::StrCat("a ", digest.name, " digest has ", digest.size,
                         " bytes, got ", tbslen));
      }
      hash = digest.hash;
    }
    if (hash == v1::HASH_ALGORITHM_UNSPECIFIED ||
        hash == v1::HASH_ALGORITHM_MD5_SHA1 || hash == v1::HASH_ALGORITHM_SM3) {
      // ECDSA signs the digest bytes whatever hash made them; hsmd only
      // checks the length against the hash it is told.
      ASSIGN_OR_RETURN(hash, HashForDigestLength(tbslen));
    }
    algorithm.mutable_ecdsa()->set_hash(hash);
  }
  ASSIGN_OR_RETURN(std::string signature,
                   RemoteSign(*provider_, key_->hsm(), algorithm,
                              /*is_digest=*/true, input));
  if (signature.size() > sigsize) {
    return BufferTooSmallError(signature.size(), sigsize);
  }
  std::memcpy(sig, signature.data(), signature.size());
  return signature.size();
}

absl::StatusOr<size_t> SignatureContext::Sign(unsigned char* sig,
                                              size_t sigsize,
                                              const unsigned char* tbs,
                                              size_t tbslen) {
  if (op_ != Op::kSign)
    return absl::FailedPreconditionError("not initialised for signing");
  if (SignsLocally()) {
    size_t length = sigsize;
    if (EVP_PKEY_sign(shadow_.get(), sig, &length, tbs, tbslen) != 1) {
      return UnsupportedError("signing failed");
    }
    return length;
  }
  return RemoteSignDigest(sig, sigsize, tbs, tbslen);
}

absl::StatusOr<bool> SignatureContext::Verify(const unsigned char* sig,
                                              size_t siglen,
                                              const unsigned char* tbs,
                                              size_t tbslen) {
  if (op_ != Op::kVerify) {
    return absl::FailedPreconditionError("not initialised for verification");
  }
  int rc = EVP_PKEY_verify(shadow_.get(), sig, siglen, tbs, tbslen);
  if (rc < 0) return UnsupportedError("verification failed");
  return rc == 1;
}

absl::StatusOr<size_t> SignatureContext::VerifyRecover(unsigned char* out,
                                                       size_t outsize,
                                                       const unsigned char* sig,
                                                       size_t siglen) {
  if (op_ != Op::kVerifyRecover) {
    return absl::FailedPreconditionError("not initialised for verify-recover");
  }
  size_t length = outsize;
  if (EVP_PKEY_verify_recover(shadow_.get(), out, &length, sig, siglen) != 1) {
    return UnsupportedError("verify-recover failed");
  }
  return length;
}

absl::Status SignatureContext::DigestUpdate(const unsigned char* data,
                                            size_t length) {
  if (digest_ == nullptr) {
    return absl::FailedPreconditionError("not initialised for digest signing");
  }
  if (EVP_DigestUpdate(digest_.get(), data, length) != 1) {
    return absl::InternalError("digest update failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SignatureContext::FinishDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(digest_.get(), md, &length) != 1) {
    return absl::InternalError("digest final failed");
  }
  return ToString(md, length);
}

absl::StatusOr<size_t> SignatureContext::DigestSignFinal(unsigned char* sig,
                                                         size_t sigsize) {
  if (op_ != Op::kDigestSign || digest_ == nullptr) {
    return absl::FailedPreconditionError("not initialised for digest signing");
  }
  if (sig == nullptr) {
    // Size query: the hash state is left untouched.
    if (SignsLocally()) {
      size_t length = 0;
      unsigned char zero[EVP_MAX_MD_SIZE] = {0};
      if (EVP_PKEY_sign(
              shadow_.get(), nullptr, &length, zero,
              static_cast<size_t>(EVP_MD_CTX_get_size(digest_.get()))) != 1) {
        return UnsupportedError("signing failed");
      }
      return length;
    }
    return MaxSignatureSize();
  }
  ASSIGN_OR_RETURN(std::string digest, FinishDigest());
  const auto* tbs = reinterpret_cast<const unsigned char*>(digest.data());
  if (SignsLocally()) {
    size_t length = sigsize;
    if (EVP_PKEY_sign(shadow_.get(), sig, &length, tbs, digest.size()) != 1) {
      return UnsupportedError("signing failed");
    }
    return length;
  }
  return RemoteSignDigest(sig, sigsize, tbs, digest.size());
}

absl::StatusOr<bool> SignatureContext::DigestVerifyFinal(
    const unsigned char* sig, size_t siglen) {
  if (op_ != Op::kDigestVerify || digest_ == nullptr) {
    return absl::FailedPreconditionError(
        "not initialised for digest verification");
  }
  ASSIGN_OR_RETURN(std::string digest, FinishDigest());
  int rc = EVP_PKEY_verify(
      shadow_.get(), sig, siglen,
      reinterpret_cast<const unsigned char*>(digest.data()), digest.size());
  if (rc < 0) return UnsupportedError("verification failed");
  return rc == 1;
}

absl::StatusOr<size_t> SignatureContext::DigestSignOneShot(
    unsigned char* sig, size_t sigsize, const unsigned char* tbs,
    size_t tbslen) {
  if (op_ != Op::kDigestSign || family_ != Family::kEd25519) {
    return absl::FailedPreconditionError("not initialised for Ed25519 signing");
  }
  if (SignsLocally()) {
    size_t length = sigsize;
    if (EVP_DigestSign(shadow_md_.get(), sig, &length, tbs, tbslen) != 1) {
      return UnsupportedError("signing failed");
    }
    return length;
  }
  ASSIGN_OR_RETURN(size_t max_size, MaxSignatureSize());
  if (sig == nullptr) return max_size;
  if (sigsize < max_size) return BufferTooSmallError(max_size, sigsize);
  v1::SignatureAlgorithm algorithm;
  algorithm.mutable_ed25519();
  ASSIGN_OR_RETURN(std::string signature,
                   RemoteSign(*provider_, key_->hsm(), algorithm,
                              /*is_digest=*/false, ToString(tbs, tbslen)));
  if (signature.size() > sigsize) {
    return BufferTooSmallError(signature.size(), sigsize);
  }
  std::memcpy(sig, signature.data(), signature.size());
  return signature.size();
}

absl::StatusOr<bool> SignatureContext::DigestVerifyOneShot(
    const unsigned char* sig, size_t siglen, const unsigned char* tbs,
    size_t tbslen) {
  if (op_ != Op::kDigestVerify || family_ != Family::kEd25519) {
    return absl::FailedPreconditionError(
        "not initialised for Ed25519 verification");
  }
  int rc = EVP_DigestVerify(shadow_md_.get(), sig, siglen, tbs, tbslen);
  if (rc < 0) return UnsupportedError("verification failed");
  return rc == 1;
}

absl::Status SignatureContext::SetParams(const OSSL_PARAM* params) {
  if (params == nullptr || params[0].key == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(EVP_PKEY_CTX * ctx, shadow());
  if (ctx == nullptr) {
    return absl::FailedPreconditionError("signature context not initialised");
  }
  if (IsDigestOp(op_) && !mdname_.empty()) {
    const OSSL_PARAM* p =
        OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
    const char* name = nullptr;
    if (p != nullptr && OSSL_PARAM_get_utf8_string_ptr(p, &name) == 1) {
      // The message is already being hashed with mdname_.
      ASSIGN_OR_RETURN(Digest wanted, provider_->LookupDigest(name));
      ASSIGN_OR_RETURN(Digest current, provider_->LookupDigest(mdname_));
      if (!EVP_MD_is_a(wanted.md.get(), current.name.c_str())) {
        return UnsupportedError(absl::StrCat(
            "the digest cannot change from ", mdname_, " to ", name,
            " after EVP_DigestSignInit/EVP_DigestVerifyInit"));
      }
    }
  }
  if (EVP_PKEY_CTX_set_params(ctx, params) != 1) {
    return UnsupportedError("signature parameters rejected");
  }
  return absl::OkStatus();
}

absl::Status SignatureContext::GetParams(OSSL_PARAM* params) {
  ASSIGN_OR_RETURN(EVP_PKEY_CTX * ctx, shadow());
  if (ctx == nullptr) {
    return absl::FailedPreconditionError("signature context not initialised");
  }
  if (EVP_PKEY_CTX_get_params(ctx, params) != 1) {
    return UnsupportedError("could not read signature parameters");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SignatureContext>> SignatureContext::Dup()
    const {
  auto copy = std::make_unique<SignatureContext>(provider_, family_);
  copy->op_ = op_;
  copy->key_ = key_;
  copy->mdname_ = mdname_;
  copy->shadow_deferred_ = shadow_deferred_;
  if (shadow_ != nullptr) {
    copy->shadow_.reset(EVP_PKEY_CTX_dup(shadow_.get()));
    if (copy->shadow_ == nullptr) {
      return absl::InternalError("could not copy the signature context");
    }
  }
  if (shadow_md_ != nullptr) {
    copy->shadow_md_.reset(EVP_MD_CTX_new());
    if (copy->shadow_md_ == nullptr ||
        EVP_MD_CTX_copy_ex(copy->shadow_md_.get(), shadow_md_.get()) != 1) {
      return absl::InternalError("could not copy the signature context");
    }
  }
  if (digest_ != nullptr) {
    copy->digest_.reset(EVP_MD_CTX_new());
    if (copy->digest_ == nullptr ||
        EVP_MD_CTX_copy_ex(copy->digest_.get(), digest_.get()) != 1) {
      return absl::InternalError("could not copy the digest state");
    }
  }
  return copy;
}

// ---------------------------------------------------------------------------
// The C edge.

using Edge = SignatureEdge<SignatureContext>;
SignatureContext* Ctx(void* ctx) { return Edge::Ctx(ctx); }

template <Family kFamily>
void* SigNewCtx(void* provctx, const char* /*propq*/) {
  return new SignatureContext(static_cast<ProviderContext*>(provctx), kFamily);
}

int SigVerifyRecoverInit(void* ctx, void* provkey, const OSSL_PARAM params[]) {
  return Edge::Init(ctx, Op::kVerifyRecover, nullptr, provkey, params);
}

int SigVerifyRecover(void* ctx, unsigned char* rout, size_t* routlen,
                     size_t routsize, const unsigned char* sig, size_t siglen) {
  return ReportSize(
      Ctx(ctx), Ctx(ctx)->VerifyRecover(rout, routsize, sig, siglen), routlen);
}

int SigDigestSign(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize,
                  const unsigned char* tbs, size_t tbslen) {
  return ReportSize(
      Ctx(ctx), Ctx(ctx)->DigestSignOneShot(sig, sigsize, tbs, tbslen), siglen);
}

int SigDigestVerify(void* ctx, const unsigned char* sig, size_t siglen,
                    const unsigned char* tbs, size_t tbslen) {
  return ReportVerify(Ctx(ctx),
                      Ctx(ctx)->DigestVerifyOneShot(sig, siglen, tbs, tbslen));
}

EVP_SIGNATURE* DefaultSignature(Family family, void* provctx) {
  auto* provider = static_cast<ProviderContext*>(provctx);
  switch (family) {
    case Family::kRsa:
      return provider->default_rsa_signature();
    case Family::kEcdsa:
      return provider->default_ecdsa_signature();
    case Family::kEd25519:
      return provider->default_ed25519_signature();
  }
  return nullptr;
}

template <Family kFamily>
const OSSL_PARAM* SigGettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_SIGNATURE_gettable_ctx_params(DefaultSignature(kFamily, provctx));
}

template <Family kFamily>
const OSSL_PARAM* SigSettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_SIGNATURE_settable_ctx_params(DefaultSignature(kFamily, provctx));
}

}  // namespace

const OSSL_DISPATCH kRsaSignatureFunctions[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX,
     HSMPROXY_DISPATCH_FN(&SigNewCtx<Family::kRsa>)},
    {OSSL_FUNC_SIGNATURE_FREECTX, HSMPROXY_DISPATCH_FN(&Edge::FreeCtx)},
    {OSSL_FUNC_SIGNATURE_DUPCTX, HSMPROXY_DISPATCH_FN(&Edge::DupCtx)},
    {OSSL_FUNC_SIGNATURE_SIGN_INIT, HSMPROXY_DISPATCH_FN(&Edge::SignInit)},
    {OSSL_FUNC_SIGNATURE_SIGN, HSMPROXY_DISPATCH_FN(&Edge::Sign)},
    {OSSL_FUNC_SIGNATURE_VERIFY_INIT, HSMPROXY_DISPATCH_FN(&Edge::VerifyInit)},
    {OSSL_FUNC_SIGNATURE_VERIFY, HSMPROXY_DISPATCH_FN(&Edge::Verify)},
    {OSSL_FUNC_SIGNATURE_VERIFY_RECOVER_INIT,
     HSMPROXY_DISPATCH_FN(&SigVerifyRecoverInit)},
    {OSSL_FUNC_SIGNATURE_VERIFY_RECOVER,
     HSMPROXY_DISPATCH_FN(&SigVerifyRecover)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestSignInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE,
     HSMPROXY_DISPATCH_FN(&Edge::DigestUpdate)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL,
     HSMPROXY_DISPATCH_FN(&Edge::DigestSignFinal)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestVerifyInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,
     HSMPROXY_DISPATCH_FN(&Edge::DigestUpdate)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL,
     HSMPROXY_DISPATCH_FN(&Edge::DigestVerifyFinal)},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::GetCtxParams)},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigGettableCtxParams<Family::kRsa>)},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::SetCtxParams)},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigSettableCtxParams<Family::kRsa>)},
    {0, nullptr},
};

const OSSL_DISPATCH kEcdsaSignatureFunctions[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX,
     HSMPROXY_DISPATCH_FN(&SigNewCtx<Family::kEcdsa>)},
    {OSSL_FUNC_SIGNATURE_FREECTX, HSMPROXY_DISPATCH_FN(&Edge::FreeCtx)},
    {OSSL_FUNC_SIGNATURE_DUPCTX, HSMPROXY_DISPATCH_FN(&Edge::DupCtx)},
    {OSSL_FUNC_SIGNATURE_SIGN_INIT, HSMPROXY_DISPATCH_FN(&Edge::SignInit)},
    {OSSL_FUNC_SIGNATURE_SIGN, HSMPROXY_DISPATCH_FN(&Edge::Sign)},
    {OSSL_FUNC_SIGNATURE_VERIFY_INIT, HSMPROXY_DISPATCH_FN(&Edge::VerifyInit)},
    {OSSL_FUNC_SIGNATURE_VERIFY, HSMPROXY_DISPATCH_FN(&Edge::Verify)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestSignInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE,
     HSMPROXY_DISPATCH_FN(&Edge::DigestUpdate)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL,
     HSMPROXY_DISPATCH_FN(&Edge::DigestSignFinal)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestVerifyInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,
     HSMPROXY_DISPATCH_FN(&Edge::DigestUpdate)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL,
     HSMPROXY_DISPATCH_FN(&Edge::DigestVerifyFinal)},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::GetCtxParams)},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigGettableCtxParams<Family::kEcdsa>)},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::SetCtxParams)},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigSettableCtxParams<Family::kEcdsa>)},
    {0, nullptr},
};

const OSSL_DISPATCH kEd25519SignatureFunctions[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX,
     HSMPROXY_DISPATCH_FN(&SigNewCtx<Family::kEd25519>)},
    {OSSL_FUNC_SIGNATURE_FREECTX, HSMPROXY_DISPATCH_FN(&Edge::FreeCtx)},
    {OSSL_FUNC_SIGNATURE_DUPCTX, HSMPROXY_DISPATCH_FN(&Edge::DupCtx)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestSignInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, HSMPROXY_DISPATCH_FN(&SigDigestSign)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestVerifyInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, HSMPROXY_DISPATCH_FN(&SigDigestVerify)},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::GetCtxParams)},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigGettableCtxParams<Family::kEd25519>)},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::SetCtxParams)},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigSettableCtxParams<Family::kEd25519>)},
    {0, nullptr},
};

}  // namespace hsmd::proxy
