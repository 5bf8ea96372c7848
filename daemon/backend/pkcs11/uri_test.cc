#include "daemon/backend/pkcs11/uri.h"

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend::pkcs11 {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CK_TOKEN_INFO TokenInfo(const std::string& label, const std::string& serial) {
  CK_TOKEN_INFO info;
  std::memset(&info, ' ', sizeof(info));
  std::memcpy(info.label, label.data(), label.size());
  std::memcpy(info.serialNumber, serial.data(), serial.size());
  std::memcpy(info.manufacturerID, "SoftHSM project", 15);
  std::memcpy(info.model, "SoftHSM v2", 10);
  return info;
}

void ExpectInvalid(const std::string& uri, const std::string& message_part) {
  absl::StatusOr<Pkcs11Uri> parsed = Pkcs11Uri::Parse(uri);
  ASSERT_FALSE(parsed.ok()) << uri;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << uri;
  EXPECT_THAT(parsed.status().message(), HasSubstr(message_part)) << uri;
}

TEST(UriTest, ParsesAllKeyAttributes) {
  absl::StatusOr<Pkcs11Uri> uri = Pkcs11Uri::Parse(
      "pkcs11:token=demo;manufacturer=SoftHSM%20project;serial=1234;"
      "model=SoftHSM%20v2;object=my%20key;id=%01%02%ff;type=private");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->token_label(), "demo");
  EXPECT_EQ(uri->token_manufacturer(), "SoftHSM project");
  EXPECT_EQ(uri->token_serial(), "1234");
  EXPECT_EQ(uri->token_model(), "SoftHSM v2");
  EXPECT_EQ(uri->object_label(), "my key");
  EXPECT_EQ(uri->object_id(), std::string("\x01\x02\xff", 3));
  EXPECT_EQ(uri->object_type(), ObjectType::kPrivateKey);
  EXPECT_FALSE(uri->slot_id().has_value());
}

TEST(UriTest, EmptyUriMatchesEverything) {
  absl::StatusOr<Pkcs11Uri> uri = Pkcs11Uri::Parse("pkcs11:");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_FALSE(uri->token_label().has_value());
  EXPECT_FALSE(uri->object_label().has_value());
  EXPECT_FALSE(uri->object_id().has_value());
  EXPECT_FALSE(uri->object_type().has_value());
  EXPECT_TRUE(uri->MatchesToken(TokenInfo("anything", "1")));
}

TEST(UriTest, TypesAndSlot) {
  absl::StatusOr<Pkcs11Uri> uri = Pkcs11Uri::Parse("pkcs11:type=public");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->object_type(), ObjectType::kPublicKey);
  uri = Pkcs11Uri::Parse("pkcs11:type=cert");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->object_type(), ObjectType::kCertificate);
  uri = Pkcs11Uri::Parse("pkcs11:slot-id=42;object=k");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->slot_id(), 42u);
  CK_SLOT_INFO slot_info;
  std::memset(&slot_info, ' ', sizeof(slot_info));
  EXPECT_TRUE(uri->MatchesSlot(42, slot_info));
  EXPECT_FALSE(uri->MatchesSlot(41, slot_info));
}

TEST(UriTest, SchemeIsCaseInsensitiveAndModuleQueryIgnored) {
  EXPECT_TRUE(Pkcs11Uri::Parse("PKCS11:token=a").ok());
  absl::StatusOr<Pkcs11Uri> uri = Pkcs11Uri::Parse(
      "pkcs11:object=a?module-path=/usr/lib/softhsm/libsofthsm2.so");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->object_label(), "a");
}

TEST(UriTest, MatchesToken) {
  absl::StatusOr<Pkcs11Uri> uri =
      Pkcs11Uri::Parse("pkcs11:token=demo;serial=abc;object=k");
  ASSERT_TRUE(uri.ok());
  EXPECT_TRUE(uri->MatchesToken(TokenInfo("demo", "abc")));
  EXPECT_FALSE(uri->MatchesToken(TokenInfo("other", "abc")));
  EXPECT_FALSE(uri->MatchesToken(TokenInfo("demo", "abd")));
  EXPECT_FALSE(uri->MatchesToken(TokenInfo("demo2", "abc")));
}

TEST(UriTest, MatchesModule) {
  absl::StatusOr<Pkcs11Uri> uri =
      Pkcs11Uri::Parse("pkcs11:library-manufacturer=SoftHSM");
  ASSERT_TRUE(uri.ok()) << uri.status();
  CK_INFO info;
  std::memset(&info, ' ', sizeof(info));
  std::memcpy(info.manufacturerID, "SoftHSM", 7);
  EXPECT_TRUE(uri->MatchesModule(info));
  std::memcpy(info.manufacturerID, "Other  ", 7);
  EXPECT_FALSE(uri->MatchesModule(info));
}

TEST(UriTest, RejectsOtherSchemes) {
  ExpectInvalid("", "empty");
  ExpectInvalid("http://example.com/key", "not a pkcs11: URI");
  ExpectInvalid("pkcs11", "not a pkcs11: URI");
  ExpectInvalid("file:key.pem", "not a pkcs11: URI");
  ExpectInvalid(" pkcs11:token=a", "not a pkcs11: URI");
}

TEST(UriTest, RejectsBadPercentEncoding) {
  ExpectInvalid("pkcs11:token=%zz",
                "bad percent-encoding in attribute \"token\"");
  ExpectInvalid("pkcs11:id=%0", "bad percent-encoding in attribute \"id\"");
  ExpectInvalid("pkcs11:object=abc%",
                "bad percent-encoding in attribute \"object\"");
  ExpectInvalid("pkcs11:object=a?module-name=%g1", "bad percent-encoding");
}

TEST(UriTest, RejectsUnknownAndMalformedAttributes) {
  ExpectInvalid("pkcs11:foo=bar", "unknown path attribute \"foo\"");
  ExpectInvalid("pkcs11:x-vendor=1", "unknown path attribute \"x-vendor\"");
  ExpectInvalid("pkcs11:garbage", "\"garbage\" has no '='");
  ExpectInvalid("pkcs11:token=a;token=b", "\"token\" appears twice");
  ExpectInvalid("pkcs11:slot-id=abc", "slot-id \"abc\" is not a decimal");
  ExpectInvalid("pkcs11:slot-id=-1", "slot-id \"-1\" is not a decimal");
  ExpectInvalid("pkcs11:library-version=x", "p11-kit");
  ExpectInvalid("pkcs11:token=" + std::string(33, 'a'),
                "\"token\" is 33 bytes long; PKCS#11 allows at most 32");
  ExpectInvalid("pkcs11:serial=" + std::string(17, '1'), "at most 16");
  ExpectInvalid("pkcs11:object=" + std::string(kMaxUriLength, 'a'),
                "the limit is 4096");
  ExpectInvalid(std::string("pkcs11:object=a\0b", 17), "NUL byte");
}

TEST(UriTest, RejectsUnsupportedTypes) {
  ExpectInvalid("pkcs11:type=secret-key", "type=secret-key is not supported");
  ExpectInvalid("pkcs11:type=data", "type=data is not supported");
  ExpectInvalid("pkcs11:type=bogus", "type=bogus is not supported");
  ExpectInvalid("pkcs11:type=", "type= is not supported");
}

TEST(UriTest, RejectsPinAttributesWithoutEchoingThem) {
  absl::StatusOr<Pkcs11Uri> uri =
      Pkcs11Uri::Parse("pkcs11:token=a;object=b?pin-value=secret1234");
  ASSERT_FALSE(uri.ok());
  EXPECT_EQ(uri.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(uri.status().message(),
              HasSubstr("\"pin-value\" is not accepted"));
  EXPECT_THAT(uri.status().message(), Not(HasSubstr("secret1234")));
  ExpectInvalid("pkcs11:object=b?pin-source=file:/etc/pin",
                "\"pin-source\" is not accepted");
  // Even when another problem comes first in the string.
  uri = Pkcs11Uri::Parse("pkcs11:foo=1?pin-value=secret1234");
  ASSERT_FALSE(uri.ok());
  EXPECT_THAT(uri.status().message(), Not(HasSubstr("secret1234")));
}

TEST(UriTest, RejectsUnknownQueryAttributes) {
  ExpectInvalid("pkcs11:object=a?foo=bar", "unknown query attribute \"foo\"");
  ExpectInvalid("pkcs11:object=a?module-name", "\"module-name\" has no '='");
}

TEST(UriTest, PercentEncode) {
  EXPECT_EQ(PercentEncode("abc-XYZ_0.9~"), "abc-XYZ_0.9~");
  EXPECT_EQ(PercentEncode("a b;c=d%e/f?"), "a%20b%3Bc%3Dd%25e%2Ff%3F");
  EXPECT_EQ(PercentEncode("\xc3\xa9"), "%C3%A9");
}

TEST(UriTest, FormatKeyUri) {
  EXPECT_EQ(FormatKeyUri("demo", "ec-p256", std::string("\x01\xab", 2)),
            "pkcs11:token=demo;object=ec-p256;id=%01%AB;type=private");
  EXPECT_EQ(FormatKeyUri("demo", "", ""), "pkcs11:token=demo;type=private");
}

TEST(UriTest, FormattedUrisRoundTrip) {
  const std::string token = "t;o=k%en ?&";
  const std::string label = "l\xc3\xa9 b;el/x?y&z=%";
  const std::string id("\x00\x01;=%\xff", 6);
  absl::StatusOr<Pkcs11Uri> uri =
      Pkcs11Uri::Parse(FormatKeyUri(token, label, id));
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->token_label(), token);
  EXPECT_EQ(uri->object_label(), label);
  EXPECT_EQ(uri->object_id(), id);
  EXPECT_EQ(uri->object_type(), ObjectType::kPrivateKey);
  EXPECT_TRUE(uri->MatchesToken(TokenInfo(token, "1")));
}

TEST(UriTest, CopiesShareTheParsedUri) {
  absl::StatusOr<Pkcs11Uri> uri = Pkcs11Uri::Parse("pkcs11:token=demo");
  ASSERT_TRUE(uri.ok());
  Pkcs11Uri copy = *uri;
  uri = Pkcs11Uri::Parse("pkcs11:token=other");
  ASSERT_TRUE(uri.ok());
  EXPECT_TRUE(copy.MatchesToken(TokenInfo("demo", "1")));
  EXPECT_EQ(copy.text(), "pkcs11:token=demo");
}

}  // namespace
}  // namespace hsmd::backend::pkcs11
