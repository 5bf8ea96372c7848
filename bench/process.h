// Process plumbing for the benchmark: clocks, CPU accounting, messages over
// pipes, forked helpers with deadlines, and running programs.
#ifndef HSMD_BENCH_PROCESS_H_
#define HSMD_BENCH_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hsmd::bench {

// CLOCK_MONOTONIC in nanoseconds: the same clock in every process, so a
// parent and its children can share start times.
int64_t MonotonicNanos();
// CPU time (user + system) of the calling process, in nanoseconds.
int64_t ProcessCpuNanos();
// Time the threads of `pid` have spent on a CPU, in nanoseconds, from its
// CPU-time clock (clock_getcpuclockid: exact, unlike the tick-based
// /proc/PID/stat). Threads that have exited still count: hsmd's fast path
// ends a thread with each connection, and a sum over /proc/PID/task would
// lose their time (and could go backwards).
absl::StatusOr<int64_t> ProcessRunNanos(pid_t pid);
// Sleeps until MonotonicNanos() >= `when`.
void SleepUntil(int64_t when);

// Threads of the calling process (entries of /proc/self/task) and its
// resident set (VmRSS of /proc/self/status, KiB).
int CountThreads();
int64_t ResidentKib();

// A pipe whose ends are closed on exec.
struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
};
absl::StatusOr<Pipe> MakePipe();
void CloseFd(int& fd);

// Messages over a pipe: a 64-bit length, then the bytes.
absl::Status WriteMessage(int fd, absl::string_view payload);
// Waits for a whole message until `deadline`; DEADLINE_EXCEEDED, or
// UNAVAILABLE when the writer went away.
absl::StatusOr<std::string> ReadMessage(int fd, absl::Time deadline);

// A result or an error, as one message.
std::string EncodeResult(const absl::StatusOr<std::string>& result);
absl::StatusOr<std::string> DecodeResult(absl::string_view message);

// Runs `fn` in a forked child and returns what it returned. The child leaves
// with _exit() (never running the parent's destructors or atexit handlers)
// and is killed if it takes longer than `timeout`.
absl::StatusOr<std::string> RunInChild(
    const std::function<absl::StatusOr<std::string>()>& fn,
    absl::Duration timeout);

// Sends `signal` to `pid` (if > 0), reaps it, and SIGKILLs it after `grace`.
// Returns the wait status, or -1 if it could not be reaped.
int StopChild(pid_t pid, int signal, absl::Duration grace);

// A program to run: argv[0] is the path; the environment is ours with the
// `env` entries set and the `unset` names removed.
struct Command {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> unset;
  // Where stdout/stderr go (appended); empty: /dev/null for Spawn, captured
  // (stdout) / kept for the error message (stderr) for Run.
  std::string stdout_path;
  std::string stderr_path;
};

// Starts the program and returns its pid.
absl::StatusOr<pid_t> Spawn(const Command& command);
// Runs the program to completion (killed after `timeout`) and returns its
// stdout; an exit status other than 0 is an error quoting stderr.
absl::StatusOr<std::string> RunProgram(const Command& command,
                                       absl::Duration timeout);

// Reads a whole file.
absl::StatusOr<std::string> ReadFile(const std::string& path);
// Writes a whole file with `mode`.
absl::Status WriteFile(const std::string& path, absl::string_view contents,
                       int mode = 0600);

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_PROCESS_H_
