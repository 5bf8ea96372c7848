// KEYMGMT for RSA, RSA-PSS, EC, ED25519 and SM2 (see key.h for the key
// objects).
//
// HSM keys: has/get_params/match/export of the public parts work like any
// public key (so `openssl pkey -pubout`, `-text_pub`, SSL_CTX_check_private_key
// and moving the public key to the default provider for verification all
// work); exporting the private part is refused, and OpenSSL then runs the
// operation in hsmproxy. load() accepts only references made by our store or
// decoder.
//
// Software keys (created through this keymgmt by OpenSSL's fetch order) are
// delegated wholesale to the default provider in hsmproxy's library context:
// generation, import, export, parameters. They never reach hsmd.
#ifndef HSMD_PROXY_PROVIDER_KEYMGMT_H_
#define HSMD_PROXY_PROVIDER_KEYMGMT_H_

#include <openssl/core.h>

#include "proxy_provider/algorithms.h"

namespace hsmd::proxy {

extern const OSSL_DISPATCH kRsaKeymgmtFunctions[];
extern const OSSL_DISPATCH kRsaPssKeymgmtFunctions[];
extern const OSSL_DISPATCH kEcKeymgmtFunctions[];
extern const OSSL_DISPATCH kEd25519KeymgmtFunctions[];
extern const OSSL_DISPATCH kSm2KeymgmtFunctions[];

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_KEYMGMT_H_
