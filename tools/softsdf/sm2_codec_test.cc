#include "tools/softsdf/sm2_codec.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <string>

#include "absl/strings/escaping.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/sdf/gmt0018.h"
#include "gtest/gtest.h"

namespace hsmd::softsdf {
namespace {

EvpPkeyPtr NewSm2Key() {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
}

std::string Sm3(absl::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), out, &len, EVP_sm3(), nullptr),
            1);
  return std::string(reinterpret_cast<char*>(out), len);
}

TEST(Sm2CodecTest, PublicKeyRoundTrip) {
  EvpPkeyPtr key = NewSm2Key();
  ASSERT_NE(key, nullptr);
  ECCrefPublicKey ref;
  ASSERT_TRUE(Sm2PublicKeyToRef(key.get(), &ref).ok());
  EXPECT_EQ(ref.bits, 256u);
  for (size_t i = 0; i < SDF_SM2_OFFSET; ++i) {
    EXPECT_EQ(ref.x[i], 0);
    EXPECT_EQ(ref.y[i], 0);
  }
  absl::StatusOr<EvpPkeyPtr> back = Sm2PublicKeyFromRef(ref);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(EVP_PKEY_eq(back->get(), key.get()), 1);
}

TEST(Sm2CodecTest, RejectsBadPublicKeys) {
  EvpPkeyPtr key = NewSm2Key();
  ECCrefPublicKey ref;
  ASSERT_TRUE(Sm2PublicKeyToRef(key.get(), &ref).ok());

  ECCrefPublicKey bad = ref;
  bad.bits = 512;
  EXPECT_FALSE(Sm2PublicKeyFromRef(bad).ok());
  bad = ref;
  bad.x[0] = 1;  // beyond 256 bits
  EXPECT_FALSE(Sm2PublicKeyFromRef(bad).ok());
  bad = ref;
  bad.y[63] ^= 1;  // off the curve
  EXPECT_FALSE(Sm2PublicKeyFromRef(bad).ok());

  EvpPkeyPtr p256(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  EXPECT_FALSE(Sm2PublicKeyToRef(p256.get(), &ref).ok());
}

TEST(Sm2CodecTest, SignatureRoundTripAndZ) {
  EvpPkeyPtr key = NewSm2Key();
  ECCrefPublicKey ref;
  ASSERT_TRUE(Sm2PublicKeyToRef(key.get(), &ref).ok());
  const std::string message = "interop message";

  // OpenSSL signs the message with the default ID...
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit(md.get(), &pctx, EVP_sm3(), nullptr, key.get()),
            1);
  ASSERT_EQ(EVP_PKEY_CTX_set1_id(pctx, kSm2DefaultId, strlen(kSm2DefaultId)),
            1);
  size_t der_len = 0;
  ASSERT_EQ(
      EVP_DigestSign(md.get(), nullptr, &der_len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()),
      1);
  std::string der(der_len, '\0');
  ASSERT_EQ(
      EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()),
                     &der_len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()),
      1);
  der.resize(der_len);

  // ...and the signature verifies over e = SM3(Z || M) computed from Sm2Z.
  absl::StatusOr<std::string> z = Sm2Z(ref, kSm2DefaultId);
  ASSERT_TRUE(z.ok()) << z.status();
  const std::string e = Sm3(*z + message);
  ECCSignature sig;
  ASSERT_TRUE(SignatureFromDer(der, &sig).ok());
  absl::StatusOr<std::string> der_again = SignatureToDer(sig);
  ASSERT_TRUE(der_again.ok());
  EXPECT_EQ(*der_again, der);
  EvpPkeyCtxPtr vctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_verify_init(vctx.get()), 1);
  EXPECT_EQ(
      EVP_PKEY_verify(
          vctx.get(), reinterpret_cast<const unsigned char*>(der_again->data()),
          der_again->size(), reinterpret_cast<const unsigned char*>(e.data()),
          e.size()),
      1);

  // Another ID gives another Z.
  absl::StatusOr<std::string> other = Sm2Z(ref, "alice@example.com");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *z);
  EXPECT_FALSE(Sm2Z(ref, "").ok());
  EXPECT_FALSE(Sm2Z(ref, std::string(kSm2MaxIdBytes + 1, 'a')).ok());
}

TEST(Sm2CodecTest, RejectsBadSignatures) {
  ECCSignature sig;
  EXPECT_FALSE(SignatureFromDer("", &sig).ok());
  EXPECT_FALSE(SignatureFromDer("\x30\x00", &sig).ok());
  // SEQUENCE { INTEGER 1, INTEGER 2 } followed by a stray byte.
  EXPECT_TRUE(
      SignatureFromDer(std::string("\x30\x06\x02\x01\x01\x02\x01\x02", 8), &sig)
          .ok());
  EXPECT_EQ(sig.r[63], 1);
  EXPECT_EQ(sig.s[63], 2);
  EXPECT_FALSE(SignatureFromDer(
                   std::string("\x30\x06\x02\x01\x01\x02\x01\x02\x00", 9), &sig)
                   .ok());
  // Negative r.
  EXPECT_FALSE(
      SignatureFromDer(std::string("\x30\x06\x02\x01\xff\x02\x01\x02", 8), &sig)
          .ok());
  std::memset(&sig, 0, sizeof(sig));
  sig.r[0] = 1;
  EXPECT_FALSE(SignatureToDer(sig).ok());
}

TEST(Sm2CodecTest, CipherRoundTripWithOpenSsl) {
  EvpPkeyPtr key = NewSm2Key();
  const std::string plain = "a session key, or anything else";
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_encrypt_init(ctx.get()), 1);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(plain.data());
  ASSERT_EQ(EVP_PKEY_encrypt(ctx.get(), nullptr, &len, in, plain.size()), 1);
  std::string der(len, '\0');
  ASSERT_EQ(
      EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(der.data()),
                       &len, in, plain.size()),
      1);
  der.resize(len);

  absl::StatusOr<EccCipherBuffer> cipher = CipherFromDer(der);
  ASSERT_TRUE(cipher.ok()) << cipher.status();
  EXPECT_EQ(cipher->get()->L, plain.size());
  absl::StatusOr<std::string> back = CipherToDer(*cipher->get(), 4096);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, der);

  // Too little room behind C, and L out of bounds.
  EccCipherBuffer small(plain.size() - 1);
  EXPECT_FALSE(CipherFromDer(der, small.c_capacity(), small.get()).ok());
  EXPECT_FALSE(CipherToDer(*cipher->get(), plain.size() - 1).ok());
  cipher->get()->L = 0;
  EXPECT_FALSE(CipherToDer(*cipher->get(), 4096).ok());
}

TEST(Sm2CodecTest, RejectsMalformedCiphertexts) {
  EXPECT_FALSE(CipherFromDer("").ok());
  EXPECT_FALSE(CipherFromDer("garbage").ok());
  // SEQUENCE { INTEGER 1, INTEGER 1, OCTET STRING (31 bytes), OCTET STRING }
  std::string seq = std::string("\x02\x01\x01\x02\x01\x01", 6) +
                    std::string("\x04\x1f", 2) + std::string(31, 'h') +
                    std::string("\x04\x01\x00", 3);
  std::string der = std::string("\x30", 1) +
                    std::string(1, static_cast<char>(seq.size())) + seq;
  EXPECT_FALSE(CipherFromDer(der).ok());  // hash is not 32 bytes
  seq = std::string("\x02\x01\x01\x02\x01\x01", 6) +
        std::string("\x04\x20", 2) + std::string(32, 'h') +
        std::string("\x04\x01\x00", 3);
  der = std::string("\x30", 1) + std::string(1, static_cast<char>(seq.size())) +
        seq;
  EXPECT_TRUE(CipherFromDer(der).ok());
  EXPECT_FALSE(CipherFromDer(der + std::string(1, '\0')).ok());  // trailing
  seq = std::string("\x02\x01\x01\x04\x01\x01", 6) +
        std::string("\x04\x20", 2) + std::string(32, 'h') +
        std::string("\x04\x01\x00", 3);
  der = std::string("\x30", 1) + std::string(1, static_cast<char>(seq.size())) +
        seq;
  EXPECT_FALSE(CipherFromDer(der).ok());  // y is not an INTEGER
}

}  // namespace
}  // namespace hsmd::softsdf
