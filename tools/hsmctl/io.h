// Reading command inputs and writing outputs: a path, or "-" for the
// standard streams. Failures are local I/O errors (exit code 5) that name the
// option and the file.
#ifndef HSMD_TOOLS_HSMCTL_IO_H_
#define HSMD_TOOLS_HSMCTL_IO_H_

#include <sys/types.h>

#include <cstddef>
#include <istream>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::hsmctl {

// Inputs larger than this are refused before they are sent anywhere; hsmd's
// own limit is lower (its max message size).
inline constexpr size_t kMaxInputBytes = 64 * 1024 * 1024;

// Reads all of `path`, or of `in` when `path` is "-". `what` names the
// option in errors (e.g. "--in").
absl::StatusOr<std::string> ReadInput(absl::string_view what,
                                      absl::string_view path, std::istream& in);

// Writes `data` to `path` (created or truncated, with `mode` for a new file),
// or to `out` when `path` is "-".
absl::Status WriteOutput(absl::string_view what, absl::string_view path,
                         absl::string_view data, std::ostream& out,
                         mode_t mode = 0644);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_IO_H_
