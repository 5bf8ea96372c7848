// Runs client_lib/testing/test_server as a child process for tests and the
// benchmark, so the calling process never links or runs gRPC.
#ifndef HSMD_CLIENT_LIB_TESTING_TEST_SERVER_PROCESS_H_
#define HSMD_CLIENT_LIB_TESTING_TEST_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hsmd::client::testing {

// A fresh short directory under /tmp (socket paths are limited to 108 bytes,
// $TEST_TMPDIR is longer) and a socket path inside it.
absl::StatusOr<std::string> MakeTempSocketPath();

class TestServerProcess {
 public:
  // Starts test_server listening on `socket_path` and waits (up to 30 s) for
  // it to print READY.
  static absl::StatusOr<std::unique_ptr<TestServerProcess>> Start(
      const std::string& socket_path);

  // Kills the server if it still runs.
  ~TestServerProcess();
  TestServerProcess(const TestServerProcess&) = delete;
  TestServerProcess& operator=(const TestServerProcess&) = delete;

  // SIGKILL and reap: the daemon dies without closing anything gracefully.
  absl::Status Kill();

  pid_t pid() const { return pid_; }

 private:
  explicit TestServerProcess(pid_t pid) : pid_(pid) {}

  pid_t pid_;
};

}  // namespace hsmd::client::testing

#endif  // HSMD_CLIENT_LIB_TESTING_TEST_SERVER_PROCESS_H_
