#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/json_writer.h"

namespace hsmd::bench {
namespace {

constexpr const char* kVariants[] = {kInProcess, kSocketFloor,   kHsmproxy,
                                     kClientLib, kClientLibGrpc, kSoftware};
constexpr int kVariantCount = sizeof(kVariants) / sizeof(kVariants[0]);
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

double Div(double a, double b) { return b > 0 ? a / b : kNan; }

// Variants whose operations a server process performs (hsmd, or the
// socket_floor server), so its CPU time is theirs.
bool UsesServer(const std::string& variant) {
  return variant == kHsmproxy || variant == kClientLib ||
         variant == kClientLibGrpc || variant == kSocketFloor;
}

double CpuMicrosPerOp(int64_t ns, uint64_t ops) {
  return ops > 0 ? ns / 1e3 / ops : kNan;
}

// Per-round throughput ratios of `a` to `b` (rounds are interleaved, so
// round r of both ran within a second of each other).
std::pair<double, double> RoundRatioRange(const CellResult& a,
                                          const CellResult& b) {
  double lo = kNan;
  double hi = kNan;
  const size_t n = std::min(a.round_rates.size(), b.round_rates.size());
  for (size_t r = 0; r < n; ++r) {
    const double ratio = Div(a.round_rates[r], b.round_rates[r]);
    if (std::isnan(ratio)) continue;
    lo = std::isnan(lo) ? ratio : std::min(lo, ratio);
    hi = std::isnan(hi) ? ratio : std::max(hi, ratio);
  }
  return {lo, hi};
}

std::string Fmt(double v, int decimals = 1) {
  if (std::isnan(v)) return "-";
  return absl::StrFormat("%.*f", decimals, v);
}

// 12345.6 -> "12,346"; small rates keep one decimal.
std::string Rate(double v) {
  if (std::isnan(v)) return "-";
  if (v < 100) return absl::StrFormat("%.1f", v);
  std::string digits = absl::StrFormat("%.0f", v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Config(const CellResult& c) {
  return absl::StrCat(c.processes, "x", c.threads);
}

// The configurations measured, in order.
std::vector<std::pair<int, int>> Configs(const BenchReport& report, Op op) {
  std::vector<std::pair<int, int>> out;
  for (const CellResult& c : report.cells) {
    if (c.op != op) continue;
    std::pair<int, int> key{c.processes, c.threads};
    if (std::find(out.begin(), out.end(), key) == out.end()) {
      out.push_back(key);
    }
  }
  return out;
}

std::vector<Op> OpsMeasured(const BenchReport& report) {
  std::vector<Op> out;
  for (const CellResult& c : report.cells) {
    if (std::find(out.begin(), out.end(), c.op) == out.end()) {
      out.push_back(c.op);
    }
  }
  return out;
}

const ForkCost* FindFork(const BenchReport& report, const std::string& variant,
                         Op op) {
  for (const ForkCost& f : report.forks) {
    if (f.variant == variant && f.op == op) return &f;
  }
  return nullptr;
}

const FootprintStage* FindStage(const std::vector<FootprintStage>& stages,
                                const std::string& stage) {
  for (const FootprintStage& s : stages) {
    if (s.stage == stage) return &s;
  }
  return nullptr;
}

// One text line per footprint stage.
void AppendStages(const std::vector<FootprintStage>& stages, std::string& out) {
  for (const FootprintStage& s : stages) {
    absl::StrAppendFormat(&out,
                          "  %-16s %3d threads %8d KiB RSS %8d KiB private "
                          "dirty\n",
                          s.stage, s.threads, s.rss_kib, s.private_dirty_kib);
  }
}

// The footprint stages as a Markdown table.
void AppendStageTable(const std::vector<FootprintStage>& stages,
                      std::string& out) {
  out +=
      "| Stage | threads | VmRSS (KiB) | private dirty (KiB) |\n"
      "|---|---|---|---|\n";
  for (const FootprintStage& s : stages) {
    absl::StrAppend(&out, "| ", s.stage, " | ", s.threads, " | ", s.rss_kib,
                    " | ", s.private_dirty_kib, " |\n");
  }
}

double OtherLoadPercent(const BenchReport& report) {
  int64_t other = 0;
  double seconds = 0;
  for (const CellResult& c : report.cells) {
    other += c.machine_busy_ns - c.client_cpu_ns - c.hsmd_cpu_ns;
    seconds += c.seconds;
  }
  const int cpus = report.machine.cpus > 0 ? report.machine.cpus : 1;
  return seconds > 0 ? std::max(0.0, 100.0 * other / 1e9 / seconds / cpus)
                     : kNan;
}

void TargetRatio(const BenchReport& report, std::vector<TargetCheck>& out,
                 const std::string& name, Op op, int processes, int threads,
                 double minimum) {
  TargetCheck t;
  t.name = name;
  t.target = absl::StrFormat(">= %.2f x in-process", minimum);
  const CellResult* hsm = FindCell(report, op, kHsmproxy, processes, threads);
  const CellResult* in = FindCell(report, op, kInProcess, processes, threads);
  if (hsm != nullptr && in != nullptr) {
    const double ratio = Div(hsm->ops_per_second(), in->ops_per_second());
    const auto [lo, hi] = RoundRatioRange(*hsm, *in);
    t.measured = absl::StrFormat("%.2f (%s vs %s ops/s; rounds %.2f-%.2f)",
                                 ratio, Rate(hsm->ops_per_second()),
                                 Rate(in->ops_per_second()), lo, hi);
    t.met = ratio >= minimum;
    // The yardstick: what any daemon on this machine could reach at best
    // (not for randomness: hsmproxy batches it, the floor does not).
    if (const CellResult* floor =
            op == Op::kRandom32
                ? nullptr
                : FindCell(report, op, kSocketFloor, processes, threads)) {
      absl::StrAppendFormat(&t.measured, "; bare socket_floor %.2f",
                            Div(floor->ops_per_second(), in->ops_per_second()));
    }
  } else {
    t.measured = "not measured";
  }
  out.push_back(std::move(t));
}

}  // namespace

std::vector<FootprintGroup> FootprintByDependency(const BenchReport& report) {
  struct Family {
    const char* marker;  // in the mapping's path
    const char* name;
  };
  static constexpr Family kFamilies[] = {
      {"/libabsl_", "Abseil"},
      {"/libprotobuf-lite", "protobuf-lite"},
      {"/libnghttp2", "nghttp2"},
      {"/hsmproxy.so", "hsmproxy.so"},
      {"/libcrypto", "libcrypto"},
      {"[heap]", "heap and anonymous memory"},
      {"[anon]", "heap and anonymous memory"}};
  std::vector<FootprintGroup> groups;
  int abseil_libraries = 0;
  for (const FootprintMapping& m : report.footprint_mappings) {
    std::string name = "other";
    for (const Family& f : kFamilies) {
      if (m.path.find(f.marker) != std::string::npos) {
        name = f.name;
        break;
      }
    }
    if (name == "Abseil") ++abseil_libraries;
    auto it =
        std::find_if(groups.begin(), groups.end(),
                     [&](const FootprintGroup& g) { return g.name == name; });
    if (it == groups.end()) {
      groups.push_back({name, 0});
      it = groups.end() - 1;
    }
    it->rss_delta_kib += m.rss_delta_kib;
  }
  for (FootprintGroup& g : groups) {
    if (g.name == "Abseil") {
      g.name = absl::StrCat("Abseil (", abseil_libraries, " libraries)");
    }
  }
  std::sort(groups.begin(), groups.end(),
            [](const FootprintGroup& a, const FootprintGroup& b) {
              return a.rss_delta_kib > b.rss_delta_kib;
            });
  return groups;
}

const CellResult* FindCell(const BenchReport& report, Op op,
                           const std::string& variant, int processes,
                           int threads) {
  for (const CellResult& c : report.cells) {
    if (c.op == op && c.variant == variant && c.processes == processes &&
        c.threads == threads) {
      return &c;
    }
  }
  return nullptr;
}

std::vector<TargetCheck> EvaluateTargets(const BenchReport& report) {
  std::vector<TargetCheck> out;
  TargetRatio(report, out, "RSA-2048 sign, 2 client processes (1 thread each)",
              Op::kRsa2048Pkcs1Sign, 2, 1, 0.95);
  TargetRatio(report, out, "RSA-2048 sign, 2 client processes x 4 threads",
              Op::kRsa2048Pkcs1Sign, 2, 4, 0.95);
  TargetRatio(report, out, "ECDSA P-256 sign, 2 client processes (1 thread)",
              Op::kEcdsaP256Sign, 2, 1, 0.80);
  TargetRatio(report, out, "ECDSA P-256 sign, 2 client processes x 4 threads",
              Op::kEcdsaP256Sign, 2, 4, 0.80);

  {
    TargetCheck t;
    t.name =
        "Added latency (hsmproxy p50 - in-process p50), 1 process x 1 "
        "thread, worst signature/decryption";
    t.target = "<= 25 us";
    double worst = kNan;
    // The bare socket_floor's added p50 over the same operations.
    double floor_low = kNan;
    double floor_high = kNan;
    std::vector<std::string> parts;
    for (const OpInfo& info : AllOps()) {
      if (info.op == Op::kRandom32) continue;
      const CellResult* hsm = FindCell(report, info.op, kHsmproxy, 1, 1);
      const CellResult* in = FindCell(report, info.op, kInProcess, 1, 1);
      if (hsm == nullptr || in == nullptr) continue;
      const double added = hsm->latency.PercentileMicros(0.5) -
                           in->latency.PercentileMicros(0.5);
      parts.push_back(absl::StrFormat("%s %+.0f", info.id, added));
      worst = std::isnan(worst) ? added : std::max(worst, added);
      if (const CellResult* f = FindCell(report, info.op, kSocketFloor, 1, 1)) {
        const double floor_added = f->latency.PercentileMicros(0.5) -
                                   in->latency.PercentileMicros(0.5);
        floor_low = std::isnan(floor_low) ? floor_added
                                          : std::min(floor_low, floor_added);
        floor_high = std::isnan(floor_high) ? floor_added
                                            : std::max(floor_high, floor_added);
      }
    }
    if (std::isnan(worst)) {
      t.measured = "not measured";
    } else {
      t.measured = absl::StrFormat("worst %+.0f us (%s)", worst,
                                   absl::StrJoin(parts, ", "));
      if (!std::isnan(floor_low)) {
        absl::StrAppendFormat(&t.measured,
                              "; the bare socket_floor adds %+.0f..%+.0f us",
                              floor_low, floor_high);
      }
      t.met = worst <= 25;
    }
    out.push_back(std::move(t));
  }

  // Both fork targets are about what the child pays: its time from fork()
  // returning to its first result. fork() itself (the page-table copy of
  // the parent, the same for every variant) is printed beside it.
  for (Op op : {Op::kEcdsaP256Sign, Op::kRsa2048Pkcs1Sign}) {
    const ForkCost* hsm = FindFork(report, kHsmproxy, op);
    const ForkCost* in = FindFork(report, kInProcess, op);
    TargetCheck first;
    first.name = absl::StrCat(
        "Child's first signature after fork (", InfoOf(op).id,
        ") vs steady state, measured in the child, from fork() returning to "
        "the first result");
    first.target = "<= 2 x steady-state signature";
    TargetCheck versus;
    versus.name = absl::StrCat(
        "Child's first signature after fork (", InfoOf(op).id,
        "): in-process re-init / hsmproxy, measured in the child, from fork() "
        "returning to the first result");
    versus.target = ">= 10";
    if (hsm != nullptr) {
      const double f = hsm->child_first.PercentileMicros(0.5);
      const double s = hsm->steady.PercentileMicros(0.5);
      first.measured = absl::StrFormat(
          "%.2f x (child's first %.0f us, steady %.0f us; fork() itself: %.0f "
          "us; fork() to first result: %.0f us)",
          Div(f, s), f, s, hsm->fork_to_child.PercentileMicros(0.5),
          hsm->fork_to_first.PercentileMicros(0.5));
      first.met = f <= 2 * s;
      if (const ForkCost* floor = FindFork(report, kSocketFloor, op)) {
        const double ff = floor->child_first.PercentileMicros(0.5);
        const double fs = floor->steady.PercentileMicros(0.5);
        absl::StrAppendFormat(&first.measured,
                              "; bare socket_floor %.2f x (%.0f / %.0f us)",
                              Div(ff, fs), ff, fs);
      }
      if (in != nullptr) {
        const double g = in->child_first.PercentileMicros(0.5);
        versus.measured = absl::StrFormat(
            "%.1f (in-process child %.0f us, hsmproxy child %.0f us; fork() "
            "itself: %.0f us in-process, %.0f us hsmproxy)",
            Div(g, f), g, f, in->fork_to_child.PercentileMicros(0.5),
            hsm->fork_to_child.PercentileMicros(0.5));
        versus.met = g >= 10 * f;
        if (const ForkCost* floor = FindFork(report, kSocketFloor, op)) {
          const double ff = floor->child_first.PercentileMicros(0.5);
          absl::StrAppendFormat(&versus.measured,
                                "; bare socket_floor child %.0f us: %.1f", ff,
                                Div(g, ff));
        }
      } else {
        versus.measured = "not measured";
      }
    } else {
      first.measured = "not measured";
      versus.measured = "not measured";
    }
    out.push_back(std::move(first));
    out.push_back(std::move(versus));
  }

  TargetRatio(report, out, "RAND_bytes(32), 1 process x 1 thread",
              Op::kRandom32, 1, 1, 0.5);
  TargetRatio(report, out, "RAND_bytes(32), 2 processes x 4 threads",
              Op::kRandom32, 2, 4, 0.5);

  {
    TargetCheck threads;
    threads.name = "Threads added by loading hsmproxy + one operation";
    threads.target = "0";
    TargetCheck rss;
    rss.name = "RSS added by loading hsmproxy + one operation";
    rss.target = "<= 2048 KiB";
    const FootprintStage* base = FindStage(report.footprint, "baseline");
    const FootprintStage* one = FindStage(report.footprint, "one_signature");
    const FootprintStage* many = FindStage(report.footprint, "101_signatures");
    if (base != nullptr && one != nullptr) {
      const int dt = one->threads - base->threads;
      const int64_t dr = one->rss_kib - base->rss_kib;
      threads.measured =
          absl::StrCat(dt, " (", base->threads, " -> ", one->threads, ")");
      threads.met = dt <= 0;
      rss.measured = absl::StrCat(
          dr, " KiB (", base->rss_kib, " -> ", one->rss_kib,
          " KiB; private dirty +",
          one->private_dirty_kib - base->private_dirty_kib, " KiB");
      if (many != nullptr) {
        absl::StrAppend(&rss.measured, "; after 101 signatures +",
                        many->rss_kib - base->rss_kib, " KiB");
      }
      rss.measured += ")";
      std::vector<std::string> groups;
      for (const FootprintGroup& g : FootprintByDependency(report)) {
        groups.push_back(absl::StrCat(g.name, " +", g.rss_delta_kib));
      }
      if (!groups.empty()) {
        absl::StrAppend(&rss.measured,
                        "; by dependency (KiB): ", absl::StrJoin(groups, ", "));
      }
      const FootprintStage* abseil_base =
          FindStage(report.footprint_with_abseil, "baseline");
      const FootprintStage* abseil_one =
          FindStage(report.footprint_with_abseil, "one_signature");
      if (abseil_base != nullptr && abseil_one != nullptr) {
        absl::StrAppend(&rss.measured,
                        "; in a program that already has Abseil loaded: +",
                        abseil_one->rss_kib - abseil_base->rss_kib, " KiB");
      }
      rss.met = dr <= 2048;
    } else {
      threads.measured = "not measured";
      rss.measured = "not measured";
    }
    out.push_back(std::move(threads));
    out.push_back(std::move(rss));
  }
  return out;
}

std::string FormatText(const BenchReport& report) {
  std::string out;
  absl::StrAppendFormat(
      &out,
      "hsmd benchmark (%s): %s, %d CPU(s), kernel %s\n"
      "load average before %.2f %.2f %.2f, after %.2f %.2f %.2f; other "
      "processes used ~%s%% of the CPUs during the matrix rounds\n"
      "%d round(s) of %.0f ms per variant and configuration%s\n\n",
      report.mode, report.machine.cpu_model, report.machine.cpus,
      report.machine.kernel, report.machine.load_before[0],
      report.machine.load_before[1], report.machine.load_before[2],
      report.machine.load_after[0], report.machine.load_after[1],
      report.machine.load_after[2], Fmt(OtherLoadPercent(report), 0),
      report.rounds, report.round_ms,
      report.max_ops_per_thread > 0
          ? absl::StrCat(" (at most ", report.max_ops_per_thread,
                         " ops per thread)")
          : "");
  for (Op op : OpsMeasured(report)) {
    absl::StrAppend(&out, InfoOf(op).title, "\n");
    absl::StrAppendFormat(&out, "  %-5s %-15s %10s %9s %9s %9s %9s %7s %13s\n",
                          "pxt", "variant", "ops/s", "p50 us", "p99 us",
                          "cli us/op", "srv us/op", "ratio", "rounds");
    for (const auto& [p, t] : Configs(report, op)) {
      const CellResult* in = FindCell(report, op, kInProcess, p, t);
      bool first = true;
      for (const char* variant : kVariants) {
        const CellResult* c = FindCell(report, op, variant, p, t);
        if (c == nullptr) continue;
        std::string ratio = "-";
        std::string range;
        if (in != nullptr) {
          ratio = Fmt(Div(c->ops_per_second(), in->ops_per_second()), 2);
          const auto [lo, hi] = RoundRatioRange(*c, *in);
          range = absl::StrCat(Fmt(lo, 2), "-", Fmt(hi, 2));
        }
        absl::StrAppendFormat(
            &out, "  %-5s %-15s %10s %9s %9s %9s %9s %7s %13s\n",
            first ? Config(*c) : "", variant, Rate(c->ops_per_second()),
            Fmt(c->latency.PercentileMicros(0.5)),
            Fmt(c->latency.PercentileMicros(0.99)),
            Fmt(CpuMicrosPerOp(c->client_cpu_ns, c->ops)),
            UsesServer(c->variant) ? Fmt(CpuMicrosPerOp(c->hsmd_cpu_ns, c->ops))
                                   : "-",
            ratio, range);
        first = false;
      }
    }
    out += "\n";
  }
  if (!report.forks.empty()) {
    out +=
        "Fork (p50, us). child first: in the child, from fork() returning to "
        "its first result (hsmproxy, client_lib: just call; in-process: "
        "C_Finalize, C_Initialize, login, find key). fork(): called in the "
        "parent until it returns in the child. fork->first: both. fork only: "
        "fork() until a child that does nothing reports back.\n";
    absl::StrAppendFormat(
        &out, "  %-18s %-15s %8s %7s %9s %9s %17s %9s %7s %7s\n", "op",
        "variant", "steady", "fork()", "fork only", "child 1st", "(min-max)",
        "fork->1st", "2nd", "1st/std");
    for (const ForkCost& f : report.forks) {
      absl::StrAppendFormat(
          &out, "  %-18s %-15s %8s %7s %9s %9s %17s %9s %7s %7s\n",
          InfoOf(f.op).id, f.variant, Fmt(f.steady.PercentileMicros(0.5)),
          Fmt(f.fork_to_child.PercentileMicros(0.5)),
          Fmt(f.fork_only.PercentileMicros(0.5)),
          Fmt(f.child_first.PercentileMicros(0.5)),
          absl::StrCat("(", Fmt(f.child_first.PercentileMicros(0), 0), "-",
                       Fmt(f.child_first.MaxMicros(), 0), ")"),
          Fmt(f.fork_to_first.PercentileMicros(0.5)),
          Fmt(f.second.PercentileMicros(0.5)),
          Fmt(Div(f.child_first.PercentileMicros(0.5),
                  f.steady.PercentileMicros(0.5)),
              2));
    }
    out += "\n";
  }
  if (!report.footprint.empty()) {
    out += "Footprint of a client process (threads, VmRSS, private dirty):\n";
    AppendStages(report.footprint, out);
    out += "  RSS added (baseline -> one signature) by dependency:";
    for (const FootprintGroup& g : FootprintByDependency(report)) {
      absl::StrAppendFormat(&out, " %s +%d KiB;", g.name, g.rss_delta_kib);
    }
    out += "\n";
    if (!report.footprint_with_abseil.empty()) {
      out += "  with Abseil already loaded (preloaded):\n";
      AppendStages(report.footprint_with_abseil, out);
    }
    out += "\n";
  }
  if (!report.load.empty()) {
    out += "Daemon under load (client_lib, one thread per client process):\n";
    for (const LoadResult& l : report.load) {
      absl::StrAppendFormat(
          &out,
          "  %-18s %3d clients: %10s ops/s, p50 %s us, p99 %s us, hsmd CPU "
          "%s us/op\n",
          InfoOf(l.op).id, l.clients, Rate(l.ops_per_second()),
          Fmt(l.latency.PercentileMicros(0.5)),
          Fmt(l.latency.PercentileMicros(0.99)),
          Fmt(CpuMicrosPerOp(l.hsmd_cpu_ns, l.ops)));
    }
    out += "\n";
  }
  if (!report.nginx.empty()) {
    out += "nginx (TLS 1.3 full handshakes, worker_processes 2, loopback):\n";
    for (const NginxResult& n : report.nginx) {
      absl::StrAppendFormat(
          &out, "  %-10s key %-8s %9s handshakes/s, p50 %s us, p99 %s us%s\n",
          n.certificate, n.key_source, Rate(n.per_second()),
          Fmt(n.latency.PercentileMicros(0.5)),
          Fmt(n.latency.PercentileMicros(0.99)),
          n.key_source == kHsmproxy
              ? absl::StrCat(", hsmd CPU ",
                             Fmt(CpuMicrosPerOp(n.hsmd_cpu_ns, n.handshakes)),
                             " us/handshake, ", n.hsmd_signatures,
                             " hsmd signatures")
              : "");
    }
    out += "\n";
  }
  out += "Targets:\n";
  for (const TargetCheck& t : EvaluateTargets(report)) {
    absl::StrAppendFormat(&out, "  [%s] %s: %s (target %s)\n",
                          !t.met.has_value() ? "n/a "
                          : *t.met           ? "met "
                                             : "MISS",
                          t.name, t.measured, t.target);
  }
  for (const std::string& note : report.notes) {
    absl::StrAppend(&out, "Note: ", note, "\n");
  }
  return out;
}

std::string FormatMarkdown(const BenchReport& report) {
  std::string out;
  absl::StrAppendFormat(
      &out,
      "Machine: %s, %d CPUs, kernel %s. Started %s, %.0f s. Load average "
      "before %.2f / %.2f / %.2f, after %.2f / %.2f / %.2f; other processes "
      "used ~%s%% of the CPUs during the matrix. %d interleaved round(s) of "
      "%.0f ms per cell.\n\n",
      report.machine.cpu_model, report.machine.cpus, report.machine.kernel,
      report.machine.started_at, report.machine.wall_seconds,
      report.machine.load_before[0], report.machine.load_before[1],
      report.machine.load_before[2], report.machine.load_after[0],
      report.machine.load_after[1], report.machine.load_after[2],
      Fmt(OtherLoadPercent(report), 0), report.rounds, report.round_ms);

  out +=
      "| Operation | procs x threads | in-process ops/s (p50 / p99 us) | "
      "socket_floor | hsmproxy | client_lib | client_lib_grpc | software | "
      "socket_floor / in-process | hsmproxy / in-process | client_lib / "
      "in-process | client_lib_grpc / in-process | hsmproxy p50 - in-process "
      "p50 (us) | socket_floor p50 - in-process p50 (us) |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (Op op : OpsMeasured(report)) {
    for (const auto& [p, t] : Configs(report, op)) {
      // In kVariants' order: in-process, socket_floor, hsmproxy,
      // client_lib, client_lib_grpc, software.
      const CellResult* cells[kVariantCount];
      for (int v = 0; v < kVariantCount; ++v) {
        cells[v] = FindCell(report, op, kVariants[v], p, t);
      }
      absl::StrAppend(&out, "| ", InfoOf(op).title, " | ", p, " x ", t);
      for (const CellResult* c : cells) {
        if (c == nullptr) {
          out += " | -";
          continue;
        }
        absl::StrAppend(&out, " | ", Rate(c->ops_per_second()), " (",
                        Fmt(c->latency.PercentileMicros(0.5)), " / ",
                        Fmt(c->latency.PercentileMicros(0.99)), ")");
      }
      const CellResult* in = cells[0];
      for (const CellResult* c : {cells[1], cells[2], cells[3], cells[4]}) {
        if (in == nullptr || c == nullptr) {
          out += " | -";
          continue;
        }
        absl::StrAppend(&out, " | **",
                        Fmt(Div(c->ops_per_second(), in->ops_per_second()), 2),
                        "**");
      }
      // hsmproxy's, then the floor's added p50.
      for (const CellResult* c : {cells[2], cells[1]}) {
        if (in != nullptr && c != nullptr) {
          absl::StrAppend(&out, " | ",
                          Fmt(c->latency.PercentileMicros(0.5) -
                                  in->latency.PercentileMicros(0.5),
                              0));
        } else {
          out += " | -";
        }
      }
      out += " |\n";
    }
  }

  out +=
      "\nCPU time per operation (us: client process + server, i.e. hsmd or "
      "the socket_floor server), 1 process x 1 thread:\n\n"
      "| Operation | in-process | socket_floor | hsmproxy | client_lib | "
      "client_lib_grpc | software |\n"
      "|---|---|---|---|---|---|---|\n";
  for (Op op : OpsMeasured(report)) {
    absl::StrAppend(&out, "| ", InfoOf(op).title);
    for (const char* variant : kVariants) {
      const CellResult* c = FindCell(report, op, variant, 1, 1);
      if (c == nullptr) {
        out += " | -";
      } else if (UsesServer(c->variant)) {
        absl::StrAppend(&out, " | ",
                        Fmt(CpuMicrosPerOp(c->client_cpu_ns, c->ops)), " + ",
                        Fmt(CpuMicrosPerOp(c->hsmd_cpu_ns, c->ops)));
      } else {
        absl::StrAppend(&out, " | ",
                        Fmt(CpuMicrosPerOp(c->client_cpu_ns, c->ops)));
      }
    }
    out += " |\n";
  }

  if (!report.forks.empty()) {
    out +=
        "\nFork cost. *Child's first*: measured in the child, from fork() "
        "returning to its first result (the in-process child re-initialises "
        "the module and logs in; hsmproxy and client_lib children just "
        "call). *fork()*: from fork() called in the parent until it returns "
        "in the child. *fork() to first*: both, as the parent sees it. *fork "
        "only*: fork() until a child that does nothing reports back.\n\n"
        "| Operation | variant | parent steady p50 (us) | fork() p50 (us) | "
        "fork only p50 (us) | child's first p50 (min-max) (us) | fork() to "
        "first p50 (us) | child's second p50 (us) | child's first / steady "
        "|\n"
        "|---|---|---|---|---|---|---|---|---|\n";
    for (const ForkCost& f : report.forks) {
      absl::StrAppend(&out, "| ", InfoOf(f.op).title, " | ", f.variant, " | ",
                      Fmt(f.steady.PercentileMicros(0.5)), " | ",
                      Fmt(f.fork_to_child.PercentileMicros(0.5)), " | ",
                      Fmt(f.fork_only.PercentileMicros(0.5)), " | ",
                      Fmt(f.child_first.PercentileMicros(0.5)), " (",
                      Fmt(f.child_first.PercentileMicros(0)), "-",
                      Fmt(f.child_first.MaxMicros()), ") | ",
                      Fmt(f.fork_to_first.PercentileMicros(0.5)), " | ",
                      Fmt(f.second.PercentileMicros(0.5)), " | ",
                      Fmt(Div(f.child_first.PercentileMicros(0.5),
                              f.steady.PercentileMicros(0.5)),
                          2),
                      " |\n");
    }
  }
  if (!report.footprint.empty()) {
    out +=
        "\nFootprint of a client process (a program that already uses "
        "OpenSSL, then loads hsmproxy):\n\n";
    AppendStageTable(report.footprint, out);
    out +=
        "\nRSS added from the baseline to the first signature, by dependency: ";
    std::vector<std::string> parts;
    for (const FootprintGroup& g : FootprintByDependency(report)) {
      parts.push_back(absl::StrCat(g.name, " +", g.rss_delta_kib, " KiB"));
    }
    absl::StrAppend(&out, absl::StrJoin(parts, ", "), ".\n");
    if (!report.footprint_with_abseil.empty()) {
      out +=
          "\nThe same in a program that already has Abseil's libraries "
          "loaded (preloaded, as gRPC programs have them):\n\n";
      AppendStageTable(report.footprint_with_abseil, out);
    }
  }
  if (!report.load.empty()) {
    out +=
        "\nDaemon under load (client_lib, one thread per process, all "
        "processes at once):\n\n"
        "| Operation | client processes | ops/s | p50 (us) | p99 (us) | hsmd "
        "CPU per op (us) |\n|---|---|---|---|---|---|\n";
    for (const LoadResult& l : report.load) {
      absl::StrAppend(&out, "| ", InfoOf(l.op).title, " | ", l.clients, " | ",
                      Rate(l.ops_per_second()), " | ",
                      Fmt(l.latency.PercentileMicros(0.5)), " | ",
                      Fmt(l.latency.PercentileMicros(0.99)), " | ",
                      Fmt(CpuMicrosPerOp(l.hsmd_cpu_ns, l.ops)), " |\n");
    }
  }
  if (!report.nginx.empty()) {
    out +=
        "\nnginx, TLS 1.3 full handshakes (worker_processes 2, loopback, "
        "4 client threads):\n\n"
        "| Certificate | key | handshakes/s | p50 (us) | p99 (us) | hsmd CPU "
        "per handshake (us) | vs PEM |\n|---|---|---|---|---|---|---|\n";
    for (const NginxResult& n : report.nginx) {
      double pem_rate = kNan;
      for (const NginxResult& m : report.nginx) {
        if (m.certificate == n.certificate && m.key_source == "pem") {
          pem_rate = m.per_second();
        }
      }
      absl::StrAppend(
          &out, "| ", n.certificate, " | ",
          n.key_source == kHsmproxy ? "hsmd (hsmproxy URI file)" : "PEM file",
          " | ", Rate(n.per_second()), " | ",
          Fmt(n.latency.PercentileMicros(0.5)), " | ",
          Fmt(n.latency.PercentileMicros(0.99)), " | ",
          n.key_source == kHsmproxy
              ? Fmt(CpuMicrosPerOp(n.hsmd_cpu_ns, n.handshakes))
              : "-",
          " | ", Fmt(Div(n.per_second(), pem_rate), 2), " |\n");
    }
  }
  out +=
      "\nTargets:\n\n| Target | required | measured | met "
      "|\n|---|---|---|---|\n";
  for (const TargetCheck& t : EvaluateTargets(report)) {
    absl::StrAppend(&out, "| ", t.name, " | ", t.target, " | ", t.measured,
                    " | ",
                    !t.met.has_value() ? "n/a"
                    : *t.met           ? "yes"
                                       : "**no**",
                    " |\n");
  }
  for (const std::string& note : report.notes) {
    absl::StrAppend(&out, "\nNote: ", note, "\n");
  }
  return out;
}

namespace {

void WriteHistogram(JsonWriter& w, const LatencyHistogram& h) {
  w.BeginObject()
      .Field("count", h.count())
      .Field("mean_us", h.MeanMicros())
      .Field("p50_us", h.PercentileMicros(0.5))
      .Field("p90_us", h.PercentileMicros(0.9))
      .Field("p99_us", h.PercentileMicros(0.99))
      .Field("max_us", h.MaxMicros())
      .EndObject();
}

}  // namespace

std::string FormatJson(const BenchReport& report) {
  JsonWriter w;
  w.BeginObject();
  w.Key("machine")
      .BeginObject()
      .Field("cpu_model", report.machine.cpu_model)
      .Field("cpus", report.machine.cpus)
      .Field("kernel", report.machine.kernel)
      .Field("started_at", report.machine.started_at)
      .Field("wall_seconds", report.machine.wall_seconds);
  w.Key("load_before").BeginArray();
  for (double l : report.machine.load_before) w.Number(l);
  w.EndArray().Key("load_after").BeginArray();
  for (double l : report.machine.load_after) w.Number(l);
  w.EndArray();
  w.Field("other_load_percent", OtherLoadPercent(report));
  w.EndObject();
  w.Field("mode", report.mode)
      .Field("command", report.command)
      .Field("rounds", report.rounds)
      .Field("round_ms", report.round_ms)
      .Field("max_ops_per_thread", report.max_ops_per_thread);

  w.Key("cells").BeginArray();
  for (const CellResult& c : report.cells) {
    const CellResult* in =
        FindCell(report, c.op, kInProcess, c.processes, c.threads);
    w.BeginObject()
        .Field("op", InfoOf(c.op).id)
        .Field("variant", c.variant)
        .Field("processes", c.processes)
        .Field("threads", c.threads)
        .Field("ops", c.ops)
        .Field("seconds", c.seconds)
        .Field("ops_per_second", c.ops_per_second());
    w.Key("latency");
    WriteHistogram(w, c.latency);
    w.Field("client_cpu_us_per_op", CpuMicrosPerOp(c.client_cpu_ns, c.ops))
        // hsmd's CPU for the variants it serves, the floor server's for
        // socket_floor; null for the others.
        .Field(
            "server_cpu_us_per_op",
            UsesServer(c.variant) ? CpuMicrosPerOp(c.hsmd_cpu_ns, c.ops) : kNan)
        .Field("ratio_to_in_process",
               in == nullptr ? kNan
                             : Div(c.ops_per_second(), in->ops_per_second()))
        .Field("p50_minus_in_process_us",
               in == nullptr ? kNan
                             : c.latency.PercentileMicros(0.5) -
                                   in->latency.PercentileMicros(0.5));
    w.Key("round_ops_per_second").BeginArray();
    for (double r : c.round_rates) w.Number(r);
    w.EndArray().EndObject();
  }
  w.EndArray();

  w.Key("fork").BeginArray();
  for (const ForkCost& f : report.forks) {
    w.BeginObject().Field("op", InfoOf(f.op).id).Field("variant", f.variant);
    w.Key("parent_steady");
    WriteHistogram(w, f.steady);
    // In the child, from fork() returning to the first result.
    w.Key("child_first");
    WriteHistogram(w, f.child_first);
    // From fork() called in the parent to the child's first result.
    w.Key("fork_to_first");
    WriteHistogram(w, f.fork_to_first);
    // From fork() called in the parent until it returned in the child.
    w.Key("fork_to_child");
    WriteHistogram(w, f.fork_to_child);
    w.Field("child_first_over_steady", Div(f.child_first.PercentileMicros(0.5),
                                           f.steady.PercentileMicros(0.5)));
    w.Key("child_second");
    WriteHistogram(w, f.second);
    w.Key("fork_only");
    WriteHistogram(w, f.fork_only);
    w.EndObject();
  }
  w.EndArray();

  for (const auto& [key, stages] :
       {std::pair<const char*, const std::vector<FootprintStage>*>{
            "footprint", &report.footprint},
        {"footprint_with_abseil", &report.footprint_with_abseil}}) {
    w.Key(key).BeginArray();
    for (const FootprintStage& s : *stages) {
      w.BeginObject()
          .Field("stage", s.stage)
          .Field("threads", s.threads)
          .Field("rss_kib", s.rss_kib)
          .Field("private_dirty_kib", s.private_dirty_kib)
          .EndObject();
    }
    w.EndArray();
  }
  w.Key("footprint_mappings").BeginArray();
  for (const FootprintMapping& m : report.footprint_mappings) {
    w.BeginObject()
        .Field("path", m.path)
        .Field("rss_delta_kib", m.rss_delta_kib)
        .EndObject();
  }
  w.EndArray();
  w.Key("footprint_by_dependency").BeginArray();
  for (const FootprintGroup& g : FootprintByDependency(report)) {
    w.BeginObject()
        .Field("dependency", g.name)
        .Field("rss_delta_kib", g.rss_delta_kib)
        .EndObject();
  }
  w.EndArray();

  w.Key("daemon_load").BeginArray();
  for (const LoadResult& l : report.load) {
    w.BeginObject()
        .Field("op", InfoOf(l.op).id)
        .Field("clients", l.clients)
        .Field("ops", l.ops)
        .Field("seconds", l.seconds)
        .Field("ops_per_second", l.ops_per_second())
        .Field("hsmd_cpu_us_per_op", CpuMicrosPerOp(l.hsmd_cpu_ns, l.ops));
    w.Key("latency");
    WriteHistogram(w, l.latency);
    w.EndObject();
  }
  w.EndArray();

  w.Key("nginx").BeginArray();
  for (const NginxResult& n : report.nginx) {
    w.BeginObject()
        .Field("certificate", n.certificate)
        .Field("key_source", n.key_source)
        .Field("handshakes", n.handshakes)
        .Field("seconds", n.seconds)
        .Field("handshakes_per_second", n.per_second())
        .Field("hsmd_signatures", n.hsmd_signatures)
        .Field("hsmd_cpu_us_per_handshake",
               CpuMicrosPerOp(n.hsmd_cpu_ns, n.handshakes));
    w.Key("latency");
    WriteHistogram(w, n.latency);
    w.EndObject();
  }
  w.EndArray();

  w.Key("targets").BeginArray();
  for (const TargetCheck& t : EvaluateTargets(report)) {
    w.BeginObject()
        .Field("name", t.name)
        .Field("target", t.target)
        .Field("measured", t.measured);
    w.Key("met");
    if (t.met.has_value()) {
      w.Bool(*t.met);
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();

  w.Key("notes").BeginArray();
  for (const std::string& note : report.notes) w.String(note);
  w.EndArray();
  w.EndObject();
  return w.str() + "\n";
}

}  // namespace hsmd::bench
