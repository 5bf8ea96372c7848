#include "tests/faulty_pkcs11/stats.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::faulty_pkcs11 {
namespace {

using ::testing::HasSubstr;

TEST(StatsTest, RoundTrips) {
  Stats stats;
  stats.sync_token = "abc123";
  stats.control_loads = 4;
  stats.bad_lines = 2;
  stats.functions["C_Login"] = {1, 1, 0, 0};
  stats.functions["C_Sign"] = {10, 3, 2, 1};
  absl::StatusOr<Stats> parsed = ParseStats(FormatStats(stats));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->sync_token, "abc123");
  EXPECT_EQ(parsed->control_loads, 4u);
  EXPECT_EQ(parsed->bad_lines, 2u);
  EXPECT_EQ(parsed->For("C_Sign"), (FunctionStats{10, 3, 2, 1}));
  EXPECT_EQ(parsed->For("C_Login").calls, 1u);
  EXPECT_EQ(parsed->For("C_Logout"), FunctionStats{});
}

TEST(StatsTest, RejectsGarbage) {
  EXPECT_FALSE(ParseStats("").ok());
  EXPECT_FALSE(ParseStats("hello\n").ok());
  absl::StatusOr<Stats> bad = ParseStats(
      "# faulty_pkcs11 stats v1\nfn C_Sign calls=1 faults=x delayed=0 "
      "hung=0\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(bad.status().message(), HasSubstr("faults="));
}

}  // namespace
}  // namespace hsmd::faulty_pkcs11
