#include "tools/hsmctl/args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<OptionSpec> kSpecs = {
    {"in", "FILE", "input"},
    {"json", "", "json output"},
    {"help", "", "help", 'h'},
};

TEST(ParseArgsTest, ValuesFlagsAndPositionals) {
  auto parsed = ParseArgs(
      {"pkcs11:object=a", "--in", "msg.bin", "--json", "extra"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Get("in"), "msg.bin");
  EXPECT_TRUE(parsed->Has("json"));
  EXPECT_FALSE(parsed->Has("help"));
  EXPECT_THAT(parsed->positional(), ElementsAre("pkcs11:object=a", "extra"));
}

TEST(ParseArgsTest, EqualsFormAndLastValueWins) {
  auto parsed = ParseArgs({"--in=a", "--in", "b"}, kSpecs);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Get("in"), "b");
  auto empty = ParseArgs({"--in="}, kSpecs);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->Get("in"), "");
}

TEST(ParseArgsTest, DashIsAValueAndAPositional) {
  auto parsed = ParseArgs({"--in", "-", "-"}, kSpecs);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Get("in"), "-");
  EXPECT_THAT(parsed->positional(), ElementsAre("-"));
}

TEST(ParseArgsTest, DoubleDashEndsOptions) {
  auto parsed = ParseArgs({"--json", "--", "--in", "x"}, kSpecs);
  ASSERT_TRUE(parsed.ok());
  EXPECT_THAT(parsed->positional(), ElementsAre("--in", "x"));
  EXPECT_FALSE(parsed->Has("in"));
}

TEST(ParseArgsTest, ShortAlias) {
  auto parsed = ParseArgs({"-h"}, kSpecs);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->Has("help"));
}

TEST(ParseArgsTest, Errors) {
  auto unknown = ParseArgs({"--nope"}, kSpecs);
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown option --nope"));
  auto unknown_value = ParseArgs({"--nope=3"}, kSpecs);
  EXPECT_THAT(unknown_value.status().message(),
              HasSubstr("unknown option --nope"));
  auto missing = ParseArgs({"--in"}, kSpecs);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("--in needs a value (FILE)"));
  auto flag_value = ParseArgs({"--json=yes"}, kSpecs);
  EXPECT_THAT(flag_value.status().message(),
              HasSubstr("--json takes no value"));
  auto single_dash = ParseArgs({"-json"}, kSpecs);
  EXPECT_THAT(single_dash.status().message(), HasSubstr("two dashes"));
  auto bad_short = ParseArgs({"-x"}, kSpecs);
  EXPECT_THAT(bad_short.status().message(), HasSubstr("unknown option -x"));
}

TEST(FormatOptionHelpTest, AlignsColumns) {
  EXPECT_EQ(FormatOptionHelp(kSpecs),
            "  --in FILE   input\n"
            "  --json      json output\n"
            "  -h, --help  help\n");
}

TEST(ParseHexTest, Valid) {
  EXPECT_EQ(*ParseHex("--id", "00ff10"), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(*ParseHex("--id", "AB:cd"), "\xab\xcd");
  EXPECT_EQ(*ParseHex("--id", ""), "");
}

TEST(ParseHexTest, Invalid) {
  EXPECT_THAT(ParseHex("--id", "0g").status().message(),
              HasSubstr("--id: '0g' is not hex"));
  EXPECT_THAT(ParseHex("--label", "abc").status().message(),
              HasSubstr("odd number"));
}

TEST(ParseUintTest, Range) {
  EXPECT_EQ(*ParseUint("N", "32", 1, 64), 32u);
  EXPECT_EQ(*ParseUint("N", "64", 1, 64), 64u);
  for (const char* bad :
       {"0", "65", "-1", "1e3", "", "12x", " 3", "99999999999999999999"}) {
    auto parsed = ParseUint("N", bad, 1, 64);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("from 1 to 64")) << bad;
  }
}

TEST(ParseTimeoutTest, Forms) {
  EXPECT_EQ(*ParseTimeout("--timeout", "5s"), absl::Seconds(5));
  EXPECT_EQ(*ParseTimeout("--timeout", "250ms"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseTimeout("--timeout", "1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseTimeout("--timeout", "2"), absl::Seconds(2));
  EXPECT_EQ(*ParseTimeout("--timeout", "0.5"), absl::Milliseconds(500));
}

TEST(ParseTimeoutTest, Rejects) {
  for (const char* bad : {"", "soon", "0", "0s", "-1s", "inf", "5 s"}) {
    auto parsed = ParseTimeout("--timeout", bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("--timeout")) << bad;
  }
}

TEST(ParseKeyRefTest, UriAndKeyId) {
  auto uri = ParseKeyRef("pkcs11:token=demo;object=ec-p256");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->uri(), "pkcs11:token=demo;object=ec-p256");
  // sdf: URIs go to hsmd as they are (it parses and canonicalises them).
  auto sdf = ParseKeyRef("SDF:device=soft0;index=1;usage=sign");
  ASSERT_TRUE(sdf.ok());
  EXPECT_EQ(sdf->uri(), "SDF:device=soft0;index=1;usage=sign");
  EXPECT_EQ(DescribeKeyRef(*sdf), "SDF:device=soft0;index=1;usage=sign");
  auto id = ParseKeyRef("0123456789ABCDEF0123456789abcdef");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->key_id(), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(DescribeKeyRef(*id), "key id 0123456789abcdef0123456789abcdef");
  EXPECT_EQ(DescribeKeyRef(*uri), "pkcs11:token=demo;object=ec-p256");
}

TEST(ParseKeyRefTest, Rejects) {
  for (const char* bad : {"ec-p256", "0123", "zz23456789abcdef0123456789abcdef",
                          "", "sdfx:device=soft0"}) {
    auto parsed = ParseKeyRef(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr("neither a pkcs11: or sdf: URI nor a key id"));
  }
}

}  // namespace
}  // namespace hsmd::hsmctl
