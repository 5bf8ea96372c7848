// Who is on the other end of an accepted Unix socket connection, from what
// the kernel says (SO_PEERCRED, SO_PEERGROUPS, /proc), never from anything
// the client sends.
#ifndef HSMD_DAEMON_PEER_CREDENTIALS_H_
#define HSMD_DAEMON_PEER_CREDENTIALS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hsmd {

struct PeerIdentity {
  // Assigned by ConnectionRegistry: unique per accepted connection for the
  // daemon's lifetime (fd numbers are reused, these are not).
  uint64_t connection_id = 0;
  // Credentials of the process that called connect(), as of that moment.
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  // 0 when the peer is in a PID namespace hsmd cannot see into.
  pid_t pid = 0;
  // Supplementary groups (SO_PEERGROUPS), without the primary gid.
  std::vector<gid_t> groups;
  // /proc/PID/exe, resolved at accept time. Empty when it cannot be read:
  // the kernel only lets the same user (or CAP_SYS_PTRACE) read another
  // process's exe link, so a dedicated hsmd user sees other users' as empty.
  std::string exe;
  // /proc/PID/comm (readable by everyone), for when exe is empty.
  std::string comm;

  // True when `gid` is the primary or a supplementary group.
  bool InGroup(gid_t group) const;
  // "uid 1000 gid 1000 pid 4242 exe /usr/bin/openssl" for logs.
  std::string Describe() const;
  // "1000,1001" (supplementary groups).
  std::string GroupList() const;
};

// Reads the credentials of the peer of connected AF_UNIX socket `fd`.
// FAILED_PRECONDITION when the socket does not support SO_PEERCRED.
absl::StatusOr<PeerIdentity> ReadPeerIdentity(int fd);

}  // namespace hsmd

#endif  // HSMD_DAEMON_PEER_CREDENTIALS_H_
