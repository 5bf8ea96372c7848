// The main measurement: every operation x {1, 2} client processes x {1, 4}
// threads per process x every variant, with the variants interleaved round
// by round (round r runs the variants in an order rotated by r), so slow
// drifts of the machine's load hit all variants alike.
#ifndef HSMD_BENCH_MATRIX_H_
#define HSMD_BENCH_MATRIX_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/histogram.h"
#include "bench/variant.h"
#include "bench/worker.h"

namespace hsmd::bench {

// The workers of one variant: as many processes as the largest process
// count measured.
struct VariantWorkers {
  std::string variant;
  std::vector<std::unique_ptr<Worker>> processes;
  // The server process doing this variant's work, when it is not hsmd
  // (MatrixOptions::hsmd_pid): its CPU time is charged to the variant.
  pid_t server_pid = -1;
};

struct MatrixOptions {
  std::vector<Op> ops;
  std::vector<int> process_counts = {1, 2};
  std::vector<int> thread_counts = {1, 4};
  int rounds = 5;
  absl::Duration round_time = absl::Milliseconds(300);
  // 0: rounds are bounded by time only.
  int64_t max_ops_per_thread = 0;
  // hsmd's pid, to charge its CPU time to each round (<= 0: not measured).
  // CellResult::hsmd_cpu_ns is the server's: VariantWorkers::server_pid's
  // when set.
  pid_t hsmd_pid = -1;
};

struct CellResult {
  Op op = Op::kRandom32;
  std::string variant;
  int processes = 1;
  int threads = 1;
  uint64_t ops = 0;
  // Sum over rounds of the round's wall time (the longest process).
  double seconds = 0;
  LatencyHistogram latency;
  // CPU time of the client processes, of hsmd, and of the whole machine
  // (from /proc/stat; what is neither is other load) during the rounds.
  int64_t client_cpu_ns = 0;
  int64_t hsmd_cpu_ns = 0;
  int64_t machine_busy_ns = 0;
  std::vector<double> round_rates;

  double ops_per_second() const { return seconds > 0 ? ops / seconds : 0; }
};

// Busy CPU time of the whole machine so far, from /proc/stat (all CPUs,
// excluding idle and iowait), in nanoseconds.
int64_t MachineBusyNanos();

using MatrixProgress = std::function<void(const std::vector<CellResult>&)>;

// Runs the matrix. `progress` sees the cells of each (op, processes,
// threads) group when it is done.
absl::StatusOr<std::vector<CellResult>> RunMatrix(
    std::vector<VariantWorkers>& workers, const MatrixOptions& options,
    const MatrixProgress& progress);

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_MATRIX_H_
