// hsmctl's documented exit codes and how an absl::Status maps onto them.
//
// Local failures (bad usage, unreadable files) are tagged on the status when
// they are created; statuses that come back from client_lib are classified
// by their gRPC code.
#ifndef HSMD_TOOLS_HSMCTL_EXIT_CODES_H_
#define HSMD_TOOLS_HSMCTL_EXIT_CODES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::hsmctl {

enum ExitCode : int {
  kExitOk = 0,
  // `verify`: the signature does not match.
  kExitVerificationFailed = 1,
  // Bad command line: unknown command/option, bad value, bad algorithm.
  kExitUsage = 2,
  // hsmd not reachable, not ready (UNAVAILABLE), or no answer in --timeout.
  kExitUnavailable = 3,
  // hsmd answered with an error (not found, invalid argument, ...), or data
  // hsmd decrypted failed hsmctl's padding check (SM4): like hsmd's own
  // "decryption failed".
  kExitServerError = 4,
  // A local file could not be read or written.
  kExitLocalIo = 5,
};

// The exit-code table as printed by --help and README.
inline constexpr absl::string_view kExitCodeHelp =
    "Exit codes:\n"
    "  0  success\n"
    "  1  verify: signature verification failed\n"
    "  2  usage error (unknown command or option, bad value or algorithm)\n"
    "  3  hsmd unavailable: cannot connect, not ready, or no answer within\n"
    "     --timeout\n"
    "  4  hsmd returned an error (key not found, invalid argument, operation\n"
    "     not allowed, permission denied, ...), or SM4-decrypted data failed\n"
    "     the padding check (\"decryption failed\")\n"
    "  5  local I/O error (cannot read or write a file)\n";

// A usage error (exit code 2).
absl::Status UsageError(absl::string_view message);
// A local I/O error (exit code 5).
absl::Status LocalIoError(absl::string_view message);
// Tags any status as a usage error, keeping its message.
absl::Status AsUsageError(const absl::Status& status);

// The same for a StatusOr: value passed through, error tagged.
template <typename T>
absl::StatusOr<T> AsUsageError(absl::StatusOr<T> value) {
  if (!value.ok()) return AsUsageError(value.status());
  return value;
}

// The exit code for a failed command.
ExitCode ExitCodeFor(const absl::Status& status);

// "hsmctl: <command>: <message>" plus " (CKR_KEY_HANDLE_INVALID 0x82)" when
// the status carries a backend ErrorDetail.
std::string FormatError(absl::string_view command, const absl::Status& status);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_EXIT_CODES_H_
