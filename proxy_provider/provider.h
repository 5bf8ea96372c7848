// hsmproxy's provider entry: OSSL_provider_init's body, with the hsmd client
// factory as a parameter so in-process tests can substitute a fake
// (OSSL_PROVIDER_add_builtin). entry.cc exports the real OSSL_provider_init.
#ifndef HSMD_PROXY_PROVIDER_PROVIDER_H_
#define HSMD_PROXY_PROVIDER_PROVIDER_H_

#include <openssl/core.h>

#include "proxy_provider/provider_context.h"

namespace hsmd::proxy {

int ProviderInit(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                 const OSSL_DISPATCH** out, void** provctx,
                 ClientFactory client_factory);

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_PROVIDER_H_
