#include "bench/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

extern char** environ;

namespace hsmd::bench {
namespace {

std::string Errno() { return std::strerror(errno); }

absl::Status WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("write to pipe: ", Errno()));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, char* data, size_t size, absl::Time deadline) {
  while (size > 0) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("timed out reading from pipe");
    }
    pollfd p{fd, POLLIN, 0};
    // At most a minute per wait (then the deadline is checked again); never
    // 0, which would make an idle process spin.
    const int ms = left >= absl::Minutes(1)
                       ? 60000
                       : static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    const int ready = poll(&p, 1, ms);
    if (ready < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", Errno()));
    }
    if (ready <= 0) continue;
    const ssize_t n = read(fd, data, size);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::UnavailableError(absl::StrCat("read from pipe: ", Errno()));
    }
    if (n == 0) {
      return absl::UnavailableError("the other process closed the pipe");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// NULL-terminated environment for execve: ours, minus `unset`, with `env`.
std::vector<std::string> BuildEnv(const Command& command) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view entry(*e);
    const absl::string_view name = entry.substr(0, entry.find('='));
    bool drop = false;
    for (const std::string& u : command.unset) drop |= name == u;
    for (const auto& [k, v] : command.env) drop |= name == k;
    if (!drop) out.emplace_back(entry);
  }
  for (const auto& [k, v] : command.env) out.push_back(absl::StrCat(k, "=", v));
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int OpenOutput(const std::string& path) {
  if (path.empty()) return open("/dev/null", O_WRONLY | O_CLOEXEC);
  return open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

std::string Tail(const std::string& text, size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("status ", status);
}

}  // namespace

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t ProcessCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

absl::StatusOr<int64_t> ProcessRunNanos(pid_t pid) {
  clockid_t clock;
  const int err = clock_getcpuclockid(pid, &clock);
  if (err != 0) {
    return absl::UnavailableError(absl::StrCat("no CPU-time clock for process ",
                                               pid, ": ", std::strerror(err)));
  }
  timespec ts;
  if (clock_gettime(clock, &ts) != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot read the CPU time of process ", pid, ": ", Errno()));
  }
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void SleepUntil(int64_t when) {
  timespec ts;
  ts.tv_sec = when / 1'000'000'000;
  ts.tv_nsec = when % 1'000'000'000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) ==
         EINTR) {
  }
}

int CountThreads() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* entry = readdir(d)) n += entry->d_name[0] != '.';
  closedir(d);
  return n;
}

int64_t ResidentKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest(line);
    if (absl::ConsumePrefix(&rest, "VmRSS:")) {
      rest = absl::StripAsciiWhitespace(rest);
      absl::ConsumeSuffix(&rest, "kB");
      int64_t kib = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kib)) return kib;
    }
  }
  return -1;
}

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", Errno()));
  }
  return Pipe{fds[0], fds[1]};
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

absl::Status WriteMessage(int fd, absl::string_view payload) {
  const uint64_t size = payload.size();
  absl::Status status =
      WriteAll(fd, reinterpret_cast<const char*>(&size), sizeof(size));
  if (!status.ok()) return status;
  return WriteAll(fd, payload.data(), payload.size());
}

absl::StatusOr<std::string> ReadMessage(int fd, absl::Time deadline) {
  uint64_t size = 0;
  absl::Status status =
      ReadAll(fd, reinterpret_cast<char*>(&size), sizeof(size), deadline);
  if (!status.ok()) return status;
  if (size > (uint64_t{1} << 32)) {
    return absl::InternalError(absl::StrCat("message of ", size, " bytes"));
  }
  std::string out(size, '\0');
  status = ReadAll(fd, out.data(), out.size(), deadline);
  if (!status.ok()) return status;
  return out;
}

std::string EncodeResult(const absl::StatusOr<std::string>& result) {
  if (result.ok()) return absl::StrCat("O", *result);
  return absl::StrCat("E", static_cast<int>(result.status().code()), ":",
                      result.status().message());
}

absl::StatusOr<std::string> DecodeResult(absl::string_view message) {
  if (absl::ConsumePrefix(&message, "O")) return std::string(message);
  if (absl::ConsumePrefix(&message, "E")) {
    const size_t colon = message.find(':');
    int code = static_cast<int>(absl::StatusCode::kUnknown);
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(message.substr(0, colon), &code)) {
      return absl::UnknownError(message);
    }
    return absl::Status(static_cast<absl::StatusCode>(code),
                        message.substr(colon + 1));
  }
  return absl::InternalError("malformed result message");
}

absl::StatusOr<std::string> RunInChild(
    const std::function<absl::StatusOr<std::string>()>& fn,
    absl::Duration timeout) {
  absl::StatusOr<Pipe> p = MakePipe();
  if (!p.ok()) return p.status();
  const pid_t pid = fork();
  if (pid < 0) {
    CloseFd(p->read_fd);
    CloseFd(p->write_fd);
    return absl::InternalError(absl::StrCat("fork: ", Errno()));
  }
  if (pid == 0) {
    close(p->read_fd);
    absl::StatusOr<std::string> result = fn();
    const bool sent = WriteMessage(p->write_fd, EncodeResult(result)).ok();
    _exit(sent ? 0 : 1);
  }
  CloseFd(p->write_fd);
  absl::StatusOr<std::string> message =
      ReadMessage(p->read_fd, absl::Now() + timeout);
  CloseFd(p->read_fd);
  const int status =
      StopChild(pid, message.ok() ? 0 : SIGKILL, absl::Seconds(10));
  if (!message.ok()) {
    return absl::Status(
        message.status().code(),
        absl::StrCat("helper process (", DescribeWaitStatus(status),
                     "): ", message.status().message()));
  }
  return DecodeResult(*message);
}

int StopChild(pid_t pid, int signal, absl::Duration grace) {
  if (pid <= 0) return -1;
  if (signal != 0) kill(pid, signal);
  const absl::Time deadline = absl::Now() + grace;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      return waitpid(pid, &status, 0) == pid ? status : -1;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

absl::StatusOr<pid_t> Spawn(const Command& command) {
  if (command.argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<std::string> env = BuildEnv(command);
  std::vector<char*> envp = Pointers(env);
  std::vector<std::string> args = command.argv;
  std::vector<char*> argv = Pointers(args);
  const int out = OpenOutput(command.stdout_path);
  const int err = OpenOutput(command.stderr_path);
  if (out < 0 || err < 0) {
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    return absl::InternalError(
        absl::StrCat("cannot open output of ", command.argv[0], ": ", Errno()));
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out);
  close(err);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", Errno()));
  return pid;
}

absl::StatusOr<std::string> RunProgram(const Command& command,
                                       absl::Duration timeout) {
  if (command.argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<std::string> env = BuildEnv(command);
  std::vector<char*> envp = Pointers(env);
  std::vector<std::string> args = command.argv;
  std::vector<char*> argv = Pointers(args);
  absl::StatusOr<Pipe> out = MakePipe();
  if (!out.ok()) return out.status();
  absl::StatusOr<Pipe> err = MakePipe();
  if (!err.ok()) return err.status();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out->write_fd, STDOUT_FILENO);
    dup2(err->write_fd, STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  CloseFd(out->write_fd);
  CloseFd(err->write_fd);
  if (pid < 0) {
    CloseFd(out->read_fd);
    CloseFd(err->read_fd);
    return absl::InternalError(absl::StrCat("fork: ", Errno()));
  }
  std::string stdout_text;
  std::string stderr_text;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  while (out->read_fd >= 0 || err->read_fd >= 0) {
    pollfd fds[2] = {{out->read_fd, POLLIN, 0}, {err->read_fd, POLLIN, 0}};
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) {
      timed_out = true;
      break;
    }
    const int ready = poll(fds, 2, ms > 1000 ? 1000 : static_cast<int>(ms));
    if (ready <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? stdout_text : stderr_text).append(buf, n);
      } else if (n == 0 || errno != EINTR) {
        CloseFd(i == 0 ? out->read_fd : err->read_fd);
      }
    }
  }
  CloseFd(out->read_fd);
  CloseFd(err->read_fd);
  const int status = StopChild(pid, timed_out ? SIGKILL : 0,
                               absl::Seconds(timed_out ? 5 : 60));
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(command.argv[0], " did not finish within ",
                     absl::FormatDuration(timeout)));
  }
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(command.argv[0], " failed (",
                                            DescribeWaitStatus(status),
                                            "): ", Tail(stderr_text, 2000)));
  }
  return stdout_text;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", Errno()));
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::Status WriteFile(const std::string& path, absl::string_view contents,
                       int mode) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot write ", path, ": ", Errno()));
  }
  absl::Status status = WriteAll(fd, contents.data(), contents.size());
  close(fd);
  return status;
}

}  // namespace hsmd::bench
