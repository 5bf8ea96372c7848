// Reads and validates hsmd's text-format configuration (config.proto).
//
// Syntax errors come from protobuf's text parser as "FILE:LINE:COLUMN:
// message"; semantic errors add the field path, e.g.
// "hsmd.conf:4:3: backends[0].pkcs11.module_path: is required" (the line of
// the field, or of the enclosing block when the field is missing). All
// errors found are reported at once, one per line, in an INVALID_ARGUMENT
// status.
#ifndef HSMD_DAEMON_CONFIG_CONFIG_LOADER_H_
#define HSMD_DAEMON_CONFIG_CONFIG_LOADER_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/config/config.pb.h"

namespace hsmd::config {

// Longest Unix socket path (sun_path holds 108 bytes including the NUL).
inline constexpr size_t kMaxSocketPathBytes = 107;

// Reads FILE, parses and validates it. Errors name `path` as given.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Parses and validates `text`; `filename` only labels error messages.
absl::StatusOr<Config> ParseConfig(absl::string_view text,
                                   absl::string_view filename);

// Semantic checks on an already parsed config (ranges, required fields,
// unique names, the policy's patterns; resolves the policy's user and group
// names). Errors name the field path but no line (there is no text).
absl::Status ValidateConfig(const Config& config, absl::string_view filename);

// "0660" -> 0660. Accepts 1 to 4 octal digits, at most 0777.
absl::StatusOr<uint32_t> ParseSocketMode(absl::string_view mode);

}  // namespace hsmd::config

#endif  // HSMD_DAEMON_CONFIG_CONFIG_LOADER_H_
