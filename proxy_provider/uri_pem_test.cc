#include "proxy_provider/uri_pem.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::proxy {
namespace {

constexpr char kUri[] = "pkcs11:token=demo;object=ec-p256;type=private";

TEST(UriPemTest, RoundTrip) {
  absl::StatusOr<std::string> pem = EncodeUriPem(kUri);
  ASSERT_TRUE(pem.ok());
  EXPECT_THAT(*pem,
              ::testing::StartsWith("-----BEGIN PKCS#11 PROVIDER URI-----\n"));
  absl::StatusOr<std::string> uri = ParseUriPem(*pem);
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(*uri, kUri);
}

TEST(UriPemTest, SdfUrisRoundTrip) {
  const std::string sdf = "sdf:device=soft0;index=1;usage=sign";
  absl::StatusOr<std::string> pem = EncodeUriPem(sdf);
  ASSERT_TRUE(pem.ok()) << pem.status();
  absl::StatusOr<std::string> uri = ParseUriPem(*pem);
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(*uri, sdf);
}

TEST(UriPemTest, DerMatchesPkcs11ProviderLayout) {
  // SEQUENCE { VisibleString "PKCS#11 Provider URI v1.0", UTF8String uri },
  // as pkcs11-provider's tests build it byte by byte.
  std::string der = EncodeUriDer("pkcs11:object=a");
  std::string expected = absl::HexStringToBytes(
      "302c"  // 2 + 25 + 2 + 15 bytes
      "1a19"
      "504b43532331312050726f76696465722055524920"
      "76312e30"
      "0c0f"
      "706b637331313a6f626a6563743d61");
  EXPECT_EQ(absl::BytesToHexString(der), absl::BytesToHexString(expected));
}

TEST(UriPemTest, ParsesLongFormLengthsAndOtherStringTypes) {
  std::string uri = "pkcs11:object=" + std::string(200, 'k');
  std::string der = EncodeUriDer(uri);
  ASSERT_EQ(static_cast<unsigned char>(der[1]), 0x81);  // long form
  absl::StatusOr<std::string> parsed = ParseUriDer(der);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, uri);
  // UTF8String description, IA5String URI.
  std::string alt = absl::HexStringToBytes(
                        "300e"
                        "0c0178"
                        "1609") +
                    "pkcs11:a=";
  alt[1] = static_cast<char>(alt.size() - 2);
  parsed = ParseUriDer(alt);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, "pkcs11:a=");
}

TEST(UriPemTest, RejectsOtherData) {
  EXPECT_FALSE(ParseUriDer("").ok());
  EXPECT_FALSE(ParseUriDer(absl::HexStringToBytes("3003020101")).ok());
  std::string der = EncodeUriDer("pkcs11:object=a");
  EXPECT_FALSE(ParseUriDer(der + "x").ok());  // trailing data
  EXPECT_FALSE(ParseUriDer(der.substr(0, der.size() - 1)).ok());  // truncated
  EXPECT_FALSE(ParseUriDer(EncodeUriDer("file:/etc/passwd")).ok());
  EXPECT_FALSE(ParseUriPem("-----BEGIN CERTIFICATE-----\nAAAA\n"
                           "-----END CERTIFICATE-----\n")
                   .ok());
  EXPECT_FALSE(EncodeUriPem("http://example").ok());
}

}  // namespace
}  // namespace hsmd::proxy
