// The one symbol hsmproxy.so exports (see provider.lds).
#include <openssl/core.h>

#include <memory>

#include "client_lib/client.h"
#include "proxy_provider/provider.h"

extern "C" int OSSL_provider_init(const OSSL_CORE_HANDLE* handle,
                                  const OSSL_DISPATCH* in,
                                  const OSSL_DISPATCH** out, void** provctx) {
  return hsmd::proxy::ProviderInit(
      handle, in, out, provctx, [](const hsmd::client::ClientOptions& options) {
        return hsmd::client::Client::New(options);
      });
}
