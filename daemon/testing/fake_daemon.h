// A TestDaemon serving one FakeBackend ("fake", token "fake") that holds an
// EC P-256 key, plus a Sign request for it: the set-up the service and
// transport tests share.
#ifndef HSMD_DAEMON_TESTING_FAKE_DAEMON_H_
#define HSMD_DAEMON_TESTING_FAKE_DAEMON_H_

#include <memory>

#include "absl/status/statusor.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/config/config.pb.h"
#include "daemon/testing/test_daemon.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::testing {

struct FakeDaemon {
  std::unique_ptr<TestDaemon> daemon;
  // Owned by the daemon.
  backend::FakeBackend* fake = nullptr;
  // The EC P-256 key ("ec").
  v1::Key key;
  // ECDSA with SHA-256 of the message "m", the key named by its URI.
  v1::SignRequest sign;
};

absl::StatusOr<FakeDaemon> StartFakeDaemon(
    config::Config config = TestConfig());

// The error a PKCS#11 backend reports for C_Sign → CKR_DEVICE_ERROR, with
// its ErrorDetail payload: what the tests make the fake fail with to check
// that the detail reaches clients.
inline constexpr char kDeviceErrorMessage[] =
    "C_Sign failed: CKR_DEVICE_ERROR (0x30)";
absl::Status DeviceError();

}  // namespace hsmd::testing

#endif  // HSMD_DAEMON_TESTING_FAKE_DAEMON_H_
