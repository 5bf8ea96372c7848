#include "proxy_provider/mechanisms.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy_provider/errors.h"

namespace hsmd::proxy {
namespace {

TEST(MechanismsTest, LookupDigestKnowsHsmdHashesByAnyName) {
  for (const auto& [name, hash, size] :
       std::vector<std::tuple<const char*, v1::HashAlgorithm, size_t>>{
           {"SHA1", v1::HASH_ALGORITHM_SHA1, 20},
           {"sha224", v1::HASH_ALGORITHM_SHA224, 28},
           {"SHA2-256", v1::HASH_ALGORITHM_SHA256, 32},
           {"SHA-384", v1::HASH_ALGORITHM_SHA384, 48},
           {"sha512", v1::HASH_ALGORITHM_SHA512, 64},
           {"MD5-SHA1", v1::HASH_ALGORITHM_MD5_SHA1, 36},
           {"SHA3-256", v1::HASH_ALGORITHM_UNSPECIFIED, 32},
       }) {
    SCOPED_TRACE(name);
    absl::StatusOr<Digest> digest = LookupDigest(nullptr, name);
    ASSERT_TRUE(digest.ok()) << digest.status();
    EXPECT_EQ(digest->hash, hash);
    EXPECT_EQ(digest->size, size);
  }
  absl::StatusOr<Digest> unknown = LookupDigest(nullptr, "NOT-A-DIGEST");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(ReasonOf(unknown.status()), Reason::kUnsupported);
  EXPECT_THAT(unknown.status().message(), ::testing::HasSubstr("NOT-A-DIGEST"));
}

TEST(MechanismsTest, HashForDigestLength) {
  EXPECT_EQ(*HashForDigestLength(20), v1::HASH_ALGORITHM_SHA1);
  EXPECT_EQ(*HashForDigestLength(32), v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(*HashForDigestLength(64), v1::HASH_ALGORITHM_SHA512);
  EXPECT_FALSE(HashForDigestLength(33).ok());
}

TEST(MechanismsTest, PssSaltLengthSettings) {
  // RSA-2048 with SHA-256: emLen 256, maximum salt 256 - 32 - 2 = 222.
  EXPECT_EQ(*PssSaltLength(RSA_PSS_SALTLEN_DIGEST, 2048, 32), 32u);
  EXPECT_EQ(*PssSaltLength(RSA_PSS_SALTLEN_MAX, 2048, 32), 222u);
  EXPECT_EQ(*PssSaltLength(RSA_PSS_SALTLEN_AUTO, 2048, 32), 222u);
  EXPECT_EQ(*PssSaltLength(-4, 2048, 32), 32u);
  EXPECT_EQ(*PssSaltLength(0, 2048, 32), 0u);
  EXPECT_EQ(*PssSaltLength(222, 2048, 32), 222u);
  EXPECT_FALSE(PssSaltLength(223, 2048, 32).ok());
  EXPECT_FALSE(PssSaltLength(-5, 2048, 32).ok());
  // A modulus of 8n+1 bits: emLen is one byte shorter than the modulus.
  EXPECT_EQ(*PssSaltLength(RSA_PSS_SALTLEN_MAX, 2049, 32), 222u);
  // Too small a key for the digest.
  EXPECT_FALSE(PssSaltLength(RSA_PSS_SALTLEN_DIGEST, 512, 64).ok());
}

TEST(MechanismsTest, DigestInfoMatchesKnownPrefix) {
  const unsigned char kSha256Prefix[] = {
      0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  std::string digest(32, '\x5a');
  absl::StatusOr<std::string> info = EncodeDigestInfo(EVP_sha256(), digest);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(*info, std::string(reinterpret_cast<const char*>(kSha256Prefix),
                               sizeof(kSha256Prefix)) +
                       digest);
  EXPECT_FALSE(EncodeDigestInfo(EVP_sha256(), "short").ok());
}

}  // namespace
}  // namespace hsmd::proxy
