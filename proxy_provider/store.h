// OSSL_STORE loader for `pkcs11:` URIs (RFC 7512) and hsmd's `sdf:` key URIs
// (`sdf:device=NAME;index=N;usage=sign|enc`), so
// `openssl pkeyutl -inkey "pkcs11:token=demo;object=ec-p256"` and
// OSSL_STORE_open() find HSM keys.
//
// The first load asks hsmd for the keys matching the URI (ListKeys) and then
// returns, per key and as the URI's `type=` and the caller's expected type
// allow: the private key as a reference (loaded by our keymgmt, see key.h),
// the public key as a SubjectPublicKeyInfo (an ordinary software key), and
// the certificate when the token holds one.
#ifndef HSMD_PROXY_PROVIDER_STORE_H_
#define HSMD_PROXY_PROVIDER_STORE_H_

#include <openssl/core.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxy_provider/key.h"
#include "proxy_provider/provider_context.h"

namespace hsmd::proxy {

extern const OSSL_DISPATCH kStoreFunctions[];

// One object a URI names.
struct UriObject {
  enum class Kind { kPrivateKey, kPublicKey, kCertificate };
  Kind kind;
  // The key (HSM reference); for certificates, the key it certifies.
  std::shared_ptr<Key> key;
  // DER of the public key (SubjectPublicKeyInfo) or of the certificate.
  std::string der;
  std::string description;
};

// Asks hsmd for the keys matching `uri` and lists the objects to return for
// the URI's `type=` and the caller's `expected_type` (OSSL_STORE_INFO_*, 0
// for any). NOT_FOUND ("key not found: <uri>") when no key matches.
absl::StatusOr<std::vector<UriObject>> ResolveUri(ProviderContext& provider,
                                                  absl::string_view uri,
                                                  int expected_type);

// Passes `object` to `object_cb` as OSSL_OBJECT parameters (a private key by
// reference, public keys and certificates by value) and returns the
// callback's result.
int PassObject(const UriObject& object, OSSL_CALLBACK* object_cb,
               void* object_cbarg);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_STORE_H_
