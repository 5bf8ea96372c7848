#include "daemon/backend/pkcs11/key_store.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "daemon/backend/pkcs11/ck_rv.h"
#include "daemon/backend/pkcs11/objects.h"
#include "daemon/backend/pkcs11/spki.h"

namespace hsmd::backend::pkcs11 {
namespace {

std::string KeyTypeName(CK_KEY_TYPE type) {
  switch (type) {
    case CKK_RSA:
      return "RSA";
    case CKK_EC:
      return "EC";
    case CKK_EC_EDWARDS:
      return "EC_EDWARDS";
    case CKK_DSA:
      return "DSA";
    case CKK_DH:
      return "DH";
    default:
      return absl::StrFormat("0x%x", type);
  }
}

}  // namespace

std::string DescribeRef(const v1::KeyRef& ref) {
  switch (ref.ref_case()) {
    case v1::KeyRef::kUri:
      return ref.uri();
    case v1::KeyRef::kKeyId:
      return absl::StrCat("key_id ", ref.key_id());
    default:
      return "(empty key reference)";
  }
}

bool KeyStore::UriMatchesToken(const Pkcs11Uri& uri) const {
  return uri.MatchesModule(identity_.module_info) &&
         uri.MatchesSlot(identity_.slot_id, identity_.slot_info) &&
         uri.MatchesToken(identity_.token_info);
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> KeyStore::FindKeyObjects(
    CK_SESSION_HANDLE session, const Pkcs11Uri* uri) const {
  AttributeTemplate tmpl;
  tmpl.AddUlong(CKA_CLASS, CKO_PRIVATE_KEY);
  if (uri != nullptr) {
    if (!UriMatchesToken(*uri)) return std::vector<CK_OBJECT_HANDLE>();
    // type=public / type=cert name the same key pair: the pair is found
    // through its private key, which shares label and id.
    if (uri->object_label().has_value()) {
      tmpl.AddBytes(CKA_LABEL, *uri->object_label());
    }
    if (uri->object_id().has_value()) tmpl.AddBytes(CKA_ID, *uri->object_id());
  }
  return FindObjects(fns_, session, tmpl, kMaxSearchResults);
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> KeyStore::FindPairObjects(
    CK_SESSION_HANDLE session, CK_OBJECT_CLASS klass, const std::string& label,
    const std::string& id) const {
  if (id.empty() && label.empty()) return std::vector<CK_OBJECT_HANDLE>();
  if (!id.empty() && !label.empty()) {
    // Prefer the object carrying both; fall back to the CKA_ID alone.
    AttributeTemplate both;
    both.AddUlong(CKA_CLASS, klass)
        .AddBytes(CKA_ID, id)
        .AddBytes(CKA_LABEL, label);
    ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                     FindObjects(fns_, session, both, kMaxSearchResults));
    if (!found.empty()) return found;
  }
  AttributeTemplate tmpl;
  tmpl.AddUlong(CKA_CLASS, klass);
  if (!id.empty()) {
    tmpl.AddBytes(CKA_ID, id);
  } else {
    tmpl.AddBytes(CKA_LABEL, label);
  }
  return FindObjects(fns_, session, tmpl, kMaxSearchResults);
}

absl::StatusOr<std::optional<std::string>> KeyStore::PublicKeyFromObject(
    CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_KEY_TYPE type,
    const std::string& ec_params) const {
  if (type == CKK_RSA) {
    ASSIGN_OR_RETURN(std::optional<std::string> modulus,
                     GetBytesAttribute(fns_, session, object, CKA_MODULUS));
    ASSIGN_OR_RETURN(
        std::optional<std::string> exponent,
        GetBytesAttribute(fns_, session, object, CKA_PUBLIC_EXPONENT));
    if (!modulus.has_value() || !exponent.has_value()) return std::nullopt;
    return RsaSpki(*modulus, *exponent);
  }
  ASSIGN_OR_RETURN(std::optional<std::string> params,
                   GetBytesAttribute(fns_, session, object, CKA_EC_PARAMS));
  // SoftHSM gives an Ed25519 private key the "edwards25519" name form even
  // when the public key was generated with the OID form.
  if (params.has_value() && *params != ec_params &&
      !(IsEd25519Params(*params) && IsEd25519Params(ec_params))) {
    return std::nullopt;
  }
  ASSIGN_OR_RETURN(std::optional<std::string> point,
                   GetBytesAttribute(fns_, session, object, CKA_EC_POINT));
  if (!point.has_value()) return std::nullopt;
  if (type == CKK_EC_EDWARDS) return Ed25519Spki(*point);
  ASSIGN_OR_RETURN(v1::Curve curve, CurveFromEcParams(ec_params));
  return EcSpki(curve, *point);
}

absl::StatusOr<std::string> KeyStore::CertificatePublicKey(
    CK_SESSION_HANDLE session, CK_OBJECT_HANDLE cert,
    std::string* cert_der) const {
  ASSIGN_OR_RETURN(std::optional<std::string> value,
                   GetBytesAttribute(fns_, session, cert, CKA_VALUE));
  if (!value.has_value())
    return absl::NotFoundError("certificate has no value");
  const unsigned char* p =
      reinterpret_cast<const unsigned char*>(value->data());
  X509Ptr x509(d2i_X509(nullptr, &p, static_cast<long>(value->size())));
  if (x509 == nullptr) {
    ERR_clear_error();
    return absl::NotFoundError("certificate is not DER X.509");
  }
  EVP_PKEY* pkey = X509_get0_pubkey(x509.get());
  if (pkey == nullptr) {
    ERR_clear_error();
    return absl::NotFoundError("certificate public key is unreadable");
  }
  if (cert_der != nullptr) *cert_der = *value;
  return EncodeSpki(pkey);
}

absl::StatusOr<std::string> KeyStore::ReadPublicKey(
    CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle, CK_KEY_TYPE type,
    const std::string& label, const std::string& id, v1::Key& key) const {
  std::string ec_params;
  if (type == CKK_RSA) {
    key.set_key_type(v1::KEY_TYPE_RSA);
  } else {
    ASSIGN_OR_RETURN(std::optional<std::string> params,
                     GetBytesAttribute(fns_, session, handle, CKA_EC_PARAMS));
    if (!params.has_value()) {
      return absl::FailedPreconditionError("EC key without CKA_EC_PARAMS");
    }
    ec_params = *params;
    if (type == CKK_EC_EDWARDS) {
      if (!IsEd25519Params(ec_params)) {
        return absl::InvalidArgumentError(
            "Edwards-curve key on a curve other than Ed25519 is not "
            "supported");
      }
      key.set_key_type(v1::KEY_TYPE_ED25519);
      key.set_curve(v1::CURVE_ED25519);
    } else {
      ASSIGN_OR_RETURN(v1::Curve curve, CurveFromEcParams(ec_params));
      key.set_key_type(v1::KEY_TYPE_EC);
      key.set_curve(curve);
    }
    key.set_size_bits(CurveBits(key.curve()));
  }

  // Some tokens keep the public parts on the private object (SoftHSM does
  // for RSA); otherwise the public key object of the pair has them.
  ASSIGN_OR_RETURN(std::optional<std::string> spki,
                   PublicKeyFromObject(session, handle, type, ec_params));
  if (!spki.has_value()) {
    ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> publics,
                     FindPairObjects(session, CKO_PUBLIC_KEY, label, id));
    for (CK_OBJECT_HANDLE object : publics) {
      ASSIGN_OR_RETURN(std::optional<CK_ULONG> public_type,
                       GetUlongAttribute(fns_, session, object, CKA_KEY_TYPE));
      if (public_type != type) continue;
      ASSIGN_OR_RETURN(spki,
                       PublicKeyFromObject(session, object, type, ec_params));
      if (spki.has_value()) break;
    }
  }
  if (!spki.has_value()) {
    // Last resort: the certificate of the pair.
    ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> certs,
                     FindPairObjects(session, CKO_CERTIFICATE, label, id));
    for (CK_OBJECT_HANDLE cert : certs) {
      absl::StatusOr<std::string> cert_spki =
          CertificatePublicKey(session, cert, nullptr);
      if (!cert_spki.ok()) continue;
      // Rebuild through our own encoder so the curve is checked against
      // CKA_EC_PARAMS and the SPKI is in named-curve form.
      absl::StatusOr<EvpPkeyPtr> pkey = ParseSpki(*cert_spki);
      if (!pkey.ok()) continue;
      absl::StatusOr<std::string> rebuilt;
      if (type == CKK_RSA) {
        rebuilt = cert_spki;
      } else if (type == CKK_EC_EDWARDS) {
        unsigned char raw[32];
        size_t raw_len = sizeof(raw);
        if (EVP_PKEY_get_raw_public_key(pkey->get(), raw, &raw_len) != 1) {
          ERR_clear_error();
          continue;
        }
        rebuilt = Ed25519Spki(
            absl::string_view(reinterpret_cast<char*>(raw), raw_len));
      } else {
        unsigned char point[200];
        size_t point_len = 0;
        if (EVP_PKEY_get_octet_string_param(pkey->get(),
                                            OSSL_PKEY_PARAM_PUB_KEY, point,
                                            sizeof(point), &point_len) != 1) {
          ERR_clear_error();
          continue;
        }
        rebuilt = EcSpki(
            key.curve(),
            absl::string_view(reinterpret_cast<char*>(point), point_len));
      }
      if (rebuilt.ok()) {
        spki = *std::move(rebuilt);
        break;
      }
    }
  }
  if (!spki.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the public key of private key \"", label,
        "\" cannot be read: no public key object or certificate with the same "
        "CKA_ID holds it"));
  }
  if (type == CKK_RSA) {
    ASSIGN_OR_RETURN(EvpPkeyPtr pkey, ParseSpki(*spki));
    key.set_size_bits(static_cast<uint32_t>(EVP_PKEY_get_bits(pkey.get())));
  }
  return *std::move(spki);
}

absl::StatusOr<KeyPtr> KeyStore::ReadKey(CK_SESSION_HANDLE session,
                                         CK_OBJECT_HANDLE handle) const {
  ASSIGN_OR_RETURN(std::optional<CK_ULONG> type,
                   GetUlongAttribute(fns_, session, handle, CKA_KEY_TYPE));
  if (!type.has_value()) {
    return absl::FailedPreconditionError("key object has no CKA_KEY_TYPE");
  }
  ASSIGN_OR_RETURN(std::optional<std::string> label,
                   GetBytesAttribute(fns_, session, handle, CKA_LABEL));
  ASSIGN_OR_RETURN(std::optional<std::string> id,
                   GetBytesAttribute(fns_, session, handle, CKA_ID));
  if (*type != CKK_RSA && *type != CKK_EC && *type != CKK_EC_EDWARDS) {
    return absl::UnimplementedError(
        absl::StrCat("private key \"", label.value_or(""), "\" has key type ",
                     KeyTypeName(*type),
                     ", which hsmd does not support (RSA, EC, Ed25519)"));
  }
  ASSIGN_OR_RETURN(std::optional<bool> can_sign,
                   GetBoolAttribute(fns_, session, handle, CKA_SIGN));
  ASSIGN_OR_RETURN(std::optional<bool> can_decrypt,
                   GetBoolAttribute(fns_, session, handle, CKA_DECRYPT));
  ASSIGN_OR_RETURN(std::optional<bool> can_derive,
                   GetBoolAttribute(fns_, session, handle, CKA_DERIVE));

  auto resolved = std::make_shared<ResolvedKey>();
  resolved->handle = handle;
  resolved->ck_key_type = *type;
  v1::Key& key = resolved->key;
  key.set_label(label.value_or(""));
  key.set_id(id.value_or(""));
  ASSIGN_OR_RETURN(std::string spki, ReadPublicKey(session, handle, *type,
                                                   key.label(), key.id(), key));
  key.set_key_id(KeyIdFromSpki(spki));
  key.set_public_key_der(std::move(spki));
  if (can_sign.value_or(false)) key.add_allowed_operations(v1::OPERATION_SIGN);
  if (*type == CKK_RSA && can_decrypt.value_or(false)) {
    key.add_allowed_operations(v1::OPERATION_DECRYPT);
  }
  if (*type == CKK_EC && can_derive.value_or(false)) {
    key.add_allowed_operations(v1::OPERATION_DERIVE);
  }
  key.set_uri(FormatKeyUri(identity_.token_label, key.label(), key.id()));
  key.set_backend(identity_.backend_name);
  key.set_token_label(identity_.token_label);

  // The certificate with the same CKA_ID whose public key is this key's.
  if (!key.id().empty()) {
    ASSIGN_OR_RETURN(
        std::vector<CK_OBJECT_HANDLE> certs,
        FindPairObjects(session, CKO_CERTIFICATE, key.label(), key.id()));
    for (CK_OBJECT_HANDLE cert : certs) {
      std::string der;
      absl::StatusOr<std::string> cert_spki =
          CertificatePublicKey(session, cert, &der);
      if (cert_spki.ok() && *cert_spki == key.public_key_der()) {
        key.set_certificate_der(std::move(der));
        break;
      }
    }
  }
  return resolved;
}

absl::StatusOr<std::vector<KeyPtr>> KeyStore::ListKeys(
    CK_SESSION_HANDLE session, const Pkcs11Uri* uri) {
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles,
                   FindKeyObjects(session, uri));
  std::vector<KeyPtr> keys;
  for (CK_OBJECT_HANDLE handle : handles) {
    absl::StatusOr<KeyPtr> key = ReadKey(session, handle);
    if (!key.ok()) {
      // A key we cannot describe is not listed; but a failing token is an
      // error for the whole listing.
      std::optional<CK_RV> rv = GetCkRv(key.status());
      if (rv.has_value() && !IsStaleHandle(*rv)) return key.status();
      continue;
    }
    Remember(absl::StrCat("id:", (*key)->key.key_id()), *key);
    keys.push_back(*std::move(key));
  }
  return keys;
}

absl::StatusOr<KeyPtr> KeyStore::Resolve(CK_SESSION_HANDLE session,
                                         const v1::KeyRef& ref,
                                         bool use_cache) {
  std::string cache_key;
  switch (ref.ref_case()) {
    case v1::KeyRef::kUri:
      cache_key = absl::StrCat("uri:", ref.uri());
      break;
    case v1::KeyRef::kKeyId:
      if (!IsWellFormedKeyId(ref.key_id())) {
        return absl::InvalidArgumentError(
            absl::StrCat("key_id \"", ref.key_id().substr(0, 64),
                         "\" is malformed (expected 32 lowercase hex digits)"));
      }
      cache_key = absl::StrCat("id:", ref.key_id());
      break;
    default:
      return absl::InvalidArgumentError(
          "key reference is empty: set uri or key_id");
  }
  if (use_cache) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(cache_key);
    if (it != cache_.end()) return it->second;
  }

  if (ref.ref_case() == v1::KeyRef::kKeyId) {
    ASSIGN_OR_RETURN(std::vector<KeyPtr> keys, ListKeys(session, nullptr));
    for (KeyPtr& key : keys) {
      if (key->key.key_id() == ref.key_id()) return key;
    }
    return absl::NotFoundError(absl::StrCat("no key with key_id ", ref.key_id(),
                                            " on token \"",
                                            identity_.token_label, "\""));
  }

  ASSIGN_OR_RETURN(Pkcs11Uri uri, Pkcs11Uri::Parse(ref.uri()));
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles,
                   FindKeyObjects(session, &uri));
  if (handles.empty()) {
    std::string where =
        UriMatchesToken(uri)
            ? absl::StrCat("on token \"", identity_.token_label, "\"")
            : absl::StrCat("(it names another token; backend \"",
                           identity_.backend_name, "\" serves token \"",
                           identity_.token_label, "\")");
    return absl::NotFoundError(
        absl::StrCat("no key matches ", ref.uri(), " ", where));
  }
  if (handles.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("URI ", ref.uri(), " matches ", handles.size(),
                     " keys; add id= or object= to name one"));
  }
  ASSIGN_OR_RETURN(KeyPtr key, ReadKey(session, handles[0]));
  Remember(cache_key, key);
  Remember(absl::StrCat("id:", key->key.key_id()), key);
  return key;
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> KeyStore::FindCompanionObjects(
    CK_SESSION_HANDLE session, const ResolvedKey& resolved) const {
  const v1::Key& key = resolved.key;
  std::vector<CK_OBJECT_HANDLE> companions;
  std::string ec_params;
  if (resolved.ck_key_type != CKK_RSA) {
    ASSIGN_OR_RETURN(
        std::optional<std::string> params,
        GetBytesAttribute(fns_, session, resolved.handle, CKA_EC_PARAMS));
    ec_params = params.value_or("");
  }
  // Search by CKA_ID alone (or label without an id), then keep only objects
  // that really hold this public key: another pair may share the id.
  AttributeTemplate publics;
  publics.AddUlong(CKA_CLASS, CKO_PUBLIC_KEY);
  AttributeTemplate certs;
  certs.AddUlong(CKA_CLASS, CKO_CERTIFICATE);
  if (!key.id().empty()) {
    publics.AddBytes(CKA_ID, key.id());
    certs.AddBytes(CKA_ID, key.id());
  } else if (!key.label().empty()) {
    publics.AddBytes(CKA_LABEL, key.label());
    certs.AddBytes(CKA_LABEL, key.label());
  } else {
    return companions;
  }
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> public_handles,
                   FindObjects(fns_, session, publics, kMaxSearchResults));
  for (CK_OBJECT_HANDLE object : public_handles) {
    ASSIGN_OR_RETURN(std::optional<CK_ULONG> type,
                     GetUlongAttribute(fns_, session, object, CKA_KEY_TYPE));
    if (type != resolved.ck_key_type) continue;
    absl::StatusOr<std::optional<std::string>> spki =
        PublicKeyFromObject(session, object, resolved.ck_key_type, ec_params);
    if (spki.ok() && spki->has_value() && **spki == key.public_key_der()) {
      companions.push_back(object);
    }
  }
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> cert_handles,
                   FindObjects(fns_, session, certs, kMaxSearchResults));
  for (CK_OBJECT_HANDLE cert : cert_handles) {
    absl::StatusOr<std::string> spki =
        CertificatePublicKey(session, cert, nullptr);
    if (spki.ok() && *spki == key.public_key_der()) companions.push_back(cert);
  }
  return companions;
}

void KeyStore::Remember(const std::string& cache_key, const KeyPtr& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= kMaxCachedRefs && !cache_.contains(cache_key)) {
    cache_.clear();
  }
  cache_[cache_key] = key;
}

void KeyStore::Forget(const v1::KeyRef& ref) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ref.ref_case() == v1::KeyRef::kUri) {
    cache_.erase(absl::StrCat("uri:", ref.uri()));
  } else if (ref.ref_case() == v1::KeyRef::kKeyId) {
    cache_.erase(absl::StrCat("id:", ref.key_id()));
  }
}

void KeyStore::ClearCache() {
  std::lock_guard<std::mutex> lock(mu_);
  cache_.clear();
}

}  // namespace hsmd::backend::pkcs11
