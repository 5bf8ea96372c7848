#include "bench/options.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace hsmd::bench {
namespace {

void SmokeDefaults(BenchOptions& o) {
  o.smoke = true;
  o.rounds = 2;
  o.round_ms = 200;
  o.max_ops_per_thread = 10;
  o.forks = 3;
  o.load_seconds = 3;
  o.load_max_ops = 5;
  o.nginx_rounds = 1;
  o.nginx_round_ms = 300;
}

absl::Status BadValue(absl::string_view flag, absl::string_view value,
                      absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": '", value, "' is not ", want));
}

template <typename T>
absl::Status ParseInt(absl::string_view flag, absl::string_view value,
                      T minimum, T* out) {
  T v;
  if (!absl::SimpleAtoi(value, &v) || v < minimum) {
    return BadValue(flag, value, absl::StrCat("an integer >= ", minimum));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseOps(absl::string_view value, std::vector<Op>* ops) {
  ops->clear();
  for (absl::string_view id : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    bool found = false;
    for (const OpInfo& info : AllOps()) {
      if (id == info.id) {
        ops->push_back(info.op);
        found = true;
      }
    }
    if (!found) {
      std::vector<std::string> ids;
      for (const OpInfo& info : AllOps()) ids.push_back(info.id);
      return absl::InvalidArgumentError(
          absl::StrCat("--ops: unknown operation '", id,
                       "'; known: ", absl::StrJoin(ids, ",")));
    }
  }
  if (ops->empty()) return absl::InvalidArgumentError("--ops: empty list");
  return absl::OkStatus();
}

absl::Status ParseVariants(absl::string_view value,
                           std::set<std::string>* variants) {
  static const char* const kVariants[] = {"in-process",      "socket_floor",
                                          "hsmproxy",        "client_lib",
                                          "client_lib_grpc", "software"};
  for (absl::string_view v : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    if (std::find(std::begin(kVariants), std::end(kVariants), v) ==
        std::end(kVariants)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--variants: unknown variant '", v,
                       "'; known: ", absl::StrJoin(kVariants, ",")));
    }
    variants->insert(std::string(v));
  }
  return absl::OkStatus();
}

absl::Status ParseCounts(absl::string_view flag, absl::string_view value,
                         int maximum, std::vector<int>* counts) {
  counts->clear();
  for (absl::string_view v : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(v, &n) || n < 1 || n > maximum) {
      return BadValue(flag, v, absl::StrCat("a count from 1 to ", maximum));
    }
    counts->push_back(n);
  }
  if (counts->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": empty list"));
  }
  return absl::OkStatus();
}

absl::Status ParseSkip(absl::string_view value, std::set<std::string>* skip) {
  for (absl::string_view phase :
       absl::StrSplit(value, ',', absl::SkipEmpty())) {
    if (std::find(std::begin(kPhases), std::end(kPhases), phase) ==
        std::end(kPhases)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--skip: unknown phase '", phase,
                       "'; known: ", absl::StrJoin(kPhases, ",")));
    }
    skip->insert(std::string(phase));
  }
  return absl::OkStatus();
}

}  // namespace

std::string Usage() {
  return R"(hsmd_bench: hsmd against in-process PKCS#11 and a software key.

  hsmd_bench [--smoke] [--json_out FILE] [--markdown_out FILE] [flags]

Starts `hsmd --demo` in a temporary directory (or uses an existing demo with
--socket DIR/hsmd.sock --softhsm-conf DIR/softhsm2.conf), then measures every
operation with 1 and 2 client processes x 1 and 4 threads, variants
interleaved round by round, plus fork cost, footprint, 64 clients against the
daemon, and nginx TLS handshakes. Prints tables and the issue's targets.

  --smoke                 a few hundred operations per variant (seconds)
  --json_out FILE         results as JSON
  --markdown_out FILE     results as Markdown tables
  --socket PATH           existing hsmd demo socket
  --softhsm-conf PATH     its softhsm2.conf (for in-process PKCS#11)
  --pin-file PATH         its user PIN file (default: user.pin beside the conf)
  --hsmd PATH  --hsmproxy PATH  --footprint-probe PATH  --softhsm-module PATH
  --nginx PATH  --openssl PATH  --token LABEL
  --ops ID,...            operations (rsa2048_pkcs1_sign, rsa2048_pss_sign,
                          rsa3072_pkcs1_sign, ecdsa_p256_sign, ecdsa_p384_sign,
                          ed25519_sign, rsa2048_oaep_decrypt, random_32)
  --variants V,...        in-process, socket_floor (the bare process
                          boundary: the in-process code behind a Unix
                          socket), hsmproxy, client_lib, client_lib_grpc
                          (client_lib served by hsmd's gRPC server instead
                          of its fast path), software (all)
  --processes N,...       client processes per configuration (1,2)
  --threads N,...         threads per client process (1,4)
  --rounds N  --round-ms MS  --max-ops-per-thread N
  --forks N  --load-clients N  --load-seconds S  --load-max-ops N
  --nginx-rounds N  --nginx-round-ms MS
  --skip PHASE,...        matrix, fork, footprint, load, nginx
  --keep-temp             keep the temporary directory
)";
}

absl::StatusOr<BenchOptions> ParseOptions(int argc, const char* const* argv) {
  // Flag name (normalised) and value pairs.
  std::vector<std::pair<std::string, std::string>> flags;
  static const char* const kBoolean[] = {"smoke", "keep_temp", "help"};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (see --help)"));
    }
    arg.remove_prefix(2);
    std::string name;
    std::string value;
    const size_t eq = arg.find('=');
    name = absl::StrReplaceAll(arg.substr(0, eq), {{"-", "_"}});
    const bool boolean = std::find(std::begin(kBoolean), std::end(kBoolean),
                                   name) != std::end(kBoolean);
    if (eq != absl::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (!boolean) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value"));
      }
      value = argv[++i];
    }
    flags.emplace_back(std::move(name), std::move(value));
  }
  BenchOptions o;
  for (const auto& [name, value] : flags) {
    if (name == "smoke") SmokeDefaults(o);
  }
  for (const auto& [name, value] : flags) {
    absl::Status s = absl::OkStatus();
    if (name == "smoke") {
    } else if (name == "help") {
      return absl::InvalidArgumentError(Usage());
    } else if (name == "keep_temp") {
      o.keep_temp = true;
    } else if (name == "json_out") {
      o.json_out = value;
    } else if (name == "markdown_out") {
      o.markdown_out = value;
    } else if (name == "socket") {
      o.socket = value;
    } else if (name == "softhsm_conf") {
      o.softhsm_conf = value;
    } else if (name == "pin_file") {
      o.pin_file = value;
    } else if (name == "hsmd") {
      o.hsmd = value;
    } else if (name == "hsmproxy") {
      o.hsmproxy = value;
    } else if (name == "footprint_probe") {
      o.footprint_probe = value;
    } else if (name == "softhsm_module") {
      o.softhsm_module = value;
    } else if (name == "nginx") {
      o.nginx = value;
    } else if (name == "openssl") {
      o.openssl = value;
    } else if (name == "token") {
      o.token_label = value;
    } else if (name == "ops") {
      s = ParseOps(value, &o.ops);
    } else if (name == "rounds") {
      s = ParseInt(name, value, 1, &o.rounds);
    } else if (name == "round_ms") {
      s = ParseInt(name, value, 1, &o.round_ms);
    } else if (name == "max_ops_per_thread") {
      s = ParseInt<int64_t>(name, value, 0, &o.max_ops_per_thread);
    } else if (name == "forks") {
      s = ParseInt(name, value, 1, &o.forks);
    } else if (name == "load_clients") {
      s = ParseInt(name, value, 1, &o.load_clients);
    } else if (name == "load_seconds") {
      s = ParseInt(name, value, 1, &o.load_seconds);
    } else if (name == "load_max_ops") {
      s = ParseInt<int64_t>(name, value, 0, &o.load_max_ops);
    } else if (name == "nginx_rounds") {
      s = ParseInt(name, value, 1, &o.nginx_rounds);
    } else if (name == "nginx_round_ms") {
      s = ParseInt(name, value, 1, &o.nginx_round_ms);
    } else if (name == "variants") {
      s = ParseVariants(value, &o.variants);
    } else if (name == "processes") {
      s = ParseCounts(name, value, 8, &o.process_counts);
    } else if (name == "threads") {
      s = ParseCounts(name, value, 16, &o.thread_counts);
    } else if (name == "skip") {
      s = ParseSkip(value, &o.skip);
    } else {
      s = absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!s.ok()) return s;
  }
  if (o.socket.empty() != o.softhsm_conf.empty()) {
    return absl::InvalidArgumentError(
        "--socket and --softhsm-conf go together (an existing hsmd demo "
        "and its SoftHSM configuration)");
  }
  if (o.ops.empty()) {
    for (const OpInfo& info : AllOps()) o.ops.push_back(info.op);
  }
  return o;
}

}  // namespace hsmd::bench
