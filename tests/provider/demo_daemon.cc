#include "tests/provider/demo_daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hsmd::testing {

std::string RunfilePath(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return path;
  return absl::StrCat(srcdir, "/", workspace == nullptr ? "hsmd" : workspace,
                      "/", path);
}

DemoDaemon::DemoDaemon(std::string dir)
    : dir_(std::move(dir)), socket_path_(dir_ + "/hsmd.sock") {}

absl::StatusOr<std::unique_ptr<DemoDaemon>> DemoDaemon::Start() {
  char pattern[] = "/tmp/hsmdXXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  std::unique_ptr<DemoDaemon> daemon(new DemoDaemon(pattern));
  absl::Status status = daemon->Launch();
  if (!status.ok()) return status;
  return daemon;
}

DemoDaemon::~DemoDaemon() {
  (void)Stop(/*kill=*/true);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status DemoDaemon::Launch() {
  std::string binary = RunfilePath("daemon/hsmd");
  std::string log = dir_ + "/hsmd.log";
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    // The daemon never loads the provider, whatever the test's environment.
    unsetenv("OPENSSL_CONF");
    // Under --config=tsan the daemon is a fixture here, not the subject:
    // reports from its gRPC internals must not stop it (its own tests
    // cover it).
    setenv("TSAN_OPTIONS", "report_bugs=0", 1);
    execl(binary.c_str(), binary.c_str(), "--demo", dir_.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_ = pid;
  return WaitReady();
}

// Readiness is read from the daemon's log ("hsmd ready" once the demo keys
// exist and the socket listens) rather than with an RPC: a test process
// that loads hsmproxy.so must not link the hsmd protobuf code itself, or
// both copies would register the same descriptors (see README).
absl::Status DemoDaemon::WaitReady() {
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(
          absl::StrCat("hsmd exited during start-up (status ", status,
                       "); see ", dir_, "/hsmd.log"));
    }
    std::ifstream log(dir_ + "/hsmd.log");
    std::string line;
    int ready = 0;
    while (std::getline(log, line)) {
      if (absl::StrContains(line, "msg=\"hsmd ready\"")) ready++;
    }
    if (ready > starts_ && access(socket_path_.c_str(), F_OK) == 0) {
      starts_ = ready;
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("hsmd did not become ready; see ", dir_, "/hsmd.log"));
}

absl::Status DemoDaemon::Stop(bool kill) {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, kill ? SIGKILL : SIGTERM);
  int status = 0;
  // A graceful stop that hangs is finished off.
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status DemoDaemon::Restart() {
  absl::Status status = Stop();
  if (!status.ok()) return status;
  return Launch();
}

}  // namespace hsmd::testing
