#include "proxy_provider/sm2.h"

#include <openssl/evp.h>

#include <string>

#include "absl/strings/escaping.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::proxy {
namespace {

using ::testing::HasSubstr;

EvpPkeyPtr NewSm2Key() {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "SM2", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_generate(ctx.get(), &pkey) != 1) {
    return nullptr;
  }
  return EvpPkeyPtr(pkey);
}

std::string Sm3(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), out, &length, EVP_sm3(), nullptr);
  return std::string(reinterpret_cast<char*>(out), length);
}

// Signs e = SM3(Z || message) with the plain (pre-hashed) SM2 signature, as
// hsmd does with the digest hsmproxy sends.
std::string SignE(EVP_PKEY* key, const std::string& e) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  size_t length = 0;
  if (EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &length,
                    reinterpret_cast<const unsigned char*>(e.data()),
                    e.size()) != 1) {
    return "";
  }
  std::string sig(length, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                    &length, reinterpret_cast<const unsigned char*>(e.data()),
                    e.size()) != 1) {
    return "";
  }
  sig.resize(length);
  return sig;
}

// OpenSSL's own SM2 verification (it computes Z itself from `id`).
bool OpenSslVerifies(EVP_PKEY* key, const std::string& id,
                     const std::string& message, const std::string& sig) {
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit(md.get(), &pctx, EVP_sm3(), nullptr, key) != 1) {
    return false;
  }
  if (!id.empty() &&
      EVP_PKEY_CTX_set1_id(pctx, id.data(), static_cast<int>(id.size())) != 1) {
    return false;
  }
  return EVP_DigestVerify(
             md.get(), reinterpret_cast<const unsigned char*>(sig.data()),
             sig.size(), reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

TEST(Sm2Test, LocalZMakesSignaturesOpenSslVerifies) {
  EvpPkeyPtr key = NewSm2Key();
  ASSERT_NE(key, nullptr);
  const std::string message = "message digest";
  for (const std::string& id :
       {std::string(kSm2DefaultId), std::string("ALICE123@YAHOO.COM"),
        std::string()}) {
    SCOPED_TRACE(id);
    absl::StatusOr<std::string> z = Sm2Z(nullptr, key.get(), id);
    ASSERT_TRUE(z.ok()) << z.status();
    ASSERT_EQ(z->size(), kSm3DigestBytes);
    std::string sig = SignE(key.get(), Sm3(*z + message));
    ASSERT_FALSE(sig.empty());
    EXPECT_TRUE(OpenSslVerifies(key.get(), id, message, sig));
    EXPECT_FALSE(OpenSslVerifies(key.get(), id + "x", message, sig));
  }
}

TEST(Sm2Test, ZDependsOnKeyAndId) {
  EvpPkeyPtr a = NewSm2Key();
  EvpPkeyPtr b = NewSm2Key();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(*Sm2Z(nullptr, a.get(), kSm2DefaultId),
            *Sm2Z(nullptr, b.get(), kSm2DefaultId));
  EXPECT_NE(*Sm2Z(nullptr, a.get(), kSm2DefaultId),
            *Sm2Z(nullptr, a.get(), "other"));
}

TEST(Sm2Test, OversizedIdAndNonSm2KeysAreRefused) {
  EvpPkeyPtr key = NewSm2Key();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> z =
      Sm2Z(nullptr, key.get(), std::string(kSm2MaxIdBytes + 1, 'x'));
  ASSERT_FALSE(z.ok());
  EXPECT_THAT(z.status().message(), HasSubstr("distinguishing ID"));
  EXPECT_TRUE(Sm2Z(nullptr, key.get(), std::string(kSm2MaxIdBytes, 'x')).ok());

  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "ED25519", nullptr));
  EVP_PKEY* ed = nullptr;
  ASSERT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_generate(ctx.get(), &ed), 1);
  EvpPkeyPtr ed_key(ed);
  EXPECT_FALSE(Sm2Z(nullptr, ed_key.get(), kSm2DefaultId).ok());
}

TEST(Sm2Test, AlgorithmIdIsSm2WithSm3WithoutParameters) {
  absl::StatusOr<std::string> aid = Sm2WithSm3AlgorithmId();
  ASSERT_TRUE(aid.ok()) << aid.status();
  // SEQUENCE { OID 1.2.156.10197.1.501 }
  EXPECT_EQ(absl::BytesToHexString(*aid), "300a06082a811ccf55018375");
}

}  // namespace
}  // namespace hsmd::proxy
