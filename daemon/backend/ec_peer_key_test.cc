#include "daemon/backend/ec_peer_key.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

#include "common/openssl_ptr.h"
#include "gtest/gtest.h"

namespace hsmd::backend {
namespace {

EvpPkeyPtr NewKey(const char* type, const char* curve) {
  return EvpPkeyPtr(curve == nullptr
                        ? EVP_PKEY_Q_keygen(nullptr, nullptr, type)
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, type, curve));
}

std::string Spki(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string Point(EVP_PKEY* pkey) {
  unsigned char buf[200];
  size_t len = 0;
  EXPECT_EQ(EVP_PKEY_get_octet_string_param(pkey, "encoded-pub-key", buf,
                                            sizeof(buf), &len),
            1);
  return std::string(reinterpret_cast<char*>(buf), len);
}

TEST(EcPeerKeyTest, SpkiAndPointGiveTheSamePoint) {
  EvpPkeyPtr peer = NewKey("EC", "P-384");
  absl::StatusOr<std::string> from_spki =
      EcdhPeerPoint(Spki(peer.get()), v1::CURVE_P384, "key \"k\"");
  ASSERT_TRUE(from_spki.ok()) << from_spki.status();
  EXPECT_EQ(*from_spki, Point(peer.get()));
  EXPECT_EQ(from_spki->size(), 97u);
  absl::StatusOr<std::string> from_point =
      EcdhPeerPoint(Point(peer.get()), v1::CURVE_P384, "key \"k\"");
  ASSERT_TRUE(from_point.ok()) << from_point.status();
  EXPECT_EQ(*from_point, *from_spki);
}

TEST(EcPeerKeyTest, SoftwareEcdhAgreesBothWays) {
  EvpPkeyPtr a = NewKey("EC", "P-256");
  EvpPkeyPtr b = NewKey("EC", "P-256");
  absl::StatusOr<std::string> ab =
      SoftwareEcdh(a.get(), Point(b.get()), v1::CURVE_P256);
  absl::StatusOr<std::string> ba =
      SoftwareEcdh(b.get(), Point(a.get()), v1::CURVE_P256);
  ASSERT_TRUE(ab.ok()) << ab.status();
  ASSERT_TRUE(ba.ok()) << ba.status();
  EXPECT_EQ(ab->size(), 32u);
  EXPECT_EQ(*ab, *ba);
}

TEST(EcPeerKeyTest, RejectsOtherCurvesKeyTypesAndGarbage) {
  EvpPkeyPtr p384 = NewKey("EC", "P-384");
  absl::StatusOr<std::string> other_curve =
      EcdhPeerPoint(Spki(p384.get()), v1::CURVE_P256, "key \"ec-p256\"");
  EXPECT_EQ(other_curve.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other_curve.status().message().find("secp384r1"), std::string::npos)
      << other_curve.status();
  EXPECT_NE(other_curve.status().message().find("ec-p256"), std::string::npos);
  // A P-384 point given bare to a P-256 key: wrong length.
  EXPECT_EQ(
      EcdhPeerPoint(Point(p384.get()), v1::CURVE_P256, "k").status().code(),
      absl::StatusCode::kInvalidArgument);

  EvpPkeyPtr ed = NewKey("ED25519", nullptr);
  absl::StatusOr<std::string> ed_peer =
      EcdhPeerPoint(Spki(ed.get()), v1::CURVE_P256, "k");
  EXPECT_EQ(ed_peer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ed_peer.status().message().find("ED25519"), std::string::npos)
      << ed_peer.status();

  EXPECT_EQ(EcdhPeerPoint("", v1::CURVE_P256, "k").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EcdhPeerPoint("garbage", v1::CURVE_P256, "k").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      EcdhPeerPoint(std::string("\x30\x03\x02\x01\x01", 5), v1::CURVE_P256, "k")
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  // A key that is not on a NIST curve cannot derive.
  EXPECT_EQ(
      EcdhPeerPoint(Point(p384.get()), v1::CURVE_ED25519, "k").status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(EcPeerKeyTest, RejectsPointsOffTheCurve) {
  EvpPkeyPtr peer = NewKey("EC", "P-256");
  std::string point = Point(peer.get());
  point[40] ^= 0x01;  // Change Y: (X, Y') is not on the curve.
  absl::StatusOr<std::string> off = EcdhPeerPoint(point, v1::CURVE_P256, "k");
  EXPECT_EQ(off.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(off.status().message().find("not a point on P-256"),
            std::string::npos)
      << off.status();
  // The same in a SubjectPublicKeyInfo.
  std::string spki = Spki(peer.get());
  spki[spki.size() - 3] ^= 0x01;
  EXPECT_EQ(EcdhPeerPoint(spki, v1::CURVE_P256, "k").status().code(),
            absl::StatusCode::kInvalidArgument);
  // The point at infinity (a single 0x00) is not a point encoding we accept.
  EXPECT_EQ(
      EcdhPeerPoint(std::string(1, '\0'), v1::CURVE_P256, "k").status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(EcPeerKeyTest, AcceptsCompressedPoints) {
  EvpPkeyPtr peer = NewKey("EC", "P-256");
  const std::string uncompressed = Point(peer.get());
  // Compress by hand: 0x02 | (y & 1), then X.
  std::string compressed(1,
                         static_cast<char>(0x02 | (uncompressed.back() & 1)));
  compressed += uncompressed.substr(1, 32);
  absl::StatusOr<std::string> point =
      EcdhPeerPoint(compressed, v1::CURVE_P256, "k");
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_EQ(*point, uncompressed);
}

}  // namespace
}  // namespace hsmd::backend
