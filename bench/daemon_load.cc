#include "bench/daemon_load.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bench/process.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

constexpr char kCoordinatorGone[] = "the run was cancelled before it started";

struct Child {
  pid_t pid = -1;
  int result_fd = -1;
};

// In a client process: prepare, report ready, wait for the start time, run.
[[noreturn]] void ClientMain(const VariantFactory& factory,
                             const LoadOptions& options, int ready_fd,
                             int go_fd, int result_fd) {
  alarm(static_cast<unsigned>(absl::ToInt64Seconds(options.duration)) + 300);
  absl::StatusOr<std::string> result = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::unique_ptr<Variant> variant, factory());
    ASSIGN_OR_RETURN(std::unique_ptr<OpRunner> runner,
                     variant->Prepare(options.op, 1));
    // Connects, and proves the operation works.
    RETURN_IF_ERROR(runner->Run(0));
    RETURN_IF_ERROR(variant->Check(options.op, runner->output(0)));
    char ready = 'r';
    if (write(ready_fd, &ready, 1) != 1) {
      return absl::InternalError("cannot report ready");
    }
    int64_t start = 0;
    size_t got = 0;
    while (got < sizeof(start)) {
      const ssize_t n = read(go_fd, reinterpret_cast<char*>(&start) + got,
                             sizeof(start) - got);
      if (n <= 0 && errno != EINTR) {
        return absl::UnavailableError(kCoordinatorGone);
      }
      if (n > 0) got += static_cast<size_t>(n);
    }
    RoundSpec spec;
    spec.op = options.op;
    spec.threads = 1;
    spec.start = start;
    spec.end = start + absl::ToInt64Nanoseconds(options.duration);
    spec.max_ops_per_thread = options.max_ops_per_client;
    ASSIGN_OR_RETURN(RoundResult round, RunRound(*runner, spec));
    std::string out(reinterpret_cast<const char*>(&round.ops),
                    sizeof(round.ops));
    out.append(reinterpret_cast<const char*>(&round.elapsed_ns),
               sizeof(round.elapsed_ns));
    out += round.latency.Serialize();
    return out;
  }();
  if (!result.ok()) {
    // Unblock the coordinator if we failed before reporting ready.
    char failed = 'f';
    (void)!write(ready_fd, &failed, 1);
  }
  _exit(WriteMessage(result_fd, EncodeResult(result)).ok() ? 0 : 1);
}

}  // namespace

absl::StatusOr<LoadResult> RunDaemonLoad(const VariantFactory& factory,
                                         const LoadOptions& options) {
  ASSIGN_OR_RETURN(Pipe ready, MakePipe());
  ASSIGN_OR_RETURN(Pipe go, MakePipe());
  std::vector<Child> children;
  absl::Status status;
  for (int i = 0; i < options.clients && status.ok(); ++i) {
    absl::StatusOr<Pipe> result = MakePipe();
    if (!result.ok()) {
      status = result.status();
      break;
    }
    const pid_t pid = fork();
    if (pid == 0) {
      close(ready.read_fd);
      close(go.write_fd);
      close(result->read_fd);
      for (const Child& c : children) close(c.result_fd);
      ClientMain(factory, options, ready.write_fd, go.read_fd,
                 result->write_fd);
    }
    CloseFd(result->write_fd);
    if (pid < 0) {
      CloseFd(result->read_fd);
      status = absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
      break;
    }
    children.push_back({pid, result->read_fd});
  }
  CloseFd(ready.write_fd);
  CloseFd(go.read_fd);
  // Everyone connected and checked its operation (or failed).
  int failed = 0;
  for (size_t i = 0; i < children.size() && status.ok(); ++i) {
    char c = 0;
    absl::Status read_status = absl::OkStatus();
    for (;;) {
      const ssize_t n = read(ready.read_fd, &c, 1);
      if (n == 1) break;
      if (n < 0 && errno == EINTR) continue;
      read_status = absl::UnavailableError("a client process vanished");
      break;
    }
    if (!read_status.ok()) status = read_status;
    failed += c == 'f';
  }
  LoadResult out;
  out.op = options.op;
  out.clients = static_cast<int>(children.size());
  int64_t hsmd_before = 0;
  if (status.ok() && failed == 0) {
    const int64_t start = MonotonicNanos() + 20'000'000;
    std::string go_bytes;
    for (size_t i = 0; i < children.size(); ++i) {
      go_bytes.append(reinterpret_cast<const char*>(&start), sizeof(start));
    }
    SleepUntil(start - 10'000'000);
    if (options.hsmd_pid > 0) {
      absl::StatusOr<int64_t> ns = ProcessRunNanos(options.hsmd_pid);
      hsmd_before = ns.ok() ? *ns : 0;
    }
    if (write(go.write_fd, go_bytes.data(), go_bytes.size()) !=
        static_cast<ssize_t>(go_bytes.size())) {
      status = absl::InternalError("cannot start the client processes");
    }
  }
  CloseFd(go.write_fd);
  int64_t longest = 0;
  std::string first_error;
  bool cancelled_error = false;
  const absl::Time deadline =
      absl::Now() + options.duration + absl::Seconds(300);
  for (Child& child : children) {
    absl::StatusOr<std::string> message =
        ReadMessage(child.result_fd, deadline);
    CloseFd(child.result_fd);
    StopChild(child.pid, message.ok() ? 0 : SIGKILL, absl::Seconds(10));
    absl::StatusOr<std::string> body =
        message.ok() ? DecodeResult(*message) : message.status();
    if (!body.ok()) {
      // Prefer the cause over the clients that merely saw the run cancelled.
      const bool cancelled =
          absl::StrContains(body.status().message(), kCoordinatorGone);
      if (first_error.empty() || (!cancelled && cancelled_error)) {
        first_error = body.status().ToString();
        cancelled_error = cancelled;
      }
      continue;
    }
    absl::string_view in(*body);
    uint64_t ops = 0;
    int64_t elapsed = 0;
    if (in.size() < sizeof(ops) + sizeof(elapsed)) {
      first_error = "malformed client result";
      continue;
    }
    std::memcpy(&ops, in.data(), sizeof(ops));
    std::memcpy(&elapsed, in.data() + sizeof(ops), sizeof(elapsed));
    in.remove_prefix(sizeof(ops) + sizeof(elapsed));
    absl::StatusOr<LatencyHistogram> latency = LatencyHistogram::Parse(in);
    if (!latency.ok()) {
      first_error = latency.status().ToString();
      continue;
    }
    out.ops += ops;
    out.latency.Merge(*latency);
    longest = std::max(longest, elapsed);
  }
  if (options.hsmd_pid > 0 && hsmd_before > 0) {
    absl::StatusOr<int64_t> ns = ProcessRunNanos(options.hsmd_pid);
    if (ns.ok()) out.hsmd_cpu_ns = *ns - hsmd_before;
  }
  CloseFd(ready.read_fd);
  if (!status.ok()) return status;
  if (!first_error.empty()) {
    return absl::InternalError(
        absl::StrCat("a client process failed: ", first_error));
  }
  out.seconds = longest / 1e9;
  return out;
}

}  // namespace hsmd::bench
