#include "proxy_provider/asym_cipher.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

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

namespace hsmd::proxy {
namespace {

// The premaster secret of TLS RSA key exchange.
constexpr size_t kTlsPremasterBytes = 48;

enum class Family { kRsa, kSm2 };

KeyKind FamilyKeyKind(Family family) {
  return family == Family::kRsa ? KeyKind::kRsa : KeyKind::kSm2;
}

class CipherContext {
 public:
  CipherContext(ProviderContext* provider, Family family)
      : provider_(provider), family_(family) {}

  ProviderContext* provider() const { return provider_; }

  absl::Status Init(bool decrypt, std::shared_ptr<Key> key,
                    const OSSL_PARAM* params) {
    if (key == nullptr) key = key_;  // Re-initialisation with the same key.
    if (key == nullptr || key->pkey() == nullptr) {
      return absl::InvalidArgumentError("no key given");
    }
    if (key->kind() != FamilyKeyKind(family_)) {
      const char* name = KeyKindName(FamilyKeyKind(family_));
      return UnsupportedError(absl::StrCat(name, " encryption needs an ", name,
                                           " key, not ", key->Describe()));
    }
    if (decrypt && !key->Has(OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) {
      return NoPrivateKeyError(absl::StrCat(
          "cannot decrypt with ", key->Describe(), ": it has no private key"));
    }
    decrypt_ = decrypt;
    key_ = std::move(key);
    shadow_.reset(EVP_PKEY_CTX_new_from_pkey(provider_->libctx(), key_->pkey(),
                                             kDefaultProviderQuery));
    if (shadow_ == nullptr) {
      return absl::InternalError("could not create a default-provider context");
    }
    // For an HSM key the shadow validates and reports parameters (and
    // encrypts); a software key decrypts in the shadow itself.
    int rc = (decrypt_ && !key_->is_hsm())
                 ? EVP_PKEY_decrypt_init_ex(shadow_.get(), params)
                 : EVP_PKEY_encrypt_init_ex(shadow_.get(), params);
    if (rc != 1) return UnsupportedError("encryption parameters rejected");
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Encrypt(unsigned char* out, size_t outsize,
                                 const unsigned char* in, size_t inlen) {
    if (shadow_ == nullptr || decrypt_) {
      return absl::FailedPreconditionError("not initialised for encryption");
    }
    size_t length = outsize;
    if (EVP_PKEY_encrypt(shadow_.get(), out, &length, in, inlen) != 1) {
      return UnsupportedError("encryption failed");
    }
    return length;
  }

  absl::StatusOr<size_t> Decrypt(unsigned char* out, size_t outsize,
                                 const unsigned char* in, size_t inlen) {
    if (shadow_ == nullptr || !decrypt_) {
      return absl::FailedPreconditionError("not initialised for decryption");
    }
    if (!key_->is_hsm()) {
      size_t length = outsize;
      if (EVP_PKEY_decrypt(shadow_.get(), out, &length, in, inlen) != 1) {
        return WithReason(absl::InvalidArgumentError(""),
                          Reason::kDecryptFailed);
      }
      return length;
    }
    if (family_ == Family::kSm2) return Sm2Decrypt(out, outsize, in, inlen);
    size_t modulus_bytes = static_cast<size_t>(EVP_PKEY_get_size(key_->pkey()));
    int pad = 0;
    OSSL_PARAM get[] = {
        OSSL_PARAM_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, &pad),
        OSSL_PARAM_END,
    };
    if (EVP_PKEY_CTX_get_params(shadow_.get(), get) != 1) {
      return absl::InternalError("could not read the RSA padding mode");
    }
    if (out == nullptr) {
      return pad == RSA_PKCS1_WITH_TLS_PADDING ? kTlsPremasterBytes
                                               : modulus_bytes;
    }
    std::string ciphertext(reinterpret_cast<const char*>(in), inlen);
    v1::DecryptionAlgorithm algorithm;
    switch (pad) {
      case RSA_PKCS1_PADDING:
        algorithm.mutable_rsa_pkcs1();
        break;
      case RSA_PKCS1_OAEP_PADDING: {
        ASSIGN_OR_RETURN(*algorithm.mutable_rsa_oaep(), OaepSettings());
        break;
      }
      case RSA_PKCS1_WITH_TLS_PADDING:
        return TlsDecrypt(out, outsize, ciphertext);
      case RSA_NO_PADDING:
        return UnsupportedError(
            "raw RSA decryption (no padding) is not available for HSM keys");
      default:
        return UnsupportedError(absl::StrCat("RSA padding mode ", pad,
                                             " is not available for HSM keys"));
    }
    return RemoteDecryptInto(out, outsize, algorithm, ciphertext);
  }

  absl::Status SetParams(const OSSL_PARAM* params) {
    if (params == nullptr || params[0].key == nullptr) return absl::OkStatus();
    if (shadow_ == nullptr) {
      return absl::FailedPreconditionError("cipher context not initialised");
    }
    if (EVP_PKEY_CTX_set_params(shadow_.get(), params) != 1) {
      return UnsupportedError("encryption parameters rejected");
    }
    return absl::OkStatus();
  }

  absl::Status GetParams(OSSL_PARAM* params) {
    if (shadow_ == nullptr) {
      return absl::FailedPreconditionError("cipher context not initialised");
    }
    if (EVP_PKEY_CTX_get_params(shadow_.get(), params) != 1) {
      return UnsupportedError("could not read encryption parameters");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<CipherContext>> Dup() const {
    auto copy = std::make_unique<CipherContext>(provider_, family_);
    copy->decrypt_ = decrypt_;
    copy->key_ = key_;
    if (shadow_ != nullptr) {
      copy->shadow_.reset(EVP_PKEY_CTX_dup(shadow_.get()));
      if (copy->shadow_ == nullptr) {
        return absl::InternalError("could not copy the cipher context");
      }
    }
    return copy;
  }

 private:
  // hsmd decrypts; the plaintext goes to `out` (at most `outsize` bytes).
  absl::StatusOr<size_t> RemoteDecryptInto(
      unsigned char* out, size_t outsize,
      const v1::DecryptionAlgorithm& algorithm, const std::string& ciphertext) {
    ASSIGN_OR_RETURN(
        std::string plaintext,
        RemoteDecrypt(*provider_, key_->hsm(), algorithm, ciphertext));
    if (plaintext.size() > outsize) {
      size_t needed = plaintext.size();
      OPENSSL_cleanse(plaintext.data(), plaintext.size());
      return BufferTooSmallError(needed, outsize);
    }
    std::memcpy(out, plaintext.data(), plaintext.size());
    size_t length = plaintext.size();
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return length;
  }

  // SM2 decryption of OpenSSL's ciphertext (DER C1 || C3 || C2), passed to
  // hsmd as it is.
  absl::StatusOr<size_t> Sm2Decrypt(unsigned char* out, size_t outsize,
                                    const unsigned char* in, size_t inlen) {
    char md[80] = "";
    OSSL_PARAM get[] = {
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_DIGEST, md, sizeof(md)),
        OSSL_PARAM_END,
    };
    if (EVP_PKEY_CTX_get_params(shadow_.get(), get) != 1) {
      return absl::InternalError("could not read the SM2 digest setting");
    }
    if (md[0] != '\0') {
      ASSIGN_OR_RETURN(Digest digest, provider_->LookupDigest(md));
      if (digest.hash != v1::HASH_ALGORITHM_SM3) {
        return UnsupportedError(absl::StrCat(
            "hsmd decrypts SM2 with SM3 (GB/T 32918.4), not ", digest.name));
      }
    }
    // The plaintext is shorter than the ciphertext (C1 and C3 come with it).
    if (out == nullptr) return inlen;
    v1::DecryptionAlgorithm algorithm;
    algorithm.mutable_sm2();
    return RemoteDecryptInto(
        out, outsize, algorithm,
        std::string(reinterpret_cast<const char*>(in), inlen));
  }

  absl::StatusOr<v1::RsaOaepDecryption> OaepSettings() {
    char md[80] = "";
    char mgf1[80] = "";
    void* label = nullptr;
    OSSL_PARAM get[] = {
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, md,
                               sizeof(md)),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, mgf1,
                               sizeof(mgf1)),
        OSSL_PARAM_octet_ptr(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, &label, 0),
        OSSL_PARAM_END,
    };
    if (EVP_PKEY_CTX_get_params(shadow_.get(), get) != 1) {
      return absl::InternalError("could not read the OAEP settings");
    }
    v1::RsaOaepDecryption oaep;
    // OpenSSL's default OAEP digest is SHA-1.
    ASSIGN_OR_RETURN(Digest digest,
                     provider_->LookupDigest(md[0] != '\0' ? md : "SHA1"));
    if (digest.hash == v1::HASH_ALGORITHM_UNSPECIFIED ||
        digest.hash == v1::HASH_ALGORITHM_MD5_SHA1) {
      return UnsupportedError(
          absl::StrCat("hsmd cannot do OAEP with ", digest.name));
    }
    oaep.set_hash(digest.hash);
    if (mgf1[0] != '\0') {
      ASSIGN_OR_RETURN(Digest mgf1_digest, provider_->LookupDigest(mgf1));
      if (mgf1_digest.hash == v1::HASH_ALGORITHM_UNSPECIFIED ||
          mgf1_digest.hash == v1::HASH_ALGORITHM_MD5_SHA1) {
        return UnsupportedError(
            absl::StrCat("hsmd cannot use ", mgf1_digest.name, " for MGF1"));
      }
      oaep.set_mgf1_hash(mgf1_digest.hash);
    } else {
      oaep.set_mgf1_hash(digest.hash);
    }
    if (label != nullptr && get[2].return_size > 0) {
      oaep.set_label(
          std::string(static_cast<const char*>(label), get[2].return_size));
    }
    return oaep;
  }

  // TLS 1.0-1.2 RSA key exchange: on any failure, return a random premaster
  // secret instead of an error (the handshake then fails at Finished).
  absl::StatusOr<size_t> TlsDecrypt(unsigned char* out, size_t outsize,
                                    const std::string& ciphertext) {
    if (outsize < kTlsPremasterBytes) {
      return BufferTooSmallError(kTlsPremasterBytes, outsize);
    }
    unsigned int client_version = 0;
    unsigned int alt_version = 0;
    OSSL_PARAM get[] = {
        OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION,
                        &client_version),
        OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION,
                        &alt_version),
        OSSL_PARAM_END,
    };
    if (EVP_PKEY_CTX_get_params(shadow_.get(), get) != 1 ||
        client_version == 0) {
      return absl::InvalidArgumentError("TLS padding needs the client version");
    }
    unsigned char fallback[kTlsPremasterBytes];
    if (RAND_bytes_ex(provider_->libctx(), fallback, sizeof(fallback), 0) !=
        1) {
      return absl::InternalError("no random bytes for the TLS fallback");
    }
    fallback[0] = static_cast<unsigned char>(client_version >> 8);
    fallback[1] = static_cast<unsigned char>(client_version & 0xff);

    v1::DecryptionAlgorithm algorithm;
    algorithm.mutable_rsa_pkcs1();
    absl::StatusOr<std::string> plaintext =
        RemoteDecrypt(*provider_, key_->hsm(), algorithm, ciphertext);
    if (!plaintext.ok() &&
        ReasonOf(plaintext.status()) != Reason::kDecryptFailed) {
      // hsmd unreachable, key gone, ...: a real error, not a padding one.
      return plaintext.status();
    }
    bool good = plaintext.ok() && plaintext->size() == kTlsPremasterBytes;
    if (good) {
      unsigned int version =
          (static_cast<unsigned char>((*plaintext)[0]) << 8) |
          static_cast<unsigned char>((*plaintext)[1]);
      good = version == client_version ||
             (alt_version != 0 && version == alt_version);
    }
    if (good) {
      std::memcpy(out, plaintext->data(), kTlsPremasterBytes);
    } else {
      std::memcpy(out, fallback, kTlsPremasterBytes);
    }
    if (plaintext.ok()) OPENSSL_cleanse(plaintext->data(), plaintext->size());
    OPENSSL_cleanse(fallback, sizeof(fallback));
    return kTlsPremasterBytes;
  }

  ProviderContext* const provider_;
  const Family family_;
  bool decrypt_ = false;
  std::shared_ptr<Key> key_;
  EvpPkeyCtxPtr shadow_;
};

// ---------------------------------------------------------------------------
// The C edge.

CipherContext* Ctx(void* ctx) { return static_cast<CipherContext*>(ctx); }

template <Family kFamily>
void* CipherNewCtx(void* provctx) {
  return new CipherContext(static_cast<ProviderContext*>(provctx), kFamily);
}

void CipherFreeCtx(void* ctx) { delete Ctx(ctx); }

void* CipherDupCtx(void* ctx) {
  absl::StatusOr<std::unique_ptr<CipherContext>> copy = Ctx(ctx)->Dup();
  if (!copy.ok()) {
    HSMPROXY_RAISE(Ctx(ctx)->provider(), copy.status());
    return nullptr;
  }
  return copy->release();
}

int CipherEncryptInit(void* ctx, void* provkey, const OSSL_PARAM params[]) {
  return Report(Ctx(ctx),
                Ctx(ctx)->Init(false, KeyFromKeydata(provkey), params));
}

int CipherEncrypt(void* ctx, unsigned char* out, size_t* outlen, size_t outsize,
                  const unsigned char* in, size_t inlen) {
  return ReportSize(Ctx(ctx), Ctx(ctx)->Encrypt(out, outsize, in, inlen),
                    outlen);
}

int CipherDecryptInit(void* ctx, void* provkey, const OSSL_PARAM params[]) {
  return Report(Ctx(ctx),
                Ctx(ctx)->Init(true, KeyFromKeydata(provkey), params));
}

int CipherDecrypt(void* ctx, unsigned char* out, size_t* outlen, size_t outsize,
                  const unsigned char* in, size_t inlen) {
  return ReportSize(Ctx(ctx), Ctx(ctx)->Decrypt(out, outsize, in, inlen),
                    outlen);
}

int CipherGetCtxParams(void* ctx, OSSL_PARAM params[]) {
  return Report(Ctx(ctx), Ctx(ctx)->GetParams(params));
}

int CipherSetCtxParams(void* ctx, const OSSL_PARAM params[]) {
  return Report(Ctx(ctx), Ctx(ctx)->SetParams(params));
}

EVP_ASYM_CIPHER* DefaultCipher(Family family, void* provctx) {
  auto* provider = static_cast<ProviderContext*>(provctx);
  return family == Family::kRsa ? provider->default_rsa_cipher()
                                : provider->default_sm2_cipher();
}

template <Family kFamily>
const OSSL_PARAM* CipherGettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_ASYM_CIPHER_gettable_ctx_params(DefaultCipher(kFamily, provctx));
}

template <Family kFamily>
const OSSL_PARAM* CipherSettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_ASYM_CIPHER_settable_ctx_params(DefaultCipher(kFamily, provctx));
}

}  // namespace

#define HSMPROXY_ASYM_CIPHER_TABLE(name, family)                             \
  const OSSL_DISPATCH name[] = {                                             \
      {OSSL_FUNC_ASYM_CIPHER_NEWCTX,                                         \
       HSMPROXY_DISPATCH_FN(&CipherNewCtx<family>)},                         \
      {OSSL_FUNC_ASYM_CIPHER_FREECTX, HSMPROXY_DISPATCH_FN(&CipherFreeCtx)}, \
      {OSSL_FUNC_ASYM_CIPHER_DUPCTX, HSMPROXY_DISPATCH_FN(&CipherDupCtx)},   \
      {OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT,                                   \
       HSMPROXY_DISPATCH_FN(&CipherEncryptInit)},                            \
      {OSSL_FUNC_ASYM_CIPHER_ENCRYPT, HSMPROXY_DISPATCH_FN(&CipherEncrypt)}, \
      {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT,                                   \
       HSMPROXY_DISPATCH_FN(&CipherDecryptInit)},                            \
      {OSSL_FUNC_ASYM_CIPHER_DECRYPT, HSMPROXY_DISPATCH_FN(&CipherDecrypt)}, \
      {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS,                                 \
       HSMPROXY_DISPATCH_FN(&CipherGetCtxParams)},                           \
      {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS,                            \
       HSMPROXY_DISPATCH_FN(&CipherGettableCtxParams<family>)},              \
      {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS,                                 \
       HSMPROXY_DISPATCH_FN(&CipherSetCtxParams)},                           \
      {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS,                            \
       HSMPROXY_DISPATCH_FN(&CipherSettableCtxParams<family>)},              \
      {0, nullptr},                                                          \
  }

HSMPROXY_ASYM_CIPHER_TABLE(kRsaAsymCipherFunctions, Family::kRsa);
HSMPROXY_ASYM_CIPHER_TABLE(kSm2AsymCipherFunctions, Family::kSm2);

}  // namespace hsmd::proxy
