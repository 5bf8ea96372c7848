// RAND "HSMPROXY-RAND": random bytes from the HSM (hsmd's GenerateRandom),
// fetched in 4 KiB batches (random_pool.h) and handed out in order.
//
// Usable as OpenSSL's seed source, so its DRBGs are seeded from the HSM:
//   RAND_set_seed_source_type(libctx, "HSMPROXY-RAND", "provider=hsmproxy")
// or in openssl.cnf (3.0 [random] section, see README):
//   seed = HSMPROXY-RAND
//   seed_properties = provider=hsmproxy
// and as a DRBG itself (RAND_set_DRBG_type, or EVP_RAND_fetch directly).
// Fork-safe: a child never hands out bytes its parent buffered.
#ifndef HSMD_PROXY_PROVIDER_RAND_H_
#define HSMD_PROXY_PROVIDER_RAND_H_

#include <openssl/core.h>

namespace hsmd::proxy {

extern const OSSL_DISPATCH kRandFunctions[];

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_RAND_H_
