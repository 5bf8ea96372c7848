#include "proxy_provider/keymgmt.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/errors.h"
#include "proxy_provider/key.h"
#include "proxy_provider/provider_context.h"

namespace hsmd::proxy {
namespace {

using OsslParamPtr = std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)>;

// EVP_PKEY_fromdata / EVP_PKEY_todata want one of their three selections.
int EvpSelection(int selection) {
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
    return EVP_PKEY_KEYPAIR;
  }
  if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
    return EVP_PKEY_PUBLIC_KEY;
  }
  return EVP_PKEY_KEY_PARAMETERS;
}

// A new default-provider key of `kind` from `params`.
absl::StatusOr<EvpPkeyPtr> FromData(ProviderContext& provider, KeyKind kind,
                                    int selection, const OSSL_PARAM* params) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(
      provider.libctx(), KeyKindName(kind), kDefaultProviderQuery));
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EvpSelection(selection),
                        const_cast<OSSL_PARAM*>(params)) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the default provider rejected the ", KeyKindName(kind), " key data"));
  }
  return EvpPkeyPtr(pkey);
}

absl::Status Import(Key& key, int selection, const OSSL_PARAM* params) {
  if (key.is_hsm()) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat(
                          "cannot import key material into ", key.Describe())),
                      Reason::kInvalidArgument);
  }
  ProviderContext& provider = *key.provider();
  OsslParamPtr merged(nullptr, &OSSL_PARAM_free);
  if (key.pkey() != nullptr) {
    // Importing into a key that already has parts (e.g. a public key into
    // a parameters-only EC key): start from what it has.
    OSSL_PARAM* existing = nullptr;
    if (EVP_PKEY_todata(key.pkey(), EVP_PKEY_KEYPAIR, &existing) <= 0) {
      return absl::InternalError("could not read the existing key");
    }
    OsslParamPtr existing_owner(existing, &OSSL_PARAM_free);
    merged.reset(OSSL_PARAM_merge(existing, params));
    if (merged == nullptr)
      return absl::InternalError("OSSL_PARAM_merge failed");
    params = merged.get();
    selection |= OSSL_KEYMGMT_SELECT_ALL;
  }
  ASSIGN_OR_RETURN(EvpPkeyPtr pkey,
                   FromData(provider, key.kind(), selection, params));
  key.ResetSoftware(std::move(pkey));
  return absl::OkStatus();
}

// A software key with only the `selection` parts of `key`.
absl::StatusOr<std::shared_ptr<Key>> PartialCopy(const Key& key,
                                                 int selection) {
  OSSL_PARAM* data = nullptr;
  if (EVP_PKEY_todata(key.pkey(), EvpSelection(selection), &data) <= 0) {
    return absl::InternalError("could not read the key's parts");
  }
  OsslParamPtr owner(data, &OSSL_PARAM_free);
  ASSIGN_OR_RETURN(EvpPkeyPtr pkey, FromData(*key.provider(), key.kind(),
                                             EvpSelection(selection), data));
  return Key::FromSoftware(key.provider(), key.kind(), std::move(pkey));
}

absl::StatusOr<std::shared_ptr<Key>> Dup(const Key& key, int selection) {
  if (key.pkey() == nullptr) return key.Duplicate();
  // A full copy when the private part is wanted (or nothing is missing);
  // otherwise only the selected public parts, so a "parameters only" copy
  // of an HSM key does not carry the HSM reference along.
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ||
      (!key.is_hsm() && (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) ==
                            OSSL_KEYMGMT_SELECT_KEYPAIR)) {
    return key.Duplicate();
  }
  return PartialCopy(key, selection);
}

// EC and SM2 keys carry a curve.
bool HasDomainParameters(KeyKind kind) {
  return kind == KeyKind::kEc || kind == KeyKind::kSm2;
}

bool Match(const Key& a, const Key& b, int selection) {
  if (a.kind() != b.kind()) return false;
  if (a.pkey() == nullptr || b.pkey() == nullptr) return false;
  if (a.is_hsm() && b.is_hsm() && a.hsm().key_id == b.hsm().key_id) {
    return true;
  }
  ERR_set_mark();
  bool ok = true;
  if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0) {
    // Public parts decide: an HSM key's private half is the one matching
    // its public key, and a software key pair's public half follows from
    // its private key.
    ok = EVP_PKEY_eq(a.pkey(), b.pkey()) == 1;
  } else if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0 &&
             HasDomainParameters(a.kind())) {
    ok = EVP_PKEY_parameters_eq(a.pkey(), b.pkey()) == 1;
  }
  ERR_pop_to_mark();
  return ok;
}

bool Validate(const Key& key, int selection, int checktype) {
  if (key.pkey() == nullptr) return false;
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(
      key.provider()->libctx(), key.pkey(), kDefaultProviderQuery));
  if (ctx == nullptr) return false;
  ERR_set_mark();
  bool ok = true;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !key.is_hsm()) {
    // The HSM vouches for its own private keys.
    ok = (checktype == OSSL_KEYMGMT_VALIDATE_QUICK_CHECK
              ? EVP_PKEY_private_check(ctx.get())
              : EVP_PKEY_pairwise_check(ctx.get())) == 1;
  }
  if (ok && (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
    ok = (checktype == OSSL_KEYMGMT_VALIDATE_QUICK_CHECK
              ? EVP_PKEY_public_check_quick(ctx.get())
              : EVP_PKEY_public_check(ctx.get())) == 1;
  }
  if (ok && (selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0 &&
      HasDomainParameters(key.kind())) {
    ok = (checktype == OSSL_KEYMGMT_VALIDATE_QUICK_CHECK
              ? EVP_PKEY_param_check_quick(ctx.get())
              : EVP_PKEY_param_check(ctx.get())) == 1;
  }
  if (ok) {
    ERR_pop_to_mark();
  } else {
    ERR_clear_last_mark();
  }
  return ok;
}

// ---------------------------------------------------------------------------
// Key generation (software keys only: HSM keys are made with hsmctl).

class GenContext {
 public:
  static absl::StatusOr<std::unique_ptr<GenContext>> New(
      ProviderContext* provider, KeyKind kind, int selection,
      const OSSL_PARAM* params) {
    std::unique_ptr<GenContext> gen(new GenContext(provider, kind, selection));
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(
        provider->libctx(), KeyKindName(kind), kDefaultProviderQuery));
    if (ctx == nullptr) {
      return absl::InternalError("could not create a key generation context");
    }
    RETURN_IF_ERROR(gen->Start(std::move(ctx)));
    RETURN_IF_ERROR(gen->SetParams(params));
    return gen;
  }

  absl::Status SetParams(const OSSL_PARAM* params) {
    if (params == nullptr || params[0].key == nullptr) {
      return absl::OkStatus();
    }
    if (EVP_PKEY_CTX_set_params(ctx_.get(), params) <= 0) {
      return absl::InvalidArgumentError(
          "the default provider rejected the key generation parameters");
    }
    // Kept, so a template set later (which needs a new context) keeps them.
    OSSL_PARAM* merged = OSSL_PARAM_merge(saved_.get(), params);
    if (merged == nullptr)
      return absl::InternalError("OSSL_PARAM_merge failed");
    OSSL_PARAM* copy = OSSL_PARAM_dup(merged);
    OSSL_PARAM_free(merged);
    if (copy == nullptr) return absl::InternalError("OSSL_PARAM_dup failed");
    saved_.reset(copy);
    return absl::OkStatus();
  }

  absl::Status SetTemplate(const Key& templ) {
    if (templ.pkey() == nullptr) return absl::OkStatus();
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(
        provider_->libctx(), templ.pkey(), kDefaultProviderQuery));
    if (ctx == nullptr) {
      return absl::InternalError("could not create a key generation context");
    }
    RETURN_IF_ERROR(Start(std::move(ctx)));
    if (saved_ != nullptr &&
        EVP_PKEY_CTX_set_params(ctx_.get(), saved_.get()) <= 0) {
      return absl::InvalidArgumentError(
          "the default provider rejected the key generation parameters");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<Key>> Generate() {
    EVP_PKEY* pkey = nullptr;
    if (EVP_PKEY_generate(ctx_.get(), &pkey) <= 0) {
      return absl::InternalError(
          absl::StrCat("the default provider could not generate the ",
                       KeyKindName(kind_), " key"));
    }
    HSMPROXY_DEBUG_LOG("generated a software ", KeyKindName(kind_),
                       " key (default provider)");
    return Key::FromSoftware(provider_, kind_, EvpPkeyPtr(pkey));
  }

 private:
  GenContext(ProviderContext* provider, KeyKind kind, int selection)
      : provider_(provider), kind_(kind), selection_(selection) {}

  absl::Status Start(EvpPkeyCtxPtr ctx) {
    int rc = (selection_ & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0
                 ? EVP_PKEY_keygen_init(ctx.get())
                 : EVP_PKEY_paramgen_init(ctx.get());
    if (rc <= 0) {
      return UnsupportedError(absl::StrCat(
          "the default provider cannot generate ", KeyKindName(kind_),
          (selection_ & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0 ? " keys"
                                                          : " parameters"));
    }
    ctx_ = std::move(ctx);
    return absl::OkStatus();
  }

  ProviderContext* const provider_;
  const KeyKind kind_;
  const int selection_;
  EvpPkeyCtxPtr ctx_;
  OsslParamPtr saved_{nullptr, &OSSL_PARAM_free};
};

// ---------------------------------------------------------------------------
// Parameter tables for import/export discovery (advisory in OpenSSL).

const OSSL_PARAM kRsaTypes[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_D, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR1, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR2, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT1, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT2, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_COEFFICIENT1, nullptr, 0),
    OSSL_PARAM_END,
};

const OSSL_PARAM kRsaPssTypes[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_D, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR1, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR2, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT1, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT2, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_COEFFICIENT1, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_RSA_MGF1_DIGEST, nullptr, 0),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_RSA_PSS_SALTLEN, nullptr),
    OSSL_PARAM_END,
};

const OSSL_PARAM kEcTypes[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr,
                           0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_PRIV_KEY, nullptr, 0),
    OSSL_PARAM_END,
};

const OSSL_PARAM kEd25519Types[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, nullptr, 0),
    OSSL_PARAM_END,
};

// ---------------------------------------------------------------------------
// The C edge.

ProviderContext* Provider(void* provctx) {
  return static_cast<ProviderContext*>(provctx);
}

KeyHandle* Handle(const void* keydata) {
  return static_cast<KeyHandle*>(const_cast<void*>(keydata));
}

template <KeyKind kKind>
void* KmNew(void* provctx) {
  return new KeyHandle(Key::NewEmpty(Provider(provctx), kKind));
}

void KmFree(void* keydata) { delete Handle(keydata); }

template <KeyKind kKind>
void* KmLoad(const void* reference, size_t reference_size) {
  const KeyHandle* source = KeyHandleFromReference(reference, reference_size);
  if (source == nullptr || *source == nullptr || (*source)->kind() != kKind) {
    // Not a reference our store or decoder made for this key type.
    return nullptr;
  }
  HSMPROXY_DEBUG_LOG("loaded ", (*source)->Describe());
  return new KeyHandle(*source);
}

int KmHas(const void* keydata, int selection) {
  const KeyHandle* handle = Handle(keydata);
  return handle != nullptr && (*handle)->Has(selection) ? 1 : 0;
}

int KmValidate(const void* keydata, int selection, int checktype) {
  const KeyHandle* handle = Handle(keydata);
  return handle != nullptr && Validate(**handle, selection, checktype) ? 1 : 0;
}

int KmMatch(const void* keydata1, const void* keydata2, int selection) {
  const KeyHandle* a = Handle(keydata1);
  const KeyHandle* b = Handle(keydata2);
  if (a == nullptr || b == nullptr) return 0;
  bool match = Match(**a, **b, selection);
  HSMPROXY_DEBUG_LOG("match ", (*a)->Describe(), " with ", (*b)->Describe(),
                     ": ", match ? "yes" : "no");
  return match ? 1 : 0;
}

int KmImport(void* keydata, int selection, const OSSL_PARAM params[]) {
  KeyHandle* handle = Handle(keydata);
  if (handle == nullptr) return 0;
  Key& key = **handle;
  absl::Status status = Import(key, selection, params);
  if (!status.ok()) {
    // Not raised: OpenSSL tries imports while probing where a key can go,
    // and a refusal there is normal.
    HSMPROXY_DEBUG_LOG("import refused: ", status.message());
    return 0;
  }
  return 1;
}

template <KeyKind kKind>
const OSSL_PARAM* KmTypes(int /*selection*/) {
  switch (kKind) {
    case KeyKind::kRsa:
      return kRsaTypes;
    case KeyKind::kRsaPss:
      return kRsaPssTypes;
    case KeyKind::kEc:
    case KeyKind::kSm2:
      return kEcTypes;
    case KeyKind::kEd25519:
      return kEd25519Types;
  }
  return kRsaTypes;
}

int KmExport(void* keydata, int selection, OSSL_CALLBACK* param_cb,
             void* cbarg) {
  KeyHandle* handle = Handle(keydata);
  if (handle == nullptr || (*handle)->pkey() == nullptr) return 0;
  const Key& key = **handle;
  if (key.is_hsm()) {
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
      // The private key stays in the HSM. OpenSSL asks for everything when
      // it tries to move a key to another provider; refusing makes it run
      // the operation in hsmproxy instead. Not an error worth raising.
      HSMPROXY_DEBUG_LOG("refused to export the private part of ",
                         key.Describe());
      return 0;
    }
  }
  return EVP_PKEY_export(key.pkey(), selection, param_cb, cbarg) == 1 ? 1 : 0;
}

int KmGetParams(void* keydata, OSSL_PARAM params[]) {
  KeyHandle* handle = Handle(keydata);
  if (handle == nullptr) return 0;
  if ((*handle)->pkey() == nullptr) return 1;
  return EVP_PKEY_get_params((*handle)->pkey(), params) == 1 ? 1 : 0;
}

template <KeyKind kKind>
const OSSL_PARAM* KmGettableParams(void* provctx) {
  return EVP_KEYMGMT_gettable_params(Provider(provctx)->default_keymgmt(kKind));
}

int KmSetParams(void* keydata, const OSSL_PARAM params[]) {
  KeyHandle* handle = Handle(keydata);
  if (handle == nullptr) return 0;
  Key& key = **handle;
  if (params == nullptr || params[0].key == nullptr) return 1;
  if (key.is_hsm() || key.pkey() == nullptr) {
    HSMPROXY_RAISE(
        key.provider(),
        WithReason(absl::FailedPreconditionError(absl::StrCat(
                       "cannot change parameters of ", key.Describe())),
                   Reason::kInvalidArgument));
    return 0;
  }
  if (EVP_PKEY_set_params(key.pkey(), const_cast<OSSL_PARAM*>(params)) != 1) {
    return 0;
  }
  key.RefreshComponents();
  return 1;
}

template <KeyKind kKind>
const OSSL_PARAM* KmSettableParams(void* provctx) {
  return EVP_KEYMGMT_settable_params(Provider(provctx)->default_keymgmt(kKind));
}

template <KeyKind kKind>
const char* KmQueryOperationName(int operation_id) {
  switch (operation_id) {
    case OSSL_OP_SIGNATURE:
      switch (kKind) {
        case KeyKind::kRsa:
        case KeyKind::kRsaPss:
          return kRsaName;
        case KeyKind::kEc:
          return "ECDSA";
        case KeyKind::kEd25519:
          return kEd25519Name;
        case KeyKind::kSm2:
          return kSm2Name;
      }
      return nullptr;
    case OSSL_OP_ASYM_CIPHER:
      if (kKind == KeyKind::kRsa) return kRsaName;
      return kKind == KeyKind::kSm2 ? kSm2Name : nullptr;
    case OSSL_OP_KEYEXCH:
      return kKind == KeyKind::kEc ? "ECDH" : nullptr;
    default:
      return nullptr;
  }
}

void* KmDup(const void* keydata, int selection) {
  const KeyHandle* handle = Handle(keydata);
  if (handle == nullptr) return nullptr;
  absl::StatusOr<std::shared_ptr<Key>> copy = Dup(**handle, selection);
  if (!copy.ok()) {
    HSMPROXY_RAISE((*handle)->provider(), copy.status());
    return nullptr;
  }
  return new KeyHandle(std::move(*copy));
}

template <KeyKind kKind>
void* KmGenInit(void* provctx, int selection, const OSSL_PARAM params[]) {
  absl::StatusOr<std::unique_ptr<GenContext>> gen =
      GenContext::New(Provider(provctx), kKind, selection, params);
  if (!gen.ok()) {
    HSMPROXY_RAISE(Provider(provctx), gen.status());
    return nullptr;
  }
  return gen->release();
}

int KmGenSetTemplate(void* genctx, void* templ) {
  auto* gen = static_cast<GenContext*>(genctx);
  KeyHandle* handle = Handle(templ);
  if (gen == nullptr || handle == nullptr) return 0;
  absl::Status status = gen->SetTemplate(**handle);
  if (!status.ok()) {
    HSMPROXY_RAISE((*handle)->provider(), status);
    return 0;
  }
  return 1;
}

int KmGenSetParams(void* genctx, const OSSL_PARAM params[]) {
  auto* gen = static_cast<GenContext*>(genctx);
  if (gen == nullptr) return 0;
  // The default provider raised its own error if it refused.
  return gen->SetParams(params).ok() ? 1 : 0;
}

template <KeyKind kKind>
const OSSL_PARAM* KmGenSettableParams(void* /*genctx*/, void* provctx) {
  return EVP_KEYMGMT_gen_settable_params(
      Provider(provctx)->default_keymgmt(kKind));
}

void* KmGen(void* genctx, OSSL_CALLBACK* /*cb*/, void* /*cbarg*/) {
  auto* gen = static_cast<GenContext*>(genctx);
  if (gen == nullptr) return nullptr;
  absl::StatusOr<std::shared_ptr<Key>> key = gen->Generate();
  if (!key.ok()) return nullptr;
  return new KeyHandle(std::move(*key));
}

void KmGenCleanup(void* genctx) { delete static_cast<GenContext*>(genctx); }

}  // namespace

#define HSMPROXY_KEYMGMT_TABLE(name, kind)                                    \
  const OSSL_DISPATCH name[] = {                                              \
      {OSSL_FUNC_KEYMGMT_NEW, HSMPROXY_DISPATCH_FN(&KmNew<kind>)},            \
      {OSSL_FUNC_KEYMGMT_FREE, HSMPROXY_DISPATCH_FN(&KmFree)},                \
      {OSSL_FUNC_KEYMGMT_LOAD, HSMPROXY_DISPATCH_FN(&KmLoad<kind>)},          \
      {OSSL_FUNC_KEYMGMT_HAS, HSMPROXY_DISPATCH_FN(&KmHas)},                  \
      {OSSL_FUNC_KEYMGMT_VALIDATE, HSMPROXY_DISPATCH_FN(&KmValidate)},        \
      {OSSL_FUNC_KEYMGMT_MATCH, HSMPROXY_DISPATCH_FN(&KmMatch)},              \
      {OSSL_FUNC_KEYMGMT_IMPORT, HSMPROXY_DISPATCH_FN(&KmImport)},            \
      {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, HSMPROXY_DISPATCH_FN(&KmTypes<kind>)}, \
      {OSSL_FUNC_KEYMGMT_EXPORT, HSMPROXY_DISPATCH_FN(&KmExport)},            \
      {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, HSMPROXY_DISPATCH_FN(&KmTypes<kind>)}, \
      {OSSL_FUNC_KEYMGMT_GET_PARAMS, HSMPROXY_DISPATCH_FN(&KmGetParams)},     \
      {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS,                                     \
       HSMPROXY_DISPATCH_FN(&KmGettableParams<kind>)},                        \
      {OSSL_FUNC_KEYMGMT_SET_PARAMS, HSMPROXY_DISPATCH_FN(&KmSetParams)},     \
      {OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS,                                     \
       HSMPROXY_DISPATCH_FN(&KmSettableParams<kind>)},                        \
      {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,                                \
       HSMPROXY_DISPATCH_FN(&KmQueryOperationName<kind>)},                    \
      {OSSL_FUNC_KEYMGMT_DUP, HSMPROXY_DISPATCH_FN(&KmDup)},                  \
      {OSSL_FUNC_KEYMGMT_GEN_INIT, HSMPROXY_DISPATCH_FN(&KmGenInit<kind>)},   \
      {OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE,                                    \
       HSMPROXY_DISPATCH_FN(&KmGenSetTemplate)},                              \
      {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS,                                      \
       HSMPROXY_DISPATCH_FN(&KmGenSetParams)},                                \
      {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS,                                 \
       HSMPROXY_DISPATCH_FN(&KmGenSettableParams<kind>)},                     \
      {OSSL_FUNC_KEYMGMT_GEN, HSMPROXY_DISPATCH_FN(&KmGen)},                  \
      {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, HSMPROXY_DISPATCH_FN(&KmGenCleanup)},   \
      {0, nullptr},                                                           \
  }

HSMPROXY_KEYMGMT_TABLE(kRsaKeymgmtFunctions, KeyKind::kRsa);
HSMPROXY_KEYMGMT_TABLE(kRsaPssKeymgmtFunctions, KeyKind::kRsaPss);
HSMPROXY_KEYMGMT_TABLE(kEcKeymgmtFunctions, KeyKind::kEc);
HSMPROXY_KEYMGMT_TABLE(kEd25519KeymgmtFunctions, KeyKind::kEd25519);
HSMPROXY_KEYMGMT_TABLE(kSm2KeymgmtFunctions, KeyKind::kSm2);

}  // namespace hsmd::proxy
