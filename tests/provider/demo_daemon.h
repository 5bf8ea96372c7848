// `hsmd --demo DIR` as a child process for provider tests: a fresh short
// directory under /tmp (socket paths are limited to 108 bytes), the daemon
// started from the test's runfiles, and readiness checked with a real call.
#ifndef HSMD_TESTS_PROVIDER_DEMO_DAEMON_H_
#define HSMD_TESTS_PROVIDER_DEMO_DAEMON_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hsmd::testing {

// A file from the test's runfiles, e.g. "daemon/hsmd".
std::string RunfilePath(const std::string& path);

class DemoDaemon {
 public:
  // Creates DIR, starts hsmd and waits (up to 60 s) until it is ready with
  // the five demo keys.
  static absl::StatusOr<std::unique_ptr<DemoDaemon>> Start();

  // Stops the daemon (if running) and removes DIR.
  ~DemoDaemon();
  DemoDaemon(const DemoDaemon&) = delete;
  DemoDaemon& operator=(const DemoDaemon&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& socket_path() const { return socket_path_; }

  // SIGTERM (graceful) or SIGKILL, then reap.
  absl::Status Stop(bool kill = false);
  // Starts it again on the same DIR (same token and keys).
  absl::Status Restart();
  bool running() const { return pid_ > 0; }
  // The daemon's process id (-1 when stopped).
  pid_t pid() const { return pid_; }

 private:
  explicit DemoDaemon(std::string dir);
  absl::Status Launch();
  absl::Status WaitReady();

  const std::string dir_;
  const std::string socket_path_;
  pid_t pid_ = -1;
  // "hsmd ready" lines seen in the log so far (one per start).
  int starts_ = 0;
};

}  // namespace hsmd::testing

#endif  // HSMD_TESTS_PROVIDER_DEMO_DAEMON_H_
