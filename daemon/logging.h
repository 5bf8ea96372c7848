// hsmd's structured log: one line per event on stderr, logfmt or JSON.
//
//   ts=2024-05-01T12:00:00.123456Z level=info msg=request method=Sign ...
//   {"ts":"2024-05-01T12:00:00.123456Z","level":"info","msg":"request",...}
//
// Thread-safe: each line is formatted first and written with a single
// write(2) under a lock, so lines never interleave. Logging happens at
// boundaries only (one line per request outcome in the service layer, one per
// backend state change, one per start-up/shutdown step), so each error is
// logged once, where it is handled. Never pass a secret as a field: nothing
// here can tell a PIN from a label.
#ifndef HSMD_DAEMON_LOGGING_H_
#define HSMD_DAEMON_LOGGING_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace hsmd::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class Format { kText, kJson };

// "debug", "info", "warning", "error".
absl::string_view LevelName(Level level);

// One key=value pair. Numbers and booleans are written unquoted in JSON.
class Field {
 public:
  // String values are referenced, not copied (a request's log line has a
  // dozen of them): a Field must not outlive its value, which holds for the
  // braced lists passed to Log.
  Field(absl::string_view key, absl::string_view value)
      : key_(key), value_(value), quoted_(true) {}
  Field(absl::string_view key, const std::string& value)
      : Field(key, absl::string_view(value)) {}
  Field(absl::string_view key, const char* value)
      : Field(key, absl::string_view(value)) {}
  Field(absl::string_view key, bool value)
      : key_(key), value_(value ? "true" : "false"), quoted_(false) {}
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>,
                             int> = 0>
  Field(absl::string_view key, T value)
      : key_(key), number_(std::to_string(value)), quoted_(false) {}

  // An already formatted number (written unquoted), referenced like a
  // string value.
  static Field Number(absl::string_view key, absl::string_view digits) {
    Field field(key, digits);
    field.quoted_ = false;
    return field;
  }

  absl::string_view key() const { return key_; }
  absl::string_view value() const {
    return number_.empty() ? value_ : absl::string_view(number_);
  }
  // False for numbers and booleans.
  bool is_string() const { return quoted_; }

 private:
  absl::string_view key_;
  absl::string_view value_;
  // A number's digits (short enough to stay inside std::string's own
  // buffer, so no allocation).
  std::string number_;
  bool quoted_;
};

// Sets the lowest level written and the output format (defaults: info,
// text). Safe to call at any time.
void Configure(Level min_level, Format format);

// Whether a line at `level` would be written (to skip building costly
// fields).
bool IsEnabled(Level level);

// Writes one line if `level` is enabled.
void Log(Level level, absl::string_view msg,
         std::initializer_list<Field> fields = {});

inline void Debug(absl::string_view msg,
                  std::initializer_list<Field> fields = {}) {
  Log(Level::kDebug, msg, fields);
}
inline void Info(absl::string_view msg,
                 std::initializer_list<Field> fields = {}) {
  Log(Level::kInfo, msg, fields);
}
inline void Warning(absl::string_view msg,
                    std::initializer_list<Field> fields = {}) {
  Log(Level::kWarning, msg, fields);
}
inline void Error(absl::string_view msg,
                  std::initializer_list<Field> fields = {}) {
  Log(Level::kError, msg, fields);
}

// Writes one line in `format` whatever the configured level and format:
// for records that must not be filtered (the audit trail). Same output and
// lock as Log, so lines never interleave.
void WriteRecord(Format format, Level level, absl::string_view msg,
                 absl::Span<const Field> fields);

// Formats a line (without the trailing newline) with timestamp `ts`.
std::string FormatLine(Format format, absl::string_view ts, Level level,
                       absl::string_view msg, absl::Span<const Field> fields);
inline std::string FormatLine(Format format, absl::string_view ts, Level level,
                              absl::string_view msg,
                              std::initializer_list<Field> fields) {
  return FormatLine(format, ts, level, msg,
                    absl::Span<const Field>(fields.begin(), fields.size()));
}

// Test hook: lines (with their newline) go to `sink` instead of stderr;
// nullptr restores stderr.
void SetSinkForTesting(std::function<void(absl::string_view)> sink);

}  // namespace hsmd::log

#endif  // HSMD_DAEMON_LOGGING_H_
