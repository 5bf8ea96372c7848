// hsmd's version, reported by `hsmd --version` and AdminService.GetStatus.
#ifndef HSMD_DAEMON_VERSION_H_
#define HSMD_DAEMON_VERSION_H_

#include "absl/strings/string_view.h"

namespace hsmd {

inline constexpr absl::string_view kVersion = "0.1.0";

}  // namespace hsmd

#endif  // HSMD_DAEMON_VERSION_H_
