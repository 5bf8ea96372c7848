// The benchmark's results: text table (stdout), Markdown (README) and JSON,
// and the targets evaluated against them.
#ifndef HSMD_BENCH_REPORT_H_
#define HSMD_BENCH_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/daemon_load.h"
#include "bench/fork_cost.h"
#include "bench/matrix.h"
#include "bench/nginx_bench.h"

namespace hsmd::bench {

inline constexpr char kInProcess[] = "in-process";
inline constexpr char kHsmproxy[] = "hsmproxy";
inline constexpr char kClientLib[] = "client_lib";
// client_lib with ClientOptions::fast_path off: hsmd's gRPC server.
inline constexpr char kClientLibGrpc[] = "client_lib_grpc";
inline constexpr char kSoftware[] = "software";
// The bare-socket yardstick (bench/socket_floor.h).
inline constexpr char kSocketFloor[] = "socket_floor";

struct MachineInfo {
  std::string cpu_model;
  int cpus = 0;
  std::string kernel;
  // /proc/loadavg (1, 5, 15 min) before and after the run.
  double load_before[3] = {0, 0, 0};
  double load_after[3] = {0, 0, 0};
  std::string started_at;  // UTC
  double wall_seconds = 0;
};

struct FootprintStage {
  std::string stage;  // baseline, loaded, one_signature, 101_signatures
  int threads = 0;
  int64_t rss_kib = 0;
  int64_t private_dirty_kib = 0;
};

// What one mapping (a shared library, "[heap]", "[anon]") added to the
// resident set from the baseline to the first signature.
struct FootprintMapping {
  std::string path;
  int64_t rss_delta_kib = 0;
};

// RSS added from the baseline to the first signature, grouped by what
// hsmproxy pulls in: "Abseil (26 libraries)", "protobuf-lite", "nghttp2",
// "hsmproxy.so", "libcrypto", "heap and anonymous memory", "other".
struct FootprintGroup {
  std::string name;
  int64_t rss_delta_kib = 0;
};

struct BenchReport;
// Largest first.
std::vector<FootprintGroup> FootprintByDependency(const BenchReport& report);

struct BenchReport {
  MachineInfo machine;
  std::string mode;     // "full" / "smoke"
  std::string command;  // how it was run
  int rounds = 0;
  double round_ms = 0;
  int64_t max_ops_per_thread = 0;
  std::vector<CellResult> cells;
  std::vector<ForkCost> forks;
  std::vector<FootprintStage> footprint;
  // Largest contributors first.
  std::vector<FootprintMapping> footprint_mappings;
  // The same probe in a program that already maps the Abseil libraries
  // hsmproxy needs (preloaded, as a gRPC program has them): what hsmproxy
  // adds beyond Abseil.
  std::vector<FootprintStage> footprint_with_abseil;
  std::vector<LoadResult> load;
  std::vector<NginxResult> nginx;
  // Phases skipped or failed, with the reason.
  std::vector<std::string> notes;
};

struct TargetCheck {
  std::string name;
  std::string target;
  std::string measured;
  // Empty when not measured in this run.
  std::optional<bool> met;
};

std::vector<TargetCheck> EvaluateTargets(const BenchReport& report);

// The cell for (op, variant, processes, threads), or null.
const CellResult* FindCell(const BenchReport& report, Op op,
                           const std::string& variant, int processes,
                           int threads);

std::string FormatText(const BenchReport& report);
std::string FormatMarkdown(const BenchReport& report);
std::string FormatJson(const BenchReport& report);

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_REPORT_H_
