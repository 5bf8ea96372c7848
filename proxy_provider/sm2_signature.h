// SIGNATURE for SM2 (GB/T 32918.2) with SM3, named "SM2" like the default
// provider's, so `openssl pkeyutl -sign -rawin -digest sm3`, `openssl req
// -x509 -sm3` and EVP_DigestSign(SM3) work with HSM keys from sdf: URIs.
//
// HSM keys: digest_sign computes Z from the distinguishing ID (parameter
// "distid", OSSL_PKEY_PARAM_DIST_ID; default "1234567812345678" per GM/T
// 0009) and the public key, hashes e = SM3(Z || M) locally and sends hsmd
// only e; plain sign takes e itself (32 bytes). The signature is DER
// (SEQUENCE { r, s }). Verification runs locally with the same ID rule. The
// algorithm identifier for certificates is SM2-with-SM3.
//
// Software SM2 keys (see key.h) are served wholly by the default provider,
// with its own default ID (empty in OpenSSL 3.0), so a process that loads
// hsmproxy signs and verifies them exactly as before.
#ifndef HSMD_PROXY_PROVIDER_SM2_SIGNATURE_H_
#define HSMD_PROXY_PROVIDER_SM2_SIGNATURE_H_

#include <openssl/core.h>

namespace hsmd::proxy {

extern const OSSL_DISPATCH kSm2SignatureFunctions[];

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_SM2_SIGNATURE_H_
