#include "daemon/testing/fake_daemon.h"

#include <utility>
#include <vector>

#include "common/error_detail.h"
#include "common/status_macros.h"

namespace hsmd::testing {

absl::StatusOr<FakeDaemon> StartFakeDaemon(config::Config config) {
  FakeDaemon out;
  ASSIGN_OR_RETURN(
      std::unique_ptr<backend::FakeBackend> fake,
      backend::FakeBackend::New({.name = "fake", .token_label = "fake"}));
  out.fake = fake.get();
  v1::GenerateKeyRequest request;
  request.set_label("ec");
  request.set_key_type(v1::KEY_TYPE_EC);
  request.set_curve(v1::CURVE_P256);
  ASSIGN_OR_RETURN(out.key, fake->GenerateKey(request, {}));
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(std::move(fake));
  ASSIGN_OR_RETURN(out.daemon,
                   TestDaemon::Start(std::move(backends), std::move(config)));
  out.sign.mutable_key()->set_uri(out.key.uri());
  out.sign.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  out.sign.set_message("m");
  return out;
}

absl::Status DeviceError() {
  absl::Status error = absl::InternalError(kDeviceErrorMessage);
  v1::ErrorDetail detail;
  detail.set_backend_kind("pkcs11");
  detail.set_backend_code_name("CKR_DEVICE_ERROR");
  detail.set_backend_code(0x30);
  detail.set_backend_function("C_Sign");
  SetErrorDetail(error, detail);
  return error;
}

}  // namespace hsmd::testing
