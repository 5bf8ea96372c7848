#include "daemon/openssl_init.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

// A config that activates a provider named "hsmproxy" (OpenSSL's legacy
// module under that name), as an application's openssl.cnf would.
std::string WriteProviderConfig() {
  std::string path = absl::StrCat(::testing::TempDir(), "/hsmproxy.cnf");
  std::ofstream out(path);
  out << "openssl_conf = openssl_init\n"
         "[openssl_init]\nproviders = provider_sect\n"
         "[provider_sect]\ndefault = default_sect\nhsmproxy = hsmproxy_sect\n"
         "[default_sect]\nactivate = 1\n"
         "[hsmproxy_sect]\nmodule = "
      << OPENSSL_info(OPENSSL_INFO_MODULES_DIR) << "/legacy.so\nactivate = 1\n";
  return path;
}

// Runs `body` in a child (OpenSSL initialises once per process) and
// returns its exit status.
template <typename Body>
int InChild(Body body) {
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(OpenSslInitTest, ControlTheConfigLoadsTheProvider) {
  std::string conf = WriteProviderConfig();
  EXPECT_EQ(InChild([&] {
              setenv("OPENSSL_CONF", conf.c_str(), 1);
              OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
              return OSSL_PROVIDER_available(nullptr, "hsmproxy") == 1 ? 0 : 1;
            }),
            0);
}

TEST(OpenSslInitTest, CleanConfigKeepsTheProviderOut) {
  std::string conf = WriteProviderConfig();
  EXPECT_EQ(InChild([&] {
              setenv("OPENSSL_CONF", conf.c_str(), 1);
              if (!UseCleanOpenSslConfig().ok()) return 2;
              // Later explicit loads (as a PKCS#11 module may do) stay clean.
              OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
              if (OSSL_PROVIDER_available(nullptr, "hsmproxy") == 1) return 3;
              if (std::string(getenv("OPENSSL_CONF")) != "/dev/null") return 4;
              // The default provider still works.
              unsigned char md[32];
              unsigned int len = 0;
              if (EVP_Digest("x", 1, md, &len, EVP_sha256(), nullptr) != 1) {
                return 5;
              }
              return 0;
            }),
            0);
}

}  // namespace
}  // namespace hsmd
