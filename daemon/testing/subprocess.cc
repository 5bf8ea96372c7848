#include "daemon/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/unix_socket.h"

extern char** environ;

namespace hsmd::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TempBase() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

}  // namespace

std::string RunfilePath(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  if (srcdir == nullptr) return path;
  return absl::StrCat(srcdir, "/hsmd/", path);
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::unique_ptr<Subprocess> p(new Subprocess);
  std::string tmpl = absl::StrCat(TempBase(), "/procXXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", strerror(errno)));
  }
  p->stdout_path_ = tmpl + "/stdout";
  p->stderr_path_ = tmpl + "/stderr";

  std::vector<std::string> extra = env;
  // Sanitizer builds: known leaks inside third-party modules (see the file).
  const std::string suppressions =
      RunfilePath("daemon/testing/lsan_suppressions.txt");
  if (access(suppressions.c_str(), R_OK) == 0 &&
      std::getenv("LSAN_OPTIONS") == nullptr) {
    extra.push_back(absl::StrCat("LSAN_OPTIONS=suppressions=", suppressions));
    // Frame-pointer unwinding stops inside libcrypto, before the module
    // that owns the leak; the slow unwinder lets the suppression match.
    const char* asan = std::getenv("ASAN_OPTIONS");
    if (asan != nullptr && !absl::StrContains(asan, "fast_unwind_on_malloc")) {
      extra.push_back(
          absl::StrCat("ASAN_OPTIONS=", asan, ":fast_unwind_on_malloc=0"));
    }
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    bool overridden = false;
    for (const std::string& o : extra) {
      if (absl::StartsWith(entry, o.substr(0, o.find('=') + 1))) {
        overridden = true;
      }
    }
    if (!overridden) env_strings.push_back(entry);
  }
  for (const std::string& o : extra) env_strings.push_back(o);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (std::string& s : args) cargv.push_back(s.data());
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO,
                                   p->stdout_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                   p->stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // The child starts with no blocked signals whatever the test's threads
  // have blocked.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int rc = posix_spawn(&p->pid_, cargv[0], &actions, &attr, cargv.data(),
                       envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start ", argv[0], ": ", strerror(rc)));
  }
  return p;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
}

void Subprocess::Signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

bool Subprocess::Running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    exit_code_ =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (Running()) {
    if (absl::Now() > deadline) {
      kill(pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
      reaped_ = true;
      return absl::DeadlineExceededError(
          absl::StrCat("process did not exit within ",
                       absl::FormatDuration(timeout), "; stderr:\n", Stderr()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return exit_code_;
}

std::string Subprocess::Stdout() const { return ReadFile(stdout_path_); }
std::string Subprocess::Stderr() const { return ReadFile(stderr_path_); }

absl::Status WaitForSocket(Subprocess& process, const std::string& socket_path,
                           absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!SomethingListensOn(socket_path)) {
    if (!process.Running()) {
      return absl::FailedPreconditionError(
          absl::StrCat("process exited before listening on ", socket_path,
                       "; stderr:\n", process.Stderr()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "nothing listens on ", socket_path, " after ",
          absl::FormatDuration(timeout), "; stderr:\n", process.Stderr()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv,
                                    std::string* out, std::string* err,
                                    absl::Duration timeout,
                                    const std::vector<std::string>& env) {
  absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(argv, env);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> code = (*p)->Wait(timeout);
  if (out != nullptr) *out = (*p)->Stdout();
  if (err != nullptr) *err = (*p)->Stderr();
  return code;
}

}  // namespace hsmd::testing
