// The daemon under load: many client processes (64 by default), each one
// thread with its own client_lib connection, running one operation
// back to back for a fixed time, all starting together.
#ifndef HSMD_BENCH_DAEMON_LOAD_H_
#define HSMD_BENCH_DAEMON_LOAD_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/histogram.h"
#include "bench/variant.h"
#include "bench/worker.h"

namespace hsmd::bench {

struct LoadOptions {
  Op op = Op::kEcdsaP256Sign;
  int clients = 64;
  absl::Duration duration = absl::Seconds(5);
  // 0: bounded by time only.
  int64_t max_ops_per_client = 0;
  pid_t hsmd_pid = -1;
};

struct LoadResult {
  Op op = Op::kEcdsaP256Sign;
  int clients = 0;
  uint64_t ops = 0;
  double seconds = 0;
  LatencyHistogram latency;
  int64_t hsmd_cpu_ns = 0;
  double ops_per_second() const { return seconds > 0 ? ops / seconds : 0; }
};

// `factory` builds each client's variant (in the client process).
absl::StatusOr<LoadResult> RunDaemonLoad(const VariantFactory& factory,
                                         const LoadOptions& options);

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_DAEMON_LOAD_H_
