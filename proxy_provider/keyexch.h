// KEYEXCH "ECDH": key agreement with HSM EC keys (hsmd's Derive) and, for
// software EC keys, the default provider's ECDH unchanged.
//
// Like signature.h and asym_cipher.h, a default-provider "shadow" context on
// the (public) key takes the caller's parameters and the peer key, so
// validation (peer on the same curve, a valid point), settable/gettable
// tables and get_params behave exactly as OpenSSL's own ECDH. For an HSM key
// the derivation sends the peer's public key to hsmd, which returns the raw
// shared secret (x-coordinate); the X9.63 KDF (kdf-type "X963KDF", as CMS
// uses it), if set, is then applied here over that secret with the shadow's
// digest, output length and UKM. Cofactor mode changes nothing on the NIST
// curves hsmd derives on (cofactor 1).
#ifndef HSMD_PROXY_PROVIDER_KEYEXCH_H_
#define HSMD_PROXY_PROVIDER_KEYEXCH_H_

#include <openssl/core.h>

namespace hsmd::proxy {

extern const OSSL_DISPATCH kEcdhKeyExchangeFunctions[];

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_KEYEXCH_H_
