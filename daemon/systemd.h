// systemd integration: socket activation (sd_listen_fds), readiness and
// watchdog notifications (sd_notify). Every function is a no-op or returns
// "not under systemd" when the corresponding environment is absent, so hsmd
// runs the same without systemd.
#ifndef HSMD_DAEMON_SYSTEMD_H_
#define HSMD_DAEMON_SYSTEMD_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hsmd {

// The listening socket systemd (or systemd-socket-activate) passed, taken
// over by the caller (LISTEN_* variables are then unset); nullopt when hsmd
// was not socket-activated. FAILED_PRECONDITION when more than one fd was
// passed, the fd is not a listening AF_UNIX stream socket, or it is bound to
// another path than `socket_path`.
absl::StatusOr<std::optional<int>> TakeActivatedSocket(
    const std::string& socket_path);

// True when $NOTIFY_SOCKET is set (Type=notify).
bool SystemdNotifyEnabled();

// Sends `state` ("READY=1\nSTATUS=serving") when $NOTIFY_SOCKET is set.
void NotifySystemd(absl::string_view state);

// Half the watchdog timeout systemd set for this process (WatchdogSec=,
// via $WATCHDOG_USEC / $WATCHDOG_PID), or zero when there is none.
absl::Duration WatchdogPingInterval();

}  // namespace hsmd

#endif  // HSMD_DAEMON_SYSTEMD_H_
