#include "daemon/logging.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::log {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

TEST(LoggingTest, LogfmtQuotesOnlyWhenNeeded) {
  std::string line = FormatLine(Format::kText, "2024-01-02T03:04:05.000006Z",
                                Level::kInfo, "request",
                                {{"method", "Sign"},
                                 {"key", "pkcs11:token=demo;object=ec p256"},
                                 {"latency_us", uint64_t{42}},
                                 {"empty", ""},
                                 {"quote", "a\"b\\c\nd"},
                                 {"ok", true}});
  EXPECT_EQ(line,
            "ts=2024-01-02T03:04:05.000006Z level=info msg=request "
            "method=Sign key=\"pkcs11:token=demo;object=ec p256\" "
            "latency_us=42 empty=\"\" quote=\"a\\\"b\\\\c\\nd\" ok=true");
}

TEST(LoggingTest, JsonEscapesAndKeepsNumbersBare) {
  std::string line = FormatLine(
      Format::kJson, "2024-01-02T03:04:05.000006Z", Level::kWarning,
      "state \"changed\"",
      {{"backend", "softhsm"}, {"count", -3}, {"bytes", "\x01\xff"}});
  EXPECT_EQ(line,
            "{\"ts\":\"2024-01-02T03:04:05.000006Z\",\"level\":\"warning\","
            "\"msg\":\"state \\\"changed\\\"\",\"backend\":\"softhsm\","
            "\"count\":-3,\"bytes\":\"\\u0001\\u00ff\"}");
}

// Every escape of both formats, between runs of plain bytes: logfmt keeps
// bytes >= 0x80 as they are, JSON escapes them (values need not be UTF-8).
TEST(LoggingTest, EscapesEveryControlByteInBothFormats) {
  const std::string value = "a\"b\\c\nd\re\tf\x01g\x7fh\xc3\xa9i";
  EXPECT_EQ(FormatLine(Format::kText, "t", Level::kInfo, "m", {{"v", value}}),
            "ts=t level=info msg=m "
            "v=\"a\\\"b\\\\c\\nd\\re\\tf\\x01g\\x7fh\xc3\xa9i\"");
  EXPECT_EQ(
      FormatLine(Format::kJson, "t", Level::kInfo, "m", {{"v", value}}),
      "{\"ts\":\"t\",\"level\":\"info\",\"msg\":\"m\","
      "\"v\":\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh\\u00c3\\u00a9i\"}");
}

class LoggingSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetSinkForTesting([this](absl::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    });
  }
  void TearDown() override {
    SetSinkForTesting(nullptr);
    Configure(Level::kInfo, Format::kText);
  }
  std::vector<std::string> Lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

TEST_F(LoggingSinkTest, FiltersByLevel) {
  Configure(Level::kWarning, Format::kText);
  EXPECT_FALSE(IsEnabled(Level::kInfo));
  EXPECT_TRUE(IsEnabled(Level::kError));
  Debug("d");
  Info("i");
  Warning("w");
  Error("e");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("level=warning msg=w"));
  EXPECT_THAT(lines[1], HasSubstr("level=error msg=e"));
  EXPECT_THAT(lines[0], MatchesRegex("ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}"
                                     "\\.[0-9]{6}Z level=warning msg=w\n"));
}

TEST_F(LoggingSinkTest, JsonFormatSelectable) {
  Configure(Level::kDebug, Format::kJson);
  Debug("hello", {{"n", 1}});
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], StartsWith("{\"ts\":\""));
  EXPECT_THAT(lines[0], HasSubstr("\"level\":\"debug\",\"msg\":\"hello\","
                                  "\"n\":1}\n"));
}

TEST_F(LoggingSinkTest, ConcurrentLinesStayWhole) {
  constexpr int kThreads = 8;
  constexpr int kLines = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) {
        Info("line", {{"thread", t}, {"i", i}, {"pad", std::string(100, 'x')}});
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  for (const std::string& line : lines) {
    EXPECT_THAT(line, MatchesRegex(".* msg=line thread=[0-9] i=[0-9]+ "
                                   "pad=x{100}\n"));
  }
}

}  // namespace
}  // namespace hsmd::log
