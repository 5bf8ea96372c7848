#include "bench/matrix.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "bench/process.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

// Time between telling the workers and the round's start, so that every
// process is waiting when it begins.
constexpr int64_t kStartDelayNs = 5'000'000;

int64_t HsmdRunNanos(pid_t pid) {
  if (pid <= 0) return 0;
  absl::StatusOr<int64_t> ns = ProcessRunNanos(pid);
  return ns.ok() ? *ns : 0;
}

}  // namespace

int64_t MachineBusyNanos() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  int64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
          softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >>
        softirq >> steal) ||
      cpu != "cpu") {
    return 0;
  }
  const int64_t ticks = user + nice + system + irq + softirq + steal;
  return ticks * (1'000'000'000 / sysconf(_SC_CLK_TCK));
}

absl::StatusOr<std::vector<CellResult>> RunMatrix(
    std::vector<VariantWorkers>& workers, const MatrixOptions& options,
    const MatrixProgress& progress) {
  std::vector<CellResult> all;
  const size_t n = workers.size();
  for (Op op : options.ops) {
    for (int processes : options.process_counts) {
      for (int threads : options.thread_counts) {
        std::vector<CellResult> cells(n);
        for (size_t v = 0; v < n; ++v) {
          if (static_cast<int>(workers[v].processes.size()) < processes) {
            return absl::InvalidArgumentError(
                absl::StrCat(workers[v].variant, " has only ",
                             workers[v].processes.size(), " worker(s)"));
          }
          cells[v].op = op;
          cells[v].variant = workers[v].variant;
          cells[v].processes = processes;
          cells[v].threads = threads;
        }
        for (int round = 0; round < options.rounds; ++round) {
          for (size_t k = 0; k < n; ++k) {
            const size_t v = (k + static_cast<size_t>(round)) % n;
            CellResult& cell = cells[v];
            RoundSpec spec;
            spec.op = op;
            spec.threads = threads;
            spec.start = MonotonicNanos() + kStartDelayNs;
            spec.end =
                spec.start + absl::ToInt64Nanoseconds(options.round_time);
            spec.max_ops_per_thread = options.max_ops_per_thread;
            const pid_t server = workers[v].server_pid > 0
                                     ? workers[v].server_pid
                                     : options.hsmd_pid;
            const int64_t hsmd_before = HsmdRunNanos(server);
            const int64_t busy_before = MachineBusyNanos();
            for (int p = 0; p < processes; ++p) {
              RETURN_IF_ERROR(workers[v].processes[p]->StartRound(spec));
            }
            uint64_t ops = 0;
            int64_t longest = 0;
            double rate = 0;
            for (int p = 0; p < processes; ++p) {
              ASSIGN_OR_RETURN(RoundResult result,
                               workers[v].processes[p]->FinishRound(
                                   options.round_time + absl::Seconds(300)));
              ops += result.ops;
              longest = std::max(longest, result.elapsed_ns);
              if (result.elapsed_ns > 0) {
                rate += result.ops * 1e9 / result.elapsed_ns;
              }
              cell.client_cpu_ns += result.cpu_ns;
              cell.latency.Merge(result.latency);
            }
            cell.hsmd_cpu_ns += HsmdRunNanos(server) - hsmd_before;
            cell.machine_busy_ns += MachineBusyNanos() - busy_before;
            cell.ops += ops;
            cell.seconds += longest / 1e9;
            cell.round_rates.push_back(rate);
          }
        }
        if (progress) progress(cells);
        for (CellResult& cell : cells) all.push_back(std::move(cell));
      }
    }
  }
  return all;
}

}  // namespace hsmd::bench
