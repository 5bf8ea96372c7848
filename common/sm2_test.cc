// Z and e checked against OpenSSL's own SM2: a signature over our e
// (made with EVP_PKEY_sign, which signs e as given) must verify with
// EVP_DigestVerify, where OpenSSL computes Z and e itself from the ID.
#include "common/sm2.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

#include "absl/strings/escaping.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

using ::testing::HasSubstr;

// The public half alone, decoded as clients decode hsmd's public_key_der.
EvpPkeyPtr PublicHalf(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  const unsigned char* p = der;
  EvpPkeyPtr out(d2i_PUBKEY(nullptr, &p, length));
  OPENSSL_free(der);
  return out;
}

std::string SignE(EVP_PKEY* key, const std::string& e) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  size_t length = 0;
  EXPECT_EQ(EVP_PKEY_sign_init(ctx.get()), 1);
  const auto* in = reinterpret_cast<const unsigned char*>(e.data());
  EXPECT_EQ(EVP_PKEY_sign(ctx.get(), nullptr, &length, in, e.size()), 1);
  std::string sig(length, '\0');
  EXPECT_EQ(
      EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                    &length, in, e.size()),
      1);
  sig.resize(length);
  return sig;
}

bool OpenSslVerifies(EVP_PKEY* key, const std::string& id,
                     const std::string& message, const std::string& sig) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestVerifyInit_ex(ctx.get(), &pctx, "SM3", nullptr, nullptr,
                                    key, nullptr),
            1);
  EXPECT_EQ(EVP_PKEY_CTX_set1_id(pctx, id.data(), id.size()), 1);
  return EVP_DigestVerify(
             ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
             sig.size(), reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

class Sm2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    ASSERT_NE(key_, nullptr);
    public_key_ = PublicHalf(key_.get());
    ASSERT_NE(public_key_, nullptr);
  }

  EvpPkeyPtr key_;
  EvpPkeyPtr public_key_;
};

TEST_F(Sm2Test, DecodedPublicKeysAreSm2) {
  EXPECT_TRUE(IsSm2Key(public_key_.get()));
  EXPECT_TRUE(IsSm2Key(key_.get()));
  EvpPkeyPtr p256(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  EXPECT_FALSE(IsSm2Key(p256.get()));
  EXPECT_FALSE(IsSm2Key(nullptr));
}

TEST_F(Sm2Test, DigestMatchesOpenSslWithTheDefaultAndOtherIds) {
  const std::string message = "message digest";
  for (const std::string& id :
       {std::string(kSm2DefaultId), std::string("alice@example.com"),
        std::string(1, '\0'), std::string(),
        // OpenSSL refuses IDs of 8191 bytes (its bound is exclusive), though
        // ENTL still fits: compare one byte below the limit.
        std::string(kSm2MaxIdBytes - 1, 'x')}) {
    absl::StatusOr<std::string> e = Sm2Digest(public_key_.get(), id, message);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_EQ(e->size(), kSm3DigestBytes);
    const std::string sig = SignE(key_.get(), *e);
    EXPECT_TRUE(OpenSslVerifies(public_key_.get(), id, message, sig))
        << "id of " << id.size() << " bytes";
    // The ID is really part of Z.
    EXPECT_FALSE(OpenSslVerifies(public_key_.get(), id + "!", message, sig));
  }
  // An empty message is still a message.
  absl::StatusOr<std::string> e =
      Sm2Digest(public_key_.get(), kSm2DefaultId, "");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(OpenSslVerifies(public_key_.get(), std::string(kSm2DefaultId), "",
                              SignE(key_.get(), *e)));
}

TEST_F(Sm2Test, FetchesFromTheGivenLibraryContextAndProperties) {
  absl::StatusOr<std::string> plain = Sm2Z(public_key_.get(), kSm2DefaultId);
  absl::StatusOr<std::string> fetched =
      Sm2Z(public_key_.get(), kSm2DefaultId, nullptr, "provider=default");
  ASSERT_TRUE(plain.ok() && fetched.ok());
  EXPECT_EQ(*plain, *fetched);
  // No provider offers SM3 under an impossible property: a clear error, and
  // the OpenSSL error queue is left as it was.
  ERR_clear_error();
  absl::StatusOr<std::string> none =
      Sm2Z(public_key_.get(), kSm2DefaultId, nullptr, "provider=nonexistent");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(Sm2Test, ZDependsOnKeyAndId) {
  absl::StatusOr<std::string> z1 = Sm2Z(public_key_.get(), "a");
  absl::StatusOr<std::string> z2 = Sm2Z(public_key_.get(), "b");
  EvpPkeyPtr other(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
  absl::StatusOr<std::string> z3 = Sm2Z(other.get(), "a");
  ASSERT_TRUE(z1.ok() && z2.ok() && z3.ok());
  EXPECT_EQ(z1->size(), 32u);
  EXPECT_NE(*z1, *z2);
  EXPECT_NE(*z1, *z3);
  EXPECT_EQ(*Sm2Z(public_key_.get(), "a"), *z1);
  EXPECT_TRUE(Sm2Z(public_key_.get(), std::string(kSm2MaxIdBytes, 'x')).ok());
}

TEST_F(Sm2Test, RejectsOtherKeysAndLongIds) {
  EvpPkeyPtr p256(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  absl::Status status = Sm2Digest(p256.get(), "id", "m").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "the key is not an SM2 key");
  status =
      Sm2Z(public_key_.get(), std::string(kSm2MaxIdBytes + 1, 'x')).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("8192 bytes; at most 8191"));
}

}  // namespace
}  // namespace hsmd
