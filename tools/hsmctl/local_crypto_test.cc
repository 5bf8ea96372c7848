#include "tools/hsmctl/local_crypto.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/openssl_ptr.h"
#include "common/sm2.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/hsmctl/exit_codes.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Keys generated once: RSA generation is the slow part of this test.
struct Keys {
  EvpPkeyPtr rsa;
  EvpPkeyPtr p256;
  EvpPkeyPtr p384;
  EvpPkeyPtr ed25519;
  EvpPkeyPtr sm2;
};

const Keys& TestKeys() {
  static const Keys* keys = [] {
    auto* k = new Keys;
    k->rsa.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    k->p256.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    k->p384.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    k->ed25519.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    k->sm2.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    return k;
  }();
  return *keys;
}

// The public half only, as hsmd would return it (DER SPKI) and hsmctl parses.
EvpPkeyPtr PublicOnly(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  auto parsed = ParsePublicKeyDer(spki);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return std::move(parsed).value();
}

std::string Digest(const char* md_name, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EvpMdPtr md(EVP_MD_fetch(nullptr, md_name, nullptr));
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), out, &len, md.get(), nullptr),
            1);
  return std::string(reinterpret_cast<char*>(out), len);
}

// Signs `tbs` (a digest, or a raw DigestInfo when md_name is null) the way an
// HSM would, with OpenSSL and the private key.
std::string SignDigest(EVP_PKEY* key, const char* md_name, int padding,
                       const std::string& tbs, int salt_len = -1,
                       const char* mgf1_name = nullptr) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  EXPECT_EQ(EVP_PKEY_sign_init(ctx.get()), 1);
  EvpMdPtr md(md_name != nullptr ? EVP_MD_fetch(nullptr, md_name, nullptr)
                                 : nullptr);
  if (padding != 0) {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), padding), 1);
  }
  if (md != nullptr) {
    EXPECT_EQ(EVP_PKEY_CTX_set_signature_md(ctx.get(), md.get()), 1);
  }
  if (padding == RSA_PKCS1_PSS_PADDING) {
    EvpMdPtr mgf1(EVP_MD_fetch(nullptr, mgf1_name, nullptr));
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1.get()), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), salt_len), 1);
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(tbs.data());
  EXPECT_EQ(EVP_PKEY_sign(ctx.get(), nullptr, &len, in, tbs.size()), 1);
  std::string sig(len, '\0');
  EXPECT_EQ(
      EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                    &len, in, tbs.size()),
      1);
  sig.resize(len);
  return sig;
}

SignOptions Options(const std::string& alg, bool digest_input = false,
                    absl::optional<std::string> hash = absl::nullopt,
                    absl::optional<std::string> id = absl::nullopt) {
  SignFlags flags;
  flags.alg = alg;
  flags.digest_input = digest_input;
  flags.hash = std::move(hash);
  flags.id = std::move(id);
  auto parsed = ParseSignOptions(flags);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return *parsed;
}

std::string Tampered(std::string s) {
  s[s.size() / 2] ^= 0x01;
  return s;
}

const std::string kMessage = "the message hsmctl signs";

TEST(VerifySignatureTest, RsaPkcs1MessageAndDigest) {
  EVP_PKEY* priv = TestKeys().rsa.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  const std::string digest = Digest("SHA384", kMessage);
  const std::string sig = SignDigest(priv, "SHA384", RSA_PKCS1_PADDING, digest);
  EXPECT_TRUE(
      *VerifySignature(pub.get(), Options("rsa-pkcs1-sha384"), kMessage, sig));
  EXPECT_TRUE(*VerifySignature(pub.get(), Options("rsa-pkcs1-sha384", true),
                               digest, sig));
  EXPECT_FALSE(*VerifySignature(pub.get(), Options("rsa-pkcs1-sha384"),
                                kMessage + "!", sig));
  EXPECT_FALSE(*VerifySignature(pub.get(), Options("rsa-pkcs1-sha384"),
                                kMessage, Tampered(sig)));
  // Right key, wrong hash.
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("rsa-pkcs1-sha256"), kMessage, sig));
  // Garbage of the wrong length is a mismatch, not an error.
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("rsa-pkcs1"), kMessage, "short"));
}

TEST(VerifySignatureTest, RsaPkcs1RawDigestInfo) {
  EVP_PKEY* priv = TestKeys().rsa.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  // A DER DigestInfo as scripts/sign-file produces: SHA-256 prefix + digest.
  const std::string prefix(
      "\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00"
      "\x04\x20",
      19);
  const std::string digest_info = prefix + Digest("SHA256", kMessage);
  const std::string sig =
      SignDigest(priv, nullptr, RSA_PKCS1_PADDING, digest_info);
  SignOptions raw = Options("rsa-pkcs1", true, "none");
  EXPECT_TRUE(*VerifySignature(pub.get(), raw, digest_info, sig));
  EXPECT_FALSE(*VerifySignature(pub.get(), raw, Tampered(digest_info), sig));
  // The same signature is a valid sha256 PKCS#1 signature of the message.
  EXPECT_TRUE(
      *VerifySignature(pub.get(), Options("rsa-pkcs1-sha256"), kMessage, sig));
}

TEST(VerifySignatureTest, RsaPssSaltModes) {
  EVP_PKEY* priv = TestKeys().rsa.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  const std::string digest = Digest("SHA256", kMessage);
  const std::string sig_digest_salt =
      SignDigest(priv, "SHA256", RSA_PKCS1_PSS_PADDING, digest, 32, "SHA256");
  const std::string sig_max_salt =
      SignDigest(priv, "SHA256", RSA_PKCS1_PSS_PADDING, digest,
                 RSA_PSS_SALTLEN_MAX, "SHA256");

  EXPECT_TRUE(*VerifySignature(pub.get(), Options("rsa-pss"), kMessage,
                               sig_digest_salt));
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("rsa-pss"), kMessage, sig_max_salt));
  SignFlags max_flags;
  max_flags.alg = "rsa-pss";
  max_flags.salt_len = "max";
  EXPECT_TRUE(*VerifySignature(pub.get(), *ParseSignOptions(max_flags),
                               kMessage, sig_max_salt));
  max_flags.salt_len = "222";
  EXPECT_TRUE(*VerifySignature(pub.get(), *ParseSignOptions(max_flags),
                               kMessage, sig_max_salt));
  max_flags.salt_len = "auto";
  SignOptions any = *ParseSignOptions(max_flags);
  EXPECT_TRUE(*VerifySignature(pub.get(), any, kMessage, sig_max_salt));
  EXPECT_TRUE(*VerifySignature(pub.get(), any, kMessage, sig_digest_salt));

  // MGF1 hash differing from the message hash.
  const std::string sig_mgf1 =
      SignDigest(priv, "SHA256", RSA_PKCS1_PSS_PADDING, digest, 32, "SHA1");
  SignFlags mgf1;
  mgf1.alg = "rsa-pss";
  mgf1.mgf1 = "sha1";
  EXPECT_TRUE(
      *VerifySignature(pub.get(), *ParseSignOptions(mgf1), kMessage, sig_mgf1));
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("rsa-pss"), kMessage, sig_mgf1));
}

TEST(VerifySignatureTest, Ecdsa) {
  for (EVP_PKEY* priv : {TestKeys().p256.get(), TestKeys().p384.get()}) {
    EvpPkeyPtr pub = PublicOnly(priv);
    const std::string digest = Digest("SHA384", kMessage);
    const std::string sig = SignDigest(priv, "SHA384", 0, digest);
    EXPECT_TRUE(
        *VerifySignature(pub.get(), Options("ecdsa-sha384"), kMessage, sig));
    EXPECT_TRUE(*VerifySignature(pub.get(), Options("ecdsa", true, "sha384"),
                                 digest, sig));
    EXPECT_FALSE(*VerifySignature(pub.get(), Options("ecdsa-sha384"), kMessage,
                                  Tampered(sig)));
    EXPECT_FALSE(*VerifySignature(pub.get(), Options("ecdsa-sha384"), kMessage,
                                  "not DER"));
  }
}

TEST(VerifySignatureTest, Ed25519) {
  EVP_PKEY* priv = TestKeys().ed25519.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, priv), 1);
  std::string sig(64, '\0');
  size_t len = sig.size();
  ASSERT_EQ(EVP_DigestSign(
                ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                reinterpret_cast<const unsigned char*>(kMessage.data()),
                kMessage.size()),
            1);
  EXPECT_TRUE(*VerifySignature(pub.get(), Options("ed25519"), kMessage, sig));
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("ed25519"), kMessage, Tampered(sig)));
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("ed25519"), kMessage + ".", sig));
}

TEST(VerifySignatureTest, AlgorithmMustFitKey) {
  EvpPkeyPtr rsa = PublicOnly(TestKeys().rsa.get());
  EvpPkeyPtr ec = PublicOnly(TestKeys().p256.get());
  EvpPkeyPtr ed = PublicOnly(TestKeys().ed25519.get());
  auto ecdsa_on_rsa = VerifySignature(rsa.get(), Options("ecdsa"), "m", "s");
  EXPECT_EQ(ExitCodeFor(ecdsa_on_rsa.status()), kExitUsage);
  EXPECT_THAT(ecdsa_on_rsa.status().message(),
              HasSubstr("ecdsa sha256 cannot be used with an RSA key"));
  EXPECT_FALSE(VerifySignature(ec.get(), Options("rsa-pss"), "m", "s").ok());
  EXPECT_FALSE(VerifySignature(ed.get(), Options("ecdsa"), "m", "s").ok());
  EXPECT_FALSE(VerifySignature(ec.get(), Options("ed25519"), "m", "s").ok());
}

// An SM2 signature by OpenSSL itself (Z and e from `id`).
std::string OpenSslSm2Sign(EVP_PKEY* key, const std::string& id,
                           const std::string& message) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit_ex(ctx.get(), &pctx, "SM3", nullptr, nullptr,
                                  key, nullptr),
            1);
  EXPECT_EQ(EVP_PKEY_CTX_set1_id(pctx, id.data(), id.size()), 1);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(message.data());
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, in, message.size()), 1);
  std::string sig(len, '\0');
  EXPECT_EQ(
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &len, in, message.size()),
      1);
  sig.resize(len);
  return sig;
}

TEST(VerifySignatureTest, Sm2MessageWithDefaultAndOtherIds) {
  EVP_PKEY* priv = TestKeys().sm2.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  const std::string sig = OpenSslSm2Sign(priv, "1234567812345678", kMessage);
  EXPECT_TRUE(*VerifySignature(pub.get(), Options("sm2"), kMessage, sig));
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("sm2"), kMessage, Tampered(sig)));
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("sm2"), kMessage + ".", sig));
  // The ID is part of what is signed.
  EXPECT_FALSE(*VerifySignature(
      pub.get(), Options("sm2", false, absl::nullopt, "alice"), kMessage, sig));
  const std::string alice = OpenSslSm2Sign(priv, "alice", kMessage);
  EXPECT_TRUE(*VerifySignature(
      pub.get(), Options("sm2-sm3", false, "sm3", "alice"), kMessage, alice));
  EXPECT_FALSE(*VerifySignature(pub.get(), Options("sm2"), kMessage, alice));
  // Garbage is a mismatch, not an error.
  EXPECT_FALSE(*VerifySignature(pub.get(), Options("sm2"), kMessage, "junk"));
}

TEST(VerifySignatureTest, Sm2DigestInput) {
  EVP_PKEY* priv = TestKeys().sm2.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  // e as hsmd receives it: OpenSSL's signature over the message verifies as
  // a signature over e.
  const std::string sig = OpenSslSm2Sign(priv, "1234567812345678", kMessage);
  absl::StatusOr<std::string> e =
      Sm2Digest(pub.get(), "1234567812345678", kMessage);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(*VerifySignature(pub.get(), Options("sm2", true), *e, sig));
  EXPECT_FALSE(
      *VerifySignature(pub.get(), Options("sm2", true), Tampered(*e), sig));
  absl::StatusOr<bool> short_e =
      VerifySignature(pub.get(), Options("sm2", true), "short", sig);
  EXPECT_EQ(ExitCodeFor(short_e.status()), kExitUsage);
  EXPECT_THAT(short_e.status().message(),
              HasSubstr("the input is 5 bytes but sm2 takes e = SM3(Z || M), "
                        "32 bytes"));
}

TEST(VerifySignatureTest, Sm2OnlyWithSm2Keys) {
  EvpPkeyPtr sm2 = PublicOnly(TestKeys().sm2.get());
  EvpPkeyPtr ec = PublicOnly(TestKeys().p256.get());
  auto sm2_on_ec = VerifySignature(ec.get(), Options("sm2"), "m", "s");
  EXPECT_EQ(ExitCodeFor(sm2_on_ec.status()), kExitUsage);
  EXPECT_THAT(sm2_on_ec.status().message(),
              HasSubstr("sm2 sm3 cannot be used with an EC key"));
  auto ecdsa_on_sm2 = VerifySignature(sm2.get(), Options("ecdsa"), "m", "s");
  EXPECT_EQ(ExitCodeFor(ecdsa_on_sm2.status()), kExitUsage);
  EXPECT_THAT(ecdsa_on_sm2.status().message(),
              HasSubstr("ecdsa sha256 cannot be used with an SM2 key"));
}

TEST(CheckDigestInputTest, LengthMustMatchHash) {
  EXPECT_TRUE(
      CheckDigestInput(Options("ecdsa", true), std::string(32, 'd')).ok());
  absl::Status wrong =
      CheckDigestInput(Options("ecdsa", true), std::string(48, 'd'));
  EXPECT_EQ(ExitCodeFor(wrong), kExitUsage);
  EXPECT_THAT(wrong.message(),
              HasSubstr("the input is 48 bytes but a sha256 digest is 32"));
  // Message input: any length.
  EXPECT_TRUE(CheckDigestInput(Options("ecdsa"), "x").ok());
  // Raw DigestInfo: any non-empty length.
  EXPECT_TRUE(CheckDigestInput(Options("rsa-pkcs1", true, "none"), "abc").ok());
  EXPECT_FALSE(CheckDigestInput(Options("rsa-pkcs1", true, "none"), "").ok());
}

// Decrypts with the private key, as the HSM would.
std::string DecryptLocally(EVP_PKEY* key, const v1::DecryptionAlgorithm& alg,
                           const std::string& ciphertext) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  EXPECT_EQ(EVP_PKEY_decrypt_init(ctx.get()), 1);
  if (alg.has_rsa_oaep()) {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING),
              1);
    EvpMdPtr md(EVP_MD_fetch(
        nullptr, OpenSslDigestName(alg.rsa_oaep().hash()).c_str(), nullptr));
    EvpMdPtr mgf1(EVP_MD_fetch(
        nullptr, OpenSslDigestName(alg.rsa_oaep().mgf1_hash()).c_str(),
        nullptr));
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md.get()), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1.get()), 1);
    if (!alg.rsa_oaep().label().empty()) {
      void* label = OPENSSL_memdup(alg.rsa_oaep().label().data(),
                                   alg.rsa_oaep().label().size());
      EXPECT_EQ(EVP_PKEY_CTX_set0_rsa_oaep_label(
                    ctx.get(), label,
                    static_cast<int>(alg.rsa_oaep().label().size())),
                1);
    }
  } else {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING), 1);
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(ciphertext.data());
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, ciphertext.size()) != 1) {
    return "<size query failed>";
  }
  std::string out(len, '\0');
  if (EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &len, in, ciphertext.size()) != 1) {
    return "<decrypt failed>";
  }
  out.resize(len);
  return out;
}

TEST(EncryptWithPublicKeyTest, RoundTripsWithPrivateKey) {
  EVP_PKEY* priv = TestKeys().rsa.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  const std::string secret = "a session key";
  CipherFlags pkcs1;
  pkcs1.alg = "rsa-pkcs1";
  CipherFlags oaep;
  oaep.alg = "rsa-oaep-sha256";
  oaep.label_hex = "6c6162656c";
  for (const CipherFlags& flags : {pkcs1, oaep}) {
    v1::DecryptionAlgorithm alg = *ParseCipherAlgorithm(flags);
    auto ct = EncryptWithPublicKey(pub.get(), alg, secret);
    ASSERT_TRUE(ct.ok()) << ct.status();
    EXPECT_EQ(ct->size(), 256u);
    EXPECT_EQ(DecryptLocally(priv, alg, *ct), secret) << flags.alg;
  }
  // The label is bound: decrypting with another label fails.
  v1::DecryptionAlgorithm labelled = *ParseCipherAlgorithm(oaep);
  auto ct = EncryptWithPublicKey(pub.get(), labelled, secret);
  ASSERT_TRUE(ct.ok());
  labelled.mutable_rsa_oaep()->set_label("other");
  EXPECT_EQ(DecryptLocally(priv, labelled, *ct), "<decrypt failed>");
}

TEST(EncryptWithPublicKeyTest, Errors) {
  CipherFlags pkcs1;
  pkcs1.alg = "rsa-pkcs1";
  v1::DecryptionAlgorithm alg = *ParseCipherAlgorithm(pkcs1);
  EvpPkeyPtr ec = PublicOnly(TestKeys().p256.get());
  auto on_ec = EncryptWithPublicKey(ec.get(), alg, "x");
  EXPECT_EQ(ExitCodeFor(on_ec.status()), kExitUsage);
  EXPECT_THAT(on_ec.status().message(), HasSubstr("an EC key"));
  EvpPkeyPtr rsa = PublicOnly(TestKeys().rsa.get());
  auto too_long = EncryptWithPublicKey(rsa.get(), alg, std::string(300, 'x'));
  EXPECT_EQ(ExitCodeFor(too_long.status()), kExitUsage);
  EXPECT_THAT(too_long.status().message(), HasSubstr("cannot encrypt 300"));
}

// OpenSSL's own SM2 decryption, as `openssl pkeyutl -decrypt` does it.
std::string Sm2DecryptLocally(EVP_PKEY* key, const std::string& ciphertext) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  EXPECT_EQ(EVP_PKEY_decrypt_init(ctx.get()), 1);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(ciphertext.data());
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, ciphertext.size()) != 1) {
    return "<size query failed>";
  }
  std::string out(len, '\0');
  if (EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &len, in, ciphertext.size()) != 1) {
    return "<decrypt failed>";
  }
  out.resize(len);
  return out;
}

TEST(EncryptWithPublicKeyTest, Sm2RoundTripsWithPrivateKey) {
  EVP_PKEY* priv = TestKeys().sm2.get();
  EvpPkeyPtr pub = PublicOnly(priv);
  CipherFlags flags;
  flags.alg = "sm2";
  const v1::DecryptionAlgorithm alg = *ParseCipherAlgorithm(flags);
  for (const std::string& secret : {std::string("k"), std::string(1000, 's')}) {
    auto ct = EncryptWithPublicKey(pub.get(), alg, secret);
    ASSERT_TRUE(ct.ok()) << ct.status();
    // DER SEQUENCE { x, y, hash (32), ciphertext }: C1 || C3 || C2.
    EXPECT_EQ(static_cast<unsigned char>((*ct)[0]), 0x30);
    EXPECT_GT(ct->size(), secret.size() + 32 + 64);
    EXPECT_EQ(Sm2DecryptLocally(priv, *ct), secret);
  }
}

TEST(EncryptWithPublicKeyTest, Sm2Errors) {
  CipherFlags flags;
  flags.alg = "sm2";
  const v1::DecryptionAlgorithm sm2 = *ParseCipherAlgorithm(flags);
  EvpPkeyPtr rsa = PublicOnly(TestKeys().rsa.get());
  auto on_rsa = EncryptWithPublicKey(rsa.get(), sm2, "x");
  EXPECT_EQ(ExitCodeFor(on_rsa.status()), kExitUsage);
  EXPECT_THAT(on_rsa.status().message(),
              HasSubstr("SM2 encryption cannot be used with an RSA key"));
  EvpPkeyPtr sm2_key = PublicOnly(TestKeys().sm2.get());
  auto empty = EncryptWithPublicKey(sm2_key.get(), sm2, "");
  EXPECT_EQ(ExitCodeFor(empty.status()), kExitUsage);
  EXPECT_THAT(empty.status().message(), HasSubstr("the plaintext is empty"));
  flags.alg = "rsa-pkcs1";
  auto rsa_on_sm2 =
      EncryptWithPublicKey(sm2_key.get(), *ParseCipherAlgorithm(flags), "x");
  EXPECT_EQ(ExitCodeFor(rsa_on_sm2.status()), kExitUsage);
  EXPECT_THAT(rsa_on_sm2.status().message(),
              HasSubstr("RSA encryption cannot be used with an SM2 key"));
  flags.alg = "sm4-ecb";
  auto sm4 =
      EncryptWithPublicKey(sm2_key.get(), *ParseCipherAlgorithm(flags), "x");
  EXPECT_EQ(ExitCodeFor(sm4.status()), kExitUsage);
  EXPECT_THAT(sm4.status().message(), HasSubstr("sm4 is a symmetric cipher"));
}

TEST(PublicKeyOfTest, KeysWithAndWithoutPublicHalf) {
  v1::Key sm4;
  sm4.set_key_type(v1::KEY_TYPE_SM4);
  sm4.set_size_bits(128);
  sm4.set_uri("sdf:device=soft0;index=1;usage=sm4");
  absl::StatusOr<EvpPkeyPtr> none = PublicKeyOf(sm4);
  EXPECT_EQ(ExitCodeFor(none.status()), kExitUsage);
  EXPECT_EQ(none.status().message(),
            "sdf:device=soft0;index=1;usage=sm4 is SM4-128, a key without a "
            "public half");
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(TestKeys().sm2.get(), &der);
  v1::Key sm2;
  sm2.set_public_key_der(std::string(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  absl::StatusOr<EvpPkeyPtr> key = PublicKeyOf(sm2);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(IsSm2Key(key->get()));
}

TEST(PublicKeyDerToPemTest, PemAndBadDer) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(TestKeys().p256.get(), &der);
  std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  auto pem = PublicKeyDerToPem(spki);
  ASSERT_TRUE(pem.ok());
  EXPECT_THAT(*pem, StartsWith("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_FALSE(PublicKeyDerToPem("junk").ok());
  EXPECT_FALSE(ParsePublicKeyDer("").ok());
}

TEST(PublicKeyDerFromFileTest, PemDerAndJunk) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(TestKeys().p256.get(), &der);
  std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  absl::StatusOr<std::string> pem = PublicKeyDerToPem(spki);
  ASSERT_TRUE(pem.ok());
  // PEM and DER give the same SubjectPublicKeyInfo.
  absl::StatusOr<std::string> from_pem = PublicKeyDerFromFile("--peer", *pem);
  ASSERT_TRUE(from_pem.ok()) << from_pem.status();
  EXPECT_EQ(*from_pem, spki);
  absl::StatusOr<std::string> from_der = PublicKeyDerFromFile("--peer", spki);
  ASSERT_TRUE(from_der.ok()) << from_der.status();
  EXPECT_EQ(*from_der, spki);
  for (const std::string& junk :
       {std::string("junk"), std::string(),
        std::string(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
        spki.substr(0, spki.size() - 1)}) {
    absl::StatusOr<std::string> bad = PublicKeyDerFromFile("--peer", junk);
    ASSERT_FALSE(bad.ok());
    EXPECT_THAT(bad.status().message(), HasSubstr("--peer: not a public key"));
    EXPECT_EQ(ExitCodeFor(bad.status()), kExitUsage);
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(SummarizeCertificateTest, SelfSigned) {
  EVP_PKEY* key = TestKeys().p256.get();
  X509Ptr cert(X509_new());
  ASSERT_EQ(X509_set_version(cert.get(), 2), 1);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>("hsmd test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key);
  ASSERT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  std::string cert_der(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);

  auto summary = SummarizeCertificate(cert_der);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->subject, "CN=hsmd test");
  EXPECT_EQ(summary->issuer, "CN=hsmd test");
  EXPECT_THAT(summary->not_after, HasSubstr("GMT"));
  EXPECT_THAT(summary->pem, StartsWith("-----BEGIN CERTIFICATE-----\n"));
  EXPECT_FALSE(SummarizeCertificate("junk").ok());
}

}  // namespace
}  // namespace hsmd::hsmctl
