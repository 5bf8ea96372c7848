#include "bench/fork_cost.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "bench/process.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

constexpr int kWarmup = 20;
constexpr int kSteadyOps = 200;

// What a child reports, in nanoseconds.
struct ChildTimes {
  // fork() called in the parent -> fork() returned in the child.
  int64_t fork_to_child_ns;
  // fork() returned in the child -> first result (noop: -> reporting).
  int64_t child_first_ns;
  // First result -> second result (noop: 0).
  int64_t second_ns;
};

// In the child: everything after fork(), reported through `fd`. `forked_at`
// was taken in the parent just before fork(), `child_start` in the child
// as soon as fork() returned.
[[noreturn]] void ChildMain(int fd, int64_t forked_at, int64_t child_start,
                            Variant& variant, OpRunner& inherited,
                            const ChildReopen& reopen, Op op, bool noop) {
  alarm(60);
  absl::StatusOr<std::string> result = [&]() -> absl::StatusOr<std::string> {
    if (noop) {
      ChildTimes times{child_start - forked_at, MonotonicNanos() - child_start,
                       0};
      return std::string(reinterpret_cast<const char*>(&times), sizeof(times));
    }
    std::unique_ptr<Variant> kept;
    std::unique_ptr<OpRunner> fresh;
    OpRunner* runner = &inherited;
    if (reopen) {
      ASSIGN_OR_RETURN(fresh, reopen(variant, op, &kept));
      runner = fresh.get();
    }
    RETURN_IF_ERROR(runner->Run(0));
    const int64_t first_done = MonotonicNanos();
    RETURN_IF_ERROR(runner->Run(0));
    const int64_t second_done = MonotonicNanos();
    Variant& checker = kept != nullptr ? *kept : variant;
    RETURN_IF_ERROR(checker.Check(op, runner->output(0)));
    ChildTimes times{child_start - forked_at, first_done - child_start,
                     second_done - first_done};
    return std::string(reinterpret_cast<const char*>(&times), sizeof(times));
  }();
  _exit(WriteMessage(fd, EncodeResult(result)).ok() ? 0 : 1);
}

absl::StatusOr<std::string> Measure(const VariantFactory& factory,
                                    const ChildReopen& reopen, Op op,
                                    int forks) {
  ASSIGN_OR_RETURN(std::unique_ptr<Variant> variant, factory());
  ASSIGN_OR_RETURN(std::unique_ptr<OpRunner> runner, variant->Prepare(op, 1));
  for (int i = 0; i < kWarmup; ++i) RETURN_IF_ERROR(runner->Run(0));
  RETURN_IF_ERROR(variant->Check(op, runner->output(0)));
  LatencyHistogram steady;
  for (int i = 0; i < kSteadyOps; ++i) {
    const int64_t start = MonotonicNanos();
    RETURN_IF_ERROR(runner->Run(0));
    steady.Record(MonotonicNanos() - start);
  }
  LatencyHistogram child_first;
  LatencyHistogram fork_to_first;
  LatencyHistogram fork_to_child;
  LatencyHistogram second;
  LatencyHistogram fork_only;
  for (int i = 0; i < 2 * forks; ++i) {
    const bool noop = i < forks;
    ASSIGN_OR_RETURN(Pipe pipe, MakePipe());
    const int64_t forked_at = MonotonicNanos();
    const pid_t pid = fork();
    if (pid < 0) {
      return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    }
    if (pid == 0) {
      // The child's first instruction after fork() returned.
      const int64_t child_start = MonotonicNanos();
      close(pipe.read_fd);
      ChildMain(pipe.write_fd, forked_at, child_start, *variant, *runner,
                reopen, op, noop);
    }
    CloseFd(pipe.write_fd);
    absl::StatusOr<std::string> message =
        ReadMessage(pipe.read_fd, absl::Now() + absl::Seconds(90));
    CloseFd(pipe.read_fd);
    StopChild(pid, message.ok() ? 0 : SIGKILL, absl::Seconds(10));
    if (!message.ok()) {
      return absl::Status(
          message.status().code(),
          absl::StrCat("forked child ", i, ": ", message.status().message()));
    }
    absl::StatusOr<std::string> body = DecodeResult(*message);
    if (!body.ok()) {
      return absl::Status(
          body.status().code(),
          absl::StrCat("forked child ", i, ": ", body.status().message()));
    }
    if (body->size() != sizeof(ChildTimes)) {
      return absl::InternalError("malformed child times");
    }
    ChildTimes times;
    std::memcpy(&times, body->data(), sizeof(times));
    if (times.fork_to_child_ns < 0 || times.child_first_ns < 0 ||
        times.second_ns < 0) {
      return absl::InternalError(
          absl::StrCat("forked child ", i, ": negative time"));
    }
    fork_to_child.Record(static_cast<uint64_t>(times.fork_to_child_ns));
    const uint64_t fork_to_result =
        static_cast<uint64_t>(times.fork_to_child_ns + times.child_first_ns);
    if (noop) {
      fork_only.Record(fork_to_result);
    } else {
      child_first.Record(static_cast<uint64_t>(times.child_first_ns));
      fork_to_first.Record(fork_to_result);
      second.Record(static_cast<uint64_t>(times.second_ns));
    }
  }
  std::string out;
  for (const LatencyHistogram* h : {&steady, &child_first, &fork_to_first,
                                    &fork_to_child, &second, &fork_only}) {
    const std::string bytes = h->Serialize();
    const uint64_t size = bytes.size();
    out.append(reinterpret_cast<const char*>(&size), sizeof(size));
    out += bytes;
  }
  return out;
}

}  // namespace

absl::StatusOr<ForkCost> MeasureForkCost(const VariantFactory& factory,
                                         const ChildReopen& reopen, Op op,
                                         int forks) {
  ASSIGN_OR_RETURN(
      std::string bytes,
      RunInChild([&] { return Measure(factory, reopen, op, forks); },
                 absl::Seconds(120) + absl::Seconds(5) * forks));
  ForkCost cost;
  cost.op = op;
  absl::string_view in(bytes);
  for (LatencyHistogram* h :
       {&cost.steady, &cost.child_first, &cost.fork_to_first,
        &cost.fork_to_child, &cost.second, &cost.fork_only}) {
    uint64_t size = 0;
    if (in.size() < sizeof(size)) return absl::InternalError("short result");
    std::memcpy(&size, in.data(), sizeof(size));
    in.remove_prefix(sizeof(size));
    if (in.size() < size) return absl::InternalError("short result");
    ASSIGN_OR_RETURN(*h, LatencyHistogram::Parse(in.substr(0, size)));
    in.remove_prefix(size);
  }
  return cost;
}

}  // namespace hsmd::bench
