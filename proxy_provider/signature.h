// SIGNATURE for RSA (PKCS#1 v1.5 incl. raw DigestInfo and MD5-SHA1, PSS),
// ECDSA and Ed25519.
//
// Each operation context keeps a "shadow" context of the default provider on
// the key's public half (hsmproxy's library context). Parameters set by the
// caller are applied to the shadow, so validation, defaults and get_params
// (algorithm-id for X.509/CMS, pad mode, salt length, ...) behave exactly as
// OpenSSL's own RSA/ECDSA/Ed25519 code; at signing time the effective
// settings are read back and sent to hsmd. Verification and verify-recover
// run on the shadow, locally. digest_sign hashes locally and sends only the
// digest (Ed25519 sends the message: it is one-shot by design).
// Software keys (see key.h) are signed by the shadow itself.
#ifndef HSMD_PROXY_PROVIDER_SIGNATURE_H_
#define HSMD_PROXY_PROVIDER_SIGNATURE_H_

#include <openssl/core.h>

namespace hsmd::proxy {

extern const OSSL_DISPATCH kRsaSignatureFunctions[];
extern const OSSL_DISPATCH kEcdsaSignatureFunctions[];
extern const OSSL_DISPATCH kEd25519SignatureFunctions[];

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_SIGNATURE_H_
