// Fork cost: what a child pays before its first completed operation, for a
// process that was already using a key before it forked (a prefork server's
// master). Measured twice: in the child, from fork() returning to the first
// result (what the child itself pays), and from fork() in the parent (which
// adds the fork itself: page-table copy and scheduling, the same for every
// variant). hsmproxy's child just calls (client_lib reconnects on
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
  // In the child: from fork() returning until the first result (re-init
  // and reconnection included). The fork targets use this.
  LatencyHistogram child_first;
  // fork() (called in the parent) until the child's first result.
  LatencyHistogram fork_to_first;
  // fork() called in the parent until it returned in the child: the fork
  // itself as the child sees it (what fork_to_first adds to child_first).
  LatencyHistogram fork_to_child;
  // The child's second operation.
  LatencyHistogram second;
  // fork() until a child that does nothing reports back: the floor
  // fork_to_first includes (page-table copy, scheduling, the pipe).
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
