// hsmd's fast path: serves client_lib connections (which announce themselves
// in their opening SETTINGS, common/fast_path.h) with a thread per
// connection, and passes every other connection on to the gRPC server.
//
// Why: the gRPC C++ sync server spends ~190 µs of CPU and 5-7 context
// switches on a unary call on this class of machine, several times the cost
// of a P-256 signature in the HSM, and ~0.5 ms setting up each new
// connection (a forked child's first call). A connection served here costs
// one wake-up of its thread per call (client_lib makes one call at a time
// per connection) and no set-up beyond an HTTP/2 session. Both transports
// run the same service code (method_table.h).
//
// Threads: one per fast-path connection (threads of closed connections are
// parked and reused), up to max_connections; further
// client_lib connections go to gRPC (which still serves them, slower). A
// connection thread blocked in a hung HSM call holds only its own
// connection; the client gives up at its deadline and reconnects.
#ifndef HSMD_DAEMON_FAST_PATH_FAST_PATH_SERVER_H_
#define HSMD_DAEMON_FAST_PATH_FAST_PATH_SERVER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "daemon/fast_path/connection.h"
#include "daemon/fast_path/method_table.h"
#include "daemon/in_flight_calls.h"
#include "daemon/peer_credentials.h"

namespace hsmd::fast_path {

struct ServerOptions {
  ConnectionOptions connection;
  // Fast-path connections served at once (each has a thread).
  size_t max_connections = 512;
  // How long a new connection may stay silent before it is handed to gRPC.
  absl::Duration classify_timeout = absl::Seconds(5);
  // Threads kept after their connection closed, for the next connections
  // (a thread start is a good part of a new connection's cost), and for how
  // long.
  size_t max_idle_threads = 8;
  absl::Duration idle_thread_timeout = absl::Seconds(60);
};

class FastPathServer {
 public:
  // Receives the connections that are not client_lib's (owns the fd).
  using GrpcHandOff = std::function<void(int fd)>;

  // `methods` and `in_flight` must outlive the server.
  FastPathServer(MethodTable methods, InFlightCalls* in_flight,
                 GrpcHandOff grpc_hand_off, ServerOptions options);
  FastPathServer(const FastPathServer&) = delete;
  FastPathServer& operator=(const FastPathServer&) = delete;
  // Must not run while connection threads are alive: call Close() first
  // and destroy only if it returned true.
  ~FastPathServer() = default;

  // Takes ownership of an accepted connection (blocking, non-blocking or
  // not) and returns at once: a thread classifies it and serves it, or
  // hands it to gRPC. After Close() the connection is closed.
  void Adopt(int fd, std::shared_ptr<const PeerIdentity> peer);

  // Stops adopting, shuts down every connection (a call being served loses
  // its response; shutdown drains calls before this), and waits until
  // `deadline` for the threads to end. False if some are still blocked (in
  // a backend call): the server must then outlive the process.
  bool Close(absl::Time deadline);

  // Connections served on the fast path / handed to gRPC so far.
  uint64_t fast_path_connections() const;
  uint64_t grpc_connections() const;
  // Connection threads alive (serving or parked), and those parked.
  size_t threads() const;
  size_t parked_threads() const;

 private:
  // A thread parked between connections.
  struct Worker {
    std::condition_variable wake;
    int fd = -1;
    std::shared_ptr<const PeerIdentity> peer;
    bool exit = false;
  };

  // Serves `fd`, then further connections handed over while parked.
  void WorkerLoop(int fd, std::shared_ptr<const PeerIdentity> peer);
  void Run(int fd, std::shared_ptr<const PeerIdentity> peer);
  // Passes a registered connection on to gRPC (or closes it once closed).
  void HandToGrpc(int fd);
  // Unregisters `fd` and closes it (under mu_, so Close never shuts down a
  // reused fd number).
  void Forget(int fd, bool close_fd);

  const MethodTable methods_;
  InFlightCalls* const in_flight_;
  const GrpcHandOff grpc_hand_off_;
  const ServerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable threads_done_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Connections being classified or served, each with a thread.
  absl::flat_hash_set<int> fds_ ABSL_GUARDED_BY(mu_);
  // Parked threads, the last parked first.
  std::vector<std::shared_ptr<Worker>> idle_ ABSL_GUARDED_BY(mu_);
  // Threads running WorkerLoop.
  size_t threads_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t fast_path_total_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t grpc_total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace hsmd::fast_path

#endif  // HSMD_DAEMON_FAST_PATH_FAST_PATH_SERVER_H_
