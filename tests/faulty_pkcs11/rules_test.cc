#include "tests/faulty_pkcs11/rules.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::faulty_pkcs11 {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

TEST(ParseRvTest, AcceptsNamesHexAndDecimal) {
  EXPECT_EQ(*ParseRv("CKR_DEVICE_ERROR"), CKR_DEVICE_ERROR);
  EXPECT_EQ(*ParseRv("CKR_PIN_INCORRECT"), CKR_PIN_INCORRECT);
  EXPECT_EQ(*ParseRv("0x32"), CKR_DEVICE_REMOVED);
  EXPECT_EQ(*ParseRv("0X80000001"), CK_RV{0x80000001});
  EXPECT_EQ(*ParseRv("48"), CKR_DEVICE_ERROR);
}

TEST(ParseRvTest, RejectsOtherText) {
  for (const char* bad : {"", "CKR_NOPE", "ckr_device_error", "0x", "0xZZ",
                          "-1", "+5", "0x+5", "12a"}) {
    absl::StatusOr<CK_RV> rv = ParseRv(bad);
    EXPECT_FALSE(rv.ok()) << bad;
  }
  EXPECT_THAT(ParseRv("CKR_NOPE").status().message(), HasSubstr("CKR_NOPE"));
}

TEST(RvNameTest, NamesKnownValuesAndHexForOthers) {
  EXPECT_EQ(RvName(CKR_SESSION_HANDLE_INVALID), "CKR_SESSION_HANDLE_INVALID");
  EXPECT_EQ(RvName(0x80001234), "0x80001234");
}

TEST(ParseControlRulesTest, EmptyTextIsPassThrough) {
  ControlRules c = ParseControlRules("");
  EXPECT_THAT(c.rules, IsEmpty());
  EXPECT_FALSE(c.token_absent);
  EXPECT_FALSE(c.invalidate_sessions);
  EXPECT_THAT(c.errors, IsEmpty());
}

TEST(ParseControlRulesTest, ParsesEveryRuleKind) {
  ControlRules c = ParseControlRules(
      "# a comment\n"
      "\n"
      "C_Sign rv=CKR_DEVICE_ERROR count=3   # trailing comment\n"
      "C_Login rv=CKR_PIN_INCORRECT\n"
      "\tC_Decrypt delay_ms=200 \n"
      "C_Sign hang\n"
      "* rv=0x32\n"
      "C_OpenSession rv=CKR_SESSION_COUNT delay_ms=5 count=1\n");
  ASSERT_THAT(c.errors, IsEmpty());
  ASSERT_THAT(c.rules, SizeIs(6));
  EXPECT_EQ(c.rules[0].line, 3);
  EXPECT_EQ(c.rules[0].fn, Fn::C_Sign);
  EXPECT_EQ(c.rules[0].rv, CKR_DEVICE_ERROR);
  EXPECT_EQ(c.rules[0].count, 3);
  EXPECT_EQ(c.rules[1].fn, Fn::C_Login);
  EXPECT_EQ(c.rules[1].count, -1);
  EXPECT_EQ(c.rules[2].delay, absl::Milliseconds(200));
  EXPECT_FALSE(c.rules[2].rv.has_value());
  EXPECT_TRUE(c.rules[3].hang);
  EXPECT_FALSE(c.rules[4].fn.has_value());
  EXPECT_EQ(c.rules[4].rv, CKR_DEVICE_REMOVED);
  EXPECT_EQ(c.rules[5].rv, CKR_SESSION_COUNT);
  EXPECT_EQ(c.rules[5].delay, absl::Milliseconds(5));
  EXPECT_EQ(c.rules[5].count, 1);
  EXPECT_FALSE(c.token_absent);
  EXPECT_FALSE(c.invalidate_sessions);
}

TEST(ParseControlRulesTest, ParsesDirectives) {
  ControlRules c = ParseControlRules("invalidate_sessions\n");
  EXPECT_TRUE(c.invalidate_sessions);
  EXPECT_THAT(c.rules, IsEmpty());
  for (const char* text :
       {"token_absent", "C_GetSlotList token_absent", "* token_absent"}) {
    ControlRules t = ParseControlRules(text);
    EXPECT_TRUE(t.token_absent) << text;
    EXPECT_THAT(t.rules, IsEmpty()) << text;
    EXPECT_THAT(t.errors, IsEmpty()) << text;
  }
}

TEST(ParseControlRulesTest, StarSparesGetFunctionListAndFinalize) {
  ControlRules c = ParseControlRules("* rv=CKR_DEVICE_REMOVED\n");
  ASSERT_THAT(c.rules, SizeIs(1));
  EXPECT_TRUE(c.rules[0].Matches(Fn::C_Sign));
  EXPECT_TRUE(c.rules[0].Matches(Fn::C_Initialize));
  EXPECT_FALSE(c.rules[0].Matches(Fn::C_GetFunctionList));
  EXPECT_FALSE(c.rules[0].Matches(Fn::C_Finalize));
  ControlRules f = ParseControlRules("C_Finalize rv=CKR_GENERAL_ERROR\n");
  ASSERT_THAT(f.rules, SizeIs(1));
  EXPECT_TRUE(f.rules[0].Matches(Fn::C_Finalize));
  EXPECT_FALSE(f.rules[0].Matches(Fn::C_Sign));
}

TEST(ParseControlRulesTest, BadLinesAreSkippedWithTheirLineNumber) {
  ControlRules c = ParseControlRules(
      "C_Sign rv=CKR_DEVICE_ERROR\n"            // 1: good
      "C_Sgn rv=CKR_DEVICE_ERROR\n"             // 2: unknown function
      "C_Sign rv=CKR_NOPE\n"                    // 3: unknown rv
      "C_Sign count=3\n"                        // 4: no effect
      "C_Sign\n"                                // 5: no option
      "C_Sign rv=CKR_OK\n"                      // 6: CKR_OK
      "C_Sign hang rv=CKR_DEVICE_ERROR\n"       // 7: hang + rv
      "C_Sign rv=0x30 rv=0x30\n"                // 8: twice
      "C_Sign delay_ms=0\n"                     // 9: out of range
      "C_Sign frobnicate\n"                     // 10: unknown option
      "C_GetFunctionList rv=0x30\n"             // 11: not faultable
      "invalidate_sessions now\n"               // 12: extra word
      "C_Sign token_absent rv=0x30\n"           // 13: token_absent + option
      "C_Sign count=x rv=0x30\n"                // 14: bad count
      "C_Login rv=CKR_PIN_INCORRECT count=1\n"  // 15: good
  );
  ASSERT_THAT(c.rules, SizeIs(2));
  EXPECT_EQ(c.rules[0].line, 1);
  EXPECT_EQ(c.rules[1].line, 15);
  ASSERT_THAT(c.errors, SizeIs(13));
  for (int i = 0; i < 13; ++i) {
    EXPECT_THAT(c.errors[i], HasSubstr(absl::StrCat("line ", i + 2, ":")));
  }
  EXPECT_THAT(c.errors[0], HasSubstr("unknown function 'C_Sgn'"));
  EXPECT_THAT(c.errors[1], HasSubstr("CKR_NOPE"));
  EXPECT_THAT(c.errors[2], HasSubstr("no effect"));
  EXPECT_THAT(c.errors[4], HasSubstr("CKR_OK"));
  EXPECT_THAT(c.errors[5], HasSubstr("hang cannot be combined"));
  EXPECT_THAT(c.errors[6], HasSubstr("twice"));
  EXPECT_THAT(c.errors[8], HasSubstr("unknown option 'frobnicate'"));
  EXPECT_THAT(c.errors[9], HasSubstr("C_GetFunctionList cannot be faulted"));
  EXPECT_FALSE(c.invalidate_sessions);
  EXPECT_FALSE(c.token_absent);
}

TEST(ParseControlRulesTest, KeepsFileOrder) {
  ControlRules c = ParseControlRules(
      "C_Sign rv=CKR_DEVICE_ERROR count=1\nC_Sign rv=CKR_GENERAL_ERROR\n");
  ASSERT_THAT(c.rules, SizeIs(2));
  EXPECT_THAT(std::vector<CK_RV>({*c.rules[0].rv, *c.rules[1].rv}),
              ElementsAre(CKR_DEVICE_ERROR, CKR_GENERAL_ERROR));
}

}  // namespace
}  // namespace hsmd::faulty_pkcs11
