// Service tests shared by every backend: the same RPC-level expectations run
// over a real Unix socket against the fake backend and against SoftHSM
// through the PKCS#11 backend. A test binary instantiates them with
//
//   INSTANTIATE_TEST_SUITE_P(Fake, ServiceConformanceTest,
//                            ::testing::Values(ServiceTestBackend{...}));
//
// Each parameter starts one daemon per suite (the backend factory is called
// once) with limits.max_message_bytes = kTestMaxMessageBytes, and generates
// the keys rsa-2048, ec-p256, ec-p384 and ed25519 through AdminService.
#ifndef HSMD_DAEMON_TESTING_SERVICE_CONFORMANCE_H_
#define HSMD_DAEMON_TESTING_SERVICE_CONFORMANCE_H_

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/backend/backend.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.grpc.pb.h"

namespace hsmd::testing {

inline constexpr uint32_t kTestMaxMessageBytes = 64 * 1024;

struct ServiceTestBackend {
  std::string name;
  // Creates the backend(s) to serve (an empty token).
  std::function<
      absl::StatusOr<std::vector<std::unique_ptr<backend::Backend>>>()>
      make_backends;
  // Default length of the concurrency test when neither
  // HSMD_CONCURRENCY_SECONDS nor HSMD_LONG_TESTS=1 (60 s) is set.
  int concurrency_seconds = 10;
};

inline std::ostream& operator<<(std::ostream& os, const ServiceTestBackend& b) {
  return os << b.name;
}

struct ConformanceSuiteState;

class ServiceConformanceTest
    : public ::testing::TestWithParam<ServiceTestBackend> {
 public:
  static void TearDownTestSuite();

 protected:
  void SetUp() override;

  v1::KeyService::Stub& keys();
  v1::AdminService::Stub& admin();
  // A key generated at suite set-up, by label.
  const v1::Key& key(const std::string& label);
  std::shared_ptr<grpc::Channel> NewChannel();
  const std::string& socket_path();

  v1::SignRequest SignRequestFor(const std::string& label);
  grpc::Status Sign(const v1::SignRequest& request,
                    v1::SignResponse* response = nullptr);
  // Signs and verifies the signature with the key's public half.
  void SignAndVerify(const std::string& label, const v1::SignRequest& request);
  void ExpectError(const grpc::Status& s, grpc::StatusCode code,
                   const std::string& text = "");

 private:
  ConformanceSuiteState* state_ = nullptr;
};

}  // namespace hsmd::testing

#endif  // HSMD_DAEMON_TESTING_SERVICE_CONFORMANCE_H_
