// The "PKCS#11 PROVIDER URI" PEM file: a key *file* that names an HSM key by
// URI, so programs that only accept key files (nginx ssl_certificate_key,
// Python's load_cert_chain) can use HSM keys through hsmproxy or
// pkcs11-provider.
//
// Format (as pkcs11-provider defines it):
//   -----BEGIN PKCS#11 PROVIDER URI-----
//   base64 of DER  SEQUENCE { desc VisibleString "PKCS#11 Provider URI v1.0",
//                             uri  UTF8String    "pkcs11:..." }
//   -----END PKCS#11 PROVIDER URI-----
// Readers compare the description exactly, so it is a fixed constant. The URI
// may also be one of hsmd's `sdf:` key URIs (hsmproxy reads those files;
// pkcs11-provider does not).
#ifndef HSMD_TOOLS_HSMCTL_PEM_URI_H_
#define HSMD_TOOLS_HSMCTL_PEM_URI_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::hsmctl {

inline constexpr absl::string_view kPemUriLabel = "PKCS#11 PROVIDER URI";
inline constexpr absl::string_view kPemUriDescription =
    "PKCS#11 Provider URI v1.0";

// The DER SEQUENCE for `uri`. INVALID_ARGUMENT unless `uri` is a `pkcs11:`
// or `sdf:` URI of printable ASCII (both percent-encode everything else).
absl::StatusOr<std::string> EncodePemUriDer(absl::string_view uri);

// The complete PEM text (with a trailing newline).
absl::StatusOr<std::string> EncodePemUriFile(absl::string_view uri);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_PEM_URI_H_
