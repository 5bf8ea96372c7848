// A clean OpenSSL configuration for the daemon.
//
// hsmd must never load the hsmproxy provider: a system openssl.cnf that
// activates it for applications would otherwise make the daemon (and SoftHSM
// inside it, which uses OpenSSL) call back into itself. Before anything
// initialises OpenSSL, UseCleanOpenSslConfig points OPENSSL_CONF at /dev/null
// (an empty configuration: only the built-in default provider), drops
// OPENSSL_MODULES / OPENSSL_ENGINES, loads that empty configuration so later
// OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG) calls (e.g. from the PKCS#11
// module) are no-ops, and checks that no provider named hsmproxy is loaded.
#ifndef HSMD_DAEMON_OPENSSL_INIT_H_
#define HSMD_DAEMON_OPENSSL_INIT_H_

#include "absl/status/status.h"

namespace hsmd {

inline constexpr char kCleanOpenSslConf[] = "/dev/null";

// Call first thing in main(), before any thread or OpenSSL use.
absl::Status UseCleanOpenSslConfig();

}  // namespace hsmd

#endif  // HSMD_DAEMON_OPENSSL_INIT_H_
