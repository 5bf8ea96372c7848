// Per-connection caller identities, for request handlers.
//
// hsmd accepts connections itself (Acceptor), reads the peer's credentials,
// registers them here under the accepted fd, and only then hands the fd to
// gRPC (grpc::AddInsecureChannelFromFd). gRPC names such a connection's
// peer "fd:N", so a handler finds its caller with Lookup(context->peer()).
//
// fd numbers are reused once gRPC closes a connection, so every entry also
// records the socket's inode (unique among open sockets), and Lookup only
// answers when fd N still refers to that very socket; otherwise the entry is
// stale, is dropped, and the caller is unidentified (denied under a policy).
// A connection's fd stays open while any of its calls is alive (gRPC 1.51
// closes it when the transport is destroyed, after its last call), so a
// handler never sees another connection's socket behind its own "fd:N";
// tests/security/peer_identity_test proves both properties.
#ifndef HSMD_DAEMON_CONNECTION_REGISTRY_H_
#define HSMD_DAEMON_CONNECTION_REGISTRY_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/peer_credentials.h"

namespace hsmd {

class ConnectionRegistry {
 public:
  ConnectionRegistry() = default;
  ConnectionRegistry(const ConnectionRegistry&) = delete;
  ConnectionRegistry& operator=(const ConnectionRegistry&) = delete;

  // Records `identity` for the connection on accepted socket `fd` (before
  // gRPC owns it), replacing whatever a closed connection left under the
  // same number. Assigns identity.connection_id. FAILED_PRECONDITION when
  // `fd` is not open.
  absl::StatusOr<std::shared_ptr<const PeerIdentity>> Register(
      int fd, PeerIdentity identity);

  // The identity of the connection gRPC calls `peer` ("fd:N"), or null
  // when there is none (another transport, a closed or replaced fd).
  std::shared_ptr<const PeerIdentity> Lookup(absl::string_view peer);

  // Entries held (live connections plus stale ones not yet looked up).
  size_t size() const;

 private:
  struct Entry {
    dev_t dev = 0;
    ino_t inode = 0;
    std::shared_ptr<const PeerIdentity> identity;
  };

  mutable std::mutex mu_;
  absl::flat_hash_map<int, Entry> by_fd_ ABSL_GUARDED_BY(mu_);
  uint64_t next_connection_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace hsmd

#endif  // HSMD_DAEMON_CONNECTION_REGISTRY_H_
