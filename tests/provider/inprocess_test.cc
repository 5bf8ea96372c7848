// hsmproxy in-process against the fake hsmd: every operation family, the
// parameters OpenSSL callers use, errors, and software keys next to it;
// SM2 keys on the fake's SDF device.
// Signatures are always checked with the public key in a library context
// that has only the default provider.
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy_provider/uri_pem.h"
#include "tests/provider/fake_hsmd.h"
#include "tests/provider/inprocess_provider.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {
namespace {

using ::testing::HasSubstr;

std::string Uri(const std::string& label, const std::string& type = "private") {
  return absl::StrCat("pkcs11:token=demo;object=", label, ";type=", type);
}

const std::string kMessage = "the quick brown fox jumps over the lazy dog";

class InProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::shared_ptr<FakeHsmd>> fake = FakeHsmd::New();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = new std::shared_ptr<FakeHsmd>(*fake);
    verify_libctx_ = OSSL_LIB_CTX_new();
    verify_default_ = OSSL_PROVIDER_load(verify_libctx_, "default");
  }
  static void TearDownTestSuite() {
    OSSL_PROVIDER_unload(verify_default_);
    OSSL_LIB_CTX_free(verify_libctx_);
    delete fake_;
  }

  void SetUp() override {
    fake()->set_unavailable(false);
    absl::StatusOr<std::unique_ptr<InProcessProvider>> p =
        InProcessProvider::New(*fake_);
    ASSERT_TRUE(p.ok()) << p.status();
    provider_ = std::move(*p);
    ERR_clear_error();
  }

  static FakeHsmd* fake() { return fake_->get(); }
  OSSL_LIB_CTX* libctx() { return provider_->libctx(); }

  EvpPkeyPtr HsmKey(const std::string& label) {
    absl::StatusOr<EvpPkeyPtr> key =
        LoadKey(libctx(), Uri(label), OSSL_STORE_INFO_PKEY);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? std::move(*key) : nullptr;
  }

  // The key's public half, in the default-only library context.
  EvpPkeyPtr DefaultPublicKey(const std::string& label) {
    return PublicKeyFromSpki(verify_libctx_,
                             fake()->key(label).public_key_der());
  }

  void ExpectDigestSignVerifies(const std::string& label, const char* md,
                                const CtxSetup& setup = nullptr) {
    SCOPED_TRACE(absl::StrCat(label, " ", md == nullptr ? "" : md));
    EvpPkeyPtr key = HsmKey(label);
    ASSERT_NE(key, nullptr);
    absl::StatusOr<std::string> signature =
        DigestSign(libctx(), key.get(), md, kMessage, setup);
    ASSERT_TRUE(signature.ok()) << signature.status();
    EvpPkeyPtr pub = DefaultPublicKey(label);
    absl::StatusOr<bool> ok = DigestVerify(verify_libctx_, pub.get(), md,
                                           kMessage, *signature, setup);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_TRUE(*ok) << "signature does not verify with the default provider";
    // And hsmproxy's own (local) verification agrees.
    ok = DigestVerify(libctx(), key.get(), md, kMessage, *signature, setup);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_TRUE(*ok);
    std::string tampered = *signature;
    tampered[tampered.size() / 2] ^= 0x01;
    ok = DigestVerify(verify_libctx_, pub.get(), md, kMessage, tampered, setup);
    ASSERT_TRUE(ok.ok());
    EXPECT_FALSE(*ok);
  }

  static std::shared_ptr<FakeHsmd>* fake_;
  static OSSL_LIB_CTX* verify_libctx_;
  static OSSL_PROVIDER* verify_default_;
  std::unique_ptr<InProcessProvider> provider_;
};

std::shared_ptr<FakeHsmd>* InProcessTest::fake_ = nullptr;
OSSL_LIB_CTX* InProcessTest::verify_libctx_ = nullptr;
OSSL_PROVIDER* InProcessTest::verify_default_ = nullptr;

// ---------------------------------------------------------------------------
// Store and keymgmt

TEST_F(InProcessTest, StoreFindsEachDemoKeyAsHsmproxyKey) {
  const struct {
    const char* label;
    const char* type;
    int bits;
  } kKeys[] = {{"rsa-2048", "RSA", 2048},
               {"ec-p256", "EC", 256},
               {"ec-p384", "EC", 384},
               {"ed25519", "ED25519", 256}};
  for (const auto& k : kKeys) {
    SCOPED_TRACE(k.label);
    EvpPkeyPtr key = HsmKey(k.label);
    ASSERT_NE(key, nullptr);
    EXPECT_TRUE(EVP_PKEY_is_a(key.get(), k.type));
    EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key.get())),
                 "hsmproxy");
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), k.bits);
    EXPECT_GT(EVP_PKEY_get_security_bits(key.get()), 0);
    EXPECT_GT(EVP_PKEY_get_size(key.get()), 0);
    // The public half equals hsmd's (a cross-provider comparison).
    EvpPkeyPtr pub = DefaultPublicKey(k.label);
    EXPECT_EQ(EVP_PKEY_eq(key.get(), pub.get()), 1);
    EXPECT_EQ(SpkiOf(key.get()), fake()->key(k.label).public_key_der());
  }
  EvpPkeyPtr ec = HsmKey("ec-p384");
  char group[64];
  size_t length = 0;
  ASSERT_EQ(EVP_PKEY_get_utf8_string_param(ec.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, sizeof(group), &length),
            1);
  EXPECT_STREQ(group, "secp384r1");
  char digest[64];
  ASSERT_GT(EVP_PKEY_get_default_digest_name(ec.get(), digest, sizeof(digest)),
            0);
  EXPECT_STREQ(digest, "SHA256");
}

TEST_F(InProcessTest, StoreWithoutTypeAndPublicAndCertificate) {
  // No type=: the private key comes first when a key is expected.
  absl::StatusOr<EvpPkeyPtr> key = LoadKey(
      libctx(), "pkcs11:token=demo;object=ec-p256", OSSL_STORE_INFO_PKEY);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key->get())),
               "hsmproxy");
  // Public keys are ordinary default-provider keys.
  absl::StatusOr<EvpPkeyPtr> pub =
      LoadKey(libctx(), Uri("ec-p256", "public"), OSSL_STORE_INFO_PUBKEY);
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(pub->get())),
               "default");
  EXPECT_EQ(EVP_PKEY_eq(key->get(), pub->get()), 1);

  absl::StatusOr<X509Ptr> cert =
      SelfSignedCertificate(key->get(), "SHA256", "ec-p256");
  ASSERT_TRUE(cert.ok()) << cert.status();
  unsigned char* der = nullptr;
  int der_length = i2d_X509(cert->get(), &der);
  fake()->set_certificate("ec-p256",
                          std::string(reinterpret_cast<char*>(der),
                                      static_cast<size_t>(der_length)));
  OPENSSL_free(der);
  absl::StatusOr<X509Ptr> loaded =
      LoadCertificate(libctx(), "pkcs11:token=demo;object=ec-p256;type=cert");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(X509_cmp(loaded->get(), cert->get()), 0);
  fake()->set_certificate("ec-p256", "");
}

TEST_F(InProcessTest, PublicKeyExportsToPemAndText) {
  EvpPkeyPtr key = HsmKey("rsa-2048");
  ASSERT_NE(key, nullptr);
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), key.get()), 1) << DrainErrors();
  ASSERT_EQ(EVP_PKEY_print_public(bio.get(), key.get(), 0, nullptr), 1)
      << DrainErrors();
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  std::string text(data, static_cast<size_t>(length));
  EXPECT_THAT(text, HasSubstr("-----BEGIN PUBLIC KEY-----"));
  EXPECT_THAT(text, HasSubstr("Modulus"));
  // The private key is never exported.
  BioPtr priv(BIO_new(BIO_s_mem()));
  EXPECT_NE(PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0,
                                     nullptr, nullptr),
            1);
  ERR_clear_error();
}

// ---------------------------------------------------------------------------
// Signatures

TEST_F(InProcessTest, RsaPkcs1DigestSignEachHash) {
  for (const char* md :
       {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512", "SHA3-256"}) {
    ExpectDigestSignVerifies("rsa-2048", md);
  }
}

TEST_F(InProcessTest, RsaPssSaltLengths) {
  for (int saltlen : {RSA_PSS_SALTLEN_DIGEST, RSA_PSS_SALTLEN_MAX,
                      RSA_PSS_SALTLEN_AUTO, 0, 20, 64}) {
    SCOPED_TRACE(saltlen);
    ExpectDigestSignVerifies("rsa-2048", "SHA256", [saltlen](EVP_PKEY_CTX* c) {
      return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(c, saltlen) > 0;
    });
  }
  // String forms, as `-pkeyopt rsa_pss_saltlen:max` sends them, and MGF1.
  ExpectDigestSignVerifies("rsa-2048", "SHA384", [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_ctrl_str(c, "rsa_padding_mode", "pss") > 0 &&
           EVP_PKEY_CTX_ctrl_str(c, "rsa_pss_saltlen", "max") > 0 &&
           EVP_PKEY_CTX_ctrl_str(c, "rsa_mgf1_md", "SHA1") > 0;
  });
}

TEST_F(InProcessTest, RsaPssSaltTooLongIsAClearError) {
  EvpPkeyPtr key = HsmKey("rsa-2048");
  absl::StatusOr<std::string> signature =
      DigestSign(libctx(), key.get(), "SHA256", kMessage, [](EVP_PKEY_CTX* c) {
        return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) > 0 &&
               EVP_PKEY_CTX_set_rsa_pss_saltlen(c, 300) > 0;
      });
  ASSERT_FALSE(signature.ok());
  EXPECT_THAT(signature.status().message(), HasSubstr("salt"));
}

TEST_F(InProcessTest, EcdsaAndEd25519DigestSign) {
  ExpectDigestSignVerifies("ec-p256", "SHA256");
  ExpectDigestSignVerifies("ec-p256", "SHA512");
  ExpectDigestSignVerifies("ec-p384", "SHA384");
  ExpectDigestSignVerifies("ec-p384", "SHA3-384");
  ExpectDigestSignVerifies("ed25519", nullptr);
}

// ECDSA digest signing with an HSM key defers the default-provider shadow
// context until parameters are set or read: both still work after Init, and
// digests are accepted or refused exactly as the default provider does.
TEST_F(InProcessTest, EcdsaDigestSignParametersAfterInit) {
  EvpPkeyPtr key = HsmKey("ec-p256");
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit_ex(ctx.get(), &pctx, "SHA256", libctx(),
                                  nullptr, key.get(), nullptr),
            1)
      << DrainErrors();
  char md[64] = "";
  OSSL_PARAM get[] = {
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, md, sizeof(md)),
      OSSL_PARAM_END,
  };
  ASSERT_EQ(EVP_PKEY_CTX_get_params(pctx, get), 1) << DrainErrors();
  EXPECT_TRUE(absl::string_view(md) == "SHA256" ||
              absl::string_view(md) == "SHA2-256")
      << md;
  // Changing the digest after Init stays refused.
  EXPECT_NE(EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha384()), 1);
  DrainErrors();
  size_t length = 0;
  const auto* tbs = reinterpret_cast<const unsigned char*>(kMessage.data());
  ASSERT_EQ(
      EVP_DigestSign(ctx.get(), nullptr, &length, tbs, kMessage.size()), 1);
  std::string sig(length, '\0');
  ASSERT_EQ(EVP_DigestSign(ctx.get(),
                           reinterpret_cast<unsigned char*>(sig.data()),
                           &length, tbs, kMessage.size()),
            1)
      << DrainErrors();
  sig.resize(length);
  EvpPkeyPtr pub = DefaultPublicKey("ec-p256");
  EXPECT_TRUE(*DigestVerify(verify_libctx_, pub.get(), "SHA256", kMessage, sig,
                            nullptr));

  EvpPkeyPtr software(
      EVP_PKEY_Q_keygen(verify_libctx_, nullptr, "EC", "P-256"));
  ASSERT_NE(software, nullptr);
  for (const char* digest : {"SHA1", "SHA224", "SHA512", "SHA3-256", "MD5",
                             "SM3", "SHAKE256"}) {
    SCOPED_TRACE(digest);
    EvpMdCtxPtr hsm(EVP_MD_CTX_new());
    EvpMdCtxPtr soft(EVP_MD_CTX_new());
    const int hsm_rc = EVP_DigestSignInit_ex(hsm.get(), nullptr, digest,
                                             libctx(), nullptr, key.get(),
                                             nullptr);
    const int soft_rc =
        EVP_DigestSignInit_ex(soft.get(), nullptr, digest, verify_libctx_,
                              nullptr, software.get(), nullptr);
    DrainErrors();
    EXPECT_EQ(hsm_rc == 1, soft_rc == 1);
  }
}

TEST_F(InProcessTest, PkeySignOfDigestsAndRawDigestInfo) {
  EvpPkeyPtr rsa = HsmKey("rsa-2048");
  EvpPkeyPtr rsa_pub = DefaultPublicKey("rsa-2048");
  std::string digest = Hash("SHA256", kMessage);
  auto with_md = [](const char* md) {
    return [md](EVP_PKEY_CTX* c) {
      return EVP_PKEY_CTX_set_signature_md(c, EVP_get_digestbyname(md)) > 0;
    };
  };
  // PKCS#1 v1.5 of a SHA-256 digest.
  absl::StatusOr<std::string> sig =
      PkeySign(libctx(), rsa.get(), digest, with_md("SHA256"));
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(*PkeyVerify(verify_libctx_, rsa_pub.get(), digest, *sig,
                          with_md("SHA256")));
  // Raw DigestInfo (no digest set), as scripts/sign-file signs.
  const unsigned char kSha256Prefix[] = {
      0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  std::string digest_info(reinterpret_cast<const char*>(kSha256Prefix),
                          sizeof(kSha256Prefix));
  digest_info += digest;
  absl::StatusOr<std::string> raw = PkeySign(libctx(), rsa.get(), digest_info);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, *sig) << "raw DigestInfo and SHA-256 PKCS#1 must agree";
  // TLS 1.0/1.1 MD5-SHA1 (36 bytes, no DigestInfo).
  std::string md5sha1 = Hash("MD5-SHA1", kMessage);
  absl::StatusOr<std::string> tls =
      PkeySign(libctx(), rsa.get(), md5sha1, with_md("MD5-SHA1"));
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(*PkeyVerify(verify_libctx_, rsa_pub.get(), md5sha1, *tls,
                          with_md("MD5-SHA1")));
  // ECDSA over a digest without a digest set.
  EvpPkeyPtr ec = HsmKey("ec-p384");
  std::string digest384 = Hash("SHA384", kMessage);
  absl::StatusOr<std::string> ecsig = PkeySign(libctx(), ec.get(), digest384);
  ASSERT_TRUE(ecsig.ok()) << ecsig.status();
  EvpPkeyPtr ec_pub = DefaultPublicKey("ec-p384");
  EXPECT_TRUE(*PkeyVerify(verify_libctx_, ec_pub.get(), digest384, *ecsig));
  // The wrong digest length for the set digest is refused.
  EXPECT_FALSE(
      PkeySign(libctx(), rsa.get(), digest384, with_md("SHA256")).ok());
  ERR_clear_error();
}

TEST_F(InProcessTest, SizeQueriesWithNullOutput) {
  for (const char* label : {"rsa-2048", "ec-p256", "ec-p384"}) {
    SCOPED_TRACE(label);
    EvpPkeyPtr key = HsmKey(label);
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    ASSERT_EQ(EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", libctx(),
                                    nullptr, key.get(), nullptr),
              1);
    ASSERT_EQ(EVP_DigestSignUpdate(ctx.get(), kMessage.data(), kMessage.size()),
              1);
    int calls = fake()->calls("Sign");
    size_t length = 0;
    ASSERT_EQ(EVP_DigestSignFinal(ctx.get(), nullptr, &length), 1);
    EXPECT_EQ(length, static_cast<size_t>(EVP_PKEY_get_size(key.get())));
    EXPECT_EQ(fake()->calls("Sign"), calls) << "a size query must not sign";
    std::string signature(length, '\0');
    ASSERT_EQ(EVP_DigestSignFinal(
                  ctx.get(), reinterpret_cast<unsigned char*>(signature.data()),
                  &length),
              1)
        << DrainErrors();
    EXPECT_LE(length, signature.size());
  }
  // A buffer below the maximum size is refused before hsmd is asked.
  EvpPkeyPtr rsa = HsmKey("rsa-2048");
  EvpPkeyCtxPtr pctx(EVP_PKEY_CTX_new_from_pkey(libctx(), rsa.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_sign_init(pctx.get()), 1);
  std::string digest = Hash("SHA256", kMessage);
  unsigned char small[100];
  size_t small_length = sizeof(small);
  EXPECT_NE(EVP_PKEY_sign(pctx.get(), small, &small_length,
                          reinterpret_cast<const unsigned char*>(digest.data()),
                          digest.size()),
            1);
  EXPECT_THAT(DrainErrors(), HasSubstr("output buffer too small"));
}

TEST_F(InProcessTest, DupctxMidStream) {
  for (const char* label : {"rsa-2048", "ec-p256"}) {
    SCOPED_TRACE(label);
    EvpPkeyPtr key = HsmKey(label);
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    ASSERT_EQ(EVP_DigestSignInit_ex(ctx.get(), &pctx, "SHA256", libctx(),
                                    nullptr, key.get(), nullptr),
              1);
    if (EVP_PKEY_is_a(key.get(), "RSA")) {
      ASSERT_GT(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 0);
    }
    ASSERT_EQ(EVP_DigestSignUpdate(ctx.get(), kMessage.data(), 10), 1);
    EvpMdCtxPtr copy(EVP_MD_CTX_new());
    ASSERT_EQ(EVP_MD_CTX_copy_ex(copy.get(), ctx.get()), 1) << DrainErrors();
    ASSERT_EQ(EVP_DigestSignUpdate(ctx.get(), kMessage.data() + 10,
                                   kMessage.size() - 10),
              1);
    ASSERT_EQ(EVP_DigestSignUpdate(copy.get(), "other", 5), 1);
    auto finish = [](EVP_MD_CTX* c) {
      size_t length = 0;
      EVP_DigestSignFinal(c, nullptr, &length);
      std::string sig(length, '\0');
      if (EVP_DigestSignFinal(c, reinterpret_cast<unsigned char*>(sig.data()),
                              &length) != 1) {
        return std::string();
      }
      sig.resize(length);
      return sig;
    };
    std::string sig1 = finish(ctx.get());
    std::string sig2 = finish(copy.get());
    ASSERT_FALSE(sig1.empty());
    ASSERT_FALSE(sig2.empty());
    EvpPkeyPtr pub = DefaultPublicKey(label);
    CtxSetup setup = nullptr;
    if (EVP_PKEY_is_a(key.get(), "RSA")) {
      setup = [](EVP_PKEY_CTX* c) {
        return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) > 0;
      };
    }
    EXPECT_TRUE(*DigestVerify(verify_libctx_, pub.get(), "SHA256", kMessage,
                              sig1, setup));
    EXPECT_TRUE(*DigestVerify(verify_libctx_, pub.get(), "SHA256",
                              kMessage.substr(0, 10) + "other", sig2, setup));
  }
}

TEST_F(InProcessTest, AlgorithmIdForCertificates) {
  for (const char* label : {"rsa-2048", "ec-p256", "ed25519"}) {
    SCOPED_TRACE(label);
    EvpPkeyPtr key = HsmKey(label);
    const char* md = absl::StrContains(label, "ed25519") ? nullptr : "SHA256";
    absl::StatusOr<X509Ptr> cert = SelfSignedCertificate(key.get(), md, label);
    ASSERT_TRUE(cert.ok()) << cert.status();
    EvpPkeyPtr pub = DefaultPublicKey(label);
    EXPECT_EQ(X509_verify(cert->get(), pub.get()), 1) << DrainErrors();
  }
}

// ---------------------------------------------------------------------------
// Decryption

TEST_F(InProcessTest, DecryptPkcs1AndOaep) {
  EvpPkeyPtr key = HsmKey("rsa-2048");
  EvpPkeyPtr pub = DefaultPublicKey("rsa-2048");
  const std::string secret = "a 32-byte session key, more or l";
  auto pkcs1 = [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0;
  };
  absl::StatusOr<std::string> ct =
      PkeyEncrypt(verify_libctx_, pub.get(), secret, pkcs1);
  ASSERT_TRUE(ct.ok()) << ct.status();
  absl::StatusOr<std::string> pt = PkeyDecrypt(libctx(), key.get(), *ct, pkcs1);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, secret);

  auto oaep = [](EVP_PKEY_CTX* c) {
    unsigned char* label =
        static_cast<unsigned char*>(OPENSSL_memdup("lbl", 3));
    return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha1()) > 0 &&
           EVP_PKEY_CTX_set0_rsa_oaep_label(c, label, 3) > 0;
  };
  ct = PkeyEncrypt(verify_libctx_, pub.get(), secret, oaep);
  ASSERT_TRUE(ct.ok()) << ct.status();
  pt = PkeyDecrypt(libctx(), key.get(), *ct, oaep);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, secret);
  // Default OAEP (SHA-1), and encryption through hsmproxy's key (local).
  auto oaep_default = [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) > 0;
  };
  ct = PkeyEncrypt(libctx(), key.get(), secret, oaep_default);
  ASSERT_TRUE(ct.ok()) << ct.status();
  pt = PkeyDecrypt(libctx(), key.get(), *ct, oaep_default);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, secret);

  // A corrupted ciphertext: an ordinary decrypt error, with no detail.
  std::string bad = *ct;
  bad[5] ^= 0x40;
  pt = PkeyDecrypt(libctx(), key.get(), bad, oaep_default);
  ASSERT_FALSE(pt.ok());
  EXPECT_THAT(pt.status().message(), HasSubstr("decryption failed"));
  EXPECT_THAT(pt.status().message(), ::testing::Not(HasSubstr("padding")));
}

// ---------------------------------------------------------------------------
// Key agreement (ECDH)

// A software key on `curve` in the default-only library context.
EvpPkeyPtr SoftwareEcKey(OSSL_LIB_CTX* libctx, const char* curve) {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(libctx, nullptr, "EC", curve));
}

TEST_F(InProcessTest, EcdhWithHsmKeyEqualsThePeersDerivation) {
  for (const char* label : {"ec-p256", "ec-p384"}) {
    SCOPED_TRACE(label);
    const char* curve = std::string(label) == "ec-p256" ? "P-256" : "P-384";
    EvpPkeyPtr key = HsmKey(label);
    ASSERT_NE(key, nullptr);
    EvpPkeyPtr peer = SoftwareEcKey(verify_libctx_, curve);
    ASSERT_NE(peer, nullptr);
    // The peer's public key as an application would load it.
    EvpPkeyPtr peer_public = PublicKeyFromSpki(libctx(), SpkiOf(peer.get()));
    const int derives = fake()->calls("Derive");
    absl::StatusOr<std::string> ours =
        PkeyDerive(libctx(), key.get(), peer_public.get());
    ASSERT_TRUE(ours.ok()) << ours.status();
    EXPECT_EQ(fake()->calls("Derive"), derives + 1);
    // The peer side, entirely in the default provider.
    EvpPkeyPtr hsm_public = DefaultPublicKey(label);
    absl::StatusOr<std::string> theirs =
        PkeyDerive(verify_libctx_, peer.get(), hsm_public.get());
    ASSERT_TRUE(theirs.ok()) << theirs.status();
    EXPECT_EQ(ours->size(), std::string(label) == "ec-p256" ? 32u : 48u);
    EXPECT_EQ(*ours, *theirs);
  }
}

TEST_F(InProcessTest, EcdhWithX963KdfAsCmsUsesIt) {
  EvpPkeyPtr key = HsmKey("ec-p256");
  EvpPkeyPtr peer = SoftwareEcKey(verify_libctx_, "P-256");
  EvpPkeyPtr peer_public = PublicKeyFromSpki(libctx(), SpkiOf(peer.get()));
  auto x963 = [](EVP_PKEY_CTX* c) {
    unsigned char* ukm = static_cast<unsigned char*>(OPENSSL_memdup("ukm", 3));
    return EVP_PKEY_CTX_set_ecdh_kdf_type(c, EVP_PKEY_ECDH_KDF_X9_63) > 0 &&
           EVP_PKEY_CTX_set_ecdh_kdf_md(c, EVP_sha256()) > 0 &&
           EVP_PKEY_CTX_set_ecdh_kdf_outlen(c, 16) > 0 &&
           EVP_PKEY_CTX_set0_ecdh_kdf_ukm(c, ukm, 3) > 0;
  };
  absl::StatusOr<std::string> ours =
      PkeyDerive(libctx(), key.get(), peer_public.get(), x963);
  ASSERT_TRUE(ours.ok()) << ours.status();
  EvpPkeyPtr hsm_public = DefaultPublicKey("ec-p256");
  absl::StatusOr<std::string> theirs =
      PkeyDerive(verify_libctx_, peer.get(), hsm_public.get(), x963);
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  EXPECT_EQ(ours->size(), 16u);
  EXPECT_EQ(*ours, *theirs);
}

TEST_F(InProcessTest, EcdhErrorsNameTheProblem) {
  EvpPkeyPtr key = HsmKey("ec-p256");
  // A peer on another curve is refused locally, before any call to hsmd.
  EvpPkeyPtr p384_peer = PublicKeyFromSpki(
      libctx(), SpkiOf(SoftwareEcKey(verify_libctx_, "P-384").get()));
  const int derives = fake()->calls("Derive");
  absl::StatusOr<std::string> secret =
      PkeyDerive(libctx(), key.get(), p384_peer.get());
  EXPECT_FALSE(secret.ok());
  EXPECT_EQ(fake()->calls("Derive"), derives);
  // ECDH with an RSA key is not a thing.
  EvpPkeyPtr rsa = HsmKey("rsa-2048");
  EvpPkeyPtr p256_peer = PublicKeyFromSpki(
      libctx(), SpkiOf(SoftwareEcKey(verify_libctx_, "P-256").get()));
  secret = PkeyDerive(libctx(), rsa.get(), p256_peer.get());
  EXPECT_FALSE(secret.ok());
  // hsmd down: a readable error.
  fake()->set_unavailable(true);
  secret = PkeyDerive(libctx(), key.get(), p256_peer.get());
  fake()->set_unavailable(false);
  ASSERT_FALSE(secret.ok());
  EXPECT_THAT(secret.status().message(), HasSubstr("unavailable"));
  // The X9.63 KDF without its digest cannot run: a clear error at derive
  // time (the default provider accepts no other KDF type at all).
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(libctx(), key.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_derive_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(ctx.get(), p256_peer.get()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_ecdh_kdf_type(ctx.get(), EVP_PKEY_ECDH_KDF_X9_63),
            1);
  size_t length = 0;
  EXPECT_NE(EVP_PKEY_derive(ctx.get(), nullptr, &length), 1);
  EXPECT_THAT(DrainErrors(), HasSubstr("X9.63"));
}

TEST_F(InProcessTest, EcdhDupctxAndChildDerivesWithTheParentsKey) {
  EvpPkeyPtr key = HsmKey("ec-p256");
  EvpPkeyPtr peer = SoftwareEcKey(verify_libctx_, "P-256");
  EvpPkeyPtr peer_public = PublicKeyFromSpki(libctx(), SpkiOf(peer.get()));
  EvpPkeyPtr hsm_public = DefaultPublicKey("ec-p256");
  absl::StatusOr<std::string> expected =
      PkeyDerive(verify_libctx_, peer.get(), hsm_public.get());
  ASSERT_TRUE(expected.ok()) << expected.status();

  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(libctx(), key.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_derive_init(ctx.get()), 1) << DrainErrors();
  ASSERT_EQ(EVP_PKEY_derive_set_peer(ctx.get(), peer_public.get()), 1)
      << DrainErrors();
  EvpPkeyCtxPtr copy(EVP_PKEY_CTX_dup(ctx.get()));
  ASSERT_NE(copy, nullptr) << DrainErrors();
  unsigned char out[32];
  size_t length = sizeof(out);
  ASSERT_EQ(EVP_PKEY_derive(copy.get(), out, &length), 1) << DrainErrors();
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), length), *expected);

  OSSL_LIB_CTX* lib = libctx();
  const std::string want = *expected;
  for (int i = 0; i < 2; ++i) {
    std::string result = RunInChild(
        [&]() {
          absl::StatusOr<std::string> secret =
              PkeyDerive(lib, key.get(), peer_public.get());
          if (!secret.ok()) return 1;
          return *secret == want ? 0 : 2;
        },
        20);
    EXPECT_EQ(result, "") << "child " << i;
  }
  length = sizeof(out);
  ASSERT_EQ(EVP_PKEY_derive(ctx.get(), out, &length), 1) << DrainErrors();
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), length), want);
}

// ---------------------------------------------------------------------------
// Errors

TEST_F(InProcessTest, UnknownKeyNamesTheUri) {
  absl::StatusOr<EvpPkeyPtr> key =
      LoadKey(libctx(), Uri("no-such-key"), OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), HasSubstr("key not found"));
  EXPECT_THAT(key.status().message(),
              HasSubstr("pkcs11:token=demo;object=no-such-key"));
}

TEST_F(InProcessTest, BadUriIsRefused) {
  absl::StatusOr<EvpPkeyPtr> key = LoadKey(
      libctx(), "pkcs11:object=x;type=secret-key", OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), HasSubstr("type=secret-key"));
}

TEST_F(InProcessTest, DaemonDownIsAReadableError) {
  EvpPkeyPtr key = HsmKey("ec-p256");
  fake()->set_unavailable(true);
  absl::StatusOr<std::string> signature =
      DigestSign(libctx(), key.get(), "SHA256", kMessage);
  ASSERT_FALSE(signature.ok());
  EXPECT_THAT(signature.status().message(), HasSubstr("hsmd unavailable"));
  EXPECT_THAT(signature.status().message(), HasSubstr("connection refused"));
  fake()->set_unavailable(false);
  signature = DigestSign(libctx(), key.get(), "SHA256", kMessage);
  EXPECT_TRUE(signature.ok()) << signature.status();
}

TEST_F(InProcessTest, EnvironmentSocketOverridesConfig) {
  setenv("HSMPROXY_SOCKET", "/tmp/hsmproxy-test-env.sock", 1);
  absl::StatusOr<std::unique_ptr<InProcessProvider>> p =
      InProcessProvider::New(*fake_);
  unsetenv("HSMPROXY_SOCKET");
  ASSERT_TRUE(p.ok());
  fake()->set_unavailable(true);
  absl::StatusOr<EvpPkeyPtr> key =
      LoadKey((*p)->libctx(), Uri("ec-p256"), OSSL_STORE_INFO_PKEY);
  fake()->set_unavailable(false);
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), HasSubstr("/tmp/hsmproxy-test-env.sock"));
}

// ---------------------------------------------------------------------------
// URI PEM files

TEST_F(InProcessTest, UriPemFileLoadsThroughDecoderAndFileStore) {
  std::string dir = ::testing::TempDir();
  for (const char* label : {"rsa-2048", "ec-p256", "ed25519"}) {
    SCOPED_TRACE(label);
    absl::StatusOr<std::string> pem = proxy::EncodeUriPem(Uri(label));
    ASSERT_TRUE(pem.ok());
    std::string path = absl::StrCat(dir, "/", label, ".pem");
    std::ofstream(path) << *pem;
    // PEM_read_bio_PrivateKey (what nginx and SSL_CTX_use_PrivateKey_file
    // use).
    BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
    EvpPkeyPtr key(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr,
                                              nullptr, libctx(), nullptr));
    ASSERT_NE(key, nullptr) << DrainErrors();
    EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key.get())),
                 "hsmproxy");
    EvpPkeyPtr pub = DefaultPublicKey(label);
    EXPECT_EQ(EVP_PKEY_eq(key.get(), pub.get()), 1);
    // OSSL_STORE with a file (what `openssl pkeyutl -inkey key.pem` uses).
    absl::StatusOr<EvpPkeyPtr> stored =
        LoadKey(libctx(), path, OSSL_STORE_INFO_PKEY);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(EVP_PKEY_eq(stored->get(), pub.get()), 1);
    const char* md = absl::StrContains(label, "ed25519") ? nullptr : "SHA256";
    absl::StatusOr<std::string> sig =
        DigestSign(libctx(), stored->get(), md, kMessage);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(*DigestVerify(verify_libctx_, pub.get(), md, kMessage, *sig));
  }
}

TEST_F(InProcessTest, UriPemFileForMissingKeySaysSo) {
  absl::StatusOr<std::string> pem = proxy::EncodeUriPem(Uri("gone"));
  ASSERT_TRUE(pem.ok());
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr,
                                            nullptr, libctx(), nullptr));
  EXPECT_EQ(key, nullptr);
  EXPECT_THAT(DrainErrors(), HasSubstr("key not found"));
}

// ---------------------------------------------------------------------------
// TLS

TEST_F(InProcessTest, TlsHandshakesWithHsmKeys) {
  const struct {
    const char* label;
    const char* md;
    int version;
  } kCases[] = {
      {"rsa-2048", "SHA256", TLS1_2_VERSION},
      {"rsa-2048", "SHA256", TLS1_3_VERSION},
      {"ec-p256", "SHA256", TLS1_2_VERSION},
      {"ec-p256", "SHA256", TLS1_3_VERSION},
      {"ec-p384", "SHA384", TLS1_3_VERSION},
      {"ed25519", nullptr, TLS1_3_VERSION},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(absl::StrCat(c.label, " version ", c.version));
    EvpPkeyPtr key = HsmKey(c.label);
    absl::StatusOr<X509Ptr> cert =
        SelfSignedCertificate(key.get(), c.md, "localhost");
    ASSERT_TRUE(cert.ok()) << cert.status();
    int signs = fake()->calls("Sign");
    absl::Status status = TlsHandshake(libctx(), cert->get(), key.get(),
                                       verify_libctx_, c.version);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_GT(fake()->calls("Sign"), signs) << "the HSM key must sign";
  }
}

// TLS 1.2 RSA key exchange: the server decrypts the premaster secret with
// libssl's TLS padding mode (RSA_PKCS1_WITH_TLS_PADDING).
TEST_F(InProcessTest, TlsRsaKeyExchangeDecryptsThePremaster) {
  EvpPkeyPtr key = HsmKey("rsa-2048");
  absl::StatusOr<X509Ptr> cert =
      SelfSignedCertificate(key.get(), "SHA256", "rsa");
  ASSERT_TRUE(cert.ok()) << cert.status();
  int decrypts = fake()->calls("Decrypt");
  absl::Status status =
      TlsHandshake(libctx(), cert->get(), key.get(), verify_libctx_,
                   TLS1_2_VERSION, "AES128-GCM-SHA256");
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(fake()->calls("Decrypt"), decrypts + 1);
}

TEST_F(InProcessTest, CheckPrivateKeyRejectsOtherCertificate) {
  EvpPkeyPtr key = HsmKey("ec-p256");
  EvpPkeyPtr other = HsmKey("ec-p384");
  absl::StatusOr<X509Ptr> cert =
      SelfSignedCertificate(other.get(), "SHA256", "x");
  ASSERT_TRUE(cert.ok());
  EXPECT_NE(X509_check_private_key(cert->get(), key.get()), 1);
  ERR_clear_error();
  absl::StatusOr<X509Ptr> own = SelfSignedCertificate(key.get(), "SHA256", "y");
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(X509_check_private_key(own->get(), key.get()), 1) << DrainErrors();
}

// ---------------------------------------------------------------------------
// RAND

TEST_F(InProcessTest, RandDrawsBatchesFromHsmd) {
  EVP_RAND* rand = EVP_RAND_fetch(libctx(), "HSMPROXY-RAND", nullptr);
  ASSERT_NE(rand, nullptr) << DrainErrors();
  EVP_RAND_CTX* ctx = EVP_RAND_CTX_new(rand, nullptr);
  EVP_RAND_free(rand);
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(EVP_RAND_instantiate(ctx, 256, 0, nullptr, 0, nullptr), 1);
  int before = fake()->calls("GenerateRandom");
  unsigned char a[32];
  unsigned char b[32];
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(EVP_RAND_generate(ctx, a, sizeof(a), 0, 0, nullptr, 0), 1);
  }
  ASSERT_EQ(EVP_RAND_generate(ctx, b, sizeof(b), 0, 0, nullptr, 0), 1);
  EXPECT_NE(std::string(reinterpret_cast<char*>(a), 32),
            std::string(reinterpret_cast<char*>(b), 32));
  // 101 x 32 bytes fit in one 16 KiB batch.
  EXPECT_LE(fake()->calls("GenerateRandom") - before, 1);
  EVP_RAND_CTX_free(ctx);
}

TEST_F(InProcessTest, RandAsSeedSourceOfTheDefaultDrbg) {
  ASSERT_EQ(RAND_set_seed_source_type(libctx(), "HSMPROXY-RAND", nullptr), 1);
  int before = fake()->calls("GenerateRandom");
  unsigned char out[32];
  ASSERT_EQ(RAND_bytes_ex(libctx(), out, sizeof(out), 0), 1) << DrainErrors();
  EXPECT_GT(fake()->calls("GenerateRandom"), before)
      << "the DRBG was not seeded from hsmproxy";
}

// ---------------------------------------------------------------------------
// SM2 keys on an SDF device (国密)

constexpr char kSm2SignUri[] = "sdf:device=soft0;index=1;usage=sign";
constexpr char kSm2EncUri[] = "sdf:device=soft0;index=1;usage=enc";
// GM/T 0009's default distinguishing ID (OpenSSL 3.0's own is empty).
constexpr char kGmtDefaultId[] = "1234567812345678";

// Sets the SM2 distinguishing ID as `-pkeyopt distid:ID` does.
CtxSetup WithId(const std::string& id) {
  return [id](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_ctrl_str(c, "distid", id.c_str()) > 0;
  };
}

class Sm2Test : public InProcessTest {
 protected:
  EvpPkeyPtr Sm2Key(const char* uri) {
    absl::StatusOr<EvpPkeyPtr> key =
        LoadKey(libctx(), uri, OSSL_STORE_INFO_PKEY);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? std::move(*key) : nullptr;
  }

  // Verifies with the default provider alone.
  bool DefaultVerifies(const std::string& label, const std::string& message,
                       const std::string& signature, const CtxSetup& setup) {
    EvpPkeyPtr pub = DefaultPublicKey(label);
    absl::StatusOr<bool> ok = DigestVerify(verify_libctx_, pub.get(), "SM3",
                                           message, signature, setup);
    EXPECT_TRUE(ok.ok()) << ok.status();
    return ok.ok() && *ok;
  }
};

TEST_F(Sm2Test, StoreFindsSdfKeysAsSm2Keys) {
  for (const auto& [uri, label] : {std::make_pair(kSm2SignUri, "sm2-sign"),
                                   std::make_pair(kSm2EncUri, "sm2-enc")}) {
    SCOPED_TRACE(uri);
    EvpPkeyPtr key = Sm2Key(uri);
    ASSERT_NE(key, nullptr);
    EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "SM2"));
    EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key.get())),
                 "hsmproxy");
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
    EXPECT_EQ(EVP_PKEY_get_security_bits(key.get()), 128);
    EXPECT_EQ(EVP_PKEY_get_size(key.get()), 72);
    char digest[64];
    ASSERT_GT(
        EVP_PKEY_get_default_digest_name(key.get(), digest, sizeof(digest)), 0);
    EXPECT_STREQ(digest, "SM3");
    EvpPkeyPtr pub = DefaultPublicKey(label);
    ASSERT_NE(pub, nullptr);
    EXPECT_TRUE(EVP_PKEY_is_a(pub.get(), "SM2"));
    EXPECT_EQ(EVP_PKEY_eq(key.get(), pub.get()), 1);
    EXPECT_EQ(SpkiOf(key.get()), fake()->key(label).public_key_der());
    // The public half alone, as an ordinary key.
    absl::StatusOr<EvpPkeyPtr> public_only =
        LoadKey(libctx(), uri, OSSL_STORE_INFO_PUBKEY);
    ASSERT_TRUE(public_only.ok()) << public_only.status();
    EXPECT_STREQ(
        OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(public_only->get())),
        "default");
    EXPECT_EQ(EVP_PKEY_eq(public_only->get(), pub.get()), 1);
  }
  // Text output and PEM of the public key.
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), key.get()), 1) << DrainErrors();
  ASSERT_EQ(EVP_PKEY_print_public(bio.get(), key.get(), 0, nullptr), 1)
      << DrainErrors();
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  std::string text(data, static_cast<size_t>(length));
  EXPECT_THAT(text, HasSubstr("-----BEGIN PUBLIC KEY-----"));
  EXPECT_THAT(text, HasSubstr("SM2"));
}

TEST_F(Sm2Test, DigestSignWithDefaultIdVerifiesInTheDefaultProvider) {
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  ASSERT_NE(key, nullptr);
  int signs = fake()->calls("Sign");
  absl::StatusOr<std::string> sig =
      DigestSign(libctx(), key.get(), "SM3", kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(fake()->calls("Sign"), signs + 1);
  // Only e went to hsmd.
  v1::SignRequest request = fake()->last_sign_request();
  EXPECT_TRUE(request.algorithm().has_sm2());
  EXPECT_TRUE(request.has_digest());
  EXPECT_EQ(request.digest().size(), 32u);
  EXPECT_TRUE(request.algorithm().sm2().distinguishing_id().empty());
  // GM/T 0009's default ID, not OpenSSL's empty one.
  EXPECT_TRUE(
      DefaultVerifies("sm2-sign", kMessage, *sig, WithId(kGmtDefaultId)));
  EXPECT_FALSE(DefaultVerifies("sm2-sign", kMessage, *sig, nullptr));
  std::string tampered = *sig;
  tampered[tampered.size() / 2] ^= 0x01;
  EXPECT_FALSE(
      DefaultVerifies("sm2-sign", kMessage, tampered, WithId(kGmtDefaultId)));
  // hsmproxy's own verification uses the same default.
  absl::StatusOr<bool> ok =
      DigestVerify(libctx(), key.get(), "SM3", kMessage, *sig);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(*ok);
  // No digest named: SM3, as OpenSSL's SM2 does.
  sig = DigestSign(libctx(), key.get(), nullptr, kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(
      DefaultVerifies("sm2-sign", kMessage, *sig, WithId(kGmtDefaultId)));
  // An empty message.
  sig = DigestSign(libctx(), key.get(), "SM3", "");
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(DefaultVerifies("sm2-sign", "", *sig, WithId(kGmtDefaultId)));
}

TEST_F(Sm2Test, DistinguishingIdIsSettable) {
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  ASSERT_NE(key, nullptr);
  // As `-pkeyopt distid:...`.
  absl::StatusOr<std::string> sig = DigestSign(
      libctx(), key.get(), "SM3", kMessage, WithId("ALICE123@YAHOO.COM"));
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(DefaultVerifies("sm2-sign", kMessage, *sig,
                              WithId("ALICE123@YAHOO.COM")));
  EXPECT_FALSE(
      DefaultVerifies("sm2-sign", kMessage, *sig, WithId(kGmtDefaultId)));
  absl::StatusOr<bool> ok = DigestVerify(libctx(), key.get(), "SM3", kMessage,
                                         *sig, WithId("ALICE123@YAHOO.COM"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(*ok);
  // As `-pkeyopt hexdistid:...`, and binary IDs through EVP_PKEY_CTX_set1_id.
  sig = DigestSign(libctx(), key.get(), "SM3", kMessage, [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_ctrl_str(c, "hexdistid", "00ff41") > 0;
  });
  ASSERT_TRUE(sig.ok()) << sig.status();
  const std::string binary("\x00\xff\x41", 3);
  auto set_binary = [&binary](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_set1_id(c, binary.data(),
                                static_cast<int>(binary.size())) > 0;
  };
  EXPECT_TRUE(DefaultVerifies("sm2-sign", kMessage, *sig, set_binary));
  sig = DigestSign(libctx(), key.get(), "SM3", kMessage, set_binary);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(DefaultVerifies("sm2-sign", kMessage, *sig, set_binary));
  // `-pkeyopt distid:` (empty): OpenSSL 3.0's own default, the empty ID.
  sig = DigestSign(libctx(), key.get(), "SM3", kMessage, WithId(""));
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(DefaultVerifies("sm2-sign", kMessage, *sig, nullptr));
}

TEST_F(Sm2Test, PlainSignTakesE) {
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  ASSERT_NE(key, nullptr);
  // e as hsmproxy computed it for a digest signature of kMessage.
  ASSERT_TRUE(DigestSign(libctx(), key.get(), "SM3", kMessage).ok());
  std::string e = fake()->last_sign_request().digest();
  ASSERT_EQ(e.size(), 32u);
  // `pkeyutl -sign` without -rawin: the input is e itself.
  absl::StatusOr<std::string> sig = PkeySign(libctx(), key.get(), e);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(fake()->last_sign_request().digest(), e);
  EvpPkeyPtr pub = DefaultPublicKey("sm2-sign");
  absl::StatusOr<bool> ok = PkeyVerify(verify_libctx_, pub.get(), e, *sig);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(*ok);
  // ... and it is the signature of the message with the default ID.
  EXPECT_TRUE(
      DefaultVerifies("sm2-sign", kMessage, *sig, WithId(kGmtDefaultId)));
  // With the digest named, as EVP_PKEY_CTX_set_signature_md does.
  sig = PkeySign(libctx(), key.get(), e, [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_set_signature_md(c, EVP_sm3()) > 0;
  });
  ASSERT_TRUE(sig.ok()) << sig.status();
  // Not 32 bytes: refused before hsmd is asked.
  int signs = fake()->calls("Sign");
  absl::StatusOr<std::string> bad =
      PkeySign(libctx(), key.get(), e.substr(0, 20));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("32-byte"));
  EXPECT_EQ(fake()->calls("Sign"), signs);
  // A distinguishing ID makes no sense for e: refused.
  bad = PkeySign(libctx(), key.get(), e, WithId("x"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("distinguishing ID"));
}

TEST_F(Sm2Test, DecryptsOpenSslCiphertext) {
  EvpPkeyPtr key = Sm2Key(kSm2EncUri);
  ASSERT_NE(key, nullptr);
  EvpPkeyPtr pub = DefaultPublicKey("sm2-enc");
  const std::string secret = "a 16-byte SM4 key and then some more text";
  // Encrypted by OpenSSL alone (`pkeyutl -encrypt -pubin`).
  absl::StatusOr<std::string> ct =
      PkeyEncrypt(verify_libctx_, pub.get(), secret);
  ASSERT_TRUE(ct.ok()) << ct.status();
  int decrypts = fake()->calls("Decrypt");
  absl::StatusOr<std::string> pt = PkeyDecrypt(libctx(), key.get(), *ct);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, secret);
  EXPECT_EQ(fake()->calls("Decrypt"), decrypts + 1);
  // Encryption through the HSM key runs locally; the default provider
  // decrypts nothing here, hsmd does.
  ct = PkeyEncrypt(libctx(), key.get(), "short");
  ASSERT_TRUE(ct.ok()) << ct.status();
  EXPECT_EQ(fake()->calls("Decrypt"), decrypts + 1);
  pt = PkeyDecrypt(libctx(), key.get(), *ct);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, "short");
  // A corrupted ciphertext is a plain decryption failure.
  std::string bad = *ct;
  bad[bad.size() - 1] ^= 0x01;
  pt = PkeyDecrypt(libctx(), key.get(), bad);
  ASSERT_FALSE(pt.ok());
  EXPECT_THAT(pt.status().message(), HasSubstr("decryption failed"));
  // hsmd decrypts with SM3 only.
  pt = PkeyDecrypt(libctx(), key.get(), *ct, [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_ctrl_str(c, "digest", "SHA256") > 0;
  });
  ASSERT_FALSE(pt.ok());
  EXPECT_THAT(pt.status().message(), HasSubstr("SM3"));
}

TEST_F(Sm2Test, SelfSignedCertificateWithSm3) {
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  ASSERT_NE(key, nullptr);
  absl::StatusOr<X509Ptr> cert = SelfSignedCertificate(key.get(), "SM3", "sm2");
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(X509_get_signature_nid(cert->get()), NID_SM2_with_SM3);
  EvpPkeyPtr pub = DefaultPublicKey("sm2-sign");
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert->get()), pub.get()), 1);
  // Verified by the default provider with GM/T 0009's ID (the certificate's
  // distinguishing ID, as `openssl verify -vfyopt distid:...` sets it).
  ASN1_OCTET_STRING* id = ASN1_OCTET_STRING_new();
  ASSERT_EQ(ASN1_OCTET_STRING_set(
                id, reinterpret_cast<const unsigned char*>(kGmtDefaultId), 16),
            1);
  X509_set0_distinguishing_id(cert->get(), id);
  EXPECT_EQ(X509_verify(cert->get(), pub.get()), 1) << DrainErrors();
  EXPECT_EQ(X509_check_private_key(cert->get(), key.get()), 1) << DrainErrors();
  // Signed with the empty ID (`-sigopt distid:`), the certificate verifies
  // with OpenSSL 3.0's defaults (`openssl verify` has no way to set an ID).
  X509Ptr plain(X509_new());
  ASSERT_EQ(X509_set_version(plain.get(), X509_VERSION_3), 1);
  X509_NAME* name = X509_get_subject_name(plain.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("sm2"), -1,
                             -1, 0);
  X509_set_issuer_name(plain.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(plain.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(plain.get()), 3600);
  ASSERT_EQ(X509_set_pubkey(plain.get(), key.get()), 1);
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit_ex(md.get(), &pctx, "SM3", libctx(), nullptr,
                                  key.get(), nullptr),
            1);
  ASSERT_TRUE(WithId("")(pctx));
  ASSERT_GT(X509_sign_ctx(plain.get(), md.get()), 0) << DrainErrors();
  EXPECT_EQ(X509_verify(plain.get(), pub.get()), 1) << DrainErrors();
  // Another key does not match.
  EvpPkeyPtr enc = Sm2Key(kSm2EncUri);
  EXPECT_NE(X509_check_private_key(cert->get(), enc.get()), 1);
  ERR_clear_error();
}

TEST_F(Sm2Test, DupctxAndSizeQueries) {
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  ASSERT_NE(key, nullptr);
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit_ex(ctx.get(), &pctx, "SM3", libctx(), nullptr,
                                  key.get(), nullptr),
            1);
  ASSERT_TRUE(WithId("bob")(pctx));
  ASSERT_EQ(EVP_DigestSignUpdate(ctx.get(), kMessage.data(), 10), 1);
  EvpMdCtxPtr copy(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_MD_CTX_copy_ex(copy.get(), ctx.get()), 1) << DrainErrors();
  ASSERT_EQ(EVP_DigestSignUpdate(ctx.get(), kMessage.data() + 10,
                                 kMessage.size() - 10),
            1);
  ASSERT_EQ(EVP_DigestSignUpdate(copy.get(), "other", 5), 1);
  int signs = fake()->calls("Sign");
  size_t length = 0;
  ASSERT_EQ(EVP_DigestSignFinal(ctx.get(), nullptr, &length), 1);
  EXPECT_EQ(length, 72u);
  EXPECT_EQ(fake()->calls("Sign"), signs) << "a size query must not sign";
  auto finish = [](EVP_MD_CTX* c) {
    size_t n = 72;
    std::string sig(n, '\0');
    if (EVP_DigestSignFinal(c, reinterpret_cast<unsigned char*>(sig.data()),
                            &n) != 1) {
      return std::string();
    }
    sig.resize(n);
    return sig;
  };
  std::string sig1 = finish(ctx.get());
  std::string sig2 = finish(copy.get());
  ASSERT_FALSE(sig1.empty()) << DrainErrors();
  ASSERT_FALSE(sig2.empty()) << DrainErrors();
  EXPECT_TRUE(DefaultVerifies("sm2-sign", kMessage, sig1, WithId("bob")));
  EXPECT_TRUE(DefaultVerifies("sm2-sign", kMessage.substr(0, 10) + "other",
                              sig2, WithId("bob")));
}

TEST_F(Sm2Test, ErrorsNameTheProblem) {
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  ASSERT_NE(key, nullptr);
  // SM2 signs with SM3 only.
  absl::StatusOr<std::string> sig =
      DigestSign(libctx(), key.get(), "SHA256", kMessage);
  ASSERT_FALSE(sig.ok());
  EXPECT_THAT(sig.status().message(), HasSubstr("SM3"));
  // The ID must come before the data (it is hashed first).
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(EVP_DigestSignInit_ex(ctx.get(), &pctx, "SM3", libctx(), nullptr,
                                  key.get(), nullptr),
            1);
  ASSERT_EQ(EVP_DigestSignUpdate(ctx.get(), "x", 1), 1);
  EXPECT_FALSE(WithId("late")(pctx));
  EXPECT_THAT(DrainErrors(), HasSubstr("before any data"));
  // The encryption key may not sign.
  EvpPkeyPtr enc = Sm2Key(kSm2EncUri);
  sig = DigestSign(libctx(), enc.get(), "SM3", kMessage);
  ASSERT_FALSE(sig.ok());
  EXPECT_THAT(sig.status().message(), HasSubstr("not a signing key"));
  // Unknown keys, bad attributes and SM4 keys.
  absl::StatusOr<EvpPkeyPtr> missing = LoadKey(
      libctx(), "sdf:device=soft0;index=9;usage=sign", OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("key not found"));
  EXPECT_THAT(missing.status().message(),
              HasSubstr("sdf:device=soft0;index=9;usage=sign"));
  missing = LoadKey(libctx(), "sdf:device=soft0;slot=1", OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("slot"));
  missing = LoadKey(libctx(), "sdf:device=soft0;index=1;usage=sm4",
                    OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("SM4"));
}

TEST_F(Sm2Test, UriPemFileNamesAnSdfKey) {
  absl::StatusOr<std::string> pem = proxy::EncodeUriPem(kSm2SignUri);
  ASSERT_TRUE(pem.ok()) << pem.status();
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr,
                                            nullptr, libctx(), nullptr));
  ASSERT_NE(key, nullptr) << DrainErrors();
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "SM2"));
  EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key.get())),
               "hsmproxy");
  std::string path = absl::StrCat(::testing::TempDir(), "/sm2-sign.pem");
  std::ofstream(path) << *pem;
  absl::StatusOr<EvpPkeyPtr> stored =
      LoadKey(libctx(), path, OSSL_STORE_INFO_PKEY);
  ASSERT_TRUE(stored.ok()) << stored.status();
  absl::StatusOr<std::string> sig =
      DigestSign(libctx(), stored->get(), "SM3", kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(
      DefaultVerifies("sm2-sign", kMessage, *sig, WithId(kGmtDefaultId)));
}

// The fork pattern of the provider tests: the parent loads the key, the
// child signs and verifies.
TEST_F(Sm2Test, ChildSignsWithTheParentsKey) {
  EvpPkeyPtr key = Sm2Key(kSm2SignUri);
  ASSERT_NE(key, nullptr);
  EvpPkeyPtr pub = DefaultPublicKey("sm2-sign");
  OSSL_LIB_CTX* verify = verify_libctx_;
  OSSL_LIB_CTX* ctx = libctx();
  for (int i = 0; i < 3; ++i) {
    std::string result = RunInChild(
        [&]() {
          std::string message = absl::StrCat("child ", i);
          absl::StatusOr<std::string> sig =
              DigestSign(ctx, key.get(), "SM3", message);
          if (!sig.ok()) return 1;
          absl::StatusOr<bool> ok = DigestVerify(
              verify, pub.get(), "SM3", message, *sig, WithId(kGmtDefaultId));
          return ok.ok() && *ok ? 0 : 2;
        },
        20);
    EXPECT_EQ(result, "") << "child " << i;
  }
  // The parent keeps signing.
  absl::StatusOr<std::string> sig = DigestSign(ctx, key.get(), "SM3", kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(
      DefaultVerifies("sm2-sign", kMessage, *sig, WithId(kGmtDefaultId)));
}

// ---------------------------------------------------------------------------
// Software keys in the same process

class SoftwareKeysTest : public InProcessTest,
                         public ::testing::WithParamInterface<bool> {};

TEST_P(SoftwareKeysTest, FileAndGeneratedKeysWorkAsBefore) {
  absl::StatusOr<std::unique_ptr<InProcessProvider>> p =
      InProcessProvider::New(*fake_, /*hsmproxy_first=*/GetParam());
  ASSERT_TRUE(p.ok());
  OSSL_LIB_CTX* ctx = (*p)->libctx();
  int signs = fake()->calls("Sign");
  const int derives = fake()->calls("Derive");
  const struct {
    const char* type;
    const char* md;
  } kTypes[] = {{"RSA", "SHA256"}, {"EC", "SHA256"}, {"ED25519", nullptr}};
  for (const auto& t : kTypes) {
    SCOPED_TRACE(t.type);
    // Generated by name with no property query, as applications do.
    EvpPkeyCtxPtr gen(EVP_PKEY_CTX_new_from_name(ctx, t.type, nullptr));
    ASSERT_NE(gen, nullptr);
    ASSERT_EQ(EVP_PKEY_keygen_init(gen.get()), 1) << DrainErrors();
    if (std::string(t.type) == "EC") {
      ASSERT_GT(EVP_PKEY_CTX_set_group_name(gen.get(), "P-256"), 0);
    }
    if (std::string(t.type) == "RSA") {
      ASSERT_GT(EVP_PKEY_CTX_set_rsa_keygen_bits(gen.get(), 2048), 0);
    }
    EVP_PKEY* raw = nullptr;
    ASSERT_EQ(EVP_PKEY_generate(gen.get(), &raw), 1) << DrainErrors();
    EvpPkeyPtr key(raw);
    // Which provider's keymgmt OpenSSL picked depends on the load order; it
    // must work either way.
    std::printf("%s key generated by name is held by %s\n", t.type,
                OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key.get())));
    // Written to PEM and read back (encoders and decoders).
    BioPtr bio(BIO_new(BIO_s_mem()));
    ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr,
                                       0, nullptr, nullptr),
              1)
        << DrainErrors();
    EvpPkeyPtr reread(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr,
                                                 nullptr, ctx, nullptr));
    ASSERT_NE(reread, nullptr) << DrainErrors();
    EXPECT_EQ(EVP_PKEY_eq(key.get(), reread.get()), 1);
    for (EVP_PKEY* k : {key.get(), reread.get()}) {
      absl::StatusOr<std::string> sig = DigestSign(ctx, k, t.md, kMessage);
      ASSERT_TRUE(sig.ok()) << sig.status();
      EvpPkeyPtr pub = PublicKeyFromSpki(verify_libctx_, SpkiOf(k));
      ASSERT_NE(pub, nullptr);
      EXPECT_TRUE(
          *DigestVerify(verify_libctx_, pub.get(), t.md, kMessage, *sig));
    }
    // A self-signed certificate and a TLS handshake with the file key.
    absl::StatusOr<X509Ptr> cert =
        SelfSignedCertificate(reread.get(), t.md, "sw");
    ASSERT_TRUE(cert.ok()) << cert.status();
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      absl::Status tls =
          TlsHandshake(ctx, cert->get(), reread.get(), ctx, version);
      EXPECT_TRUE(tls.ok()) << version << ": " << tls;
    }
  }
  // Key import from raw data (EVP_PKEY_fromdata with a private key).
  EvpPkeyCtxPtr rsa_gen(EVP_PKEY_CTX_new_from_name(ctx, "RSA", nullptr));
  EVP_PKEY* rsa_raw = nullptr;
  ASSERT_EQ(EVP_PKEY_keygen_init(rsa_gen.get()), 1);
  ASSERT_EQ(EVP_PKEY_generate(rsa_gen.get(), &rsa_raw), 1);
  EvpPkeyPtr rsa(rsa_raw);
  OSSL_PARAM* data = nullptr;
  ASSERT_EQ(EVP_PKEY_todata(rsa.get(), EVP_PKEY_KEYPAIR, &data), 1);
  EvpPkeyCtxPtr from(EVP_PKEY_CTX_new_from_name(ctx, "RSA", nullptr));
  EVP_PKEY* imported = nullptr;
  ASSERT_EQ(EVP_PKEY_fromdata_init(from.get()), 1);
  ASSERT_EQ(EVP_PKEY_fromdata(from.get(), &imported, EVP_PKEY_KEYPAIR, data), 1)
      << DrainErrors();
  OSSL_PARAM_free(data);
  EvpPkeyPtr imported_key(imported);
  std::string ct = *PkeyEncrypt(ctx, imported_key.get(), "hello");
  absl::StatusOr<std::string> pt = PkeyDecrypt(ctx, imported_key.get(), ct);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, "hello");
  // ECDH between two software keys.
  EvpPkeyCtxPtr ecgen(EVP_PKEY_CTX_new_from_name(ctx, "EC", nullptr));
  ASSERT_EQ(EVP_PKEY_keygen_init(ecgen.get()), 1);
  ASSERT_GT(EVP_PKEY_CTX_set_group_name(ecgen.get(), "P-256"), 0);
  EVP_PKEY* a = nullptr;
  EVP_PKEY* b = nullptr;
  ASSERT_EQ(EVP_PKEY_generate(ecgen.get(), &a), 1);
  ASSERT_EQ(EVP_PKEY_generate(ecgen.get(), &b), 1);
  EvpPkeyPtr ka(a), kb(b);
  EvpPkeyCtxPtr derive(EVP_PKEY_CTX_new_from_pkey(ctx, ka.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_derive_init(derive.get()), 1) << DrainErrors();
  ASSERT_EQ(EVP_PKEY_derive_set_peer(derive.get(), kb.get()), 1)
      << DrainErrors();
  size_t secret_length = 0;
  ASSERT_EQ(EVP_PKEY_derive(derive.get(), nullptr, &secret_length), 1);
  EXPECT_EQ(secret_length, 32u);
  absl::StatusOr<std::string> ab = PkeyDerive(ctx, ka.get(), kb.get());
  absl::StatusOr<std::string> ba = PkeyDerive(ctx, kb.get(), ka.get());
  ASSERT_TRUE(ab.ok()) << ab.status();
  ASSERT_TRUE(ba.ok()) << ba.status();
  EXPECT_EQ(*ab, *ba);
  // None of this touched hsmd.
  EXPECT_EQ(fake()->calls("Sign"), signs);
  EXPECT_EQ(fake()->calls("Derive"), derives);
}

TEST_P(SoftwareKeysTest, HsmKeyTlsWithEitherLoadOrder) {
  absl::StatusOr<std::unique_ptr<InProcessProvider>> p =
      InProcessProvider::New(*fake_, /*hsmproxy_first=*/GetParam());
  ASSERT_TRUE(p.ok());
  OSSL_LIB_CTX* ctx = (*p)->libctx();
  for (const char* label : {"ec-p256", "ec-p384", "rsa-2048"}) {
    absl::StatusOr<EvpPkeyPtr> key =
        LoadKey(ctx, Uri(label), OSSL_STORE_INFO_PKEY);
    ASSERT_TRUE(key.ok()) << key.status();
    absl::StatusOr<X509Ptr> cert =
        SelfSignedCertificate(key->get(), "SHA256", label);
    ASSERT_TRUE(cert.ok()) << cert.status();
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      SCOPED_TRACE(absl::StrCat(label, " ", version));
      // The client also has both providers in the same order.
      absl::Status tls =
          TlsHandshake(ctx, cert->get(), key->get(), ctx, version);
      EXPECT_TRUE(tls.ok()) << tls;
    }
  }
}

// Ordinary SM2 keys behave exactly as without hsmproxy, including OpenSSL's
// own default distinguishing ID (empty), whichever provider comes first.
TEST_P(SoftwareKeysTest, SoftwareSm2KeysWorkAsBefore) {
  absl::StatusOr<std::unique_ptr<InProcessProvider>> p =
      InProcessProvider::New(*fake_, /*hsmproxy_first=*/GetParam());
  ASSERT_TRUE(p.ok());
  OSSL_LIB_CTX* ctx = (*p)->libctx();
  int signs = fake()->calls("Sign");
  int decrypts = fake()->calls("Decrypt");
  EvpPkeyCtxPtr gen(EVP_PKEY_CTX_new_from_name(ctx, "SM2", nullptr));
  ASSERT_NE(gen, nullptr);
  ASSERT_EQ(EVP_PKEY_keygen_init(gen.get()), 1) << DrainErrors();
  EVP_PKEY* raw = nullptr;
  ASSERT_EQ(EVP_PKEY_generate(gen.get(), &raw), 1) << DrainErrors();
  EvpPkeyPtr key(raw);
  std::printf("SM2 key generated by name is held by %s\n",
              OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key.get())));
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "SM2"));
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0,
                                     nullptr, nullptr),
            1)
      << DrainErrors();
  EvpPkeyPtr reread(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr,
                                               nullptr, ctx, nullptr));
  ASSERT_NE(reread, nullptr) << DrainErrors();
  EXPECT_TRUE(EVP_PKEY_is_a(reread.get(), "SM2"));
  EXPECT_EQ(EVP_PKEY_eq(key.get(), reread.get()), 1);
  for (EVP_PKEY* k : {key.get(), reread.get()}) {
    EvpPkeyPtr pub = PublicKeyFromSpki(verify_libctx_, SpkiOf(k));
    ASSERT_NE(pub, nullptr);
    // OpenSSL's default ID (empty) on both sides.
    absl::StatusOr<std::string> sig = DigestSign(ctx, k, "SM3", kMessage);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(
        *DigestVerify(verify_libctx_, pub.get(), "SM3", kMessage, *sig));
    EXPECT_TRUE(*DigestVerify(ctx, k, "SM3", kMessage, *sig));
    // An explicit ID.
    sig = DigestSign(ctx, k, "SM3", kMessage, WithId(kGmtDefaultId));
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(*DigestVerify(verify_libctx_, pub.get(), "SM3", kMessage, *sig,
                              WithId(kGmtDefaultId)));
    // Raw e signatures and encryption.
    std::string e = Hash("SM3", kMessage);
    sig = PkeySign(ctx, k, e);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(*PkeyVerify(verify_libctx_, pub.get(), e, *sig));
    absl::StatusOr<std::string> ct =
        PkeyEncrypt(verify_libctx_, pub.get(), "software secret");
    ASSERT_TRUE(ct.ok()) << ct.status();
    absl::StatusOr<std::string> pt = PkeyDecrypt(ctx, k, *ct);
    ASSERT_TRUE(pt.ok()) << pt.status();
    EXPECT_EQ(*pt, "software secret");
  }
  // A self-signed SM2/SM3 certificate verifies with OpenSSL's defaults.
  absl::StatusOr<X509Ptr> cert =
      SelfSignedCertificate(reread.get(), "SM3", "sw");
  ASSERT_TRUE(cert.ok()) << cert.status();
  EvpPkeyPtr pub = PublicKeyFromSpki(verify_libctx_, SpkiOf(reread.get()));
  EXPECT_EQ(X509_verify(cert->get(), pub.get()), 1) << DrainErrors();
  EXPECT_EQ(X509_check_private_key(cert->get(), reread.get()), 1);
  // None of this touched hsmd.
  EXPECT_EQ(fake()->calls("Sign"), signs);
  EXPECT_EQ(fake()->calls("Decrypt"), decrypts);
}

TEST_P(SoftwareKeysTest, HsmSm2KeyWithEitherLoadOrder) {
  absl::StatusOr<std::unique_ptr<InProcessProvider>> p =
      InProcessProvider::New(*fake_, /*hsmproxy_first=*/GetParam());
  ASSERT_TRUE(p.ok());
  OSSL_LIB_CTX* ctx = (*p)->libctx();
  absl::StatusOr<EvpPkeyPtr> key =
      LoadKey(ctx, kSm2SignUri, OSSL_STORE_INFO_PKEY);
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> sig =
      DigestSign(ctx, key->get(), "SM3", kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EvpPkeyPtr pub = PublicKeyFromSpki(verify_libctx_,
                                     fake()->key("sm2-sign").public_key_der());
  EXPECT_TRUE(*DigestVerify(verify_libctx_, pub.get(), "SM3", kMessage, *sig,
                            WithId(kGmtDefaultId)));
  absl::StatusOr<EvpPkeyPtr> enc =
      LoadKey(ctx, kSm2EncUri, OSSL_STORE_INFO_PKEY);
  ASSERT_TRUE(enc.ok()) << enc.status();
  absl::StatusOr<std::string> ct = PkeyEncrypt(ctx, enc->get(), "both orders");
  ASSERT_TRUE(ct.ok()) << ct.status();
  absl::StatusOr<std::string> pt = PkeyDecrypt(ctx, enc->get(), *ct);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, "both orders");
}

INSTANTIATE_TEST_SUITE_P(LoadOrder, SoftwareKeysTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "HsmproxyFirst" : "DefaultFirst";
                         });

}  // namespace
}  // namespace hsmd::testing
