#include "tests/faulty_pkcs11/rules.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hsmd::faulty_pkcs11 {
namespace {

struct RvEntry {
  absl::string_view name;
  CK_RV value;
};

#define FAULTY_RV(name) {#name, name},
constexpr RvEntry kRvs[] = {
    FAULTY_RV(CKR_OK) FAULTY_RV(CKR_CANCEL) FAULTY_RV(CKR_HOST_MEMORY) FAULTY_RV(
        CKR_SLOT_ID_INVALID) FAULTY_RV(CKR_GENERAL_ERROR)
        FAULTY_RV(CKR_FUNCTION_FAILED) FAULTY_RV(CKR_ARGUMENTS_BAD) FAULTY_RV(
            CKR_NO_EVENT) FAULTY_RV(CKR_NEED_TO_CREATE_THREADS)
            FAULTY_RV(CKR_CANT_LOCK) FAULTY_RV(CKR_ATTRIBUTE_READ_ONLY) FAULTY_RV(
                CKR_ATTRIBUTE_SENSITIVE) FAULTY_RV(CKR_ATTRIBUTE_TYPE_INVALID)
                FAULTY_RV(CKR_ATTRIBUTE_VALUE_INVALID) FAULTY_RV(
                    CKR_ACTION_PROHIBITED) FAULTY_RV(CKR_DATA_INVALID)
                    FAULTY_RV(CKR_DATA_LEN_RANGE) FAULTY_RV(CKR_DEVICE_ERROR) FAULTY_RV(
                        CKR_DEVICE_MEMORY) FAULTY_RV(CKR_DEVICE_REMOVED)
                        FAULTY_RV(CKR_ENCRYPTED_DATA_INVALID) FAULTY_RV(
                            CKR_ENCRYPTED_DATA_LEN_RANGE) FAULTY_RV(CKR_FUNCTION_CANCELED)
                            FAULTY_RV(CKR_FUNCTION_NOT_PARALLEL) FAULTY_RV(
                                CKR_FUNCTION_NOT_SUPPORTED)
                                FAULTY_RV(CKR_KEY_HANDLE_INVALID) FAULTY_RV(CKR_KEY_SIZE_RANGE) FAULTY_RV(
                                    CKR_KEY_TYPE_INCONSISTENT) FAULTY_RV(CKR_KEY_NOT_NEEDED)
                                    FAULTY_RV(CKR_KEY_CHANGED) FAULTY_RV(
                                        CKR_KEY_NEEDED) FAULTY_RV(CKR_KEY_INDIGESTIBLE)
                                        FAULTY_RV(CKR_KEY_FUNCTION_NOT_PERMITTED) FAULTY_RV(CKR_KEY_NOT_WRAPPABLE) FAULTY_RV(
                                            CKR_KEY_UNEXTRACTABLE) FAULTY_RV(CKR_MECHANISM_INVALID)
                                            FAULTY_RV(CKR_MECHANISM_PARAM_INVALID) FAULTY_RV(
                                                CKR_OBJECT_HANDLE_INVALID) FAULTY_RV(CKR_OPERATION_ACTIVE)
                                                FAULTY_RV(CKR_OPERATION_NOT_INITIALIZED) FAULTY_RV(
                                                    CKR_PIN_INCORRECT)
                                                    FAULTY_RV(CKR_PIN_INVALID) FAULTY_RV(
                                                        CKR_PIN_LEN_RANGE) FAULTY_RV(CKR_PIN_EXPIRED)
                                                        FAULTY_RV(CKR_PIN_LOCKED) FAULTY_RV(
                                                            CKR_SESSION_CLOSED) FAULTY_RV(CKR_SESSION_COUNT)
                                                            FAULTY_RV(
                                                                CKR_SESSION_HANDLE_INVALID)
                                                                FAULTY_RV(
                                                                    CKR_SESSION_PARALLEL_NOT_SUPPORTED)
                                                                    FAULTY_RV(
                                                                        CKR_SESSION_READ_ONLY)
                                                                        FAULTY_RV(
                                                                            CKR_SESSION_EXISTS) FAULTY_RV(CKR_SESSION_READ_ONLY_EXISTS) FAULTY_RV(CKR_SESSION_READ_WRITE_SO_EXISTS) FAULTY_RV(CKR_SIGNATURE_INVALID) FAULTY_RV(CKR_SIGNATURE_LEN_RANGE) FAULTY_RV(CKR_TEMPLATE_INCOMPLETE) FAULTY_RV(CKR_TEMPLATE_INCONSISTENT) FAULTY_RV(CKR_TOKEN_NOT_PRESENT) FAULTY_RV(CKR_TOKEN_NOT_RECOGNIZED) FAULTY_RV(CKR_TOKEN_WRITE_PROTECTED) FAULTY_RV(CKR_UNWRAPPING_KEY_HANDLE_INVALID) FAULTY_RV(CKR_UNWRAPPING_KEY_SIZE_RANGE) FAULTY_RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT) FAULTY_RV(CKR_USER_ALREADY_LOGGED_IN) FAULTY_RV(CKR_USER_NOT_LOGGED_IN) FAULTY_RV(CKR_USER_PIN_NOT_INITIALIZED) FAULTY_RV(CKR_USER_TYPE_INVALID)
                                                                            FAULTY_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN) FAULTY_RV(
                                                                                CKR_USER_TOO_MANY_TYPES) FAULTY_RV(CKR_WRAPPED_KEY_INVALID) FAULTY_RV(CKR_WRAPPED_KEY_LEN_RANGE) FAULTY_RV(CKR_WRAPPING_KEY_HANDLE_INVALID) FAULTY_RV(CKR_WRAPPING_KEY_SIZE_RANGE) FAULTY_RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT) FAULTY_RV(CKR_RANDOM_SEED_NOT_SUPPORTED) FAULTY_RV(CKR_RANDOM_NO_RNG) FAULTY_RV(CKR_DOMAIN_PARAMS_INVALID) FAULTY_RV(CKR_CURVE_NOT_SUPPORTED) FAULTY_RV(CKR_BUFFER_TOO_SMALL) FAULTY_RV(CKR_SAVED_STATE_INVALID) FAULTY_RV(CKR_INFORMATION_SENSITIVE) FAULTY_RV(CKR_STATE_UNSAVEABLE) FAULTY_RV(CKR_CRYPTOKI_NOT_INITIALIZED) FAULTY_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED)
                                                                                FAULTY_RV(CKR_MUTEX_BAD) FAULTY_RV(CKR_MUTEX_NOT_LOCKED) FAULTY_RV(
                                                                                    CKR_NEW_PIN_MODE) FAULTY_RV(CKR_NEXT_OTP)
                                                                                    FAULTY_RV(CKR_EXCEEDED_MAX_ITERATIONS) FAULTY_RV(
                                                                                        CKR_FIPS_SELF_TEST_FAILED)
                                                                                        FAULTY_RV(
                                                                                            CKR_LIBRARY_LOAD_FAILED)
                                                                                            FAULTY_RV(
                                                                                                CKR_PIN_TOO_WEAK)
                                                                                                FAULTY_RV(
                                                                                                    CKR_PUBLIC_KEY_INVALID)
                                                                                                    FAULTY_RV(
                                                                                                        CKR_FUNCTION_REJECTED)
                                                                                                        FAULTY_RV(
                                                                                                            CKR_VENDOR_DEFINED)};
#undef FAULTY_RV

// Upper bound for delay_ms: a delay longer than this is almost certainly a
// typo, and a test that wants "forever" should say `hang`.
constexpr int64_t kMaxDelayMs = 10 * 60 * 1000;

absl::StatusOr<int64_t> ParsePositive(absl::string_view key,
                                      absl::string_view value, int64_t max) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(value, &n) || n < 1 || n > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, "=", value, " is not a whole number from 1 to ", max));
  }
  return n;
}

// Parses the words after the function name (or "*") into `rule`.
absl::Status ParseOptions(const std::vector<absl::string_view>& words,
                          Rule& rule, bool& token_absent) {
  bool has_count = false;
  bool has_delay = false;
  bool has_token_absent = false;
  for (size_t i = 1; i < words.size(); ++i) {
    absl::string_view word = words[i];
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(word, absl::MaxSplits('=', 1));
    const bool has_value = absl::StrContains(word, '=');
    if (!has_value && (word == "hang" || word == "token_absent")) {
      bool& flag = word == "hang" ? rule.hang : has_token_absent;
      if (flag) return absl::InvalidArgumentError(absl::StrCat(word, " twice"));
      flag = true;
    } else if (has_value && kv.first == "rv") {
      if (rule.rv.has_value()) return absl::InvalidArgumentError("rv= twice");
      absl::StatusOr<CK_RV> rv = ParseRv(kv.second);
      if (!rv.ok()) return rv.status();
      if (*rv == CKR_OK) {
        // Returning CKR_OK without forwarding would leave outputs unset.
        return absl::InvalidArgumentError(
            "rv=CKR_OK is not allowed (the call would skip the module and "
            "leave its outputs unset); remove the rule to pass through");
      }
      rule.rv = *rv;
    } else if (has_value && kv.first == "count") {
      if (has_count) return absl::InvalidArgumentError("count= twice");
      absl::StatusOr<int64_t> n =
          ParsePositive(kv.first, kv.second, int64_t{1} << 40);
      if (!n.ok()) return n.status();
      rule.count = *n;
      has_count = true;
    } else if (has_value && kv.first == "delay_ms") {
      if (has_delay) return absl::InvalidArgumentError("delay_ms= twice");
      absl::StatusOr<int64_t> n =
          ParsePositive(kv.first, kv.second, kMaxDelayMs);
      if (!n.ok()) return n.status();
      rule.delay = absl::Milliseconds(*n);
      has_delay = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown option '", word,
          "' (expected rv=, count=, delay_ms=, hang or token_absent)"));
    }
  }
  if (has_token_absent) {
    if (words.size() != 2) {
      return absl::InvalidArgumentError("token_absent takes no other option");
    }
    token_absent = true;
    return absl::OkStatus();
  }
  if (rule.hang && (rule.rv.has_value() || has_delay)) {
    return absl::InvalidArgumentError(
        "hang cannot be combined with rv= or delay_ms= (once released, the "
        "call is decided afresh by the remaining rules)");
  }
  if (!rule.hang && !rule.rv.has_value() && !has_delay) {
    return absl::InvalidArgumentError(
        "rule has no effect (give rv=, delay_ms=, hang or token_absent)");
  }
  return absl::OkStatus();
}

// Parses one non-empty, comment-stripped line into `out`.
absl::Status ParseLine(absl::string_view text, int line, ControlRules& out) {
  std::vector<absl::string_view> words =
      absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words[0] == "invalidate_sessions" || words[0] == "token_absent") {
    if (words.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(words[0], " takes no option"));
    }
    (words[0] == "token_absent" ? out.token_absent : out.invalidate_sessions) =
        true;
    return absl::OkStatus();
  }
  Rule rule;
  rule.line = line;
  if (words[0] != "*") {
    rule.fn = FnByName(words[0]);
    if (!rule.fn.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown function '", words[0],
                       "' (expected a PKCS#11 v2.40 C_ function name, *, "
                       "invalidate_sessions or token_absent)"));
    }
    if (*rule.fn == Fn::C_GetFunctionList) {
      return absl::InvalidArgumentError("C_GetFunctionList cannot be faulted");
    }
  }
  if (words.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", words[0], "' needs at least one option"));
  }
  bool token_absent = false;
  if (absl::Status s = ParseOptions(words, rule, token_absent); !s.ok()) {
    return s;
  }
  if (token_absent) {
    out.token_absent = true;
  } else {
    out.rules.push_back(rule);
  }
  return absl::OkStatus();
}

}  // namespace

bool Rule::Matches(Fn f) const {
  if (fn.has_value()) return *fn == f;
  return f != Fn::C_GetFunctionList && f != Fn::C_Finalize;
}

ControlRules ParseControlRules(absl::string_view text) {
  ControlRules out;
  int line = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line;
    absl::string_view content = raw.substr(0, raw.find('#'));
    content = absl::StripAsciiWhitespace(content);
    if (content.empty()) continue;
    if (absl::Status s = ParseLine(content, line, out); !s.ok()) {
      out.errors.push_back(absl::StrCat("line ", line, ": ", s.message()));
    }
  }
  return out;
}

absl::StatusOr<CK_RV> ParseRv(absl::string_view text) {
  for (const RvEntry& entry : kRvs) {
    if (entry.name == text) return entry.value;
  }
  const bool hex = absl::StartsWithIgnoreCase(text, "0x");
  const absl::string_view digits = hex ? text.substr(2) : text;
  bool well_formed = !digits.empty();
  for (char c : digits) {
    well_formed &= hex ? absl::ascii_isxdigit(c) : absl::ascii_isdigit(c);
  }
  uint64_t value = 0;
  if (!well_formed || !(hex ? absl::SimpleHexAtoi(digits, &value)
                            : absl::SimpleAtoi(digits, &value))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a CKR_ name, a 0x hex value or a number"));
  }
  return static_cast<CK_RV>(value);
}

std::string RvName(CK_RV rv) {
  for (const RvEntry& entry : kRvs) {
    if (entry.value == rv) return std::string(entry.name);
  }
  return absl::StrCat("0x", absl::Hex(rv));
}

}  // namespace hsmd::faulty_pkcs11
