// The control language of the fault-injecting PKCS#11 module: one rule or
// directive per line (see README.md for the full description).
#ifndef HSMD_TESTS_FAULTY_PKCS11_RULES_H_
#define HSMD_TESTS_FAULTY_PKCS11_RULES_H_

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "tests/faulty_pkcs11/functions.h"

namespace hsmd::faulty_pkcs11 {

// One "<function|*> option..." line.
struct Rule {
  int line = 0;
  // The function the rule applies to; nullopt for "*" (every function except
  // C_GetFunctionList and C_Finalize).
  absl::optional<Fn> fn;
  absl::optional<CK_RV> rv;  // Returned instead of forwarding the call.
  absl::Duration delay = absl::ZeroDuration();  // Before forwarding/failing.
  bool hang = false;   // Block while any hang rule for the function remains.
  int64_t count = -1;  // Calls still to affect; -1 means every call.

  bool Matches(Fn f) const;
};

// A parsed control file. Rules are tried in file order; the first matching
// rule with calls left decides.
struct ControlRules {
  std::vector<Rule> rules;
  bool token_absent = false;
  bool invalidate_sessions = false;
  // "line N: reason" for every line that was ignored.
  std::vector<std::string> errors;
};

// Parses a whole control file; bad lines are skipped and listed in `errors`.
ControlRules ParseControlRules(absl::string_view text);

// A CK_RV by name ("CKR_DEVICE_ERROR"), in hex ("0x30") or in decimal.
absl::StatusOr<CK_RV> ParseRv(absl::string_view text);

// "CKR_DEVICE_ERROR", or "0x..." for values without a name.
std::string RvName(CK_RV rv);

}  // namespace hsmd::faulty_pkcs11

#endif  // HSMD_TESTS_FAULTY_PKCS11_RULES_H_
