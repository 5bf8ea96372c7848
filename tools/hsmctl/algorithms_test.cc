#include "tools/hsmctl/algorithms.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::HasSubstr;

SignFlags Flags(std::string alg) {
  SignFlags flags;
  flags.alg = std::move(alg);
  return flags;
}

TEST(ParseHashTest, NamesAndSizes) {
  EXPECT_EQ(*ParseHash("--hash", "sha256"), v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(*ParseHash("--hash", "SHA-384"), v1::HASH_ALGORITHM_SHA384);
  EXPECT_EQ(*ParseHash("--hash", "md5_sha1"), v1::HASH_ALGORITHM_MD5_SHA1);
  EXPECT_EQ(*ParseHash("--hash", "none"), v1::HASH_ALGORITHM_UNSPECIFIED);
  EXPECT_THAT(ParseHash("--mgf1", "md5").status().message(),
              HasSubstr("--mgf1: unknown hash 'md5'"));
  EXPECT_EQ(HashSize(v1::HASH_ALGORITHM_SHA1), 20u);
  EXPECT_EQ(HashSize(v1::HASH_ALGORITHM_SHA512), 64u);
  EXPECT_EQ(HashSize(v1::HASH_ALGORITHM_MD5_SHA1), 36u);
  EXPECT_EQ(HashSize(v1::HASH_ALGORITHM_UNSPECIFIED), 0u);
  EXPECT_EQ(OpenSslDigestName(v1::HASH_ALGORITHM_SHA224), "SHA224");
  EXPECT_EQ(HashName(v1::HASH_ALGORITHM_UNSPECIFIED), "none");
}

TEST(ParseSignOptionsTest, Defaults) {
  auto pkcs1 = ParseSignOptions(Flags("rsa-pkcs1"));
  ASSERT_TRUE(pkcs1.ok()) << pkcs1.status();
  EXPECT_EQ(pkcs1->algorithm.rsa_pkcs1().hash(), v1::HASH_ALGORITHM_SHA256);
  EXPECT_FALSE(pkcs1->digest_input);

  auto pss = ParseSignOptions(Flags("rsa-pss"));
  ASSERT_TRUE(pss.ok());
  EXPECT_EQ(pss->algorithm.rsa_pss().hash(), v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(pss->algorithm.rsa_pss().mgf1_hash(), v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(pss->algorithm.rsa_pss().salt_length(), 32u);
  EXPECT_EQ(pss->salt.kind, SaltLength::kDigest);

  auto ecdsa = ParseSignOptions(Flags("ecdsa"));
  ASSERT_TRUE(ecdsa.ok());
  EXPECT_EQ(ecdsa->algorithm.ecdsa().hash(), v1::HASH_ALGORITHM_SHA256);

  auto ed = ParseSignOptions(Flags("ed25519"));
  ASSERT_TRUE(ed.ok());
  EXPECT_TRUE(ed->algorithm.has_ed25519());
}

TEST(ParseSignOptionsTest, Aliases) {
  struct Case {
    const char* alg;
    v1::SignatureAlgorithm::AlgorithmCase scheme;
    v1::HashAlgorithm hash;
  };
  const Case cases[] = {
      {"rsa-pkcs1-sha384", v1::SignatureAlgorithm::kRsaPkcs1,
       v1::HASH_ALGORITHM_SHA384},
      {"RSASSA-PKCS1-v1_5", v1::SignatureAlgorithm::kRsaPkcs1,
       v1::HASH_ALGORITHM_SHA256},
      {"pkcs1-sha1", v1::SignatureAlgorithm::kRsaPkcs1,
       v1::HASH_ALGORITHM_SHA1},
      {"rsa-pss-sha512", v1::SignatureAlgorithm::kRsaPss,
       v1::HASH_ALGORITHM_SHA512},
      {"PSS", v1::SignatureAlgorithm::kRsaPss, v1::HASH_ALGORITHM_SHA256},
      {"ecdsa-sha384", v1::SignatureAlgorithm::kEcdsa,
       v1::HASH_ALGORITHM_SHA384},
      {"ecdsa-with-SHA256", v1::SignatureAlgorithm::kEcdsa,
       v1::HASH_ALGORITHM_SHA256},
      {"EdDSA", v1::SignatureAlgorithm::kEd25519,
       v1::HASH_ALGORITHM_UNSPECIFIED},
  };
  for (const Case& c : cases) {
    auto parsed = ParseSignOptions(Flags(c.alg));
    ASSERT_TRUE(parsed.ok()) << c.alg << ": " << parsed.status();
    EXPECT_EQ(parsed->algorithm.algorithm_case(), c.scheme) << c.alg;
    v1::HashAlgorithm hash = v1::HASH_ALGORITHM_UNSPECIFIED;
    if (parsed->algorithm.has_rsa_pkcs1()) {
      hash = parsed->algorithm.rsa_pkcs1().hash();
    }
    if (parsed->algorithm.has_rsa_pss())
      hash = parsed->algorithm.rsa_pss().hash();
    if (parsed->algorithm.has_ecdsa()) hash = parsed->algorithm.ecdsa().hash();
    EXPECT_EQ(hash, c.hash) << c.alg;
  }
}

TEST(ParseSignOptionsTest, UnknownAlgorithm) {
  for (const char* bad :
       {"rsa-foo", "", "ed25519-sha256", "ecdsa-md5", "sha256"}) {
    auto parsed = ParseSignOptions(Flags(bad));
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr("unknown signature algorithm"))
        << bad;
  }
}

TEST(ParseSignOptionsTest, HashFlagMustAgreeWithAlias) {
  SignFlags same = Flags("ecdsa-sha384");
  same.hash = "sha384";
  EXPECT_TRUE(ParseSignOptions(same).ok());
  SignFlags conflict = Flags("ecdsa-sha384");
  conflict.hash = "sha256";
  EXPECT_THAT(ParseSignOptions(conflict).status().message(),
              HasSubstr("conflicts"));
}

TEST(ParseSignOptionsTest, Pss) {
  SignFlags flags = Flags("rsa-pss");
  flags.hash = "sha384";
  flags.mgf1 = "sha1";
  flags.salt_len = "20";
  auto parsed = ParseSignOptions(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->algorithm.rsa_pss().hash(), v1::HASH_ALGORITHM_SHA384);
  EXPECT_EQ(parsed->algorithm.rsa_pss().mgf1_hash(), v1::HASH_ALGORITHM_SHA1);
  EXPECT_EQ(parsed->algorithm.rsa_pss().salt_length(), 20u);
  EXPECT_EQ(DescribeSignatureAlgorithm(parsed->algorithm),
            "rsa-pss sha384 (mgf1 sha1, salt 20)");

  flags.salt_len = "max";
  parsed = ParseSignOptions(flags);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->salt.kind, SaltLength::kMax);
  EXPECT_FALSE(parsed->algorithm.rsa_pss().has_salt_length());

  flags.salt_len = "auto";
  EXPECT_EQ(ParseSignOptions(flags)->salt.kind, SaltLength::kAuto);
  flags.salt_len = "lots";
  EXPECT_THAT(ParseSignOptions(flags).status().message(),
              HasSubstr("--salt-len: 'lots'"));
  flags.salt_len.reset();
  flags.hash = "none";
  EXPECT_THAT(ParseSignOptions(flags).status().message(),
              HasSubstr("cannot be used with rsa-pss"));
}

TEST(ParseSignOptionsTest, OptionsOnlyForTheirScheme) {
  SignFlags salt = Flags("ecdsa");
  salt.salt_len = "32";
  EXPECT_THAT(ParseSignOptions(salt).status().message(),
              HasSubstr("--salt-len applies only to rsa-pss"));
  SignFlags mgf1 = Flags("rsa-pkcs1");
  mgf1.mgf1 = "sha256";
  EXPECT_THAT(ParseSignOptions(mgf1).status().message(),
              HasSubstr("--mgf1 applies only to rsa-pss"));
  SignFlags ed_hash = Flags("ed25519");
  ed_hash.hash = "sha512";
  EXPECT_THAT(ParseSignOptions(ed_hash).status().message(),
              HasSubstr("--hash is not allowed"));
  SignFlags ed_digest = Flags("ed25519");
  ed_digest.digest_input = true;
  EXPECT_THAT(ParseSignOptions(ed_digest).status().message(),
              HasSubstr("--digest-input is not allowed"));
  SignFlags ecdsa_none = Flags("ecdsa");
  ecdsa_none.hash = "none";
  EXPECT_FALSE(ParseSignOptions(ecdsa_none).ok());
}

TEST(ParseSignOptionsTest, RawPkcs1NeedsDigestInput) {
  SignFlags flags = Flags("rsa-pkcs1");
  flags.hash = "none";
  EXPECT_THAT(ParseSignOptions(flags).status().message(),
              HasSubstr("add --digest-input"));
  flags.digest_input = true;
  auto parsed = ParseSignOptions(flags);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->algorithm.rsa_pkcs1().hash(),
            v1::HASH_ALGORITHM_UNSPECIFIED);
  EXPECT_TRUE(parsed->digest_input);

  SignFlags md5sha1 = Flags("rsa-pkcs1");
  md5sha1.hash = "md5-sha1";
  EXPECT_FALSE(ParseSignOptions(md5sha1).ok());
  md5sha1.digest_input = true;
  EXPECT_TRUE(ParseSignOptions(md5sha1).ok());
}

TEST(MaxPssSaltLengthTest, Rfc8017Bound) {
  // emLen = ceil((2048 - 1) / 8) = 256; 256 - 32 - 2.
  EXPECT_EQ(*MaxPssSaltLength(2048, v1::HASH_ALGORITHM_SHA256), 222u);
  // emLen = ceil(3071 / 8) = 384.
  EXPECT_EQ(*MaxPssSaltLength(3072, v1::HASH_ALGORITHM_SHA512), 318u);
  // A 2049-bit modulus still has emLen = 256.
  EXPECT_EQ(*MaxPssSaltLength(2049, v1::HASH_ALGORITHM_SHA256), 222u);
  EXPECT_FALSE(MaxPssSaltLength(256, v1::HASH_ALGORITHM_SHA512).ok());
  EXPECT_FALSE(MaxPssSaltLength(0, v1::HASH_ALGORITHM_SHA256).ok());
}

TEST(ParseCipherAlgorithmTest, Pkcs1AndOaep) {
  CipherFlags pkcs1;
  pkcs1.alg = "rsa-pkcs1";
  auto p = ParseCipherAlgorithm(pkcs1);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->has_rsa_pkcs1());
  pkcs1.label_hex = "00";
  EXPECT_THAT(ParseCipherAlgorithm(pkcs1).status().message(),
              HasSubstr("apply only to rsa-oaep"));

  CipherFlags oaep;
  oaep.alg = "rsa-oaep";
  auto o = ParseCipherAlgorithm(oaep);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->rsa_oaep().hash(), v1::HASH_ALGORITHM_SHA1);
  EXPECT_EQ(o->rsa_oaep().mgf1_hash(), v1::HASH_ALGORITHM_SHA1);
  EXPECT_EQ(o->rsa_oaep().label(), "");

  oaep.alg = "rsa-oaep-sha256";
  oaep.mgf1 = "sha1";
  oaep.label_hex = "6869";
  o = ParseCipherAlgorithm(oaep);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->rsa_oaep().hash(), v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(o->rsa_oaep().mgf1_hash(), v1::HASH_ALGORITHM_SHA1);
  EXPECT_EQ(o->rsa_oaep().label(), "hi");

  oaep.label_hex = "xyz";
  EXPECT_THAT(ParseCipherAlgorithm(oaep).status().message(),
              HasSubstr("--label"));
  CipherFlags bad;
  bad.alg = "aes";
  EXPECT_THAT(ParseCipherAlgorithm(bad).status().message(),
              HasSubstr("unknown encryption algorithm 'aes'"));
}

TEST(KeyNamesTest, ParseAndDescribe) {
  EXPECT_EQ(*ParseKeyType("RSA"), v1::KEY_TYPE_RSA);
  EXPECT_EQ(*ParseKeyType("ec"), v1::KEY_TYPE_EC);
  EXPECT_EQ(*ParseKeyType("ed25519"), v1::KEY_TYPE_ED25519);
  EXPECT_THAT(ParseKeyType("dsa").status().message(),
              HasSubstr("unknown key type 'dsa'"));
  EXPECT_EQ(*ParseCurve("p256"), v1::CURVE_P256);
  EXPECT_EQ(*ParseCurve("P-384"), v1::CURVE_P384);
  EXPECT_EQ(*ParseCurve("secp521r1"), v1::CURVE_P521);
  EXPECT_THAT(ParseCurve("p192").status().message(),
              HasSubstr("unknown curve 'p192'"));

  auto ops = ParseOperations("sign, decrypt,sign");
  ASSERT_TRUE(ops.ok());
  EXPECT_THAT(
      *ops, ::testing::ElementsAre(v1::OPERATION_SIGN, v1::OPERATION_DECRYPT));
  EXPECT_THAT(ParseOperations("sign,encrypt").status().message(),
              HasSubstr("unknown operation 'encrypt'"));
  EXPECT_FALSE(ParseOperations(",").ok());

  v1::Key rsa;
  rsa.set_key_type(v1::KEY_TYPE_RSA);
  rsa.set_size_bits(3072);
  rsa.add_allowed_operations(v1::OPERATION_SIGN);
  rsa.add_allowed_operations(v1::OPERATION_DECRYPT);
  EXPECT_EQ(DescribeKeyType(rsa), "RSA-3072");
  EXPECT_EQ(DescribeOperations(rsa), "sign,decrypt");
  v1::Key ec;
  ec.set_key_type(v1::KEY_TYPE_EC);
  ec.set_curve(v1::CURVE_P384);
  EXPECT_EQ(DescribeKeyType(ec), "EC P-384");
  EXPECT_EQ(DescribeOperations(ec), "-");
  v1::Key ed;
  ed.set_key_type(v1::KEY_TYPE_ED25519);
  EXPECT_EQ(DescribeKeyType(ed), "Ed25519");
}

}  // namespace
}  // namespace hsmd::hsmctl
