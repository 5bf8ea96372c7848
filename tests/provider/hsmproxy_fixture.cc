#include "tests/provider/hsmproxy_fixture.h"

#include <openssl/err.h>
#include <openssl/store.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>

#include "absl/status/statusor.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {

DemoDaemon* HsmproxyDaemonTest::daemon_ = nullptr;
OSSL_LIB_CTX* HsmproxyDaemonTest::libctx_ = nullptr;
OSSL_PROVIDER* HsmproxyDaemonTest::hsmproxy_ = nullptr;
OSSL_PROVIDER* HsmproxyDaemonTest::default_ = nullptr;
OSSL_LIB_CTX* HsmproxyDaemonTest::verify_libctx_ = nullptr;
OSSL_PROVIDER* HsmproxyDaemonTest::verify_default_ = nullptr;

void HsmproxyDaemonTest::SetUpTestSuite() {
  // A hang anywhere fails the test binary instead of blocking CI.
  alarm(600);
  absl::StatusOr<std::unique_ptr<DemoDaemon>> daemon = DemoDaemon::Start();
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  daemon_ = daemon->release();
  setenv("HSMPROXY_SOCKET", daemon_->socket_path().c_str(), 1);
  libctx_ = OSSL_LIB_CTX_new();
  const std::string dir = RunfilePath("proxy_provider");
  ASSERT_EQ(OSSL_PROVIDER_set_default_search_path(libctx_, dir.c_str()), 1);
  hsmproxy_ = OSSL_PROVIDER_load(libctx_, "hsmproxy");
  ASSERT_NE(hsmproxy_, nullptr) << DrainErrors();
  default_ = OSSL_PROVIDER_load(libctx_, "default");
  verify_libctx_ = OSSL_LIB_CTX_new();
  verify_default_ = OSSL_PROVIDER_load(verify_libctx_, "default");
}

void HsmproxyDaemonTest::TearDownTestSuite() {
  OSSL_PROVIDER_unload(hsmproxy_);
  OSSL_PROVIDER_unload(default_);
  OSSL_LIB_CTX_free(libctx_);
  OSSL_PROVIDER_unload(verify_default_);
  OSSL_LIB_CTX_free(verify_libctx_);
  delete daemon_;
}

void HsmproxyDaemonTest::SetUp() {
  ERR_clear_error();
  if (!daemon_->running()) {
    ASSERT_TRUE(daemon_->Restart().ok());
  }
}

EvpPkeyPtr HsmproxyDaemonTest::Key(const std::string& uri) {
  absl::StatusOr<EvpPkeyPtr> key = LoadKey(libctx_, uri, OSSL_STORE_INFO_PKEY);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? std::move(*key) : nullptr;
}

EvpPkeyPtr HsmproxyDaemonTest::PublicKey(EVP_PKEY* key) {
  return PublicKeyFromSpki(verify_libctx_, SpkiOf(key));
}

}  // namespace hsmd::testing
