// Runs a program as a child process for tests, with its stdout and stderr
// captured in files, and every wait bounded by a timeout.
#ifndef HSMD_DAEMON_TESTING_SUBPROCESS_H_
#define HSMD_DAEMON_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hsmd::testing {

// $TEST_SRCDIR/hsmd/<path>: a data dependency's path at test run time.
std::string RunfilePath(const std::string& workspace_relative_path);

class Subprocess {
 public:
  // Starts argv[0] (a path) with the current environment plus `env`
  // ("NAME=value" entries, overriding).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv,
      const std::vector<std::string>& env = {});

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills (SIGKILL) and reaps the child if it is still running.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  void Signal(int sig);

  // The exit code, or 128 + the signal number if a signal ended it.
  // DEADLINE_EXCEEDED (and the child is killed) when it does not exit in
  // time.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // True while the child has not exited.
  bool Running();

  std::string Stdout() const;
  std::string Stderr() const;

 private:
  Subprocess() = default;

  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  std::string stdout_path_;
  std::string stderr_path_;
};

// Waits until something accepts connections on `socket_path`; fails if the
// process exits first or `timeout` passes (with its stderr in the message).
absl::Status WaitForSocket(Subprocess& process, const std::string& socket_path,
                           absl::Duration timeout);

// Runs to completion (bounded by `timeout`); returns the exit code.
absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv,
                                    std::string* out, std::string* err,
                                    absl::Duration timeout = absl::Seconds(60),
                                    const std::vector<std::string>& env = {});

}  // namespace hsmd::testing

#endif  // HSMD_DAEMON_TESTING_SUBPROCESS_H_
