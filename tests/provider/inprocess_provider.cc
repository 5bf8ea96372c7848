#include "tests/provider/inprocess_provider.h"

#include "absl/strings/str_cat.h"
#include "proxy_provider/provider.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {
namespace {

// OSSL_PROVIDER_add_builtin's init has no user argument: the fake to use is
// handed over through this variable, set just before each load.
std::shared_ptr<FakeHsmd>* pending_fake = nullptr;

int TestProviderInit(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                     const OSSL_DISPATCH** out, void** provctx) {
  std::shared_ptr<FakeHsmd> fake = *pending_fake;
  return proxy::ProviderInit(
      handle, in, out, provctx,
      [fake](const client::ClientOptions& options)
          -> absl::StatusOr<std::unique_ptr<client::Client>> {
        return fake->NewClient(options);
      });
}

}  // namespace

absl::StatusOr<std::unique_ptr<InProcessProvider>> InProcessProvider::New(
    std::shared_ptr<FakeHsmd> fake, bool hsmproxy_first) {
  std::unique_ptr<InProcessProvider> p(new InProcessProvider());
  p->libctx_ = OSSL_LIB_CTX_new();
  if (p->libctx_ == nullptr ||
      OSSL_PROVIDER_add_builtin(p->libctx_, "hsmproxy", &TestProviderInit) !=
          1) {
    return absl::InternalError("cannot register the builtin provider");
  }
  pending_fake = &fake;
  auto load_hsmproxy = [&] {
    p->hsmproxy_ = OSSL_PROVIDER_load(p->libctx_, "hsmproxy");
  };
  if (hsmproxy_first) load_hsmproxy();
  p->default_ = OSSL_PROVIDER_load(p->libctx_, "default");
  if (!hsmproxy_first) load_hsmproxy();
  pending_fake = nullptr;
  if (p->hsmproxy_ == nullptr || p->default_ == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot load the providers: ", DrainErrors()));
  }
  return p;
}

InProcessProvider::~InProcessProvider() {
  if (hsmproxy_ != nullptr) OSSL_PROVIDER_unload(hsmproxy_);
  if (default_ != nullptr) OSSL_PROVIDER_unload(default_);
  OSSL_LIB_CTX_free(libctx_);
}

}  // namespace hsmd::testing
