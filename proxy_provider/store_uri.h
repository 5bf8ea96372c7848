// The parts of an RFC 7512 `pkcs11:` URI the store needs: which object types
// it asks for (`type=`), and the URI without that attribute, as a ListKeys
// filter (hsmd lists key pairs; the store itself returns the private key,
// public key or certificate of each). hsmd's `sdf:` key URIs
// (`sdf:device=NAME;index=N;usage=sign|enc`) have no `type=`: they are the
// filter as they are.
#ifndef HSMD_PROXY_PROVIDER_STORE_URI_H_
#define HSMD_PROXY_PROVIDER_STORE_URI_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::proxy {

enum class UriObjectType { kAny, kPrivate, kPublic, kCert };

struct StoreUri {
  // The URI without `type=` (everything else, queries included, unchanged:
  // hsmd validates them and explains what it rejects).
  std::string filter;
  UriObjectType type = UriObjectType::kAny;
};

// INVALID_ARGUMENT (reason "bad key URI") for a URI that is neither
// `pkcs11:` nor `sdf:`, or a `pkcs11:` URI whose `type` is not private,
// public or cert.
absl::StatusOr<StoreUri> ParseStoreUri(absl::string_view uri);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_STORE_URI_H_
