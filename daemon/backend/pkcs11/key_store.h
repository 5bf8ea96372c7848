// Resolution of key references to private key objects on one token, public
// key export, and a cache of resolved handles.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_KEY_STORE_H_
#define HSMD_DAEMON_BACKEND_PKCS11_KEY_STORE_H_

#include <p11-kit/pkcs11.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/backend/pkcs11/uri.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::pkcs11 {

// Most token objects one search may return (hostile-input bound).
inline constexpr size_t kMaxSearchResults = 10000;
// Most cached resolutions; the cache is emptied when it would grow past this.
inline constexpr size_t kMaxCachedRefs = 4096;

// What a URI is matched against besides the objects.
struct TokenIdentity {
  std::string backend_name;
  CK_INFO module_info{};
  CK_SLOT_ID slot_id = 0;
  CK_SLOT_INFO slot_info{};
  CK_TOKEN_INFO token_info{};
  // token_info.label without padding.
  std::string token_label;
};

// A private key object and what the API says about it.
struct ResolvedKey {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  CK_KEY_TYPE ck_key_type = 0;
  v1::Key key;
};
using KeyPtr = std::shared_ptr<const ResolvedKey>;

// "pkcs11:..." or "key_id 0123..." for messages.
std::string DescribeRef(const v1::KeyRef& ref);

// Thread-safe; every call that touches the token takes the session to use.
class KeyStore {
 public:
  KeyStore(CK_FUNCTION_LIST* fns, TokenIdentity identity)
      : fns_(fns), identity_(std::move(identity)) {}
  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  const TokenIdentity& identity() const { return identity_; }

  // True when the URI's module, slot and token attributes fit this token.
  bool UriMatchesToken(const Pkcs11Uri& uri) const;

  // Private key objects matching the URI's object attributes (all private
  // keys when `uri` is null); empty if the URI names another token.
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindKeyObjects(
      CK_SESSION_HANDLE session, const Pkcs11Uri* uri) const;

  // Reads a private key object: attributes, public key (from the public key
  // object or certificate with the same CKA_ID when the private object lacks
  // it), SPKI, key id, certificate, canonical URI.
  absl::StatusOr<KeyPtr> ReadKey(CK_SESSION_HANDLE session,
                                 CK_OBJECT_HANDLE handle) const;

  // Every readable key matching `uri` (all when null); keys whose public
  // half cannot be exported are left out. Refreshes the cache.
  absl::StatusOr<std::vector<KeyPtr>> ListKeys(CK_SESSION_HANDLE session,
                                               const Pkcs11Uri* uri);

  // Exactly one key: NOT_FOUND naming the reference when none matches,
  // FAILED_PRECONDITION when a URI matches several, INVALID_ARGUMENT for a
  // malformed reference. With `use_cache`, a cached resolution is returned
  // without touching the token (callers re-resolve with use_cache = false
  // when the handle proves stale).
  absl::StatusOr<KeyPtr> Resolve(CK_SESSION_HANDLE session,
                                 const v1::KeyRef& ref, bool use_cache);

  // Objects other than the private key that belong to the key pair: public
  // key objects and certificates whose public key is the key's (found by
  // CKA_ID, or by label when the key has no CKA_ID).
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindCompanionObjects(
      CK_SESSION_HANDLE session, const ResolvedKey& key) const;

  void Forget(const v1::KeyRef& ref);
  void ClearCache();

 private:
  absl::StatusOr<std::string> ReadPublicKey(
      CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle, CK_KEY_TYPE type,
      const std::string& label, const std::string& id, v1::Key& key) const;
  // The SPKI from an object's public attributes; std::nullopt when the
  // object does not hold them (or is on another curve).
  absl::StatusOr<std::optional<std::string>> PublicKeyFromObject(
      CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_KEY_TYPE type,
      const std::string& ec_params) const;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindPairObjects(
      CK_SESSION_HANDLE session, CK_OBJECT_CLASS klass,
      const std::string& label, const std::string& id) const;
  absl::StatusOr<std::string> CertificatePublicKey(CK_SESSION_HANDLE session,
                                                   CK_OBJECT_HANDLE cert,
                                                   std::string* cert_der) const;
  void Remember(const std::string& cache_key, const KeyPtr& key);

  CK_FUNCTION_LIST* const fns_;
  const TokenIdentity identity_;

  std::mutex mu_;
  // "uri:<text>" and "id:<key_id>" → resolution.
  absl::flat_hash_map<std::string, KeyPtr> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_KEY_STORE_H_
