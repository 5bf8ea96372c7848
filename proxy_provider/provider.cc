#include "proxy_provider/provider.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include <cstdarg>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/asym_cipher.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/decoder.h"
#include "proxy_provider/errors.h"
#include "proxy_provider/keyexch.h"
#include "proxy_provider/keymgmt.h"
#include "proxy_provider/rand.h"
#include "proxy_provider/signature.h"
#include "proxy_provider/sm2_signature.h"
#include "proxy_provider/store.h"

namespace hsmd::proxy {
namespace {

const OSSL_ALGORITHM kKeymgmtAlgorithms[] = {
    {kRsaKeyNames, kProperties, kRsaKeymgmtFunctions,
     "hsmproxy RSA keys (HSM references)"},
    {kRsaPssKeyNames, kProperties, kRsaPssKeymgmtFunctions,
     "hsmproxy RSA-PSS keys (HSM references)"},
    {kEcKeyNames, kProperties, kEcKeymgmtFunctions,
     "hsmproxy EC keys (HSM references)"},
    {kEd25519KeyNames, kProperties, kEd25519KeymgmtFunctions,
     "hsmproxy Ed25519 keys (HSM references)"},
    {kSm2KeyNames, kProperties, kSm2KeymgmtFunctions,
     "hsmproxy SM2 keys (HSM references)"},
    {nullptr, nullptr, nullptr, nullptr},
};

const OSSL_ALGORITHM kSignatureAlgorithms[] = {
    {kRsaSignatureNames, kProperties, kRsaSignatureFunctions,
     "RSA PKCS#1 v1.5 and PSS signatures by hsmd"},
    {kEcdsaSignatureNames, kProperties, kEcdsaSignatureFunctions,
     "ECDSA signatures by hsmd"},
    {kEd25519SignatureNames, kProperties, kEd25519SignatureFunctions,
     "Ed25519 signatures by hsmd"},
    {kSm2SignatureNames, kProperties, kSm2SignatureFunctions,
     "SM2 signatures (SM3) by hsmd"},
    {nullptr, nullptr, nullptr, nullptr},
};

const OSSL_ALGORITHM kAsymCipherAlgorithms[] = {
    {kRsaCipherNames, kProperties, kRsaAsymCipherFunctions,
     "RSA decryption by hsmd"},
    {kSm2CipherNames, kProperties, kSm2AsymCipherFunctions,
     "SM2 decryption by hsmd"},
    {nullptr, nullptr, nullptr, nullptr},
};

const OSSL_ALGORITHM kStoreAlgorithms[] = {
    {kStoreScheme, kProperties, kStoreFunctions,
     "pkcs11: URIs resolved by hsmd"},
    {kSdfStoreScheme, kProperties, kStoreFunctions,
     "sdf: URIs (SDF device keys) resolved by hsmd"},
    {nullptr, nullptr, nullptr, nullptr},
};

const OSSL_ALGORITHM kDecoderAlgorithms[] = {
    {kPemToDerDecoderName, kPemDecoderProperties, kPemToDerDecoderFunctions,
     "PKCS#11 PROVIDER URI PEM to DER"},
    {kRsaKeyNames, kDerDecoderProperties, kRsaUriDecoderFunctions,
     "RSA key named by a PKCS#11 PROVIDER URI file"},
    {kRsaPssKeyNames, kDerDecoderProperties, kRsaPssUriDecoderFunctions,
     "RSA-PSS key named by a PKCS#11 PROVIDER URI file"},
    {kEcKeyNames, kDerDecoderProperties, kEcUriDecoderFunctions,
     "EC key named by a PKCS#11 PROVIDER URI file"},
    {kEd25519KeyNames, kDerDecoderProperties, kEd25519UriDecoderFunctions,
     "Ed25519 key named by a PKCS#11 PROVIDER URI file"},
    {kSm2KeyNames, kDerDecoderProperties, kSm2UriDecoderFunctions,
     "SM2 key named by a PKCS#11 PROVIDER URI file"},
    {nullptr, nullptr, nullptr, nullptr},
};

const OSSL_ALGORITHM kKeyExchangeAlgorithms[] = {
    {kEcdhKeyExchangeNames, kProperties, kEcdhKeyExchangeFunctions,
     "ECDH key agreement by hsmd"},
    {nullptr, nullptr, nullptr, nullptr},
};

const OSSL_ALGORITHM kRandAlgorithms[] = {
    {kRandName, kProperties, kRandFunctions, "random bytes from the HSM"},
    {nullptr, nullptr, nullptr, nullptr},
};

ProviderContext* Provider(void* provctx) {
  return static_cast<ProviderContext*>(provctx);
}

bool IsSm2Implementation(const OSSL_DISPATCH* functions) {
  return functions == kSm2KeymgmtFunctions ||
         functions == kSm2SignatureFunctions ||
         functions == kSm2AsymCipherFunctions ||
         functions == kSm2UriDecoderFunctions;
}

// `table` without its SM2 entries, for an OpenSSL built without SM2.
std::vector<OSSL_ALGORITHM> WithoutSm2(const OSSL_ALGORITHM* table) {
  std::vector<OSSL_ALGORITHM> out;
  for (const OSSL_ALGORITHM* a = table; a->algorithm_names != nullptr; ++a) {
    if (!IsSm2Implementation(a->implementation)) out.push_back(*a);
  }
  out.push_back({nullptr, nullptr, nullptr, nullptr});
  return out;
}

struct Sm2FreeTables {
  std::vector<OSSL_ALGORITHM> keymgmt = WithoutSm2(kKeymgmtAlgorithms);
  std::vector<OSSL_ALGORITHM> signature = WithoutSm2(kSignatureAlgorithms);
  std::vector<OSSL_ALGORITHM> cipher = WithoutSm2(kAsymCipherAlgorithms);
  std::vector<OSSL_ALGORITHM> decoder = WithoutSm2(kDecoderAlgorithms);
};

// Built once, never destroyed (OpenSSL may query during exit).
const Sm2FreeTables& NoSm2() {
  static const Sm2FreeTables* tables = new Sm2FreeTables();
  return *tables;
}

void Teardown(void* provctx) {
  HSMPROXY_DEBUG_LOG("teardown");
  delete Provider(provctx);
}

const OSSL_PARAM* GettableParams(void* /*provctx*/) {
  static const OSSL_PARAM kGettable[] = {
      OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, nullptr, 0),
      OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, nullptr, 0),
      OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, nullptr, 0),
      OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, nullptr),
      OSSL_PARAM_END,
  };
  return kGettable;
}

int GetParams(void* /*provctx*/, OSSL_PARAM params[]) {
  OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
  if (p != nullptr &&
      OSSL_PARAM_set_utf8_ptr(p, "hsmproxy: HSM keys through hsmd") != 1) {
    return 0;
  }
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
  if (p != nullptr && OSSL_PARAM_set_utf8_ptr(p, kProviderVersion) != 1) {
    return 0;
  }
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
  if (p != nullptr && OSSL_PARAM_set_utf8_ptr(p, kProviderVersion) != 1) {
    return 0;
  }
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
  if (p != nullptr && OSSL_PARAM_set_int(p, 1) != 1) return 0;
  return 1;
}

const OSSL_ALGORITHM* QueryOperation(void* provctx, int operation_id,
                                     int* no_cache) {
  *no_cache = 0;
  bool sm2 = Provider(provctx)->sm2_available();
  switch (operation_id) {
    case OSSL_OP_KEYMGMT:
      return sm2 ? kKeymgmtAlgorithms : NoSm2().keymgmt.data();
    case OSSL_OP_SIGNATURE:
      return sm2 ? kSignatureAlgorithms : NoSm2().signature.data();
    case OSSL_OP_ASYM_CIPHER:
      return sm2 ? kAsymCipherAlgorithms : NoSm2().cipher.data();
    case OSSL_OP_KEYEXCH:
      return kKeyExchangeAlgorithms;
    case OSSL_OP_STORE:
      return kStoreAlgorithms;
    case OSSL_OP_DECODER:
      return sm2 ? kDecoderAlgorithms : NoSm2().decoder.data();
    case OSSL_OP_RAND:
      return kRandAlgorithms;
    default:
      return nullptr;
  }
}

const OSSL_ITEM* GetReasonStrings(void* /*provctx*/) { return ReasonStrings(); }

// libssl (3.0) enables a TLS group only if the keymgmt that an unqualified
// fetch of the group's algorithm returns comes from the provider that
// advertises the group. When hsmproxy is loaded before the default provider
// that fetch returns hsmproxy's EC keymgmt (which serves software keys
// through the default provider), so hsmproxy advertises the NIST curves too;
// otherwise TLS would lose P-256/P-384/P-521 in such processes.
struct TlsGroup {
  const char* name;
  const char* internal_name;
  unsigned int id;
  unsigned int security_bits;
};

constexpr TlsGroup kTlsGroups[] = {
    {"secp256r1", "prime256v1", 23, 128}, {"P-256", "prime256v1", 23, 128},
    {"secp384r1", "secp384r1", 24, 192},  {"P-384", "secp384r1", 24, 192},
    {"secp521r1", "secp521r1", 25, 256},  {"P-521", "secp521r1", 25, 256},
};

int GetCapabilities(void* /*provctx*/, const char* capability,
                    OSSL_CALLBACK* cb, void* arg) {
  if (capability == nullptr || std::string(capability) != "TLS-GROUP") {
    return 0;
  }
  for (const TlsGroup& group : kTlsGroups) {
    unsigned int id = group.id;
    unsigned int bits = group.security_bits;
    unsigned int is_kem = 0;
    int min_tls = 0x0301;   // TLS1_VERSION
    int max_tls = 0;        // no maximum
    int min_dtls = 0xFEFF;  // DTLS1_VERSION
    int max_dtls = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME,
                                         const_cast<char*>(group.name), 0),
        OSSL_PARAM_construct_utf8_string(
            OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL,
            const_cast<char*>(group.internal_name), 0),
        OSSL_PARAM_construct_uint(OSSL_CAPABILITY_TLS_GROUP_ID, &id),
        OSSL_PARAM_construct_utf8_string(OSSL_CAPABILITY_TLS_GROUP_ALG,
                                         const_cast<char*>(kEcName), 0),
        OSSL_PARAM_construct_uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS,
                                  &bits),
        OSSL_PARAM_construct_uint(OSSL_CAPABILITY_TLS_GROUP_IS_KEM, &is_kem),
        OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, &min_tls),
        OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, &max_tls),
        OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, &min_dtls),
        OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, &max_dtls),
        OSSL_PARAM_END,
    };
    if (!cb(params, arg)) return 0;
  }
  return 1;
}

const OSSL_DISPATCH kProviderFunctions[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, HSMPROXY_DISPATCH_FN(&Teardown)},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, HSMPROXY_DISPATCH_FN(&GettableParams)},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, HSMPROXY_DISPATCH_FN(&GetParams)},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, HSMPROXY_DISPATCH_FN(&QueryOperation)},
    {OSSL_FUNC_PROVIDER_GET_REASON_STRINGS,
     HSMPROXY_DISPATCH_FN(&GetReasonStrings)},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES,
     HSMPROXY_DISPATCH_FN(&GetCapabilities)},
    {0, nullptr},
};

// Raises an init failure with the core's functions directly (there is no
// provider context yet).
void RaiseInitError(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                    const absl::Status& status) {
  OSSL_FUNC_core_new_error_fn* new_error = nullptr;
  OSSL_FUNC_core_vset_error_fn* vset_error = nullptr;
  for (const OSSL_DISPATCH* f = in; f != nullptr && f->function_id != 0; ++f) {
    if (f->function_id == OSSL_FUNC_CORE_NEW_ERROR) {
      new_error = OSSL_FUNC_core_new_error(f);
    } else if (f->function_id == OSSL_FUNC_CORE_VSET_ERROR) {
      vset_error = OSSL_FUNC_core_vset_error(f);
    }
  }
  std::string text = ErrorText(status);
  if (DebugRequestedByEnvironment()) {
    DebugLine(absl::StrCat("initialisation failed: ", text));
  }
  if (new_error == nullptr || vset_error == nullptr) return;
  new_error(handle);
  // vset_error takes a va_list; route through a variadic helper.
  struct Helper {
    static void Call(OSSL_FUNC_core_vset_error_fn* fn,
                     const OSSL_CORE_HANDLE* h, uint32_t reason,
                     const char* fmt, ...) {
      va_list args;
      va_start(args, fmt);
      fn(h, reason, fmt, args);
      va_end(args);
    }
  };
  Helper::Call(vset_error, handle, static_cast<uint32_t>(ReasonOf(status)),
               "%s", text.c_str());
}

}  // namespace

int ProviderInit(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                 const OSSL_DISPATCH** out, void** provctx,
                 ClientFactory client_factory) {
  absl::StatusOr<std::unique_ptr<ProviderContext>> ctx =
      ProviderContext::New(handle, in, std::move(client_factory));
  if (!ctx.ok()) {
    RaiseInitError(handle, in, ctx.status());
    return 0;
  }
  *provctx = ctx->release();
  *out = kProviderFunctions;
  return 1;
}

}  // namespace hsmd::proxy
