#include "daemon/connection_registry.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace hsmd {

absl::StatusOr<std::shared_ptr<const PeerIdentity>>
ConnectionRegistry::Register(int fd, PeerIdentity identity) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("fstat of accepted fd ", fd, ": ", std::strerror(errno)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  identity.connection_id = next_connection_id_++;
  auto shared = std::make_shared<const PeerIdentity>(std::move(identity));
  by_fd_[fd] = Entry{st.st_dev, st.st_ino, shared};
  return shared;
}

std::shared_ptr<const PeerIdentity> ConnectionRegistry::Lookup(
    absl::string_view peer) {
  int fd = -1;
  if (!absl::ConsumePrefix(&peer, "fd:") || !absl::SimpleAtoi(peer, &fd) ||
      fd < 0) {
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return nullptr;
  // Under the lock, so Register cannot slip a new entry in between.
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_dev != it->second.dev ||
      st.st_ino != it->second.inode) {
    by_fd_.erase(it);
    return nullptr;
  }
  return it->second.identity;
}

size_t ConnectionRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_fd_.size();
}

}  // namespace hsmd
