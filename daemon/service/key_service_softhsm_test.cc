// The service conformance suite against a real SoftHSM token through the
// PKCS#11 backend, over a real Unix socket.
#include <memory>
#include <vector>

#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/testing/service_conformance.h"
#include "gtest/gtest.h"
#include "tests/util/softhsm_env.h"

namespace hsmd::testing {
namespace {

absl::StatusOr<std::vector<std::unique_ptr<backend::Backend>>>
SoftHsmBackends() {
  // SoftHSM reads its configuration once per process: one store, kept for
  // the process lifetime.
  static SoftHsmEnv* env = [] {
    absl::StatusOr<std::unique_ptr<SoftHsmEnv>> created =
        SoftHsmEnv::New("service-test");
    return created.ok() ? created->release() : nullptr;
  }();
  if (env == nullptr) return absl::InternalError("SoftHsmEnv::New failed");
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::NewPkcs11Backend(env->BackendOptions(/*pool_size=*/4));
  if (!backend.ok()) return backend.status();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(backend));
  return backends;
}

INSTANTIATE_TEST_SUITE_P(SoftHsm, ServiceConformanceTest,
                         ::testing::Values(ServiceTestBackend{
                             "softhsm", SoftHsmBackends,
                             /*concurrency_seconds=*/10}));

}  // namespace
}  // namespace hsmd::testing
