// Command-line parsing for hsmctl: options of the form `--name VALUE`,
// `--name=VALUE` and boolean `--name`, positional arguments, `--` to end
// options, and `-` as an ordinary argument (stdin/stdout). Also the parsers
// for generic option values (hex, counts, durations, key references).
//
// Hand-written rather than absl flags: every subcommand has its own option
// set, and errors must name the command and the option.
#ifndef HSMD_TOOLS_HSMCTL_ARGS_H_
#define HSMD_TOOLS_HSMCTL_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::hsmctl {

struct OptionSpec {
  // Long name without the leading dashes, e.g. "in".
  std::string name;
  // Name of the value in help text (e.g. "FILE"); empty for a boolean flag.
  std::string value_name;
  std::string help;
  // Optional one-letter alias ('h' for "help"); 0 for none.
  char short_name = 0;

  bool takes_value() const { return !value_name.empty(); }
};

// The result of parsing: options by name (every occurrence, in order) and
// the positional arguments.
class ParsedArgs {
 public:
  bool Has(absl::string_view name) const;
  // The last value given for `name`, if any.
  absl::optional<std::string> Get(absl::string_view name) const;
  std::string GetOr(absl::string_view name, absl::string_view fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(
      const std::vector<std::string>& args,
      const std::vector<OptionSpec>& specs);

  std::map<std::string, std::vector<std::string>, std::less<>> options_;
  std::vector<std::string> positional_;
};

// Parses `args` (without the program or command name) against `specs`.
// Unknown options, a missing value, or a value given to a boolean flag are
// INVALID_ARGUMENT errors naming the option.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<OptionSpec>& specs);

// "--in FILE  help" lines for usage text.
std::string FormatOptionHelp(const std::vector<OptionSpec>& specs);

// Value parsers. Errors are INVALID_ARGUMENT and name `what` (e.g. "--bits").

// Lowercase or uppercase hex, optionally with ':' separators; "" is valid.
absl::StatusOr<std::string> ParseHex(absl::string_view what,
                                     absl::string_view text);
// A decimal integer in [min, max].
absl::StatusOr<uint32_t> ParseUint(absl::string_view what,
                                   absl::string_view text, uint32_t min,
                                   uint32_t max);
// "5s", "500ms", "1m30s" (absl::ParseDuration) or a bare number of seconds;
// must be positive.
absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view what,
                                            absl::string_view text);
// A `pkcs11:` or `sdf:` URI (passed on as is: hsmd parses it), or a key id
// (32 hex digits, as ListKeys returns).
absl::StatusOr<v1::KeyRef> ParseKeyRef(absl::string_view text);
// The key reference as the user would recognise it in messages.
std::string DescribeKeyRef(const v1::KeyRef& ref);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_ARGS_H_
