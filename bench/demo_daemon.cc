#include "bench/demo_daemon.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/process.h"

namespace hsmd::bench {

absl::StatusOr<std::unique_ptr<DemoDaemon>> DemoDaemon::Start(
    const std::string& hsmd_path) {
  // Short: Unix socket paths are limited to 108 bytes.
  char pattern[] = "/tmp/hsmdbXXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    return absl::InternalError("mkdtemp /tmp/hsmdbXXXXXX failed");
  }
  std::unique_ptr<DemoDaemon> daemon(new DemoDaemon(pattern));
  Command command;
  command.argv = {hsmd_path, "--demo", daemon->dir()};
  // The daemon sets its own clean OpenSSL configuration; keep the
  // benchmark's environment out of it anyway.
  command.unset = {"OPENSSL_CONF", "SOFTHSM2_CONF", "HSMPROXY_SOCKET"};
  command.stdout_path = daemon->log_path();
  command.stderr_path = daemon->log_path();
  absl::StatusOr<pid_t> pid = Spawn(command);
  if (!pid.ok()) return pid.status();
  daemon->pid_ = *pid;
  const absl::Time deadline = absl::Now() + absl::Minutes(3);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(daemon->pid_, &status, WNOHANG) == daemon->pid_) {
      daemon->pid_ = -1;
      absl::StatusOr<std::string> log = ReadFile(daemon->log_path());
      return absl::InternalError(
          absl::StrCat("hsmd --demo exited during start-up (status ", status,
                       "): ", log.ok() ? *log : ""));
    }
    absl::StatusOr<std::string> log = ReadFile(daemon->log_path());
    if (log.ok() && absl::StrContains(*log, "hsmd ready") &&
        access(daemon->socket_path().c_str(), F_OK) == 0) {
      return daemon;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "hsmd --demo did not become ready; see ", daemon->log_path()));
}

DemoDaemon::~DemoDaemon() {
  StopChild(pid_, SIGTERM, absl::Seconds(30));
  if (!keep_) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

}  // namespace hsmd::bench
