#include "proxy_provider/store.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include <deque>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/errors.h"
#include "proxy_provider/remote.h"
#include "proxy_provider/store_uri.h"

namespace hsmd::proxy {
namespace {

struct Wanted {
  bool private_key = false;
  bool public_key = false;
  bool certificate = false;
};

Wanted WhatToReturn(UriObjectType type, int expected_type) {
  Wanted wanted;
  switch (expected_type) {
    case 0:
      wanted.private_key =
          type == UriObjectType::kAny || type == UriObjectType::kPrivate;
      wanted.public_key =
          type == UriObjectType::kAny || type == UriObjectType::kPublic;
      wanted.certificate =
          type == UriObjectType::kAny || type == UriObjectType::kCert;
      break;
    case OSSL_STORE_INFO_PKEY:
      wanted.private_key =
          type == UriObjectType::kAny || type == UriObjectType::kPrivate;
      break;
    case OSSL_STORE_INFO_PUBKEY:
      // A key pair's public half is what the caller wants, whichever half
      // the URI names.
      wanted.public_key = type != UriObjectType::kCert;
      break;
    case OSSL_STORE_INFO_CERT:
      wanted.certificate =
          type == UriObjectType::kAny || type == UriObjectType::kCert;
      break;
    default:
      break;
  }
  return wanted;
}

}  // namespace

absl::StatusOr<std::vector<UriObject>> ResolveUri(ProviderContext& provider,
                                                  absl::string_view uri,
                                                  int expected_type) {
  ASSIGN_OR_RETURN(StoreUri parsed, ParseStoreUri(uri));
  ASSIGN_OR_RETURN(std::vector<v1::Key> keys,
                   ListKeys(provider, parsed.filter));
  if (keys.empty()) {
    return WithReason(absl::NotFoundError(absl::StrCat("key not found: ", uri)),
                      Reason::kKeyNotFound);
  }
  Wanted wanted = WhatToReturn(parsed.type, expected_type);
  std::vector<UriObject> objects;
  for (const v1::Key& key : keys) {
    absl::StatusOr<std::shared_ptr<Key>> hsm_key = Key::FromHsm(&provider, key);
    if (!hsm_key.ok()) {
      // A key type hsmproxy does not serve (SM4): skip it unless it is the
      // only match, so the user learns why.
      if (keys.size() == 1) return hsm_key.status();
      HSMPROXY_DEBUG_LOG("skipping ", key.uri(), ": ",
                         hsm_key.status().message());
      continue;
    }
    std::string description =
        key.label().empty() ? key.uri()
                            : absl::StrCat(key.label(), " (", key.uri(), ")");
    if (wanted.private_key) {
      objects.push_back(
          UriObject{UriObject::Kind::kPrivateKey, *hsm_key, "", description});
    }
    if (wanted.public_key) {
      objects.push_back(UriObject{UriObject::Kind::kPublicKey, *hsm_key,
                                  key.public_key_der(), description});
    }
    if (wanted.certificate && !key.certificate_der().empty()) {
      objects.push_back(UriObject{UriObject::Kind::kCertificate, *hsm_key,
                                  key.certificate_der(), description});
    }
  }
  return objects;
}

int PassObject(const UriObject& object, OSSL_CALLBACK* object_cb,
               void* object_cbarg) {
  int object_type = OSSL_OBJECT_UNKNOWN;
  const char* data_type = KeyKindName(object.key->kind());
  OSSL_PARAM params[8];
  OSSL_PARAM* p = params;
  KeyHandle handle(object.key);
  KeyReference reference = MakeKeyReference(&handle);
  switch (object.kind) {
    case UriObject::Kind::kPrivateKey:
      object_type = OSSL_OBJECT_PKEY;
      *p++ = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
      *p++ = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                              const_cast<char*>(data_type), 0);
      // Valid for the duration of the callback, in which OpenSSL hands it
      // to our keymgmt's load().
      *p++ = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE,
                                               &reference, sizeof(reference));
      break;
    case UriObject::Kind::kPublicKey:
      object_type = OSSL_OBJECT_PKEY;
      *p++ = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
      *p++ = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                              const_cast<char*>(data_type), 0);
      *p++ = OSSL_PARAM_construct_utf8_string(
          OSSL_OBJECT_PARAM_DATA_STRUCTURE,
          const_cast<char*>("SubjectPublicKeyInfo"), 0);
      *p++ = OSSL_PARAM_construct_octet_string(
          OSSL_OBJECT_PARAM_DATA, const_cast<char*>(object.der.data()),
          object.der.size());
      break;
    case UriObject::Kind::kCertificate:
      object_type = OSSL_OBJECT_CERT;
      *p++ = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
      *p++ = OSSL_PARAM_construct_octet_string(
          OSSL_OBJECT_PARAM_DATA, const_cast<char*>(object.der.data()),
          object.der.size());
      break;
  }
  *p++ = OSSL_PARAM_construct_utf8_string(
      OSSL_OBJECT_PARAM_DESC, const_cast<char*>(object.description.c_str()), 0);
  *p = OSSL_PARAM_construct_end();
  return object_cb(params, object_cbarg);
}

namespace {

class StoreContext {
 public:
  StoreContext(ProviderContext* provider, std::string uri)
      : provider_(provider), uri_(std::move(uri)) {}

  ProviderContext* provider() const { return provider_; }

  void set_expected_type(int type) { expected_type_ = type; }

  // Returns the callback's result; 0 with `status` set on failure.
  int Load(OSSL_CALLBACK* object_cb, void* object_cbarg, absl::Status* status) {
    if (!fetched_) {
      fetched_ = true;
      absl::StatusOr<std::vector<UriObject>> objects =
          ResolveUri(*provider_, uri_, expected_type_);
      if (!objects.ok()) {
        failed_ = true;
        *status = objects.status();
        return 0;
      }
      pending_.assign(objects->begin(), objects->end());
    }
    if (failed_ || pending_.empty()) return 0;
    UriObject object = std::move(pending_.front());
    pending_.pop_front();
    return PassObject(object, object_cb, object_cbarg);
  }

  bool Eof() const { return failed_ || (fetched_ && pending_.empty()); }

 private:
  ProviderContext* const provider_;
  const std::string uri_;
  int expected_type_ = 0;
  bool fetched_ = false;
  bool failed_ = false;
  std::deque<UriObject> pending_;
};

StoreContext* Ctx(void* ctx) { return static_cast<StoreContext*>(ctx); }

void* StoreOpen(void* provctx, const char* uri) {
  auto* provider = static_cast<ProviderContext*>(provctx);
  absl::StatusOr<StoreUri> parsed = ParseStoreUri(uri == nullptr ? "" : uri);
  if (!parsed.ok()) {
    HSMPROXY_RAISE(provider, parsed.status());
    return nullptr;
  }
  HSMPROXY_DEBUG_LOG("store open ", uri);
  return new StoreContext(provider, uri);
}

const OSSL_PARAM* StoreSettableCtxParams(void* /*provctx*/) {
  static const OSSL_PARAM kSettable[] = {
      OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, nullptr),
      OSSL_PARAM_END,
  };
  return kSettable;
}

int StoreSetCtxParams(void* ctx, const OSSL_PARAM params[]) {
  const OSSL_PARAM* p =
      OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
  if (p != nullptr) {
    int expected = 0;
    if (OSSL_PARAM_get_int(p, &expected) != 1) return 0;
    Ctx(ctx)->set_expected_type(expected);
  }
  // Searches by subject, serial, fingerprint or alias are not supported;
  // OpenSSL only passes them after asking with OSSL_STORE_supports_search.
  return 1;
}

int StoreLoad(void* ctx, OSSL_CALLBACK* object_cb, void* object_cbarg,
              OSSL_PASSPHRASE_CALLBACK* /*pw_cb*/, void* /*pw_cbarg*/) {
  absl::Status status;
  int result = Ctx(ctx)->Load(object_cb, object_cbarg, &status);
  if (!status.ok()) HSMPROXY_RAISE(Ctx(ctx)->provider(), status);
  return result;
}

int StoreEof(void* ctx) { return Ctx(ctx)->Eof() ? 1 : 0; }

int StoreClose(void* ctx) {
  delete Ctx(ctx);
  return 1;
}

}  // namespace

const OSSL_DISPATCH kStoreFunctions[] = {
    {OSSL_FUNC_STORE_OPEN, HSMPROXY_DISPATCH_FN(&StoreOpen)},
    {OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&StoreSettableCtxParams)},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, HSMPROXY_DISPATCH_FN(&StoreSetCtxParams)},
    {OSSL_FUNC_STORE_LOAD, HSMPROXY_DISPATCH_FN(&StoreLoad)},
    {OSSL_FUNC_STORE_EOF, HSMPROXY_DISPATCH_FN(&StoreEof)},
    {OSSL_FUNC_STORE_CLOSE, HSMPROXY_DISPATCH_FN(&StoreClose)},
    {0, nullptr},
};

}  // namespace hsmd::proxy
