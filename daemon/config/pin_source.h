// Reading the token user PIN from its configured source.
//
// Sources: a file (config `pin { file: "/path" }`) or a systemd credential
// (`pin { credential: "name" }` -> $CREDENTIALS_DIRECTORY/name, as set up by
// LoadConfigCredential=/LoadCredential=). Both must be regular files with no
// group or other permission bits: a PIN readable by others is refused rather
// than used. One trailing newline ("\n" or "\r\n") is stripped; an empty PIN
// is an error. The PIN only ever lives in a SecretString (wiped on
// destruction); error messages name the path and mode, never the content.
#ifndef HSMD_DAEMON_CONFIG_PIN_SOURCE_H_
#define HSMD_DAEMON_CONFIG_PIN_SOURCE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secret.h"
#include "daemon/config/config.pb.h"

namespace hsmd::config {

// Longest PIN file accepted (PKCS#11 PINs are short; this catches a wrong
// path such as a key file).
inline constexpr size_t kMaxPinBytes = 1024;

// Reads a PIN file. FAILED_PRECONDITION for a file with group/other access
// or not a regular file; NOT_FOUND / PERMISSION_DENIED when it cannot be
// opened; INVALID_ARGUMENT for an empty or oversized PIN.
absl::StatusOr<SecretString> ReadPinFile(const std::string& path);

// Reads $CREDENTIALS_DIRECTORY/<name>; FAILED_PRECONDITION when the variable
// is unset (hsmd not started by systemd with LoadCredential=).
absl::StatusOr<SecretString> ReadPinCredential(absl::string_view name);

// Reads the PIN from whichever source `pin` names.
absl::StatusOr<SecretString> ReadPin(const Pin& pin);

// A callback that reads the PIN afresh on every call (so a rotated PIN file
// is picked up at the next login and nothing is cached), suitable as
// backend::Pkcs11BackendOptions::pin_source.
std::function<absl::StatusOr<SecretString>()> MakePinSource(const Pin& pin);

// "file:/path" or "credential:name", for status output and logs.
std::string DescribePinSource(const Pin& pin);

}  // namespace hsmd::config

#endif  // HSMD_DAEMON_CONFIG_PIN_SOURCE_H_
