// Small file helpers shared by the fault-injecting module and its test helper.
#ifndef HSMD_TESTS_FAULTY_PKCS11_FILES_H_
#define HSMD_TESTS_FAULTY_PKCS11_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::faulty_pkcs11 {

// Replaces `path` with `contents` so that readers see either the old or the
// new file, never a partial one (a temporary file beside it, then rename).
// Each write from this process gets a strictly later mtime, so a reader that
// compares stat() results sees every version.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// The whole content of `path`; NotFoundError if it does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// Reads everything left in an open file descriptor.
absl::StatusOr<std::string> ReadAllFromFd(int fd);

}  // namespace hsmd::faulty_pkcs11

#endif  // HSMD_TESTS_FAULTY_PKCS11_FILES_H_
