#include "daemon/openssl_init.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <stdlib.h>

namespace hsmd {

absl::Status UseCleanOpenSslConfig() {
  if (setenv("OPENSSL_CONF", kCleanOpenSslConf, 1) != 0 ||
      unsetenv("OPENSSL_MODULES") != 0 || unsetenv("OPENSSL_ENGINES") != 0) {
    return absl::InternalError("cannot set the OpenSSL environment");
  }
  if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1) {
    ERR_clear_error();
    return absl::InternalError("OpenSSL initialisation failed");
  }
  if (OSSL_PROVIDER_available(nullptr, "hsmproxy") == 1) {
    return absl::FailedPreconditionError(
        "the hsmproxy OpenSSL provider is loaded in the daemon (OpenSSL was "
        "initialised before the clean configuration was set)");
  }
  return absl::OkStatus();
}

}  // namespace hsmd
