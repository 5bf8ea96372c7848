#include "proxy_provider/decoder.h"

#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/store.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/key.h"
#include "proxy_provider/provider_context.h"
#include "proxy_provider/store.h"
#include "proxy_provider/uri_pem.h"

namespace hsmd::proxy {
namespace {

// A URI file is tiny; anything bigger is some other DER object.
constexpr size_t kMaxUriDerBytes = 64 * 1024;

ProviderContext* Provider(void* ctx) {
  return static_cast<ProviderContext*>(ctx);
}

// The decoder context is the provider context: decoders keep no state.
void* DecNewCtx(void* provctx) { return provctx; }
void DecFreeCtx(void* /*ctx*/) {}

int PemDoesSelection(void* /*provctx*/, int /*selection*/) { return 1; }

int PemToDerDecode(void* ctx, OSSL_CORE_BIO* cin, int /*selection*/,
                   OSSL_CALLBACK* data_cb, void* data_cbarg,
                   OSSL_PASSPHRASE_CALLBACK* /*pw_cb*/, void* /*pw_cbarg*/) {
  BioPtr bio(BIO_new_from_core_bio(Provider(ctx)->libctx(), cin));
  if (bio == nullptr) return 0;
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long length = 0;
  // Other PEM files (or none) are not our business: no error.
  ERR_set_mark();
  int read = PEM_read_bio(bio.get(), &name, &header, &data, &length);
  ERR_pop_to_mark();
  int result = 1;
  if (read > 0 && std::strcmp(name, kUriPemLabel) == 0) {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, data,
                                          static_cast<size_t>(length)),
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE,
                                         const_cast<char*>(kUriStructure), 0),
        OSSL_PARAM_END,
    };
    result = data_cb(params, data_cbarg);
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  return result;
}

int KeyDoesSelection(void* /*provctx*/, int selection) {
  if (selection == 0) return 1;
  return (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0 ? 1 : 0;
}

bool ReadAll(ProviderContext* provider, OSSL_CORE_BIO* cin, std::string& out) {
  BioPtr bio(BIO_new_from_core_bio(provider->libctx(), cin));
  if (bio == nullptr) return false;
  char buffer[4096];
  for (;;) {
    int n = BIO_read(bio.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > kMaxUriDerBytes) return false;
  }
  return true;
}

template <KeyKind kKind>
int UriDecode(void* ctx, OSSL_CORE_BIO* cin, int /*selection*/,
              OSSL_CALLBACK* data_cb, void* data_cbarg,
              OSSL_PASSPHRASE_CALLBACK* /*pw_cb*/, void* /*pw_cbarg*/) {
  ProviderContext* provider = Provider(ctx);
  std::string der;
  ERR_set_mark();
  bool read = ReadAll(provider, cin, der);
  ERR_pop_to_mark();
  if (!read) return 1;
  absl::StatusOr<std::string> uri = ParseUriDer(der);
  if (!uri.ok()) return 1;  // Some other DER object.

  // From here on the file is ours: failures are real errors.
  absl::StatusOr<std::vector<UriObject>> objects =
      ResolveUri(*provider, *uri, OSSL_STORE_INFO_PKEY);
  if (!objects.ok()) {
    HSMPROXY_RAISE(provider, objects.status());
    return 0;
  }
  for (const UriObject& object : *objects) {
    if (object.kind != UriObject::Kind::kPrivateKey) continue;
    if (object.key->kind() != kKind) {
      // The decoder for that key type will take it.
      HSMPROXY_DEBUG_LOG("URI file ", *uri, " names a ",
                         KeyKindName(object.key->kind()), " key, not ",
                         KeyKindName(kKind));
      continue;
    }
    HSMPROXY_DEBUG_LOG("URI file names ", object.key->Describe());
    return PassObject(object, data_cb, data_cbarg);
  }
  return 1;
}

// Used only if OpenSSL picks another provider's keymgmt for the key: hand
// it the public half (the private key never leaves the HSM).
int UriExportObject(void* /*ctx*/, const void* reference, size_t reference_size,
                    OSSL_CALLBACK* export_cb, void* export_cbarg) {
  const KeyHandle* handle = KeyHandleFromReference(reference, reference_size);
  if (handle == nullptr || *handle == nullptr || (*handle)->pkey() == nullptr) {
    return 0;
  }
  return EVP_PKEY_export((*handle)->pkey(),
                         OSSL_KEYMGMT_SELECT_PUBLIC_KEY |
                             OSSL_KEYMGMT_SELECT_ALL_PARAMETERS,
                         export_cb, export_cbarg) == 1
             ? 1
             : 0;
}

}  // namespace

const OSSL_DISPATCH kPemToDerDecoderFunctions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, HSMPROXY_DISPATCH_FN(&DecNewCtx)},
    {OSSL_FUNC_DECODER_FREECTX, HSMPROXY_DISPATCH_FN(&DecFreeCtx)},
    {OSSL_FUNC_DECODER_DOES_SELECTION, HSMPROXY_DISPATCH_FN(&PemDoesSelection)},
    {OSSL_FUNC_DECODER_DECODE, HSMPROXY_DISPATCH_FN(&PemToDerDecode)},
    {0, nullptr},
};

#define HSMPROXY_URI_DECODER_TABLE(name, kind)                            \
  const OSSL_DISPATCH name[] = {                                          \
      {OSSL_FUNC_DECODER_NEWCTX, HSMPROXY_DISPATCH_FN(&DecNewCtx)},       \
      {OSSL_FUNC_DECODER_FREECTX, HSMPROXY_DISPATCH_FN(&DecFreeCtx)},     \
      {OSSL_FUNC_DECODER_DOES_SELECTION,                                  \
       HSMPROXY_DISPATCH_FN(&KeyDoesSelection)},                          \
      {OSSL_FUNC_DECODER_DECODE, HSMPROXY_DISPATCH_FN(&UriDecode<kind>)}, \
      {OSSL_FUNC_DECODER_EXPORT_OBJECT,                                   \
       HSMPROXY_DISPATCH_FN(&UriExportObject)},                           \
      {0, nullptr},                                                       \
  }

HSMPROXY_URI_DECODER_TABLE(kRsaUriDecoderFunctions, KeyKind::kRsa);
HSMPROXY_URI_DECODER_TABLE(kRsaPssUriDecoderFunctions, KeyKind::kRsaPss);
HSMPROXY_URI_DECODER_TABLE(kEcUriDecoderFunctions, KeyKind::kEc);
HSMPROXY_URI_DECODER_TABLE(kEd25519UriDecoderFunctions, KeyKind::kEd25519);
HSMPROXY_URI_DECODER_TABLE(kSm2UriDecoderFunctions, KeyKind::kSm2);

}  // namespace hsmd::proxy
