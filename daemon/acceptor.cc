#include "daemon/acceptor.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"

namespace hsmd {

absl::StatusOr<std::unique_ptr<Acceptor>> Acceptor::New(
    int listen_fd, ConnectionRegistry* registry, HandOff hand_off) {
  int flags = fcntl(listen_fd, F_GETFL);
  if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
      fcntl(listen_fd, F_SETFD, FD_CLOEXEC) != 0) {
    int err = errno;
    close(listen_fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot configure the listening socket: ", std::strerror(err)));
  }
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    int err = errno;
    close(listen_fd);
    return absl::FailedPreconditionError(
        absl::StrCat("eventfd: ", std::strerror(err)));
  }
  return std::unique_ptr<Acceptor>(
      new Acceptor(listen_fd, wake_fd, registry, std::move(hand_off)));
}

Acceptor::~Acceptor() {
  Stop();
  close(wake_fd_);
}

void Acceptor::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Acceptor::Stop() {
  if (stopped_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;  // The eventfd cannot be full; the flag is checked anyway.
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
}

void Acceptor::Loop() {
  // Paused: out of fds. Pending connections then wait in the backlog and
  // the listening socket is looked at again after a pause, not spun on.
  bool paused = false;
  bool warned = false;
  while (!stopped_.load()) {
    pollfd fds[2] = {{listen_fd_, static_cast<short>(paused ? 0 : POLLIN), 0},
                     {wake_fd_, POLLIN, 0}};
    int rc = poll(fds, 2, paused ? 100 : -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      log::Error("poll on the listening socket failed",
                 {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[1].revents != 0 || stopped_.load()) break;
    paused = false;
    for (;;) {
      int fd =
          accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        if (warned) log::Info("accepting connections again");
        warned = false;
        Admit(fd);
        continue;
      }
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (!warned) {
        log::Warning("cannot accept connections; retrying",
                     {{"error", std::strerror(err)}});
        warned = true;
      }
      paused = true;
      break;
    }
  }
}

void Acceptor::Admit(int fd) {
  absl::StatusOr<PeerIdentity> identity = ReadPeerIdentity(fd);
  if (!identity.ok()) {
    log::Warning("connection refused: cannot identify the peer",
                 {{"error", identity.status().message()}});
    close(fd);
    return;
  }
  absl::StatusOr<std::shared_ptr<const PeerIdentity>> registered =
      registry_->Register(fd, *std::move(identity));
  if (!registered.ok()) {
    log::Warning("connection refused",
                 {{"error", registered.status().message()}});
    close(fd);
    return;
  }
  std::shared_ptr<const PeerIdentity> identity_ptr = *std::move(registered);
  const PeerIdentity& peer = *identity_ptr;
  log::Debug("connection", {{"connection", peer.connection_id},
                            {"fd", fd},
                            {"uid", peer.uid},
                            {"gid", peer.gid},
                            {"pid", peer.pid},
                            {"exe", peer.exe}});
  accepted_.fetch_add(1);
  hand_off_(fd, std::move(identity_ptr));
}

}  // namespace hsmd
