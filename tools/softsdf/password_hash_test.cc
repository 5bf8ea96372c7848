#include "tools/softsdf/password_hash.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace hsmd::softsdf {
namespace {

TEST(PasswordHashTest, VerifiesOnlyTheRightPassword) {
  absl::StatusOr<std::string> record = HashPassword("correct horse", 1000);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_TRUE(absl::StartsWith(*record, "pbkdf2-sha256:1000:"));
  EXPECT_FALSE(absl::StrContains(*record, "correct horse"));
  EXPECT_TRUE(ValidatePasswordRecord(*record).ok());

  absl::StatusOr<bool> right = VerifyPassword(*record, "correct horse");
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_TRUE(*right);
  for (const char* wrong :
       {"correct hors", "correct horse ", "Correct horse", "x"}) {
    absl::StatusOr<bool> result = VerifyPassword(*record, wrong);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_FALSE(*result) << wrong;
  }
}

TEST(PasswordHashTest, SaltsDiffer) {
  absl::StatusOr<std::string> a = HashPassword("same", 1000);
  absl::StatusOr<std::string> b = HashPassword("same", 1000);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(PasswordHashTest, RejectsBadParameters) {
  EXPECT_FALSE(HashPassword("pw", 999).ok());
  EXPECT_FALSE(HashPassword("", 1000).ok());
}

TEST(PasswordHashTest, MalformedRecordsAreErrors) {
  absl::StatusOr<std::string> record = HashPassword("pw", 1000);
  ASSERT_TRUE(record.ok());
  std::string tampered = *record;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  absl::StatusOr<bool> result = VerifyPassword(tampered, "pw");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(*result);

  for (const std::string& bad :
       {std::string(""), std::string("pw"), "md5:1000:" + record->substr(19),
        std::string("pbkdf2-sha256:0:00:00"),
        record->substr(0, record->size() - 2), *record + ":extra"}) {
    EXPECT_FALSE(ValidatePasswordRecord(bad).ok()) << bad;
    EXPECT_FALSE(VerifyPassword(bad, "pw").ok()) << bad;
  }
}

}  // namespace
}  // namespace hsmd::softsdf
