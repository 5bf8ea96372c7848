// hsmproxy registered in-process (OSSL_PROVIDER_add_builtin) in a fresh
// library context, talking to a FakeHsmd instead of a daemon.
#ifndef HSMD_TESTS_PROVIDER_INPROCESS_PROVIDER_H_
#define HSMD_TESTS_PROVIDER_INPROCESS_PROVIDER_H_

#include <openssl/provider.h>

#include <memory>

#include "absl/status/statusor.h"
#include "tests/provider/fake_hsmd.h"

namespace hsmd::testing {

class InProcessProvider {
 public:
  // Loads the default provider and hsmproxy (in that order, or hsmproxy
  // first) into a new library context.
  static absl::StatusOr<std::unique_ptr<InProcessProvider>> New(
      std::shared_ptr<FakeHsmd> fake, bool hsmproxy_first = false);
  ~InProcessProvider();

  OSSL_LIB_CTX* libctx() const { return libctx_; }
  OSSL_PROVIDER* hsmproxy() const { return hsmproxy_; }

 private:
  InProcessProvider() = default;
  OSSL_LIB_CTX* libctx_ = nullptr;
  OSSL_PROVIDER* default_ = nullptr;
  OSSL_PROVIDER* hsmproxy_ = nullptr;
};

}  // namespace hsmd::testing

#endif  // HSMD_TESTS_PROVIDER_INPROCESS_PROVIDER_H_
