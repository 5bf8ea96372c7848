// `hsmd --demo DIR` started by the benchmark in a fresh /tmp directory:
// SoftHSM token "demo" with the five demo keys, socket DIR/hsmd.sock,
// log DIR/hsmd.log.
#ifndef HSMD_BENCH_DEMO_DAEMON_H_
#define HSMD_BENCH_DEMO_DAEMON_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace hsmd::bench {

class DemoDaemon {
 public:
  // Waits (up to 3 minutes: SoftHSM generates an RSA-3072 key) until the
  // daemon logs that it is ready and its socket exists.
  static absl::StatusOr<std::unique_ptr<DemoDaemon>> Start(
      const std::string& hsmd_path);
  // SIGTERM (SIGKILL after 30 s), then removes DIR unless kept.
  ~DemoDaemon();
  DemoDaemon(const DemoDaemon&) = delete;
  DemoDaemon& operator=(const DemoDaemon&) = delete;

  void keep_dir() { keep_ = true; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  std::string socket_path() const { return dir_ + "/hsmd.sock"; }
  std::string softhsm_conf() const { return dir_ + "/softhsm2.conf"; }
  std::string pin_file() const { return dir_ + "/user.pin"; }
  std::string log_path() const { return dir_ + "/hsmd.log"; }

 private:
  explicit DemoDaemon(std::string dir) : dir_(std::move(dir)) {}
  const std::string dir_;
  pid_t pid_ = -1;
  bool keep_ = false;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_DEMO_DAEMON_H_
