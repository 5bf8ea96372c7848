// Preparing the daemon's Unix socket path safely.
//
// SocketPath::Prepare makes the path usable before hsmd binds it:
//  - creates the socket's directory (and missing parents) with mode 0750,
//    the socket's own directory owned by the socket group when one is given
//    (so the group's members can reach the socket);
//  - takes an exclusive flock on "<path>.lock", held for the daemon's
//    lifetime, so two daemons never race for one path (binding over an
//    unlinked socket file would silently steal a live daemon's clients);
//  - refuses when another process accepts connections on the path;
//  - removes a stale socket file (nothing listening: connect() is refused);
//  - refuses to touch a path that exists and is not a socket.
#ifndef HSMD_DAEMON_UNIX_SOCKET_H_
#define HSMD_DAEMON_UNIX_SOCKET_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hsmd {

class SocketPath {
 public:
  // FAILED_PRECONDITION when another daemon holds the lock or listens on the
  // path, or the path is not a socket; other errors name the path and errno.
  static absl::StatusOr<std::unique_ptr<SocketPath>> Prepare(
      std::string path, std::optional<gid_t> directory_group = std::nullopt);

  SocketPath(const SocketPath&) = delete;
  SocketPath& operator=(const SocketPath&) = delete;
  // Releases the lock; the socket file is left alone (see RemoveSocket).
  ~SocketPath();

  const std::string& path() const { return path_; }

  // Creates, binds (with no permissions for anyone but the owner until
  // SetPermissions) and listens on the socket; returns the listening fd
  // (SOCK_CLOEXEC | SOCK_NONBLOCK).
  absl::StatusOr<int> Listen(int backlog) const;

  // After bind: chmod to `mode`, and chgrp to `gid` when given.
  absl::Status SetPermissions(uint32_t mode, std::optional<gid_t> gid) const;

  // Unlinks the socket file if it is (still) a socket.
  void RemoveSocket() const;

 private:
  SocketPath(std::string path, int lock_fd)
      : path_(std::move(path)), lock_fd_(lock_fd) {}

  const std::string path_;
  const int lock_fd_;
};

// True when a process accepts connections on the Unix socket `path`.
bool SomethingListensOn(const std::string& path);

}  // namespace hsmd

#endif  // HSMD_DAEMON_UNIX_SOCKET_H_
