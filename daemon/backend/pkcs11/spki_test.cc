#include "daemon/backend/pkcs11/spki.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend::pkcs11 {
namespace {

using ::testing::HasSubstr;

std::string Der(EVP_PKEY* pkey) {
  absl::StatusOr<std::string> der = EncodeSpki(pkey);
  EXPECT_TRUE(der.ok()) << der.status();
  return der.value_or("");
}

std::string BnParam(EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
  BignumPtr owned(bn);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string OctetParam(EVP_PKEY* pkey, const char* name) {
  unsigned char buffer[256];
  size_t length = 0;
  EXPECT_EQ(EVP_PKEY_get_octet_string_param(pkey, name, buffer, sizeof(buffer),
                                            &length),
            1);
  return std::string(reinterpret_cast<char*>(buffer), length);
}

// A DER OCTET STRING around `value` (short form lengths only).
std::string Wrap(const std::string& value) {
  if (value.size() < 128) {
    return std::string("\x04", 1) + static_cast<char>(value.size()) + value;
  }
  return std::string("\x04\x81", 2) + static_cast<char>(value.size()) + value;
}

TEST(SpkiTest, RsaMatchesOpenSsl) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> spki =
      RsaSpki(BnParam(key.get(), "n"), BnParam(key.get(), "e"));
  ASSERT_TRUE(spki.ok()) << spki.status();
  EXPECT_EQ(*spki, Der(key.get()));
  EXPECT_FALSE(RsaSpki("", "\x01").ok());
}

TEST(SpkiTest, EcMatchesOpenSslInNamedCurveForm) {
  struct Case {
    const char* group;
    v1::Curve curve;
  };
  for (const Case& c :
       {Case{"P-256", v1::CURVE_P256}, Case{"P-384", v1::CURVE_P384},
        Case{"P-521", v1::CURVE_P521}}) {
    EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", c.group));
    ASSERT_NE(key, nullptr);
    const std::string point = OctetParam(key.get(), OSSL_PKEY_PARAM_PUB_KEY);
    absl::StatusOr<std::string> raw = EcSpki(c.curve, point);
    ASSERT_TRUE(raw.ok()) << raw.status();
    EXPECT_EQ(*raw, Der(key.get())) << c.group;
    absl::StatusOr<std::string> wrapped = EcSpki(c.curve, Wrap(point));
    ASSERT_TRUE(wrapped.ok()) << wrapped.status();
    EXPECT_EQ(*wrapped, *raw);
    // The CKA_EC_PARAMS we generate with are recognised.
    absl::StatusOr<v1::Curve> curve =
        CurveFromEcParams(EcParamsForCurve(c.curve));
    ASSERT_TRUE(curve.ok());
    EXPECT_EQ(*curve, c.curve);
  }
}

TEST(SpkiTest, RejectsPointsOffTheCurve) {
  std::string point(65, '\x01');
  point[0] = 0x04;
  absl::StatusOr<std::string> spki = EcSpki(v1::CURVE_P256, point);
  ASSERT_FALSE(spki.ok());
  EXPECT_EQ(spki.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(EcSpki(v1::CURVE_ED25519, point).ok());
}

TEST(SpkiTest, Ed25519RawAndWrapped) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(key, nullptr);
  unsigned char raw[32];
  size_t length = sizeof(raw);
  ASSERT_EQ(EVP_PKEY_get_raw_public_key(key.get(), raw, &length), 1);
  const std::string point(reinterpret_cast<char*>(raw), length);
  absl::StatusOr<std::string> spki = Ed25519Spki(point);
  ASSERT_TRUE(spki.ok()) << spki.status();
  EXPECT_EQ(*spki, Der(key.get()));
  spki = Ed25519Spki(Wrap(point));
  ASSERT_TRUE(spki.ok()) << spki.status();
  EXPECT_EQ(*spki, Der(key.get()));
  absl::StatusOr<std::string> bad = Ed25519Spki(std::string(31, 'x'));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("31 bytes; expected 32"));
}

TEST(SpkiTest, CurveParameters) {
  EXPECT_TRUE(IsEd25519Params(absl::HexStringToBytes("06032b6570")));
  EXPECT_TRUE(
      IsEd25519Params(absl::HexStringToBytes("130c656477617264733235353139")));
  EXPECT_FALSE(IsEd25519Params(EcParamsForCurve(v1::CURVE_P256)));
  // secp256k1 is named in the error.
  absl::StatusOr<v1::Curve> curve =
      CurveFromEcParams(absl::HexStringToBytes("06052b8104000a"));
  ASSERT_FALSE(curve.ok());
  EXPECT_THAT(curve.status().message(), HasSubstr("secp256k1"));
  curve = CurveFromEcParams("\x30\x03garbage");
  ASSERT_FALSE(curve.ok());
  EXPECT_THAT(curve.status().message(), HasSubstr("explicit curve parameters"));
  EXPECT_EQ(CurveBits(v1::CURVE_P521), 521u);
  EXPECT_EQ(CurveBits(v1::CURVE_ED25519), 255u);
}

TEST(SpkiTest, KeyIdIsAHashPrefix) {
  const std::string spki = "any bytes";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(spki.data()), spki.size(),
         digest);
  EXPECT_EQ(KeyIdFromSpki(spki), absl::BytesToHexString(absl::string_view(
                                     reinterpret_cast<char*>(digest), 16)));
  EXPECT_TRUE(IsWellFormedKeyId(KeyIdFromSpki(spki)));
  EXPECT_FALSE(IsWellFormedKeyId("0123"));
  EXPECT_FALSE(IsWellFormedKeyId(std::string(32, 'A')));
  EXPECT_FALSE(ParseSpki("not der").ok());
}

}  // namespace
}  // namespace hsmd::backend::pkcs11
