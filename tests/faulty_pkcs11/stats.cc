#include "tests/faulty_pkcs11/stats.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hsmd::faulty_pkcs11 {
namespace {

constexpr absl::string_view kHeader = "# faulty_pkcs11 stats v1";

absl::Status LineError(int line, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("stats file line ", line, ": ", why));
}

}  // namespace

FunctionStats Stats::For(absl::string_view function) const {
  auto it = functions.find(std::string(function));
  return it == functions.end() ? FunctionStats{} : it->second;
}

std::string FormatStats(const Stats& stats) {
  std::string out = absl::StrCat(kHeader, "\n");
  if (!stats.sync_token.empty())
    absl::StrAppend(&out, "sync ", stats.sync_token, "\n");
  absl::StrAppend(&out, "control_loads ", stats.control_loads, "\n");
  absl::StrAppend(&out, "bad_lines ", stats.bad_lines, "\n");
  for (const auto& [name, f] : stats.functions) {
    absl::StrAppend(&out, "fn ", name, " calls=", f.calls, " faults=", f.faults,
                    " delayed=", f.delayed, " hung=", f.hung, "\n");
  }
  return out;
}

absl::StatusOr<Stats> ParseStats(absl::string_view text) {
  Stats stats;
  int line = 0;
  bool header_seen = false;
  for (absl::string_view raw : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line;
    if (!header_seen) {
      if (raw != kHeader) return LineError(line, "missing the stats header");
      header_seen = true;
      continue;
    }
    std::vector<absl::string_view> words = absl::StrSplit(raw, ' ');
    if (words.size() == 2 && words[0] == "sync") {
      stats.sync_token = std::string(words[1]);
    } else if (words.size() == 2 && words[0] == "control_loads") {
      if (!absl::SimpleAtoi(words[1], &stats.control_loads)) {
        return LineError(line, "bad control_loads");
      }
    } else if (words.size() == 2 && words[0] == "bad_lines") {
      if (!absl::SimpleAtoi(words[1], &stats.bad_lines)) {
        return LineError(line, "bad bad_lines");
      }
    } else if (words.size() == 6 && words[0] == "fn") {
      FunctionStats f;
      std::pair<absl::string_view, uint64_t*> fields[] = {
          {"calls=", &f.calls},
          {"faults=", &f.faults},
          {"delayed=", &f.delayed},
          {"hung=", &f.hung}};
      for (size_t i = 0; i < 4; ++i) {
        absl::string_view word = words[i + 2];
        if (!absl::ConsumePrefix(&word, fields[i].first) ||
            !absl::SimpleAtoi(word, fields[i].second)) {
          return LineError(line,
                           absl::StrCat("expected ", fields[i].first,
                                        "<number>, got '", words[i + 2], "'"));
        }
      }
      stats.functions[std::string(words[1])] = f;
    } else {
      return LineError(line, absl::StrCat("unexpected '", raw, "'"));
    }
  }
  if (!header_seen) return LineError(1, "empty stats file");
  return stats;
}

}  // namespace hsmd::faulty_pkcs11
