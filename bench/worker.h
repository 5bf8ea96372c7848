// A benchmark worker: a forked process that holds one variant and runs
// timed rounds of one operation on N threads when told to. The coordinator
// keeps two workers per variant alive for the whole run, so "2 client
// processes" is two workers running the same round at once, and variants
// can be interleaved round by round without re-initialising anything.
#ifndef HSMD_BENCH_WORKER_H_
#define HSMD_BENCH_WORKER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/histogram.h"
#include "bench/variant.h"

namespace hsmd::bench {

// Builds the variant inside the worker process.
using VariantFactory =
    std::function<absl::StatusOr<std::unique_ptr<Variant>>()>;

struct RoundSpec {
  Op op = Op::kRandom32;
  int threads = 1;
  // CLOCK_MONOTONIC nanoseconds: all threads start at `start` and start no
  // new operation at or after `end`.
  int64_t start = 0;
  int64_t end = 0;
  // Also stop a thread after this many operations (0: no limit).
  int64_t max_ops_per_thread = 0;
};

struct RoundResult {
  uint64_t ops = 0;
  // From `start` until the last operation of any thread finished.
  int64_t elapsed_ns = 0;
  // CPU time of the worker process during the round.
  int64_t cpu_ns = 0;
  LatencyHistogram latency;
};

// Runs a round on `runner` in the calling process (the worker's loop, also
// used by tests).
absl::StatusOr<RoundResult> RunRound(OpRunner& runner, const RoundSpec& spec);

class Worker {
 public:
  // Forks the worker; it waits for Init().
  static absl::StatusOr<std::unique_ptr<Worker>> Spawn(std::string name,
                                                       VariantFactory factory,
                                                       int max_threads);
  // Asks the worker to leave, reaps it (SIGKILL after a grace period).
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }

  // Builds the variant, prepares every operation for max_threads threads,
  // runs each once per thread and checks the result (signatures verify,
  // plaintext matches).
  absl::Status Init(absl::Duration timeout);
  // Round in two halves, so several workers run one round together.
  absl::Status StartRound(const RoundSpec& spec);
  absl::StatusOr<RoundResult> FinishRound(absl::Duration timeout);

 private:
  Worker(std::string name, pid_t pid, int to_child, int from_child)
      : name_(std::move(name)),
        pid_(pid),
        to_child_(to_child),
        from_child_(from_child) {}

  const std::string name_;
  const pid_t pid_;
  int to_child_;
  int from_child_;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_WORKER_H_
