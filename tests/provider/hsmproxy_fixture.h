// The fixture of the provider's integration tests: one `hsmd --demo` for the
// suite, hsmproxy.so and the default provider loaded into a library context
// from the build's runfiles (as an application would load them), and a
// second, default-only context in which results are verified.
#ifndef HSMD_TESTS_PROVIDER_HSMPROXY_FIXTURE_H_
#define HSMD_TESTS_PROVIDER_HSMPROXY_FIXTURE_H_

#include <openssl/provider.h>

#include <string>

#include "common/openssl_ptr.h"
#include "gtest/gtest.h"
#include "tests/provider/demo_daemon.h"

namespace hsmd::testing {

class HsmproxyDaemonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // Clears OpenSSL's error queue; restarts hsmd if a test stopped it.
  void SetUp() override;

  // The private key behind `uri`, through hsmproxy's STORE.
  static EvpPkeyPtr Key(const std::string& uri);
  // The key's public half, in the default-only library context.
  static EvpPkeyPtr PublicKey(EVP_PKEY* key);

  static DemoDaemon* daemon_;
  static OSSL_LIB_CTX* libctx_;
  static OSSL_PROVIDER* hsmproxy_;
  static OSSL_PROVIDER* default_;
  static OSSL_LIB_CTX* verify_libctx_;
  static OSSL_PROVIDER* verify_default_;
};

}  // namespace hsmd::testing

#endif  // HSMD_TESTS_PROVIDER_HSMPROXY_FIXTURE_H_
