#include "tools/hsmctl/args.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace hsmd::hsmctl {
namespace {

// Key ids are the lowercase hex of 16 bytes (see hsmd.v1.Key.key_id).
constexpr size_t kKeyIdHexLength = 32;

const OptionSpec* FindLong(const std::vector<OptionSpec>& specs,
                           absl::string_view name) {
  for (const OptionSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const OptionSpec* FindShort(const std::vector<OptionSpec>& specs, char c) {
  for (const OptionSpec& spec : specs) {
    if (spec.short_name != 0 && spec.short_name == c) return &spec;
  }
  return nullptr;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsHex(absl::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return HexDigit(c) >= 0; });
}

}  // namespace

bool ParsedArgs::Has(absl::string_view name) const {
  return options_.find(name) != options_.end();
}

absl::optional<std::string> ParsedArgs::Get(absl::string_view name) const {
  auto it = options_.find(name);
  if (it == options_.end() || it->second.empty()) return absl::nullopt;
  return it->second.back();
}

std::string ParsedArgs::GetOr(absl::string_view name,
                              absl::string_view fallback) const {
  absl::optional<std::string> value = Get(name);
  return value.has_value() ? *value : std::string(fallback);
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<OptionSpec>& specs) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.positional_.insert(parsed.positional_.end(), args.begin() + i + 1,
                                args.end());
      break;
    }
    const OptionSpec* spec = nullptr;
    absl::optional<std::string> inline_value;
    if (absl::StartsWith(arg, "--")) {
      absl::string_view body = absl::string_view(arg).substr(2);
      size_t eq = body.find('=');
      absl::string_view name = body.substr(0, eq);
      if (eq != absl::string_view::npos) {
        inline_value = std::string(body.substr(eq + 1));
      }
      spec = FindLong(specs, name);
      if (spec == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown option --", name));
      }
    } else if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
      spec = FindShort(specs, arg[1]);
      if (spec == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unknown option ", arg));
      }
    } else if (arg.size() > 1 && arg[0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown option ", arg, " (long options take two dashes)"));
    } else {
      parsed.positional_.push_back(arg);
      continue;
    }
    std::vector<std::string>& values = parsed.options_[spec->name];
    if (!spec->takes_value()) {
      if (inline_value.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("option --", spec->name, " takes no value"));
      }
      values.push_back("");
      continue;
    }
    if (inline_value.has_value()) {
      values.push_back(*inline_value);
      continue;
    }
    if (i + 1 >= args.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "option --", spec->name, " needs a value (", spec->value_name, ")"));
    }
    values.push_back(args[++i]);
  }
  return parsed;
}

std::string FormatOptionHelp(const std::vector<OptionSpec>& specs) {
  std::vector<std::string> heads;
  size_t width = 0;
  for (const OptionSpec& spec : specs) {
    std::string head =
        spec.short_name != 0
            ? absl::StrFormat("-%c, --%s", spec.short_name, spec.name)
            : absl::StrCat("--", spec.name);
    if (spec.takes_value()) absl::StrAppend(&head, " ", spec.value_name);
    width = std::max(width, head.size());
    heads.push_back(std::move(head));
  }
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StrAppendFormat(&out, "  %-*s  %s\n", static_cast<int>(width),
                          heads[i], specs[i].help);
  }
  return out;
}

absl::StatusOr<std::string> ParseHex(absl::string_view what,
                                     absl::string_view text) {
  std::string digits = absl::StrReplaceAll(text, {{":", ""}});
  if (!IsHex(digits)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": '", text, "' is not hex"));
  }
  if (digits.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": '", text, "' has an odd number of hex digits"));
  }
  std::string bytes;
  bytes.reserve(digits.size() / 2);
  for (size_t i = 0; i < digits.size(); i += 2) {
    bytes.push_back(
        static_cast<char>(HexDigit(digits[i]) * 16 + HexDigit(digits[i + 1])));
  }
  return bytes;
}

absl::StatusOr<uint32_t> ParseUint(absl::string_view what,
                                   absl::string_view text, uint32_t min,
                                   uint32_t max) {
  uint64_t value = 0;
  bool digits_only = !text.empty() &&
                     std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
  if (!digits_only || !absl::SimpleAtoi(text, &value) || value < min ||
      value > max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: '%s' is not a number from %u to %u", what, text, min, max));
  }
  return static_cast<uint32_t>(value);
}

absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view what,
                                            absl::string_view text) {
  absl::Duration duration;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds) &&
      std::all_of(text.begin(), text.end(),
                  [](char c) { return absl::ascii_isdigit(c) || c == '.'; })) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(std::string(text), &duration)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": '", text, "' is not a duration (e.g. 5s, 500ms, 1m)"));
  }
  if (duration <= absl::ZeroDuration() ||
      duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": '", text, "' must be a positive, finite time"));
  }
  return duration;
}

absl::StatusOr<v1::KeyRef> ParseKeyRef(absl::string_view text) {
  v1::KeyRef ref;
  if (absl::StartsWithIgnoreCase(text, "pkcs11:") ||
      absl::StartsWithIgnoreCase(text, "sdf:")) {
    ref.set_uri(std::string(text));
    return ref;
  }
  if (text.size() == kKeyIdHexLength && IsHex(text)) {
    ref.set_key_id(absl::AsciiStrToLower(text));
    return ref;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", text, "' is neither a pkcs11: or sdf: URI nor a key id (",
      kKeyIdHexLength, " hex digits, as `hsmctl list` shows)"));
}

std::string DescribeKeyRef(const v1::KeyRef& ref) {
  return ref.has_key_id() ? absl::StrCat("key id ", ref.key_id()) : ref.uri();
}

}  // namespace hsmd::hsmctl
