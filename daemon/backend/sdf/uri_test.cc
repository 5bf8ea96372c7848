#include "daemon/backend/sdf/uri.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend::sdf {
namespace {

using ::testing::HasSubstr;

void ExpectInvalid(absl::string_view uri, absl::string_view substring) {
  absl::StatusOr<SdfUri> parsed = SdfUri::Parse(uri);
  ASSERT_FALSE(parsed.ok()) << uri;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(substring))
      << uri;
}

TEST(SdfUriTest, ParsesAllAttributes) {
  absl::StatusOr<SdfUri> uri =
      SdfUri::Parse("sdf:device=card0;index=12;usage=enc;object=my%20key");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->device, "card0");
  EXPECT_EQ(uri->index, 12u);
  EXPECT_EQ(uri->usage, KeyUsage::kEnc);
  EXPECT_EQ(uri->object, "my key");
  EXPECT_TRUE(uri->Matches("card0", 12, KeyUsage::kEnc, "my key"));
  EXPECT_FALSE(uri->Matches("card0", 12, KeyUsage::kSign, "my key"));
  EXPECT_FALSE(uri->Matches("card1", 12, KeyUsage::kEnc, "my key"));
  EXPECT_FALSE(uri->Matches("card0", 13, KeyUsage::kEnc, "my key"));
  EXPECT_FALSE(uri->Matches("card0", 12, KeyUsage::kEnc, "other"));
}

TEST(SdfUriTest, AttributesAreOptionalAndSchemeIsCaseInsensitive) {
  absl::StatusOr<SdfUri> uri = SdfUri::Parse("SDF:");
  ASSERT_TRUE(uri.ok());
  EXPECT_FALSE(uri->device.has_value());
  EXPECT_TRUE(uri->Matches("any", 1, KeyUsage::kSm4, ""));
  uri = SdfUri::Parse("Sdf:usage=sm4");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->usage, KeyUsage::kSm4);
  uri = SdfUri::Parse("sdf:index=0");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->index, 0u);
  uri = SdfUri::Parse("sdf:index=4294967295");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->index, 4294967295u);
  // pk11-pchar characters need no encoding; '=' belongs to the value.
  uri = SdfUri::Parse("sdf:device=a:b@c+d,e=f");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->device, "a:b@c+d,e=f");
}

TEST(SdfUriTest, RejectsBadParts) {
  ExpectInvalid("pkcs11:token=x", "not an sdf: URI");
  ExpectInvalid("sdf:device=x?pin-value=1", "no query or fragment");
  ExpectInvalid("sdf:device=x#frag", "no query or fragment");
  ExpectInvalid("sdf:device=x;;index=1", "empty attribute");
  ExpectInvalid("sdf:device=x;", "empty attribute");
  ExpectInvalid("sdf:device", "\"device\": has no '='");
  ExpectInvalid("sdf:device=", "\"device\": is empty");
  ExpectInvalid("sdf:object=", "\"object\": is empty");
  ExpectInvalid("sdf:index=", "\"index\": is empty");
  ExpectInvalid("sdf:index=-1", "\"index\": \"-1\" is not a decimal number");
  ExpectInvalid("sdf:index=0x10", "is not a decimal number");
  ExpectInvalid("sdf:index=4294967296", "out of range");
  ExpectInvalid("sdf:index=12345678901", "out of range");
  ExpectInvalid("sdf:usage=Sign",
                "\"usage\": \"Sign\" is not sign, enc or sm4");
  ExpectInvalid("sdf:id=1", "\"id\" is unknown");
  ExpectInvalid("sdf:Device=x", "\"Device\" is unknown");
  ExpectInvalid("sdf:device=a;device=b", "\"device\": appears more than once");
  ExpectInvalid("sdf:usage=sign;usage=enc", "appears more than once");
  ExpectInvalid("sdf:device=a%2", "two hex digits");
  ExpectInvalid("sdf:device=a%zz", "two hex digits");
  ExpectInvalid("sdf:device=a b", "must be percent-encoded");
  ExpectInvalid("sdf:device=a\"b", "must be percent-encoded");
}

TEST(SdfUriTest, CanonicalForm) {
  EXPECT_EQ(CanonicalUri("card0", 1, KeyUsage::kSign),
            "sdf:device=card0;index=1;usage=sign");
  EXPECT_EQ(CanonicalUri("my card;1", 7, KeyUsage::kSm4),
            "sdf:device=my%20card%3B1;index=7;usage=sm4");
  absl::StatusOr<SdfUri> back =
      SdfUri::Parse(CanonicalUri("my card;1", 7, KeyUsage::kSm4));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->device, "my card;1");
  EXPECT_EQ(PercentEncode("a-b_c.d~e/f"), "a-b_c.d~e%2Ff");
  EXPECT_TRUE(IsSdfUri("SDF:x"));
  EXPECT_FALSE(IsSdfUri("sdf"));
  EXPECT_EQ(UsageName(KeyUsage::kEnc), "enc");
  EXPECT_FALSE(ParseUsage("decrypt").ok());
}

}  // namespace
}  // namespace hsmd::backend::sdf
