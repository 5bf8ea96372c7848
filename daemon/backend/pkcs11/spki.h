// Public keys of token objects as DER SubjectPublicKeyInfo (named-curve
// form), curve parameters, and the stable key id.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_SPKI_H_
#define HSMD_DAEMON_BACKEND_PKCS11_SPKI_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::pkcs11 {

// CKA_EC_PARAMS (DER OID) of a NIST curve → CURVE_P256/384/521;
// INVALID_ARGUMENT (naming the OID) for other curves or explicit parameters.
absl::StatusOr<v1::Curve> CurveFromEcParams(absl::string_view ec_params);
// True for Ed25519's CKA_EC_PARAMS: OID 1.3.101.112 or the PrintableString
// "edwards25519".
bool IsEd25519Params(absl::string_view ec_params);
// DER OID for CKA_EC_PARAMS of P-256/384/521 and Ed25519; "" for others.
std::string EcParamsForCurve(v1::Curve curve);
// Field size in bits (256, 384, 521, 255 for Ed25519); 0 if unknown.
uint32_t CurveBits(v1::Curve curve);
// "P-256" etc., for messages.
std::string CurveName(v1::Curve curve);

// CKA_EC_POINT is a DER OCTET STRING around the point, but some modules
// return the raw point: accept both. `point_lengths` are the lengths a raw
// point may have.
std::string UnwrapEcPoint(absl::string_view value,
                          std::initializer_list<size_t> point_lengths);

// SPKI builders; they validate the key material (the EC point must be on the
// curve).
absl::StatusOr<std::string> RsaSpki(absl::string_view modulus,
                                    absl::string_view public_exponent);
absl::StatusOr<std::string> EcSpki(v1::Curve curve, absl::string_view ec_point);
absl::StatusOr<std::string> Ed25519Spki(absl::string_view ec_point);

// Lowercase hex of the first 16 bytes of SHA-256(spki_der).
std::string KeyIdFromSpki(absl::string_view spki_der);
// True if `key_id` looks like one (32 lowercase hex digits).
bool IsWellFormedKeyId(absl::string_view key_id);

absl::StatusOr<EvpPkeyPtr> ParseSpki(absl::string_view spki_der);
// The DER SPKI of a parsed key.
absl::StatusOr<std::string> EncodeSpki(EVP_PKEY* pkey);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_SPKI_H_
