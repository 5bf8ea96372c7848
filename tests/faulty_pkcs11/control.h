// Test-side helper for libfaulty_pkcs11.so: writes its control file and reads
// its stats file. See README.md for the control language.
#ifndef HSMD_TESTS_FAULTY_PKCS11_CONTROL_H_
#define HSMD_TESTS_FAULTY_PKCS11_CONTROL_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/faulty_pkcs11/stats.h"

namespace hsmd::faulty_pkcs11 {

class FaultControl {
 public:
  // `control_path` and `stats_path` are the files the module's process gets
  // in FAULTY_PKCS11_CONTROL and FAULTY_PKCS11_STATS.
  FaultControl(std::string control_path, std::string stats_path)
      : control_path_(std::move(control_path)),
        stats_path_(std::move(stats_path)) {}

  const std::string& control_path() const { return control_path_; }
  const std::string& stats_path() const { return stats_path_; }

  // Replaces every rule at once (write to a temporary file, then rename), so
  // the module never reads half a file. Each call is a new file version:
  // count= budgets restart and invalidate_sessions applies again.
  absl::Status SetRules(absl::string_view rules) const;

  // Back to pass-through.
  absl::Status Clear() const { return SetRules(""); }

  // The stats as last written by the module (up to ~100 ms old).
  absl::StatusOr<Stats> ReadStats() const;

  // Asks the module to write its stats now and waits until it has: every
  // call that entered the module before Sync() is counted in the result.
  // Needs FAULTY_PKCS11_STATS set and C_Initialize called at least once.
  absl::StatusOr<Stats> Sync(absl::Duration timeout = absl::Seconds(30)) const;

 private:
  std::string control_path_;
  std::string stats_path_;
};

}  // namespace hsmd::faulty_pkcs11

#endif  // HSMD_TESTS_FAULTY_PKCS11_CONTROL_H_
