#include "daemon/peer_credentials.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hsmd {
namespace {

// Supplementary groups of the peer. The kernel reports ERANGE with the
// needed size when the buffer is too small.
absl::StatusOr<std::vector<gid_t>> ReadPeerGroups(int fd) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) {
      return absl::FailedPreconditionError(
          absl::StrCat("SO_PEERGROUPS: ", std::strerror(errno)));
    }
    groups.resize(len / sizeof(gid_t) + 1);
  }
  return absl::FailedPreconditionError(
      "SO_PEERGROUPS: group list keeps growing");
}

std::string ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

std::string ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return "";
  return std::string(absl::StripTrailingAsciiWhitespace(
      absl::string_view(buf, static_cast<size_t>(n))));
}

}  // namespace

bool PeerIdentity::InGroup(gid_t group) const {
  return gid == group ||
         std::find(groups.begin(), groups.end(), group) != groups.end();
}

std::string PeerIdentity::GroupList() const {
  return absl::StrJoin(groups, ",");
}

std::string PeerIdentity::Describe() const {
  std::string out = absl::StrCat("uid ", uid, " gid ", gid, " pid ", pid);
  if (!exe.empty()) {
    absl::StrAppend(&out, " exe ", exe);
  } else if (!comm.empty()) {
    absl::StrAppend(&out, " comm ", comm);
  }
  return out;
}

absl::StatusOr<PeerIdentity> ReadPeerIdentity(int fd) {
  ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      len != sizeof(cred)) {
    return absl::FailedPreconditionError(
        absl::StrCat("SO_PEERCRED: ", std::strerror(errno)));
  }
  PeerIdentity peer;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  peer.pid = cred.pid;
  absl::StatusOr<std::vector<gid_t>> groups = ReadPeerGroups(fd);
  if (!groups.ok()) return groups.status();
  for (gid_t g : *groups) {
    if (g != peer.gid) peer.groups.push_back(g);
  }
  if (peer.pid > 0) {
    const std::string proc = absl::StrCat("/proc/", peer.pid);
    peer.exe = ReadLink(proc + "/exe");
    peer.comm = ReadSmallFile(proc + "/comm");
  }
  return peer;
}

}  // namespace hsmd
