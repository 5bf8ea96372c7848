#include "proxy_provider/key.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "proxy_provider/errors.h"

namespace hsmd::proxy {
namespace {

constexpr char kReferenceMagic[8] = {'h', 's', 'm', 'p', 'x', 'k', 'e', 'y'};

bool HasBn(const EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  bool present = EVP_PKEY_get_bn_param(pkey, name, &bn) == 1;
  BN_clear_free(bn);
  return present;
}

bool HasOctets(const EVP_PKEY* pkey, const char* name) {
  size_t length = 0;
  return EVP_PKEY_get_octet_string_param(pkey, name, nullptr, 0, &length) ==
             1 &&
         length > 0;
}

absl::Status SymmetricKeyError(const v1::Key& key) {
  return UnsupportedError(
      absl::StrCat("key ", key.uri(),
                   " is an SM4 (symmetric) key; OpenSSL takes only key pairs "
                   "from hsmproxy (use `hsmctl encrypt/decrypt` for SM4)"));
}

}  // namespace

Key::Key(ProviderContext* provider, KeyKind kind)
    : provider_(provider), kind_(kind) {}

std::shared_ptr<Key> Key::NewEmpty(ProviderContext* provider, KeyKind kind) {
  return std::shared_ptr<Key>(new Key(provider, kind));
}

absl::StatusOr<KeyKind> Key::KindOf(const v1::Key& key,
                                    const EVP_PKEY* public_key) {
  switch (key.key_type()) {
    case v1::KEY_TYPE_RSA:
      if (EVP_PKEY_is_a(public_key, "RSA-PSS")) return KeyKind::kRsaPss;
      if (EVP_PKEY_is_a(public_key, "RSA")) return KeyKind::kRsa;
      break;
    case v1::KEY_TYPE_EC:
      if (EVP_PKEY_is_a(public_key, "EC")) return KeyKind::kEc;
      break;
    case v1::KEY_TYPE_ED25519:
      if (EVP_PKEY_is_a(public_key, "ED25519")) return KeyKind::kEd25519;
      break;
    case v1::KEY_TYPE_SM2:
      if (EVP_PKEY_is_a(public_key, "SM2")) return KeyKind::kSm2;
      break;
    case v1::KEY_TYPE_SM4:
      return SymmetricKeyError(key);
    default:
      return UnsupportedError(
          absl::StrCat("key ", key.uri(), " has an unknown key type (",
                       static_cast<int>(key.key_type()), ")"));
  }
  return WithReason(
      absl::InternalError(absl::StrCat("hsmd describes key ", key.uri(), " as ",
                                       v1::KeyType_Name(key.key_type()),
                                       " but its public key is ",
                                       EVP_PKEY_get0_type_name(public_key))),
      Reason::kHsmdError);
}

absl::StatusOr<std::shared_ptr<Key>> Key::FromHsm(ProviderContext* provider,
                                                  const v1::Key& key) {
  // SM4 keys have no public half to parse.
  if (key.key_type() == v1::KEY_TYPE_SM4) return SymmetricKeyError(key);
  if (key.key_type() == v1::KEY_TYPE_SM2 && !provider->sm2_available()) {
    return UnsupportedError(absl::StrCat(
        "key ", key.uri(), " is an SM2 key, and this OpenSSL has no SM2"));
  }
  const std::string& der = key.public_key_der();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ERR_set_mark();
  EvpPkeyPtr public_key(
      d2i_PUBKEY_ex(nullptr, &p, static_cast<long>(der.size()),
                    provider->libctx(), kDefaultProviderQuery));
  if (public_key == nullptr ||
      p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_pop_to_mark();
    return WithReason(
        absl::InternalError(
            absl::StrCat("hsmd sent an unreadable public key for ", key.uri())),
        Reason::kHsmdError);
  }
  ERR_clear_last_mark();
  absl::StatusOr<KeyKind> kind = KindOf(key, public_key.get());
  if (!kind.ok()) return kind.status();
  std::shared_ptr<Key> result(new Key(provider, *kind));
  result->hsm_ = HsmKeyRef{key.uri(), key.key_id(), key.label()};
  result->pkey_ = std::move(public_key);
  result->has_private_ = true;
  result->has_public_ = true;
  result->has_params_ = true;
  return result;
}

std::shared_ptr<Key> Key::FromSoftware(ProviderContext* provider, KeyKind kind,
                                       EvpPkeyPtr pkey) {
  std::shared_ptr<Key> key(new Key(provider, kind));
  key->ResetSoftware(std::move(pkey));
  return key;
}

void Key::ResetSoftware(EvpPkeyPtr pkey) {
  pkey_ = std::move(pkey);
  RefreshComponents();
}

void Key::RefreshComponents() {
  if (is_hsm()) return;
  has_private_ = has_public_ = has_params_ = false;
  const EVP_PKEY* pkey = pkey_.get();
  if (pkey == nullptr) return;
  // Probing absent parameters leaves "not found" errors behind.
  ERR_set_mark();
  switch (kind_) {
    case KeyKind::kRsa:
    case KeyKind::kRsaPss:
      has_public_ = HasBn(pkey, OSSL_PKEY_PARAM_RSA_N);
      has_private_ = HasBn(pkey, OSSL_PKEY_PARAM_RSA_D);
      // RSA has no domain parameters; RSA-PSS restrictions are optional.
      has_params_ = true;
      break;
    case KeyKind::kEc:
    case KeyKind::kSm2:
      has_params_ = EVP_PKEY_get_bits(pkey) > 0;
      has_public_ = HasOctets(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
      has_private_ = HasBn(pkey, OSSL_PKEY_PARAM_PRIV_KEY);
      break;
    case KeyKind::kEd25519:
      has_params_ = true;
      has_public_ = HasOctets(pkey, OSSL_PKEY_PARAM_PUB_KEY);
      has_private_ = HasOctets(pkey, OSSL_PKEY_PARAM_PRIV_KEY);
      break;
  }
  ERR_pop_to_mark();
}

bool Key::Has(int selection) const {
  if (pkey_ == nullptr) return selection == 0;
  bool ok = true;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) ok &= has_private_;
  if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) ok &= has_public_;
  if ((selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) != 0) ok &= has_params_;
  return ok;
}

absl::StatusOr<std::shared_ptr<Key>> Key::Duplicate() const {
  std::shared_ptr<Key> copy(new Key(provider_, kind_));
  copy->hsm_ = hsm_;
  copy->has_private_ = has_private_;
  copy->has_public_ = has_public_;
  copy->has_params_ = has_params_;
  if (pkey_ == nullptr) return copy;
  if (is_hsm()) {
    if (EVP_PKEY_up_ref(pkey_.get()) != 1) {
      return absl::InternalError("EVP_PKEY_up_ref failed");
    }
    copy->pkey_.reset(pkey_.get());
    return copy;
  }
  copy->pkey_.reset(EVP_PKEY_dup(pkey_.get()));
  if (copy->pkey_ == nullptr) {
    return absl::InternalError("could not copy the software key");
  }
  return copy;
}

std::string Key::Describe() const {
  if (is_hsm()) {
    return absl::StrCat("HSM ", KeyKindName(kind_), " key ", hsm_->uri, " (id ",
                        hsm_->key_id, ")");
  }
  return absl::StrCat("software ", KeyKindName(kind_), " key");
}

KeyReference MakeKeyReference(const KeyHandle* handle) {
  KeyReference reference;
  std::memcpy(reference.magic, kReferenceMagic, sizeof(kReferenceMagic));
  reference.handle = handle;
  return reference;
}

const KeyHandle* KeyHandleFromReference(const void* reference, size_t size) {
  if (reference == nullptr || size != sizeof(KeyReference)) return nullptr;
  KeyReference copy;
  std::memcpy(&copy, reference, sizeof(copy));
  if (std::memcmp(copy.magic, kReferenceMagic, sizeof(kReferenceMagic)) != 0) {
    return nullptr;
  }
  return copy.handle;
}

}  // namespace hsmd::proxy
