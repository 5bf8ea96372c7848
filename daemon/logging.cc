#include "daemon/logging.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hsmd::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(Format::kText)};

struct Output {
  std::mutex mu;
  std::function<void(absl::string_view)> sink ABSL_GUARDED_BY(mu);
};

Output& GetOutput() {
  // Leaked on purpose: threads may log during static destruction.
  static Output* output = new Output;
  return *output;
}

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || c == '=' || c == '"' || c == '\\' || u >= 0x7f) {
      return true;
    }
  }
  return false;
}

enum class Quoting { kLogfmt, kJson };

// Appends `v` in double quotes: ", \, newline, CR and tab get their short
// escapes; other control bytes \xNN (logfmt) or \u00NN (JSON, which also
// escapes bytes >= 0x80: values are not guaranteed to be UTF-8, and the line
// must stay valid JSON). Runs of plain bytes are copied whole.
void AppendQuoted(std::string& out, absl::string_view v, Quoting quoting) {
  out.push_back('"');
  size_t plain = 0;  // Start of the run not yet copied.
  for (size_t i = 0; i < v.size(); ++i) {
    const unsigned char u = static_cast<unsigned char>(v[i]);
    const char* short_escape = nullptr;
    switch (u) {
      case '"':
        short_escape = "\\\"";
        break;
      case '\\':
        short_escape = "\\\\";
        break;
      case '\n':
        short_escape = "\\n";
        break;
      case '\r':
        short_escape = "\\r";
        break;
      case '\t':
        short_escape = "\\t";
        break;
    }
    const bool escaped =
        u < 0x20 || u == 0x7f || (quoting == Quoting::kJson && u >= 0x80);
    if (short_escape == nullptr && !escaped) continue;
    out.append(v.data() + plain, i - plain);
    plain = i + 1;
    if (short_escape != nullptr) {
      out.append(short_escape);
    } else if (quoting == Quoting::kJson) {
      absl::StrAppendFormat(&out, "\\u%04x", u);
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    }
  }
  out.append(v.data() + plain, v.size() - plain);
  out.push_back('"');
}

void AppendLogfmtValue(std::string& out, absl::string_view v) {
  if (!NeedsQuotes(v)) {
    out.append(v.data(), v.size());
    return;
  }
  AppendQuoted(out, v, Quoting::kLogfmt);
}

void AppendJsonString(std::string& out, absl::string_view v) {
  AppendQuoted(out, v, Quoting::kJson);
}

void WriteAll(absl::string_view line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // Nowhere else to report it.
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "unknown";
}

void Configure(Level min_level, Format format) {
  g_min_level.store(static_cast<int>(min_level), std::memory_order_relaxed);
  g_format.store(static_cast<int>(format), std::memory_order_relaxed);
}

bool IsEnabled(Level level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

std::string FormatLine(Format format, absl::string_view ts, Level level,
                       absl::string_view msg, absl::Span<const Field> fields) {
  std::string out;
  out.reserve(128 + msg.size());
  if (format == Format::kJson) {
    out.append("{\"ts\":");
    AppendJsonString(out, ts);
    out.append(",\"level\":");
    AppendJsonString(out, LevelName(level));
    out.append(",\"msg\":");
    AppendJsonString(out, msg);
    for (const Field& f : fields) {
      out.push_back(',');
      AppendJsonString(out, f.key());
      out.push_back(':');
      if (f.is_string()) {
        AppendJsonString(out, f.value());
      } else {
        out.append(f.value().data(), f.value().size());
      }
    }
    out.push_back('}');
    return out;
  }
  out.append("ts=");
  out.append(ts.data(), ts.size());
  out.append(" level=");
  absl::string_view name = LevelName(level);
  out.append(name.data(), name.size());
  out.append(" msg=");
  AppendLogfmtValue(out, msg);
  for (const Field& f : fields) {
    out.push_back(' ');
    out.append(f.key().data(), f.key().size());
    out.push_back('=');
    AppendLogfmtValue(out, f.value());
  }
  return out;
}

namespace {

// "2024-01-02T03:04:05.000006Z" for now. The date and time to the second
// are formatted once per second and thread (absl::FormatTime costs about as
// much as the rest of a request's log line).
std::string Timestamp() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  thread_local time_t cached_second = -1;
  thread_local char cached[32];
  if (now.tv_sec != cached_second) {
    tm utc;
    gmtime_r(&now.tv_sec, &utc);
    strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &utc);
    cached_second = now.tv_sec;
  }
  return absl::StrFormat("%s.%06dZ", cached,
                         static_cast<int>(now.tv_nsec / 1000));
}

void Emit(Format format, Level level, absl::string_view msg,
          absl::Span<const Field> fields) {
  std::string ts = Timestamp();
  std::string line = FormatLine(format, ts, level, msg, fields);
  line.push_back('\n');
  Output& output = GetOutput();
  std::lock_guard<std::mutex> lock(output.mu);
  if (output.sink) {
    output.sink(line);
  } else {
    WriteAll(line);
  }
}

}  // namespace

void Log(Level level, absl::string_view msg,
         std::initializer_list<Field> fields) {
  if (!IsEnabled(level)) return;
  Emit(static_cast<Format>(g_format.load(std::memory_order_relaxed)), level,
       msg, absl::Span<const Field>(fields.begin(), fields.size()));
}

void WriteRecord(Format format, Level level, absl::string_view msg,
                 absl::Span<const Field> fields) {
  Emit(format, level, msg, fields);
}

void SetSinkForTesting(std::function<void(absl::string_view)> sink) {
  Output& output = GetOutput();
  std::lock_guard<std::mutex> lock(output.mu);
  output.sink = std::move(sink);
}

}  // namespace hsmd::log
