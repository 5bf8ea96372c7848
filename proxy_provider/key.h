// The key objects behind hsmproxy's keymgmt (OpenSSL's "keydata").
//
// Two kinds share one type:
// - HSM keys, from the store or the URI-PEM decoder: a reference (hsmd's key
//   id and URI) plus the public key as an EVP_PKEY in hsmproxy's private
//   library context (default provider). The private key never exists in the
//   process; private-key operations go to hsmd, everything public runs
//   locally.
// - Software keys: ordinary keys OpenSSL creates through hsmproxy's keymgmt
//   (key generation, import, or export from another provider) when its
//   fetch picks hsmproxy's implementation of a key type, which OpenSSL 3.0
//   does when hsmproxy was loaded before the default provider. They are plain
//   default-provider keys held here and never sent to hsmd, so loading
//   hsmproxy changes nothing for them.
#ifndef HSMD_PROXY_PROVIDER_KEY_H_
#define HSMD_PROXY_PROVIDER_KEY_H_

#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "common/openssl_ptr.h"
#include "hsmd/v1/hsmd.pb.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/provider_context.h"

namespace hsmd::proxy {

// How hsmd knows an HSM key.
struct HsmKeyRef {
  // The URI to show in messages (hsmd's canonical URI for the key).
  std::string uri;
  // hsmd's stable key id (hash of the public key): requests name the key by
  // it, so a restarted hsmd finds the very same key again.
  std::string key_id;
  std::string label;
};

class Key {
 public:
  // An empty software key (keymgmt new).
  static std::shared_ptr<Key> NewEmpty(ProviderContext* provider, KeyKind kind);

  // An HSM key from hsmd's description. INVALID_ARGUMENT for key types
  // hsmproxy does not serve (SM4) or an unreadable public key.
  static absl::StatusOr<std::shared_ptr<Key>> FromHsm(ProviderContext* provider,
                                                      const v1::Key& key);

  // A software key owning `pkey` (from hsmproxy's library context).
  static std::shared_ptr<Key> FromSoftware(ProviderContext* provider,
                                           KeyKind kind, EvpPkeyPtr pkey);

  // The key kind of hsmd's key and its public key (RSA keys whose SPKI is
  // RSASSA-PSS are RSA-PSS; SM2 keys are EC keys on the SM2 curve, which
  // OpenSSL decodes as key type "SM2").
  static absl::StatusOr<KeyKind> KindOf(const v1::Key& key,
                                        const EVP_PKEY* public_key);

  ProviderContext* provider() const { return provider_; }
  KeyKind kind() const { return kind_; }
  bool is_hsm() const { return hsm_.has_value(); }
  // Only for HSM keys.
  const HsmKeyRef& hsm() const { return *hsm_; }

  // HSM key: the public key. Software key: the key itself (nullptr while
  // empty).
  EVP_PKEY* pkey() const { return pkey_.get(); }

  // OpenSSL's keymgmt `has`: whether every part in `selection`
  // (OSSL_KEYMGMT_SELECT_*) is present. An HSM key has its private part.
  bool Has(int selection) const;

  // Replaces a software key's content (import, set_params).
  void ResetSoftware(EvpPkeyPtr pkey);
  // Re-reads which parts a software key has after its pkey changed.
  void RefreshComponents();

  // A copy for keymgmt dup: HSM keys share the immutable public key;
  // software keys are deep-copied (they can be modified).
  absl::StatusOr<std::shared_ptr<Key>> Duplicate() const;

  // A short description for debug logs ("HSM RSA key pkcs11:..." or
  // "software EC key").
  std::string Describe() const;

 private:
  Key(ProviderContext* provider, KeyKind kind);

  ProviderContext* const provider_;
  const KeyKind kind_;
  absl::optional<HsmKeyRef> hsm_;
  EvpPkeyPtr pkey_;
  bool has_private_ = false;
  bool has_public_ = false;
  bool has_params_ = false;
};

// OpenSSL's keydata pointer: a heap-allocated shared reference to a Key.
using KeyHandle = std::shared_ptr<Key>;

// The key behind a keydata pointer OpenSSL passes to our operations.
inline std::shared_ptr<Key> KeyFromKeydata(void* keydata) {
  return keydata == nullptr ? nullptr : *static_cast<KeyHandle*>(keydata);
}

// The object reference a store or decoder passes to OpenSSL, which hands it
// to our keymgmt's load(). The magic and the size (not a pointer's size)
// keep another provider's load() from mistaking it for its own.
struct KeyReference {
  char magic[8];
  const KeyHandle* handle;
};
KeyReference MakeKeyReference(const KeyHandle* handle);
// The key a reference names, or nullptr if `reference` is not ours.
const KeyHandle* KeyHandleFromReference(const void* reference, size_t size);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_KEY_H_
