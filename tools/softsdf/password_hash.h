// Salted password hashes for the software SDF device's key store: the store
// keeps PBKDF2-HMAC-SHA256 records, never the passwords.
#ifndef HSMD_TOOLS_SOFTSDF_PASSWORD_HASH_H_
#define HSMD_TOOLS_SOFTSDF_PASSWORD_HASH_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::softsdf {

inline constexpr int kMinPbkdf2Iterations = 1000;
inline constexpr int kDefaultPbkdf2Iterations = 100000;

// Returns "pbkdf2-sha256:<iterations>:<salt hex>:<hash hex>" with a fresh
// 16-byte random salt and a 32-byte hash.
absl::StatusOr<std::string> HashPassword(absl::string_view password,
                                         int iterations);

// Checks the syntax of a record without computing anything.
absl::Status ValidatePasswordRecord(absl::string_view record);

// Whether `password` matches `record` (constant-time comparison). A malformed
// record is an error, not a mismatch.
absl::StatusOr<bool> VerifyPassword(absl::string_view record,
                                    absl::string_view password);

}  // namespace hsmd::softsdf

#endif  // HSMD_TOOLS_SOFTSDF_PASSWORD_HASH_H_
