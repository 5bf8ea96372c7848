#include "tools/hsmctl/algorithms.h"

#include "absl/strings/escaping.h"
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

TEST(ParseSignOptionsTest, Sm2) {
  auto parsed = ParseSignOptions(Flags("sm2"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->algorithm.has_sm2());
  // The ID is used locally for Z; it is not sent.
  EXPECT_EQ(parsed->algorithm.sm2().distinguishing_id(), "");
  EXPECT_EQ(parsed->sm2_id, "1234567812345678");
  EXPECT_EQ(DescribeSignatureAlgorithm(parsed->algorithm), "sm2 sm3");

  SignFlags flags = Flags("SM2-SM3");
  flags.id = "alice@example.com";
  parsed = ParseSignOptions(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->sm2_id, "alice@example.com");
  flags = Flags("sm2");
  flags.hash = "sm3";
  flags.id_hex = "00ff41";
  parsed = ParseSignOptions(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->sm2_id, std::string("\x00\xff"
                                        "A",
                                        3));
  flags = Flags("sm2");
  flags.digest_input = true;
  parsed = ParseSignOptions(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->digest_input);
}

TEST(ParseSignOptionsTest, Sm2BadOptions) {
  const auto message = [](SignFlags flags) {
    absl::StatusOr<SignOptions> parsed = ParseSignOptions(flags);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(parsed.status().message());
  };
  SignFlags flags = Flags("sm2");
  flags.hash = "sha256";
  EXPECT_EQ(message(flags), "sm2 signs with sm3 only, not sha256");
  EXPECT_EQ(message(Flags("sm2-sha256")),
            "sm2 signs with sm3 only, not sha256");
  flags = Flags("sm2");
  flags.id = "";
  EXPECT_THAT(message(flags),
              HasSubstr("the SM2 distinguishing ID is empty; leave out --id"));
  flags.id = std::string(8192, 'i');
  EXPECT_THAT(message(flags), HasSubstr("8192 bytes; at most 8191"));
  flags.id = std::string(8191, 'i');
  EXPECT_TRUE(ParseSignOptions(flags).ok());
  flags.id_hex = "41";
  EXPECT_EQ(message(flags), "give --id or --id-hex, not both");
  flags = Flags("sm2");
  flags.id_hex = "4g";
  EXPECT_THAT(message(flags), HasSubstr("--id-hex"));
  flags = Flags("sm2");
  flags.id = "alice";
  flags.digest_input = true;
  EXPECT_THAT(message(flags),
              HasSubstr("--id cannot be combined with --digest-input"));
  flags = Flags("ecdsa");
  flags.id = "alice";
  EXPECT_THAT(message(flags), HasSubstr("apply only to sm2"));
  flags = Flags("sm2");
  flags.salt_len = "32";
  EXPECT_THAT(message(flags), HasSubstr("--salt-len applies only to rsa-pss"));
}

TEST(ParseCipherOptionsTest, Sm2AndSm4) {
  CipherFlags flags;
  flags.alg = "sm2";
  auto parsed = ParseCipherOptions(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->algorithm.has_sm2());
  EXPECT_EQ(DescribeCipherAlgorithm(parsed->algorithm), "sm2");

  flags.alg = "SM4_CBC";
  parsed = ParseCipherOptions(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->algorithm.sm4().mode(), v1::CIPHER_MODE_CBC);
  EXPECT_EQ(parsed->algorithm.sm4().iv(), "");
  EXPECT_EQ(parsed->padding, Sm4Padding::kPkcs7);
  EXPECT_EQ(DescribeCipherAlgorithm(parsed->algorithm), "sm4-cbc");

  flags.iv_hex = "000102030405060708090A0B0C0D0E0F";
  flags.padding = "none";
  parsed = ParseCipherOptions(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(absl::BytesToHexString(parsed->algorithm.sm4().iv()),
            "000102030405060708090a0b0c0d0e0f");
  EXPECT_EQ(parsed->padding, Sm4Padding::kNone);

  CipherFlags ecb;
  ecb.alg = "sm4-ecb";
  ecb.padding = "pkcs7";
  parsed = ParseCipherOptions(ecb);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->algorithm.sm4().mode(), v1::CIPHER_MODE_ECB);
  EXPECT_EQ(DescribeCipherAlgorithm(parsed->algorithm), "sm4-ecb");
}

TEST(ParseCipherOptionsTest, Sm2AndSm4BadOptions) {
  const auto message = [](const std::string& alg,
                          absl::optional<std::string> iv,
                          absl::optional<std::string> padding,
                          absl::optional<std::string> hash = absl::nullopt) {
    CipherFlags flags;
    flags.alg = alg;
    flags.iv_hex = std::move(iv);
    flags.padding = std::move(padding);
    flags.hash = std::move(hash);
    absl::StatusOr<CipherOptions> parsed = ParseCipherOptions(flags);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(parsed.status().message());
  };
  EXPECT_EQ(message("sm4", absl::nullopt, absl::nullopt),
            "--alg sm4 needs a mode: sm4-ecb or sm4-cbc");
  EXPECT_EQ(
      message("sm4-ecb", "00112233445566778899aabbccddeeff", absl::nullopt),
      "sm4-ecb takes no --iv");
  EXPECT_EQ(message("sm4-cbc", "0011", absl::nullopt),
            "--iv is 2 bytes; the SM4-CBC IV is 16 bytes (32 hex digits)");
  EXPECT_THAT(message("sm4-cbc", "zz", absl::nullopt), HasSubstr("--iv"));
  EXPECT_EQ(message("sm4-cbc", absl::nullopt, "zero"),
            "--padding: unknown padding 'zero'; use pkcs7 or none");
  EXPECT_EQ(message("sm2", absl::nullopt, "none"),
            "--iv and --padding apply only to sm4-ecb / sm4-cbc");
  EXPECT_EQ(message("rsa-oaep", "00", absl::nullopt),
            "--iv and --padding apply only to sm4-ecb / sm4-cbc");
  EXPECT_EQ(message("sm2", absl::nullopt, absl::nullopt, "sha256"),
            "--hash, --mgf1 and --label apply only to rsa-oaep");
  EXPECT_EQ(message("sm4-cbc", absl::nullopt, absl::nullopt, "sha256"),
            "--hash, --mgf1 and --label apply only to rsa-oaep");
  EXPECT_THAT(message("sm4-ctr", absl::nullopt, absl::nullopt),
              HasSubstr("use rsa-pkcs1, rsa-oaep (optionally rsa-oaep-sha256 "
                        "etc.), sm2, sm4-ecb or sm4-cbc"));
}

TEST(KeyNamesTest, Sm2AndSm4Keys) {
  v1::Key sm2;
  sm2.set_key_type(v1::KEY_TYPE_SM2);
  sm2.set_curve(v1::CURVE_SM2);
  sm2.set_size_bits(256);
  sm2.add_allowed_operations(v1::OPERATION_SIGN);
  EXPECT_EQ(DescribeKeyType(sm2), "SM2");
  EXPECT_EQ(KeyTypeName(sm2.key_type()), "SM2");
  EXPECT_EQ(CurveName(sm2.curve()), "SM2");
  EXPECT_TRUE(AllowsOperation(sm2, v1::OPERATION_SIGN));
  EXPECT_FALSE(AllowsOperation(sm2, v1::OPERATION_DECRYPT));
  v1::Key sm4;
  sm4.set_key_type(v1::KEY_TYPE_SM4);
  sm4.set_size_bits(128);
  sm4.add_allowed_operations(v1::OPERATION_ENCRYPT);
  sm4.add_allowed_operations(v1::OPERATION_DECRYPT);
  EXPECT_EQ(DescribeKeyType(sm4), "SM4-128");
  EXPECT_EQ(KeyTypeName(sm4.key_type()), "SM4");
  EXPECT_EQ(DescribeOperations(sm4), "encrypt,decrypt");
  EXPECT_TRUE(AllowsOperation(sm4, v1::OPERATION_ENCRYPT));
  sm4.set_size_bits(0);
  EXPECT_EQ(DescribeKeyType(sm4), "SM4");
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
  EXPECT_THAT(*ParseOperations("sign,derive"),
              ::testing::ElementsAre(v1::OPERATION_SIGN, v1::OPERATION_DERIVE));
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
  ec.add_allowed_operations(v1::OPERATION_SIGN);
  ec.add_allowed_operations(v1::OPERATION_DERIVE);
  EXPECT_EQ(DescribeOperations(ec), "sign,derive");
  v1::Key ed;
  ed.set_key_type(v1::KEY_TYPE_ED25519);
  EXPECT_EQ(DescribeKeyType(ed), "Ed25519");
}

}  // namespace
}  // namespace hsmd::hsmctl
