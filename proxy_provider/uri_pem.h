// The "PKCS#11 PROVIDER URI" key file, in the format pkcs11-provider
// defines, so programs that only take a key *file* (nginx, Python's
// load_cert_chain, curl --key) use HSM keys unchanged:
//
//   -----BEGIN PKCS#11 PROVIDER URI-----
//   base64 of DER  SEQUENCE { desc VisibleString "PKCS#11 Provider URI v1.0",
//                             uri  UTF8String    "pkcs11:..." }
//   -----END PKCS#11 PROVIDER URI-----
//
// Readers accept any string type for either field and any description;
// writers use the exact description, which pkcs11-provider insists on. The
// URI may also be one of hsmd's `sdf:` key URIs (the same file format, which
// only hsmproxy reads).
#ifndef HSMD_PROXY_PROVIDER_URI_PEM_H_
#define HSMD_PROXY_PROVIDER_URI_PEM_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::proxy {

inline constexpr char kUriPemLabel[] = "PKCS#11 PROVIDER URI";
inline constexpr char kUriPemDescription[] = "PKCS#11 Provider URI v1.0";

// The URI in a DER SEQUENCE { desc, uri }. INVALID_ARGUMENT when `der` is
// not exactly that structure or the URI is neither `pkcs11:` nor `sdf:`.
absl::StatusOr<std::string> ParseUriDer(absl::string_view der);

// The DER SEQUENCE for `uri`.
std::string EncodeUriDer(absl::string_view uri);

// The URI in a PEM text holding one such block (the first PEM block must be
// the URI block).
absl::StatusOr<std::string> ParseUriPem(absl::string_view pem);

// The complete PEM text for `uri`.
absl::StatusOr<std::string> EncodeUriPem(absl::string_view uri);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_URI_PEM_H_
