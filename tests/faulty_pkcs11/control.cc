#include "tests/faulty_pkcs11/control.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/faulty_pkcs11/files.h"

namespace hsmd::faulty_pkcs11 {

absl::Status FaultControl::SetRules(absl::string_view rules) const {
  return WriteFileAtomically(control_path_, rules);
}

absl::StatusOr<Stats> FaultControl::ReadStats() const {
  absl::StatusOr<std::string> text = ReadWholeFile(stats_path_);
  if (!text.ok()) return text.status();
  return ParseStats(*text);
}

absl::StatusOr<Stats> FaultControl::Sync(absl::Duration timeout) const {
  // A random token, so that several helpers (or an earlier run leaving a
  // stats file behind) cannot satisfy each other's requests.
  absl::BitGen gen;
  const std::string token =
      absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(gen)),
                   absl::Hex(absl::Uniform<uint64_t>(gen)));
  if (absl::Status s = WriteFileAtomically(stats_path_ + ".sync", token);
      !s.ok()) {
    return s;
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<Stats> stats = ReadStats();
    if (stats.ok() && stats->sync_token == token) return stats;
    if (!stats.ok() && !absl::IsNotFound(stats.status())) return stats.status();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the module did not answer the stats request in ", stats_path_,
          " within ", absl::FormatDuration(timeout),
          " (is FAULTY_PKCS11_STATS set and the module initialised?)"));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace hsmd::faulty_pkcs11
