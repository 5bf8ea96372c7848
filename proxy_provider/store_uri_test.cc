#include "proxy_provider/store_uri.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy_provider/errors.h"

namespace hsmd::proxy {
namespace {

TEST(StoreUriTest, TypeIsTakenOutOfTheFilter) {
  absl::StatusOr<StoreUri> uri =
      ParseStoreUri("pkcs11:token=demo;object=ec-p256;type=private");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->type, UriObjectType::kPrivate);
  EXPECT_EQ(uri->filter, "pkcs11:token=demo;object=ec-p256");

  uri = ParseStoreUri("pkcs11:type=public;object=a%20b?module-name=x");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->type, UriObjectType::kPublic);
  EXPECT_EQ(uri->filter, "pkcs11:object=a%20b?module-name=x");

  uri = ParseStoreUri("pkcs11:object=c;type=cer%74");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->type, UriObjectType::kCert);

  uri = ParseStoreUri("PKCS11:object=x");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->type, UriObjectType::kAny);
  EXPECT_EQ(uri->filter, "pkcs11:object=x");
}

TEST(StoreUriTest, SdfUrisAreTheFilterAsTheyAre) {
  absl::StatusOr<StoreUri> uri =
      ParseStoreUri("sdf:device=soft0;index=1;usage=sign");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->type, UriObjectType::kAny);
  EXPECT_EQ(uri->filter, "sdf:device=soft0;index=1;usage=sign");
  uri = ParseStoreUri("SDF:device=card%200;index=2");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->filter, "sdf:device=card%200;index=2");
}

TEST(StoreUriTest, RejectsWhatItCannotServe) {
  for (const char* bad : {"file:/etc/key.pem", "pkcs11:type=secret-key",
                          "pkcs11:type=data", "pkcs11:type=%zz"}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<StoreUri> uri = ParseStoreUri(bad);
    ASSERT_FALSE(uri.ok());
    EXPECT_EQ(ReasonOf(uri.status()), Reason::kBadUri);
    EXPECT_THAT(uri.status().message(), ::testing::HasSubstr(bad));
  }
}

}  // namespace
}  // namespace hsmd::proxy
