#include "client_lib/testing/test_server_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace hsmd::client::testing {
namespace {

constexpr absl::string_view kServerRunfile = "client_lib/testing/test_server";

// The test_server binary in the runfiles of a test (TEST_SRCDIR) or of a
// `bazel run` binary (RUNFILES_DIR, or the runfiles tree as working
// directory).
absl::StatusOr<std::string> ServerBinary() {
  std::vector<std::string> candidates;
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  if (srcdir != nullptr) {
    candidates.push_back(absl::StrCat(srcdir, "/",
                                      workspace != nullptr ? workspace : "hsmd",
                                      "/", kServerRunfile));
  }
  if (const char* runfiles = getenv("RUNFILES_DIR")) {
    candidates.push_back(absl::StrCat(runfiles, "/hsmd/", kServerRunfile));
  }
  candidates.push_back(std::string(kServerRunfile));
  for (const std::string& candidate : candidates) {
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(
      absl::StrCat("test_server binary not found (tried ", candidates.front(),
                   " and ", candidates.size() - 1, " other paths)"));
}

}  // namespace

absl::StatusOr<std::string> MakeTempSocketPath() {
  char dir[] = "/tmp/hsmdXXXXXX";
  if (mkdtemp(dir) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp(/tmp/hsmdXXXXXX): ", strerror(errno)));
  }
  return absl::StrCat(dir, "/hsmd.sock");
}

absl::StatusOr<std::unique_ptr<TestServerProcess>> TestServerProcess::Start(
    const std::string& socket_path) {
  absl::StatusOr<std::string> binary = ServerBinary();
  if (!binary.ok()) return binary.status();
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  std::string arg0 = *binary;
  std::string arg1 = socket_path;
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  // Under --config=tsan the server links Debian's uninstrumented gRPC, whose
  // internals TSan misreads; the server is not what those runs check.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "TSAN_OPTIONS=")) env_strings.push_back(*e);
  }
  env_strings.push_back("TSAN_OPTIONS=report_bugs=0");
  std::vector<char*> env;
  for (std::string& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid;
  const int err =
      posix_spawn(&pid, binary->c_str(), &actions, nullptr, argv, env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (err != 0) {
    close(pipe_fds[0]);
    return absl::InternalError(
        absl::StrCat("posix_spawn ", *binary, ": ", strerror(err)));
  }
  std::unique_ptr<TestServerProcess> server(new TestServerProcess(pid));

  std::string output;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!absl::StrContains(output, "READY\n")) {
    const absl::Duration left = give_up - absl::Now();
    if (left <= absl::ZeroDuration()) {
      close(pipe_fds[0]);
      return absl::DeadlineExceededError(
          "test_server did not print READY within 30 s");
    }
    pollfd pfd = {pipe_fds[0], POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <=
        0) {
      continue;
    }
    char buf[256];
    const ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n <= 0) {
      close(pipe_fds[0]);
      return absl::InternalError(
          "test_server exited before printing READY (see its stderr)");
    }
    output.append(buf, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  return server;
}

TestServerProcess::~TestServerProcess() { Kill().IgnoreError(); }

absl::Status TestServerProcess::Kill() {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, SIGKILL);
  int status;
  pid_t reaped;
  do {
    reaped = waitpid(pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  pid_ = -1;
  if (reaped < 0) {
    return absl::InternalError(absl::StrCat("waitpid: ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace hsmd::client::testing
