#include "daemon/systemd.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hsmd {

absl::StatusOr<std::optional<int>> TakeActivatedSocket(
    const std::string& socket_path) {
  const int n = sd_listen_fds(/*unset_environment=*/1);
  if (n < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket activation: cannot read LISTEN_FDS: ", std::strerror(-n)));
  }
  if (n == 0) return std::nullopt;
  if (n > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket activation passed ", n,
                     " sockets; hsmd serves exactly one (one ListenStream= in "
                     "hsmd.socket)"));
  }
  const int fd = SD_LISTEN_FDS_START;
  if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) <= 0) {
    return absl::FailedPreconditionError(
        "socket activation passed something other than a listening AF_UNIX "
        "stream socket (use ListenStream=/path in hsmd.socket)");
  }
  sockaddr_un addr = {};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket activation: getsockname: ", std::strerror(errno)));
  }
  const size_t path_len =
      len > offsetof(sockaddr_un, sun_path)
          ? strnlen(addr.sun_path, len - offsetof(sockaddr_un, sun_path))
          : 0;
  const std::string bound(addr.sun_path, path_len);
  if (bound != socket_path) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket activation passed a socket bound to \"", bound,
                     "\" but listen.socket_path is \"", socket_path,
                     "\"; make them the same"));
  }
  return fd;
}

bool SystemdNotifyEnabled() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && socket[0] != '\0';
}

void NotifySystemd(absl::string_view state) {
  if (!SystemdNotifyEnabled()) return;
  sd_notify(/*unset_environment=*/0, std::string(state).c_str());
}

absl::Duration WatchdogPingInterval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) <= 0 || usec == 0) {
    return absl::ZeroDuration();
  }
  return absl::Microseconds(static_cast<int64_t>(usec / 2));
}

}  // namespace hsmd
