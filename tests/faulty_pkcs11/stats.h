// The stats file the fault-injecting module writes (FAULTY_PKCS11_STATS):
// what it was asked and what it injected, for tests to assert on.
#ifndef HSMD_TESTS_FAULTY_PKCS11_STATS_H_
#define HSMD_TESTS_FAULTY_PKCS11_STATS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::faulty_pkcs11 {

struct FunctionStats {
  uint64_t calls = 0;    // Every call, faulted or not.
  uint64_t faults = 0;   // Calls answered with an injected CK_RV.
  uint64_t delayed = 0;  // Calls held by a delay_ms rule.
  uint64_t hung = 0;     // Calls held by a hang rule.

  bool operator==(const FunctionStats& other) const {
    return calls == other.calls && faults == other.faults &&
           delayed == other.delayed && hung == other.hung;
  }
};

struct Stats {
  // The last token read from "<stats file>.sync" (see FaultControl::Sync).
  std::string sync_token;
  uint64_t control_loads = 0;  // Versions of the control file parsed.
  uint64_t bad_lines = 0;      // Control lines ignored, over all versions.
  std::map<std::string, FunctionStats> functions;  // Only functions called.

  // Zeroes for a function never called.
  FunctionStats For(absl::string_view function) const;
};

std::string FormatStats(const Stats& stats);
absl::StatusOr<Stats> ParseStats(absl::string_view text);

}  // namespace hsmd::faulty_pkcs11

#endif  // HSMD_TESTS_FAULTY_PKCS11_STATS_H_
