#include "daemon/testing/log_lines.h"

#include "absl/strings/str_cat.h"

namespace hsmd::testing {

std::optional<std::string> JsonValue(absl::string_view line,
                                     absl::string_view key) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  size_t pos = line.find(needle);
  if (pos == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = line.substr(pos + needle.size());
  if (!rest.empty() && rest[0] == '"') {
    size_t end = 1;
    while (end < rest.size() && rest[end] != '"') {
      end += rest[end] == '\\' ? 2 : 1;
    }
    if (end >= rest.size()) return std::nullopt;
    return std::string(rest.substr(1, end - 1));
  }
  size_t end = rest.find_first_of(",}");
  return std::string(rest.substr(0, end));
}

std::optional<std::string> LogfmtValue(absl::string_view line,
                                       absl::string_view key) {
  const std::string needle = absl::StrCat(" ", key, "=");
  size_t pos = line.find(needle);
  if (pos == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = line.substr(pos + needle.size());
  return std::string(rest.substr(0, rest.find_first_of(" \n")));
}

}  // namespace hsmd::testing
