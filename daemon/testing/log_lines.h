// Reading fields back out of hsmd's log lines and audit records in tests
// (without std::regex, which GCC 12 cannot compile warning-free at -O1).
#ifndef HSMD_DAEMON_TESTING_LOG_LINES_H_
#define HSMD_DAEMON_TESTING_LOG_LINES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace hsmd::testing {

// The value of "key" in a JSON line written by daemon/logging ("key":"text"
// or "key":123); escapes are not decoded. nullopt when absent.
std::optional<std::string> JsonValue(absl::string_view line,
                                     absl::string_view key);

// The value of key=value in a logfmt line (unquoted values only).
std::optional<std::string> LogfmtValue(absl::string_view line,
                                       absl::string_view key);

}  // namespace hsmd::testing

#endif  // HSMD_DAEMON_TESTING_LOG_LINES_H_
