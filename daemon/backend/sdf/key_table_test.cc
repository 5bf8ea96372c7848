#include "daemon/backend/sdf/key_table.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstring>

#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/softsdf/sm2_codec.h"

namespace hsmd::backend::sdf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Spki(EVP_PKEY* key) {
  const int len = i2d_PUBKEY(key, nullptr);
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_PUBKEY(key, &p);
  return der;
}

ECCrefPublicKey Ref(EVP_PKEY* key) {
  ECCrefPublicKey ref;
  EXPECT_TRUE(softsdf::Sm2PublicKeyToRef(key, &ref).ok());
  return ref;
}

v1::KeyRef Uri(absl::string_view uri) {
  v1::KeyRef ref;
  ref.set_uri(std::string(uri));
  return ref;
}

TEST(KeyTableTest, Sm2EntryHasTheNamedCurveSpki) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
  ASSERT_NE(key, nullptr);
  absl::StatusOr<KeyEntry> entry =
      MakeSm2Entry("b", "card0", 5, KeyUsage::kEnc, "label", Ref(key.get()));
  ASSERT_TRUE(entry.ok()) << entry.status();
  const v1::Key& k = entry->key;
  EXPECT_EQ(k.public_key_der(), Spki(key.get()));
  EXPECT_EQ(k.key_id(), KeyIdOf(Spki(key.get())));
  EXPECT_EQ(k.key_id().size(), 32u);
  EXPECT_EQ(k.key_type(), v1::KEY_TYPE_SM2);
  EXPECT_EQ(k.curve(), v1::CURVE_SM2);
  EXPECT_EQ(k.size_bits(), 256u);
  EXPECT_EQ(k.uri(), "sdf:device=card0;index=5;usage=enc");
  EXPECT_EQ(k.label(), "label");
  EXPECT_EQ(k.backend(), "b");
  EXPECT_EQ(k.token_label(), "card0");
  EXPECT_THAT(k.allowed_operations(), ElementsAre(v1::OPERATION_DECRYPT));
  // The SPKI names the SM2 curve (OID 1.2.156.10197.1.301).
  const unsigned char* p =
      reinterpret_cast<const unsigned char*>(k.public_key_der().data());
  EvpPkeyPtr parsed(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(k.public_key_der().size())));
  ASSERT_NE(parsed, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(parsed.get(), "SM2"));
}

TEST(KeyTableTest, RejectsDevicePublicKeysThatAreNotSm2) {
  ECCrefPublicKey bad;
  std::memset(&bad, 0, sizeof(bad));
  bad.bits = 256;
  bad.x[63] = 1;
  bad.y[63] = 1;
  absl::StatusOr<KeyEntry> entry =
      MakeSm2Entry("b", "d", 1, KeyUsage::kSign, "", bad);
  ASSERT_FALSE(entry.ok());
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(entry.status().message()),
              HasSubstr("sign public key at index 1 is not an SM2 key"));
}

TEST(KeyTableTest, Sm4EntryHashesItsUri) {
  KeyEntry entry = MakeSm4Entry("b", "card0", 3, "");
  EXPECT_EQ(entry.key.uri(), "sdf:device=card0;index=3;usage=sm4");
  EXPECT_EQ(entry.key.key_id(), KeyIdOf(entry.key.uri()));
  EXPECT_EQ(entry.key.key_type(), v1::KEY_TYPE_SM4);
  EXPECT_THAT(entry.key.allowed_operations(),
              ElementsAre(v1::OPERATION_ENCRYPT, v1::OPERATION_DECRYPT));
  EXPECT_TRUE(entry.key.public_key_der().empty());
}

TEST(KeyTableTest, ResolvesAndLists) {
  EvpPkeyPtr a(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
  EvpPkeyPtr b(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
  std::vector<KeyEntry> entries;
  entries.push_back(
      *MakeSm2Entry("n", "d", 1, KeyUsage::kSign, "x", Ref(a.get())));
  entries.push_back(
      *MakeSm2Entry("n", "d", 1, KeyUsage::kEnc, "y", Ref(b.get())));
  // The same key material under a second index: an ambiguous key id.
  entries.push_back(
      *MakeSm2Entry("n", "d", 2, KeyUsage::kSign, "z", Ref(a.get())));
  entries.push_back(MakeSm4Entry("n", "d", 1, "x"));
  KeyTable table("d", std::move(entries));

  absl::StatusOr<const KeyEntry*> found =
      table.Resolve(Uri("sdf:device=d;index=1;usage=enc"));
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)->label, "y");
  found = table.Resolve(Uri("sdf:device=d;object=x;usage=sm4"));
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)->usage, KeyUsage::kSm4);
  v1::KeyRef by_id;
  by_id.set_key_id(table.entries()[1].key.key_id());
  found = table.Resolve(by_id);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)->usage, KeyUsage::kEnc);

  by_id.set_key_id(table.entries()[0].key.key_id());
  EXPECT_EQ(table.Resolve(by_id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<const KeyEntry*> ambiguous =
      table.Resolve(Uri("sdf:device=d;object=x"));
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ambiguous.status().message()),
              HasSubstr("sign key at index 1, sm4 key at index 1"));
  EXPECT_EQ(
      table.Resolve(Uri("sdf:device=e;index=1;usage=sign")).status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(table.Resolve(v1::KeyRef()).status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::vector<v1::Key>> listed =
      table.List("sdf:usage=sign", "");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  listed = table.List("", "x");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_FALSE(table.List("sdf:index=x", "").ok());
  EXPECT_EQ(DescribeRef(by_id), "key_id:" + by_id.key_id());
}

}  // namespace
}  // namespace hsmd::backend::sdf
