// nginx: TLS 1.3 full handshakes per second with the key in hsmd (through
// hsmproxy, from a PKCS#11 PROVIDER URI key file) against the key in a PEM
// file, for an ECDSA P-256 and an RSA-2048 certificate. Two nginx instances
// (worker_processes 2, loopback only) run side by side: one configured with
// hsmproxy, one with a plain OpenSSL configuration, so the PEM figure is
// plain OpenSSL's. Rounds alternate between them.
#ifndef HSMD_BENCH_NGINX_BENCH_H_
#define HSMD_BENCH_NGINX_BENCH_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/histogram.h"

namespace hsmd::bench {

struct NginxOptions {
  std::string nginx = "/usr/sbin/nginx";
  std::string openssl = "/usr/bin/openssl";
  std::string hsmproxy_module;
  std::string socket_path;
  // Scratch directory (created by the caller).
  std::string work_dir;
  int rounds = 3;
  absl::Duration round_time = absl::Seconds(3);
  int client_threads = 4;
  pid_t hsmd_pid = -1;
  // hsmd's count of successful signatures with a demo key (to prove the
  // HSM handshakes were signed by hsmd).
  std::function<absl::StatusOr<uint64_t>(const std::string& label)>
      hsmd_signatures;
};

struct NginxResult {
  // "ecdsa-p256" / "rsa-2048"; "hsmproxy" / "pem".
  std::string certificate;
  std::string key_source;
  uint64_t handshakes = 0;
  double seconds = 0;
  LatencyHistogram latency;
  int64_t hsmd_cpu_ns = 0;
  // Signatures hsmd made during this variant's rounds (hsmproxy only).
  uint64_t hsmd_signatures = 0;
  double per_second() const { return seconds > 0 ? handshakes / seconds : 0; }
};

absl::StatusOr<std::vector<NginxResult>> RunNginxBench(
    const NginxOptions& options);

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_NGINX_BENCH_H_
