// Variant "socket_floor": the cheapest possible out-of-process design, as a
// yardstick for hsmd. A server process holds the same SoftHSM token and runs
// exactly the in-process variant's code for each request; clients reach it
// over a Unix socket with one connection per thread and a fixed binary
// message (operation byte + the 64-byte input; length + result back), served
// by one blocking thread per connection. No HTTP/2, no protobuf, no policy,
// audit or statistics: what is left is the process boundary itself (two
// socket transfers and two thread wake-ups per operation).
//
// Its ratio to in-process is the ceiling of any daemon on this machine; hsmd's
// distance from it is what hsmd's own design costs.
#ifndef HSMD_BENCH_SOCKET_FLOOR_H_
#define HSMD_BENCH_SOCKET_FLOOR_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/pkcs11_variant.h"
#include "bench/variant.h"

namespace hsmd::bench {

// The server process. Stopped (SIGKILL, reaped) when destroyed.
class SocketFloorServer {
 public:
  // Forks the server: it opens the token with `config` (config.sessions is
  // the most connections it serves at once), prepares `ops`, listens on
  // `socket_path` and reports readiness. Returns once it is ready.
  static absl::StatusOr<std::unique_ptr<SocketFloorServer>> Start(
      const Pkcs11Variant::Config& config, const std::vector<Op>& ops,
      std::string socket_path);
  ~SocketFloorServer();
  SocketFloorServer(const SocketFloorServer&) = delete;
  SocketFloorServer& operator=(const SocketFloorServer&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return pid_; }

 private:
  SocketFloorServer(pid_t pid, std::string socket_path)
      : pid_(pid), socket_path_(std::move(socket_path)) {}
  const pid_t pid_;
  const std::string socket_path_;
};

class SocketFloorVariant final : public Variant {
 public:
  // `keys` outlives the variant (public keys for Check).
  static absl::StatusOr<std::unique_ptr<SocketFloorVariant>> New(
      std::string socket_path, const KeyDirectory& keys);
  ~SocketFloorVariant() override;

  std::string name() const override { return "socket_floor"; }
  absl::StatusOr<std::unique_ptr<OpRunner>> Prepare(Op op,
                                                    int threads) override;
  absl::Status Check(Op op, absl::string_view output) const override;

  // Thread t's connection, opened on first use; all operations share it.
  absl::StatusOr<int> Connection(int thread);

 private:
  SocketFloorVariant(std::string socket_path, const KeyDirectory& keys)
      : socket_path_(std::move(socket_path)), keys_(keys) {}
  const std::string socket_path_;
  const KeyDirectory& keys_;
  std::vector<int> fds_;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_SOCKET_FLOOR_H_
