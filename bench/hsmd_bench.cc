// hsmd_bench: hsmd measured against in-process PKCS#11 and a software key,
// in one run, as ratios. See bench/README.md.
//
//   bazel run -c opt //bench:hsmd_bench -- [--smoke] [--json_out FILE]
#include <signal.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bench/client_lib_variant.h"
#include "bench/daemon_load.h"
#include "bench/demo_daemon.h"
#include "bench/evp_variant.h"
#include "bench/fork_cost.h"
#include "bench/matrix.h"
#include "bench/nginx_bench.h"
#include "bench/options.h"
#include "bench/pkcs11_variant.h"
#include "bench/process.h"
#include "bench/report.h"
#include "bench/socket_floor.h"
#include "client_lib/client.h"
#include "common/secret.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

void Log(const std::string& line) {
  std::fprintf(stderr, "[hsmd_bench] %s\n", line.c_str());
  std::fflush(stderr);
}

// A file shipped with the binary: runfiles of `bazel run` / `bazel test`,
// or next to the binary's .runfiles directory.
std::string Runfile(const char* argv0, const std::string& path) {
  std::vector<std::string> candidates;
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* dir = std::getenv(var)) {
      candidates.push_back(absl::StrCat(dir, "/hsmd/", path));
    }
  }
  candidates.push_back(absl::StrCat(argv0, ".runfiles/hsmd/", path));
  candidates.push_back(path);
  for (const std::string& c : candidates) {
    std::error_code ec;
    if (std::filesystem::exists(c, ec)) {
      return std::filesystem::absolute(c, ec).string();
    }
  }
  return path;
}

// Relative output paths are relative to where `bazel run` was invoked.
std::string OutputPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  if (const char* dir = std::getenv("BUILD_WORKING_DIRECTORY")) {
    return absl::StrCat(dir, "/", path);
  }
  return path;
}

void ReadLoadAverage(double out[3]) {
  std::ifstream in("/proc/loadavg");
  in >> out[0] >> out[1] >> out[2];
}

MachineInfo DescribeMachine() {
  MachineInfo m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (absl::StartsWith(line, "model name")) {
      m.cpu_model = std::string(absl::StripAsciiWhitespace(
          absl::string_view(line).substr(line.find(':') + 1)));
      break;
    }
  }
  m.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  utsname u;
  if (uname(&u) == 0) m.kernel = u.release;
  ReadLoadAverage(m.load_before);
  m.started_at = absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::Now(),
                                  absl::UTCTimeZone());
  return m;
}

absl::StatusOr<KeyDirectory> ListDemoKeys(client::Client& client) {
  // The SoftHSM token's keys (the demo also serves the SDF device soft0,
  // whose SM4 key has no public half).
  v1::ListKeysRequest request;
  request.set_uri_filter("pkcs11:token=demo");
  ASSIGN_OR_RETURN(v1::ListKeysResponse response, client.ListKeys(request));
  KeyDirectory keys;
  for (const v1::Key& key : response.keys()) {
    keys[key.label()] =
        HsmKey{key.label(), key.key_id(), key.uri(), key.public_key_der()};
  }
  for (const OpInfo& info : AllOps()) {
    const std::string label = info.key_label;
    if (!label.empty() && keys.count(label) == 0) {
      return absl::NotFoundError(
          absl::StrCat("hsmd does not serve the demo key \"", label,
                       "\" (is it an `hsmd --demo` daemon?)"));
    }
  }
  return keys;
}

// Successful Sign calls hsmd counted for keys labelled `label`.
absl::StatusOr<uint64_t> SignCount(client::Client& client,
                                   const std::string& label) {
  ASSIGN_OR_RETURN(v1::GetStatsResponse stats,
                   client.GetStats(v1::GetStatsRequest()));
  uint64_t total = 0;
  for (const v1::OperationStats& op : stats.operations()) {
    if (op.operation() == "Sign" && op.key_label() == label) {
      total += op.count() - op.error_count();
    }
  }
  return total;
}

absl::StatusOr<SecretString> ReadPin(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  SecretString pin(
      std::string(absl::StripSuffix(absl::StripSuffix(text, "\n"), "\r")));
  OPENSSL_cleanse(text.data(), text.size());
  if (pin.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no PIN"));
  }
  return pin;
}

// footprint_probe's output: stage lines (into `stages`), then per-mapping
// deltas (into `mappings`).
absl::Status ParseFootprint(const std::string& text,
                            std::vector<FootprintStage>& stages,
                            std::vector<FootprintMapping>& mappings) {
  for (absl::string_view line :
       absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::MaxSplits(' ', 2), absl::SkipEmpty());
    if (f.size() == 3 && f[0] == "map") {
      FootprintMapping m;
      if (!absl::SimpleAtoi(f[1], &m.rss_delta_kib)) {
        return absl::InternalError(
            absl::StrCat("footprint_probe printed '", line, "'"));
      }
      m.path = std::string(f[2]);
      mappings.push_back(std::move(m));
      continue;
    }
    f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    FootprintStage s;
    if (f.size() != 4 || !absl::SimpleAtoi(f[1], &s.threads) ||
        !absl::SimpleAtoi(f[2], &s.rss_kib) ||
        !absl::SimpleAtoi(f[3], &s.private_dirty_kib)) {
      return absl::InternalError(
          absl::StrCat("footprint_probe printed '", line, "'"));
    }
    s.stage = std::string(f[0]);
    stages.push_back(std::move(s));
  }
  std::sort(mappings.begin(), mappings.end(),
            [](const FootprintMapping& a, const FootprintMapping& b) {
              return a.rss_delta_kib > b.rss_delta_kib;
            });
  return absl::OkStatus();
}

template <typename T>
VariantFactory Erase(std::function<absl::StatusOr<std::unique_ptr<T>>()> f) {
  return [f]() -> absl::StatusOr<std::unique_ptr<Variant>> {
    absl::StatusOr<std::unique_ptr<T>> v = f();
    if (!v.ok()) return v.status();
    return std::unique_ptr<Variant>(std::move(*v));
  };
}

class Bench {
 public:
  Bench(BenchOptions options, const char* argv0)
      : options_(std::move(options)), argv0_(argv0) {}

  int Run(int argc, char** argv);

 private:
  absl::Status SetUp();
  absl::Status RunMatrixPhase();
  absl::Status RunForkPhase();
  absl::Status RunFootprintPhase();
  absl::Status RunLoadPhase();
  absl::Status RunNginxPhase();
  void Phase(const char* name, absl::Status (Bench::*fn)());

  Pkcs11Variant::Config InProcessConfig(int sessions) const {
    Pkcs11Variant::Config config;
    config.module_path = options_.softhsm_module;
    config.token_label = options_.token_label;
    config.pin = &pin_;
    config.keys = &keys_;
    config.sessions = sessions;
    return config;
  }
  VariantFactory InProcessFactory(int sessions) const {
    return Erase<Pkcs11Variant>([this, sessions] {
      return Pkcs11Variant::New(InProcessConfig(sessions));
    });
  }
  VariantFactory HsmproxyFactory() const {
    return Erase<EvpVariant>(
        [this] { return EvpVariant::NewHsmproxy(hsmproxy_, socket_, keys_); });
  }
  // `fast_path` false: hsmd's gRPC server serves the connections.
  VariantFactory ClientLibFactory(bool fast_path = true) const {
    return Erase<ClientLibVariant>([this, fast_path] {
      return ClientLibVariant::New(socket_, keys_, fast_path);
    });
  }
  // The socket_floor server, started once (before workers open the token:
  // SoftHSM loses the token for a process that initialises and logs in at
  // the same moment as another) with `sessions` sessions, and kept for the
  // fork phase.
  absl::Status StartSocketFloor(int sessions) {
    if (socket_floor_ != nullptr) return absl::OkStatus();
    const std::string socket =
        absl::StrCat(std::filesystem::temp_directory_path().string(),
                     "/hsmd_bench_floor.", getpid(), ".sock");
    // Every operation: workers check each one at start-up.
    std::vector<Op> ops;
    for (const OpInfo& info : AllOps()) ops.push_back(info.op);
    ASSIGN_OR_RETURN(
        socket_floor_,
        SocketFloorServer::Start(InProcessConfig(sessions), ops, socket));
    return absl::OkStatus();
  }
  // Only called once StartSocketFloor succeeded.
  VariantFactory SocketFloorFactory() const {
    return Erase<SocketFloorVariant>([this] {
      return SocketFloorVariant::New(socket_floor_->socket_path(), keys_);
    });
  }
  VariantFactory SoftwareFactory() const {
    return Erase<EvpVariant>([] { return EvpVariant::NewSoftware(); });
  }

  const BenchOptions options_;
  const char* const argv0_;
  BenchReport report_;
  bool failed_ = false;

  std::string hsmd_;
  std::string hsmproxy_;
  std::string footprint_probe_;
  std::unique_ptr<DemoDaemon> daemon_;
  std::string socket_;
  std::string softhsm_conf_;
  std::string pin_file_;
  pid_t hsmd_pid_ = -1;
  SecretString pin_;
  KeyDirectory keys_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<SocketFloorServer> socket_floor_;
};

absl::Status Bench::SetUp() {
  hsmd_ =
      options_.hsmd.empty() ? Runfile(argv0_, "daemon/hsmd") : options_.hsmd;
  hsmproxy_ = options_.hsmproxy.empty()
                  ? Runfile(argv0_, "proxy_provider/hsmproxy.so")
                  : options_.hsmproxy;
  footprint_probe_ = options_.footprint_probe.empty()
                         ? Runfile(argv0_, "bench/footprint_probe")
                         : options_.footprint_probe;
  std::error_code ec;
  hsmproxy_ = std::filesystem::absolute(hsmproxy_, ec).string();
  if (access(hsmproxy_.c_str(), R_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("hsmproxy.so not found at ", hsmproxy_,
                     " (build //proxy_provider:hsmproxy.so or pass "
                     "--hsmproxy)"));
  }
  if (options_.socket.empty()) {
    Log(absl::StrCat("starting ", hsmd_,
                     " --demo (SoftHSM key generation "
                     "may take a while)"));
    ASSIGN_OR_RETURN(daemon_, DemoDaemon::Start(hsmd_));
    if (options_.keep_temp) daemon_->keep_dir();
    socket_ = daemon_->socket_path();
    softhsm_conf_ = daemon_->softhsm_conf();
    pin_file_ = daemon_->pin_file();
    Log(absl::StrCat("hsmd --demo ready in ", daemon_->dir()));
  } else {
    socket_ = options_.socket;
    softhsm_conf_ = options_.softhsm_conf;
    pin_file_ =
        options_.pin_file.empty()
            ? (std::filesystem::path(softhsm_conf_).parent_path() / "user.pin")
                  .string()
            : options_.pin_file;
  }
  // In-process PKCS#11 (every worker) opens the same token as hsmd.
  if (setenv("SOFTHSM2_CONF", softhsm_conf_.c_str(), 1) != 0) {
    return absl::InternalError("setenv SOFTHSM2_CONF failed");
  }
  ASSIGN_OR_RETURN(pin_, ReadPin(pin_file_));
  client::ClientOptions client_options;
  client_options.socket_path = socket_;
  ASSIGN_OR_RETURN(client_, client::Client::New(client_options));
  ASSIGN_OR_RETURN(keys_, ListDemoKeys(*client_));
  ASSIGN_OR_RETURN(v1::GetStatusResponse status,
                   client_->GetStatus(v1::GetStatusRequest()));
  hsmd_pid_ = static_cast<pid_t>(status.pid());
  if (hsmd_pid_ > 0 && !ProcessRunNanos(hsmd_pid_).ok()) {
    report_.notes.push_back(
        "hsmd's process is not visible here: its CPU time is not measured");
    hsmd_pid_ = -1;
  }
  return absl::OkStatus();
}

absl::Status Bench::RunMatrixPhase() {
  struct Spec {
    const char* name;
    VariantFactory factory;
  };
  const auto wanted = [this](const char* variant) {
    return options_.variants.empty() || options_.variants.count(variant) > 0;
  };
  const int max_threads = *std::max_element(options_.thread_counts.begin(),
                                            options_.thread_counts.end());
  const int max_processes = *std::max_element(options_.process_counts.begin(),
                                              options_.process_counts.end());
  // The yardstick's server, started (and its token opened) before any worker
  // opens the token: SoftHSM loses the token for a process that initialises
  // and logs in at the same moment as another.
  if (wanted(kSocketFloor)) {
    RETURN_IF_ERROR(StartSocketFloor(max_processes * max_threads));
  }
  const std::vector<Spec> specs = {
      {kInProcess, InProcessFactory(4)},
      {kSocketFloor, SocketFloorFactory()},
      {kHsmproxy, HsmproxyFactory()},
      {kClientLib, ClientLibFactory()},
      {kClientLibGrpc, ClientLibFactory(/*fast_path=*/false)},
      {kSoftware, SoftwareFactory()},
  };
  MatrixOptions m;
  m.ops = options_.ops;
  m.process_counts = options_.process_counts;
  m.thread_counts = options_.thread_counts;
  m.rounds = options_.rounds;
  m.round_time = absl::Milliseconds(options_.round_ms);
  m.max_ops_per_thread = options_.max_ops_per_thread;
  m.hsmd_pid = hsmd_pid_;
  std::vector<VariantWorkers> workers;
  for (const Spec& spec : specs) {
    if (!wanted(spec.name)) continue;
    VariantWorkers w;
    w.variant = spec.name;
    if (spec.name == std::string(kSocketFloor)) {
      w.server_pid = socket_floor_->pid();
    }
    for (int p = 0; p < max_processes; ++p) {
      ASSIGN_OR_RETURN(std::unique_ptr<Worker> worker,
                       Worker::Spawn(absl::StrCat(spec.name, "#", p),
                                     spec.factory, max_threads));
      w.processes.push_back(std::move(worker));
    }
    workers.push_back(std::move(w));
  }
  // One at a time: SoftHSM loses the token for a process that initialises
  // and logs in at the same moment as another.
  for (VariantWorkers& w : workers) {
    for (std::unique_ptr<Worker>& worker : w.processes) {
      Log(absl::StrCat("initialising worker ", worker->name()));
      RETURN_IF_ERROR(worker->Init(absl::Minutes(5)));
    }
  }
  Log("matrix: every operation was checked once per thread and variant");
  ASSIGN_OR_RETURN(
      report_.cells,
      RunMatrix(workers, m, [](const std::vector<CellResult>& cells) {
        std::string line =
            absl::StrCat(InfoOf(cells[0].op).id, " ", cells[0].processes, "x",
                         cells[0].threads, ":");
        const double base = cells[0].ops_per_second();
        for (const CellResult& c : cells) {
          absl::StrAppendFormat(&line, " %s %.0f/s p50 %.0fus (%.2f)",
                                c.variant, c.ops_per_second(),
                                c.latency.PercentileMicros(0.5),
                                base > 0 ? c.ops_per_second() / base : 0);
        }
        Log(line);
      }));
  return absl::OkStatus();
}

absl::Status Bench::RunForkPhase() {
  const ChildReopen reopen_pkcs11 = [](Variant& inherited, Op op,
                                       std::unique_ptr<Variant>* keep)
      -> absl::StatusOr<std::unique_ptr<OpRunner>> {
    ASSIGN_OR_RETURN(
        std::unique_ptr<Pkcs11Variant> fresh,
        Pkcs11Variant::ReopenAfterFork(static_cast<Pkcs11Variant&>(inherited)));
    ASSIGN_OR_RETURN(std::unique_ptr<OpRunner> runner, fresh->Prepare(op, 1));
    *keep = std::move(fresh);
    return runner;
  };
  struct Spec {
    const char* name;
    VariantFactory factory;
    ChildReopen reopen;
  };
  // hsmproxy and in-process always (the targets compare them); client_lib
  // over the fast path and over hsmd's gRPC server unless --variants leaves
  // them out. Their children just call: client_lib sees the new pid and
  // connects afresh.
  std::vector<Spec> specs = {
      {kHsmproxy, HsmproxyFactory(), ChildReopen()},
      {kInProcess, InProcessFactory(1), reopen_pkcs11},
  };
  for (const auto& [name, fast_path] :
       {std::pair<const char*, bool>{kClientLib, true},
        {kClientLibGrpc, false}}) {
    if (options_.variants.empty() || options_.variants.count(name) > 0) {
      specs.push_back({name, ClientLibFactory(fast_path), ChildReopen()});
    }
  }
  // The bare boundary's child: a new connection, nothing else.
  if (options_.variants.empty() || options_.variants.count(kSocketFloor) > 0) {
    RETURN_IF_ERROR(StartSocketFloor(8));
    const std::string socket = socket_floor_->socket_path();
    const KeyDirectory* keys = &keys_;
    specs.push_back(
        {kSocketFloor, SocketFloorFactory(),
         [socket, keys](Variant&, Op op, std::unique_ptr<Variant>* keep)
             -> absl::StatusOr<std::unique_ptr<OpRunner>> {
           ASSIGN_OR_RETURN(std::unique_ptr<SocketFloorVariant> fresh,
                            SocketFloorVariant::New(socket, *keys));
           ASSIGN_OR_RETURN(std::unique_ptr<OpRunner> runner,
                            fresh->Prepare(op, 1));
           *keep = std::move(fresh);
           return runner;
         }});
  }
  for (Op op : {Op::kEcdsaP256Sign, Op::kRsa2048Pkcs1Sign}) {
    for (const Spec& spec : specs) {
      Log(absl::StrCat("fork cost: ", InfoOf(op).id, " ", spec.name, ", ",
                       options_.forks, " forks"));
      ASSIGN_OR_RETURN(ForkCost cost, MeasureForkCost(spec.factory, spec.reopen,
                                                      op, options_.forks));
      cost.variant = spec.name;
      report_.forks.push_back(std::move(cost));
    }
  }
  return absl::OkStatus();
}

absl::Status Bench::RunFootprintPhase() {
  Command probe;
  probe.argv = {footprint_probe_, hsmproxy_, socket_, keys_.at("ec-p256").uri};
  probe.unset = {"HSMPROXY_SOCKET"};
  ASSIGN_OR_RETURN(std::string out, RunProgram(probe, absl::Seconds(60)));
  RETURN_IF_ERROR(
      ParseFootprint(out, report_.footprint, report_.footprint_mappings));
  // Again with the Abseil libraries hsmproxy mapped already in the process
  // (as in a program that uses gRPC): what hsmproxy costs beyond Abseil.
  std::vector<std::string> abseil;
  for (const FootprintMapping& m : report_.footprint_mappings) {
    if (absl::StrContains(m.path, "/libabsl_")) abseil.push_back(m.path);
  }
  if (abseil.empty()) return absl::OkStatus();
  probe.env.push_back({"LD_PRELOAD", absl::StrJoin(abseil, ":")});
  ASSIGN_OR_RETURN(out, RunProgram(probe, absl::Seconds(60)));
  std::vector<FootprintMapping> unused;
  return ParseFootprint(out, report_.footprint_with_abseil, unused);
}

absl::Status Bench::RunLoadPhase() {
  for (Op op : {Op::kEcdsaP256Sign, Op::kRsa2048Pkcs1Sign}) {
    LoadOptions l;
    l.op = op;
    l.clients = options_.load_clients;
    l.duration = absl::Seconds(options_.load_seconds);
    l.max_ops_per_client = options_.load_max_ops;
    l.hsmd_pid = hsmd_pid_;
    Log(absl::StrCat("daemon under load: ", l.clients, " client processes, ",
                     InfoOf(op).id));
    ASSIGN_OR_RETURN(LoadResult result, RunDaemonLoad(ClientLibFactory(), l));
    report_.load.push_back(std::move(result));
  }
  return absl::OkStatus();
}

absl::Status Bench::RunNginxPhase() {
  char pattern[] = "/tmp/hsmdnXXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    return absl::InternalError("mkdtemp /tmp/hsmdnXXXXXX failed");
  }
  const std::string work = pattern;
  NginxOptions n;
  n.nginx = options_.nginx;
  n.openssl = options_.openssl;
  n.hsmproxy_module = hsmproxy_;
  n.socket_path = socket_;
  n.work_dir = work;
  n.rounds = options_.nginx_rounds;
  n.round_time = absl::Milliseconds(options_.nginx_round_ms);
  n.hsmd_pid = hsmd_pid_;
  n.hsmd_signatures = [this](const std::string& label) {
    return SignCount(*client_, label);
  };
  Log("nginx: TLS 1.3 handshakes, HSM key vs PEM key");
  absl::StatusOr<std::vector<NginxResult>> results = RunNginxBench(n);
  if (!options_.keep_temp) {
    std::error_code ignored;
    std::filesystem::remove_all(work, ignored);
  }
  if (!results.ok()) return results.status();
  report_.nginx = *std::move(results);
  return absl::OkStatus();
}

void Bench::Phase(const char* name, absl::Status (Bench::*fn)()) {
  if (options_.skip.count(name) > 0) {
    report_.notes.push_back(absl::StrCat("phase ", name, " skipped (--skip)"));
    return;
  }
  const absl::Time start = absl::Now();
  absl::Status status = (this->*fn)();
  if (!status.ok()) {
    failed_ = true;
    report_.notes.push_back(
        absl::StrCat("phase ", name, " FAILED: ", status.ToString()));
    Log(report_.notes.back());
    return;
  }
  Log(absl::StrCat("phase ", name, " done in ",
                   absl::FormatDuration(absl::Trunc(absl::Now() - start,
                                                    absl::Milliseconds(100)))));
}

int Bench::Run(int argc, char** argv) {
  const absl::Time start = absl::Now();
  report_.machine = DescribeMachine();
  report_.mode = options_.smoke ? "smoke" : "full";
  std::vector<std::string> args(argv, argv + argc);
  args[0] = "hsmd_bench";
  report_.command = absl::StrJoin(args, " ");
  report_.rounds = options_.rounds;
  report_.round_ms = options_.round_ms;
  report_.max_ops_per_thread = options_.max_ops_per_thread;
  Log(absl::StrCat("load average ", report_.machine.load_before[0], " ",
                   report_.machine.load_before[1], " ",
                   report_.machine.load_before[2], ", ", report_.machine.cpus,
                   " CPUs"));
  absl::Status setup = SetUp();
  if (!setup.ok()) {
    std::fprintf(stderr, "hsmd_bench: %s\n", setup.ToString().c_str());
    return 1;
  }
  Phase("matrix", &Bench::RunMatrixPhase);
  Phase("fork", &Bench::RunForkPhase);
  Phase("footprint", &Bench::RunFootprintPhase);
  Phase("load", &Bench::RunLoadPhase);
  Phase("nginx", &Bench::RunNginxPhase);
  ReadLoadAverage(report_.machine.load_after);
  report_.machine.wall_seconds = absl::ToDoubleSeconds(absl::Now() - start);

  std::fputs(FormatText(report_).c_str(), stdout);
  std::fflush(stdout);
  int exit_code = failed_ ? 1 : 0;
  for (const auto& [path, text] :
       {std::pair<std::string, std::string>{OutputPath(options_.json_out),
                                            FormatJson(report_)},
        {OutputPath(options_.markdown_out), FormatMarkdown(report_)}}) {
    if (path.empty()) continue;
    absl::Status s = WriteFile(path, text, 0644);
    if (!s.ok()) {
      std::fprintf(stderr, "hsmd_bench: %s\n", s.ToString().c_str());
      exit_code = 1;
    } else {
      Log(absl::StrCat("wrote ", path));
    }
  }
  return exit_code;
}

int Main(int argc, char** argv) {
  absl::StatusOr<BenchOptions> options = ParseOptions(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  // Before any OpenSSL use in this process tree: no system openssl.cnf may
  // load providers into the software variant or the TLS client.
  setenv("OPENSSL_CONF", "/dev/null", 1);
  unsetenv("HSMPROXY_SOCKET");
  signal(SIGPIPE, SIG_IGN);
  Bench bench(*std::move(options), argv[0]);
  return bench.Run(argc, argv);
}

}  // namespace
}  // namespace hsmd::bench

int main(int argc, char** argv) { return hsmd::bench::Main(argc, argv); }
