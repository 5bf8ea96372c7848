// hsmproxy in-process against the fake hsmd: every operation family, the
// parameters OpenSSL callers use, errors, and software keys next to it.
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
  // 101 x 32 bytes fit in one 4 KiB batch.
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
// Software keys in the same process

class SoftwareKeysTest : public InProcessTest,
                         public ::testing::WithParamInterface<bool> {};

TEST_P(SoftwareKeysTest, FileAndGeneratedKeysWorkAsBefore) {
  absl::StatusOr<std::unique_ptr<InProcessProvider>> p =
      InProcessProvider::New(*fake_, /*hsmproxy_first=*/GetParam());
  ASSERT_TRUE(p.ok());
  OSSL_LIB_CTX* ctx = (*p)->libctx();
  int signs = fake()->calls("Sign");
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
  // None of this touched hsmd.
  EXPECT_EQ(fake()->calls("Sign"), signs);
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

INSTANTIATE_TEST_SUITE_P(LoadOrder, SoftwareKeysTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "HsmproxyFirst" : "DefaultFirst";
                         });

}  // namespace
}  // namespace hsmd::testing
