// A TLS 1.3 load client: threads that each loop connect -> full handshake
// (no session cache, no tickets, so never a resumption) -> one small HTTP
// request -> read the response to EOF -> close, over loopback.
#ifndef HSMD_BENCH_TLS_LOAD_H_
#define HSMD_BENCH_TLS_LOAD_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/histogram.h"

namespace hsmd::bench {

struct TlsLoadResult {
  uint64_t handshakes = 0;
  uint64_t errors = 0;
  double seconds = 0;
  // Connect to end of response.
  LatencyHistogram latency;
};

// Fails when no connection succeeds, or more than 1% fail.
absl::StatusOr<TlsLoadResult> RunTlsLoad(int port, int threads,
                                         absl::Duration duration);

// One connection, to check a server is up; returns the response.
absl::StatusOr<std::string> TlsGet(int port);

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_TLS_LOAD_H_
