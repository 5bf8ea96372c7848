// The peer's public key of an ECDH Derive request (EcdhDerivation), checked
// against the curve of the HSM key, shared by the backends that derive.
#ifndef HSMD_DAEMON_BACKEND_EC_PEER_KEY_H_
#define HSMD_DAEMON_BACKEND_EC_PEER_KEY_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend {

// Field size in bytes of the NIST curves hsmd derives on (32, 48, 66); 0 for
// other curves.
size_t EcFieldBytes(v1::Curve curve);

// Parses `peer` (a DER SubjectPublicKeyInfo of an EC key, or a SEC 1
// point, uncompressed or compressed) and returns the uncompressed point
// 0x04 || X || Y, after checking that it lies on `curve` (P-256/384/521)
// and is not the point at infinity. INVALID_ARGUMENT naming the problem
// (garbage, another key type, another curve, a point off the curve);
// `key_name` names the HSM key in the curve mismatch message.
absl::StatusOr<std::string> EcdhPeerPoint(absl::string_view peer,
                                          v1::Curve curve,
                                          absl::string_view key_name);

// The uncompressed point as an EVP_PKEY on `curve` (for software ECDH).
absl::StatusOr<EvpPkeyPtr> EcPublicKeyFromPoint(absl::string_view point,
                                                v1::Curve curve);

// Plain ECDH in software: the x-coordinate of `private_key` times the peer
// point (uncompressed, on `curve`), field-size bytes. For the fake backend
// and tests.
absl::StatusOr<std::string> SoftwareEcdh(EVP_PKEY* private_key,
                                         absl::string_view peer_point,
                                         v1::Curve curve);

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_EC_PEER_KEY_H_
