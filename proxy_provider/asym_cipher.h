// ASYM_CIPHER for RSA: decryption with HSM keys (PKCS#1 v1.5, OAEP with
// hash / MGF1 hash / label, and libssl's TLS premaster padding), encryption
// locally with the public key. And for SM2 (GB/T 32918.4 with SM3):
// decryption of the ciphertext OpenSSL produces (DER C1 || C3 || C2), passed
// to hsmd unchanged; encryption locally.
//
// Like signature.h, a default-provider "shadow" context on the public key
// takes the caller's parameters (so validation and get_params match OpenSSL)
// and is read back at decryption time. A failed decryption is an ordinary
// "decryption failed" error without detail, so it cannot act as a padding
// oracle; for the TLS padding mode a failure yields a random premaster
// secret, as TLS requires (RFC 5246 7.4.7.1).
#ifndef HSMD_PROXY_PROVIDER_ASYM_CIPHER_H_
#define HSMD_PROXY_PROVIDER_ASYM_CIPHER_H_

#include <openssl/core.h>

namespace hsmd::proxy {

extern const OSSL_DISPATCH kRsaAsymCipherFunctions[];
extern const OSSL_DISPATCH kSm2AsymCipherFunctions[];

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_ASYM_CIPHER_H_
