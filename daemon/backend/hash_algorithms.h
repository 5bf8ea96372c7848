// Facts about hsmd.v1.HashAlgorithm shared by request validation and the
// software (fake) backend: names, digest sizes, OpenSSL digests.
#ifndef HSMD_DAEMON_BACKEND_HASH_ALGORITHMS_H_
#define HSMD_DAEMON_BACKEND_HASH_ALGORITHMS_H_

#include <openssl/evp.h>

#include <cstddef>

#include "absl/strings/string_view.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend {

// "SHA-256", "MD5-SHA1", ...; "unspecified" for UNSPECIFIED.
absl::string_view HashName(v1::HashAlgorithm hash);

// Digest size in bytes; 0 for UNSPECIFIED or unknown values.
size_t HashSize(v1::HashAlgorithm hash);

// OpenSSL's digest (a static object, never freed), or nullptr for
// UNSPECIFIED and SM3 (not in OpenSSL's default provider set-up hsmd uses).
const EVP_MD* HashEvpMd(v1::HashAlgorithm hash);

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_HASH_ALGORITHMS_H_
