// Command line of hsmd_bench.
#ifndef HSMD_BENCH_OPTIONS_H_
#define HSMD_BENCH_OPTIONS_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/variant.h"

namespace hsmd::bench {

// Phases that --skip accepts.
inline constexpr const char* kPhases[] = {"matrix", "fork", "footprint", "load",
                                          "nginx"};

struct BenchOptions {
  bool smoke = false;
  std::string json_out;
  std::string markdown_out;

  // An existing `hsmd --demo DIR` (else the benchmark starts its own in a
  // temporary directory). The PIN defaults to DIR/user.pin next to the
  // SoftHSM configuration.
  std::string socket;
  std::string softhsm_conf;
  std::string pin_file;

  // Programs (defaults: from the runfiles, and Debian's paths).
  std::string hsmd;
  std::string hsmproxy;
  std::string footprint_probe;
  std::string softhsm_module = "/usr/lib/softhsm/libsofthsm2.so";
  std::string nginx = "/usr/sbin/nginx";
  std::string openssl = "/usr/bin/openssl";
  std::string token_label = "demo";

  // Matrix.
  std::vector<Op> ops;  // All when empty.
  // Subset of in-process, hsmproxy, client_lib, client_lib_grpc, software
  // (e.g. to profile one of them); all when empty. The fork phase always
  // measures hsmproxy and in-process (the targets), and the client_lib
  // variants that this selects.
  std::set<std::string> variants;
  // Client processes x threads per process.
  std::vector<int> process_counts = {1, 2};
  std::vector<int> thread_counts = {1, 4};
  int rounds = 5;
  int round_ms = 300;
  int64_t max_ops_per_thread = 0;

  int forks = 20;
  int load_clients = 64;
  int load_seconds = 5;
  int64_t load_max_ops = 0;
  int nginx_rounds = 3;
  int nginx_round_ms = 3000;

  std::set<std::string> skip;
  bool keep_temp = false;
};

// Parses argv ("--flag value" or "--flag=value"; '-' and '_' are the same
// in flag names). --smoke sets the smoke defaults first, so explicit flags
// win whatever their order.
absl::StatusOr<BenchOptions> ParseOptions(int argc, const char* const* argv);

std::string Usage();

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_OPTIONS_H_
