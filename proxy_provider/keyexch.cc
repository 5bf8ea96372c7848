#include "proxy_provider/keyexch.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include <algorithm>
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
#include "proxy_provider/provider_context.h"
#include "proxy_provider/remote.h"
#include "proxy_provider/report.h"

namespace hsmd::proxy {
namespace {

using EvpKdfPtr = OpenSslPtr<EVP_KDF, EVP_KDF_free>;
using EvpKdfCtxPtr = OpenSslPtr<EVP_KDF_CTX, EVP_KDF_CTX_free>;

// The KDF settings of the shadow context.
struct KdfSettings {
  bool x963 = false;
  std::string digest;
  size_t outlen = 0;
  std::string ukm;
};

class ExchangeContext {
 public:
  explicit ExchangeContext(ProviderContext* provider) : provider_(provider) {}

  ProviderContext* provider() const { return provider_; }

  absl::Status Init(std::shared_ptr<Key> key, const OSSL_PARAM* params) {
    if (key == nullptr) key = key_;  // Re-initialisation with the same key.
    if (key == nullptr || key->pkey() == nullptr) {
      return absl::InvalidArgumentError("no key given");
    }
    if (key->kind() != KeyKind::kEc) {
      return UnsupportedError(
          absl::StrCat("ECDH needs an EC key, not ", key->Describe()));
    }
    if (!key->Has(OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) {
      return NoPrivateKeyError(absl::StrCat(
          "cannot derive with ", key->Describe(), ": it has no private key"));
    }
    key_ = std::move(key);
    peer_.reset();
    shadow_.reset(EVP_PKEY_CTX_new_from_pkey(provider_->libctx(), key_->pkey(),
                                             kDefaultProviderQuery));
    if (shadow_ == nullptr) {
      return absl::InternalError("could not create a default-provider context");
    }
    if (EVP_PKEY_derive_init_ex(shadow_.get(), params) != 1) {
      return UnsupportedError("ECDH parameters rejected");
    }
    return absl::OkStatus();
  }

  absl::Status SetPeer(std::shared_ptr<Key> peer) {
    if (shadow_ == nullptr) {
      return absl::FailedPreconditionError("ECDH context not initialised");
    }
    if (peer == nullptr || peer->pkey() == nullptr) {
      return absl::InvalidArgumentError("no peer key given");
    }
    if (peer->kind() != KeyKind::kEc) {
      return UnsupportedError(absl::StrCat(
          "the ECDH peer key must be an EC key, not ", peer->Describe()));
    }
    // Checks the point and that both keys are on the same curve.
    if (EVP_PKEY_derive_set_peer(shadow_.get(), peer->pkey()) != 1) {
      return WithReason(absl::InvalidArgumentError(absl::StrCat(
                            "the peer key does not fit ", key_->Describe(),
                            " (another curve, or not a valid point)")),
                        Reason::kUnsupported);
    }
    peer_ = std::move(peer);
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Derive(unsigned char* out, size_t outsize) {
    if (shadow_ == nullptr) {
      return absl::FailedPreconditionError("ECDH context not initialised");
    }
    if (peer_ == nullptr) {
      return absl::FailedPreconditionError("no ECDH peer key set");
    }
    if (!key_->is_hsm()) {
      size_t length = outsize;
      if (EVP_PKEY_derive(shadow_.get(), out, &length) != 1) {
        return UnsupportedError("ECDH derivation failed");
      }
      return length;
    }
    ASSIGN_OR_RETURN(KdfSettings kdf, ReadKdfSettings());
    const size_t field_bytes =
        static_cast<size_t>((EVP_PKEY_get_bits(key_->pkey()) + 7) / 8);
    if (out == nullptr) return kdf.x963 ? kdf.outlen : field_bytes;
    if (kdf.x963 && outsize < kdf.outlen) {
      return BufferTooSmallError(kdf.outlen, outsize);
    }
    ASSIGN_OR_RETURN(std::string peer_spki, PeerSpki());
    ASSIGN_OR_RETURN(std::string secret,
                     RemoteDerive(*provider_, key_->hsm(), peer_spki));
    absl::StatusOr<size_t> result;
    if (kdf.x963) {
      result = X963Kdf(kdf, secret, out);
    } else {
      // As OpenSSL's plain ECDH: a shorter buffer gets the leading bytes.
      const size_t length = std::min(outsize, secret.size());
      std::memcpy(out, secret.data(), length);
      result = length;
    }
    OPENSSL_cleanse(secret.data(), secret.size());
    return result;
  }

  absl::Status SetParams(const OSSL_PARAM* params) {
    if (params == nullptr || params[0].key == nullptr) return absl::OkStatus();
    if (shadow_ == nullptr) {
      return absl::FailedPreconditionError("ECDH context not initialised");
    }
    if (EVP_PKEY_CTX_set_params(shadow_.get(), params) != 1) {
      return UnsupportedError("ECDH parameters rejected");
    }
    if (key_->is_hsm()) {
      // Reject a KDF that cannot be honoured now rather than at derive time
      // (callers set type, digest and length one call at a time).
      ASSIGN_OR_RETURN(KdfSettings kdf, ReadKdfSettings(/*complete=*/false));
      (void)kdf;
    }
    return absl::OkStatus();
  }

  absl::Status GetParams(OSSL_PARAM* params) {
    if (shadow_ == nullptr) {
      return absl::FailedPreconditionError("ECDH context not initialised");
    }
    if (EVP_PKEY_CTX_get_params(shadow_.get(), params) != 1) {
      return UnsupportedError("could not read ECDH parameters");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<ExchangeContext>> Dup() const {
    auto copy = std::make_unique<ExchangeContext>(provider_);
    copy->key_ = key_;
    copy->peer_ = peer_;
    if (shadow_ != nullptr) {
      copy->shadow_.reset(EVP_PKEY_CTX_dup(shadow_.get()));
      if (copy->shadow_ == nullptr) {
        return absl::InternalError("could not copy the ECDH context");
      }
    }
    return copy;
  }

 private:
  // With `complete` false only the KDF type is checked.
  absl::StatusOr<KdfSettings> ReadKdfSettings(bool complete = true) {
    char type[32] = "";
    char digest[80] = "";
    size_t outlen = 0;
    void* ukm = nullptr;
    OSSL_PARAM get[] = {
        OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_TYPE, type,
                               sizeof(type)),
        OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_DIGEST, digest,
                               sizeof(digest)),
        OSSL_PARAM_size_t(OSSL_EXCHANGE_PARAM_KDF_OUTLEN, &outlen),
        OSSL_PARAM_octet_ptr(OSSL_EXCHANGE_PARAM_KDF_UKM, &ukm, 0),
        OSSL_PARAM_END,
    };
    if (EVP_PKEY_CTX_get_params(shadow_.get(), get) != 1) {
      return absl::InternalError("could not read the ECDH KDF settings");
    }
    KdfSettings kdf;
    if (type[0] == '\0') return kdf;
    if (std::strcmp(type, OSSL_KDF_NAME_X963KDF) != 0) {
      return UnsupportedError(
          absl::StrCat("ECDH KDF \"", type,
                       "\" is not available with HSM keys (none or X963KDF)"));
    }
    if (!complete) return kdf;
    if (digest[0] == '\0') {
      return UnsupportedError("the X9.63 KDF needs a digest (kdf-digest)");
    }
    if (outlen == 0) {
      return UnsupportedError("the X9.63 KDF needs an output length");
    }
    kdf.x963 = true;
    kdf.digest = digest;
    kdf.outlen = outlen;
    if (ukm != nullptr && get[3].return_size > 0) {
      kdf.ukm.assign(static_cast<const char*>(ukm), get[3].return_size);
    }
    return kdf;
  }

  // The X9.63 KDF over the HSM's shared secret, into `out` (kdf.outlen).
  absl::StatusOr<size_t> X963Kdf(const KdfSettings& kdf, std::string& secret,
                                 unsigned char* out) {
    EvpKdfPtr algorithm(EVP_KDF_fetch(
        provider_->libctx(), OSSL_KDF_NAME_X963KDF, kDefaultProviderQuery));
    EvpKdfCtxPtr ctx(algorithm == nullptr ? nullptr
                                          : EVP_KDF_CTX_new(algorithm.get()));
    if (ctx == nullptr) {
      return absl::InternalError("the default provider has no X963KDF");
    }
    std::string digest = kdf.digest;
    std::string ukm = kdf.ukm;
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, digest.data(), 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, secret.data(),
                                secret.size()),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, ukm.data(), ukm.size()),
        OSSL_PARAM_END,
    };
    if (EVP_KDF_derive(ctx.get(), out, kdf.outlen, params) != 1) {
      return UnsupportedError("the X9.63 KDF failed");
    }
    return kdf.outlen;
  }

  absl::StatusOr<std::string> PeerSpki() const {
    unsigned char* der = nullptr;
    const int length = i2d_PUBKEY(peer_->pkey(), &der);
    if (length <= 0) {
      return absl::InternalError("could not encode the ECDH peer key");
    }
    std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(length));
    OPENSSL_free(der);
    return spki;
  }

  ProviderContext* const provider_;
  std::shared_ptr<Key> key_;
  std::shared_ptr<Key> peer_;
  EvpPkeyCtxPtr shadow_;
};

// ---------------------------------------------------------------------------
// The C edge.

ExchangeContext* Ctx(void* ctx) { return static_cast<ExchangeContext*>(ctx); }

void* ExchNewCtx(void* provctx) {
  return new ExchangeContext(static_cast<ProviderContext*>(provctx));
}

void ExchFreeCtx(void* ctx) { delete Ctx(ctx); }

void* ExchDupCtx(void* ctx) {
  absl::StatusOr<std::unique_ptr<ExchangeContext>> copy = Ctx(ctx)->Dup();
  if (!copy.ok()) {
    HSMPROXY_RAISE(Ctx(ctx)->provider(), copy.status());
    return nullptr;
  }
  return copy->release();
}

int ExchInit(void* ctx, void* provkey, const OSSL_PARAM params[]) {
  return Report(Ctx(ctx), Ctx(ctx)->Init(KeyFromKeydata(provkey), params));
}

int ExchSetPeer(void* ctx, void* provkey) {
  return Report(Ctx(ctx), Ctx(ctx)->SetPeer(KeyFromKeydata(provkey)));
}

int ExchDerive(void* ctx, unsigned char* secret, size_t* secretlen,
               size_t outlen) {
  absl::StatusOr<size_t> result = Ctx(ctx)->Derive(secret, outlen);
  if (!result.ok()) return Report(Ctx(ctx), result.status());
  *secretlen = *result;
  return 1;
}

int ExchGetCtxParams(void* ctx, OSSL_PARAM params[]) {
  return Report(Ctx(ctx), Ctx(ctx)->GetParams(params));
}

int ExchSetCtxParams(void* ctx, const OSSL_PARAM params[]) {
  return Report(Ctx(ctx), Ctx(ctx)->SetParams(params));
}

const OSSL_PARAM* ExchGettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_KEYEXCH_gettable_ctx_params(
      static_cast<ProviderContext*>(provctx)->default_ecdh_exchange());
}

const OSSL_PARAM* ExchSettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_KEYEXCH_settable_ctx_params(
      static_cast<ProviderContext*>(provctx)->default_ecdh_exchange());
}

}  // namespace

const OSSL_DISPATCH kEcdhKeyExchangeFunctions[] = {
    {OSSL_FUNC_KEYEXCH_NEWCTX, HSMPROXY_DISPATCH_FN(&ExchNewCtx)},
    {OSSL_FUNC_KEYEXCH_FREECTX, HSMPROXY_DISPATCH_FN(&ExchFreeCtx)},
    {OSSL_FUNC_KEYEXCH_DUPCTX, HSMPROXY_DISPATCH_FN(&ExchDupCtx)},
    {OSSL_FUNC_KEYEXCH_INIT, HSMPROXY_DISPATCH_FN(&ExchInit)},
    {OSSL_FUNC_KEYEXCH_SET_PEER, HSMPROXY_DISPATCH_FN(&ExchSetPeer)},
    {OSSL_FUNC_KEYEXCH_DERIVE, HSMPROXY_DISPATCH_FN(&ExchDerive)},
    {OSSL_FUNC_KEYEXCH_GET_CTX_PARAMS, HSMPROXY_DISPATCH_FN(&ExchGetCtxParams)},
    {OSSL_FUNC_KEYEXCH_GETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&ExchGettableCtxParams)},
    {OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS, HSMPROXY_DISPATCH_FN(&ExchSetCtxParams)},
    {OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&ExchSettableCtxParams)},
    {0, nullptr},
};

}  // namespace hsmd::proxy
