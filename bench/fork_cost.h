// Fork cost: the time from fork() to the child's first completed operation,
// for a process that was already using a key before it forked (a prefork
// server's master). hsmproxy's child just calls (client_lib reconnects on
// its own); an in-process PKCS#11 child must C_Finalize the inherited module
// state, C_Initialize, open a session, log in and find the key again.
#ifndef HSMD_BENCH_FORK_COST_H_
#define HSMD_BENCH_FORK_COST_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench/histogram.h"
#include "bench/variant.h"
#include "bench/worker.h"

namespace hsmd::bench {

struct ForkCost {
  std::string variant;
  Op op = Op::kEcdsaP256Sign;
  // The parent's operation before forking (steady state).
  LatencyHistogram steady;
  // fork() (in the parent) until the child's first result.
  LatencyHistogram first;
  // The child's second operation.
  LatencyHistogram second;
  // fork() until a child that does nothing reports back: the floor the
  // first result includes (page-table copy, scheduling, the pipe).
  LatencyHistogram fork_only;
};

// What a child has to do before it can run `op` with what it inherited;
// returns the runner to use (and keeps whatever it built in `keep`). Null:
// the inherited runner works as is.
using ChildReopen = std::function<absl::StatusOr<std::unique_ptr<OpRunner>>(
    Variant& inherited, Op op, std::unique_ptr<Variant>* keep)>;

// Builds the variant in a helper process, warms `op` up, then forks
// `forks` children one at a time that only report back, and `forks`
// children that run `op` twice, check the result and leave. Every child runs
// under a 60 s alarm().
absl::StatusOr<ForkCost> MeasureForkCost(const VariantFactory& factory,
                                         const ChildReopen& reopen, Op op,
                                         int forks);

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_FORK_COST_H_
