// Accepts connections on hsmd's listening Unix socket in one thread,
// identifies each caller (peer_credentials.h), registers it in the
// ConnectionRegistry, and hands the connection on (to the fast path or
// gRPC).
//
// Every accepted fd is SOCK_CLOEXEC | SOCK_NONBLOCK (gRPC expects
// non-blocking fds). A connection whose credentials cannot be read is closed
// at once. When fds run out (EMFILE, ENFILE) the acceptor pauses briefly
// instead of spinning, and logs once per episode.
#ifndef HSMD_DAEMON_ACCEPTOR_H_
#define HSMD_DAEMON_ACCEPTOR_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "daemon/connection_registry.h"

namespace hsmd {

class Acceptor {
 public:
  // Receives each registered connection's fd (owning it from then on) and
  // the caller's identity.
  using HandOff =
      std::function<void(int fd, std::shared_ptr<const PeerIdentity> peer)>;

  // Takes ownership of `listen_fd`, a listening AF_UNIX stream socket.
  // `registry` must outlive the acceptor.
  static absl::StatusOr<std::unique_ptr<Acceptor>> New(
      int listen_fd, ConnectionRegistry* registry, HandOff hand_off);

  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;
  // Stops if still running.
  ~Acceptor();

  // Starts the accepting thread. Call once.
  void Start();
  // Stops accepting and closes the listening socket; returns when the
  // thread is gone (no hand-off happens after that). Idempotent.
  void Stop();

  // Connections handed on so far.
  uint64_t accepted() const { return accepted_.load(); }

 private:
  Acceptor(int listen_fd, int wake_fd, ConnectionRegistry* registry,
           HandOff hand_off)
      : listen_fd_(listen_fd),
        wake_fd_(wake_fd),
        registry_(registry),
        hand_off_(std::move(hand_off)) {}

  void Loop();
  // Identifies, registers and hands off one accepted connection.
  void Admit(int fd);

  int listen_fd_;
  const int wake_fd_;
  ConnectionRegistry* const registry_;
  const HandOff hand_off_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> accepted_{0};
};

}  // namespace hsmd

#endif  // HSMD_DAEMON_ACCEPTOR_H_
