// hsmproxy.so against a real `hsmd --demo` with its software SDF device
// ("soft0", 国密): SM2 keys by sdf: URI, SM2/SM3 signatures and SM2
// decryption, checked in a library context holding only the default
// provider; certificates; threads; hsmd restarts.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/provider/demo_daemon.h"
#include "tests/provider/hsmproxy_fixture.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSignUri[] = "sdf:device=soft0;index=1;usage=sign";
constexpr char kEncUri[] = "sdf:device=soft0;index=1;usage=enc";
// GM/T 0009's default distinguishing ID (OpenSSL 3.0's own is empty).
constexpr char kGmtDefaultId[] = "1234567812345678";
const std::string kMessage = "SM2 signed through hsmd";

CtxSetup WithId(const std::string& id) {
  return [id](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_ctrl_str(c, "distid", id.c_str()) > 0;
  };
}

class Sm2IntegrationTest : public HsmproxyDaemonTest {
 protected:
  static bool DefaultVerifies(EVP_PKEY* pub, const std::string& message,
                              const std::string& signature,
                              const CtxSetup& setup) {
    absl::StatusOr<bool> ok =
        DigestVerify(verify_libctx_, pub, "SM3", message, signature, setup);
    EXPECT_TRUE(ok.ok()) << ok.status();
    return ok.ok() && *ok;
  }
};

TEST_F(Sm2IntegrationTest, DemoDeviceKeysAreSm2Keys) {
  EvpPkeyPtr sign = Key(kSignUri);
  EvpPkeyPtr enc = Key(kEncUri);
  ASSERT_NE(sign, nullptr);
  ASSERT_NE(enc, nullptr);
  for (EVP_PKEY* key : {sign.get(), enc.get()}) {
    EXPECT_TRUE(EVP_PKEY_is_a(key, "SM2"));
    EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key)),
                 "hsmproxy");
    EXPECT_EQ(EVP_PKEY_get_bits(key), 256);
    EvpPkeyPtr pub = PublicKey(key);
    ASSERT_NE(pub, nullptr);
    EXPECT_TRUE(EVP_PKEY_is_a(pub.get(), "SM2"));
    EXPECT_EQ(EVP_PKEY_eq(key, pub.get()), 1);
  }
  EXPECT_NE(EVP_PKEY_eq(sign.get(), enc.get()), 1);
  ERR_clear_error();
}

TEST_F(Sm2IntegrationTest, SignaturesVerifyWithTheDefaultProvider) {
  EvpPkeyPtr key = Key(kSignUri);
  ASSERT_NE(key, nullptr);
  EvpPkeyPtr pub = PublicKey(key.get());
  absl::StatusOr<std::string> sig =
      DigestSign(libctx_, key.get(), "SM3", kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(
      DefaultVerifies(pub.get(), kMessage, *sig, WithId(kGmtDefaultId)));
  EXPECT_FALSE(DefaultVerifies(pub.get(), kMessage, *sig, nullptr));
  // A custom ID, and a long message hashed in pieces by OpenSSL.
  std::string long_message(1 << 20, 'x');
  sig = DigestSign(libctx_, key.get(), "SM3", long_message,
                   WithId("alice@example.com"));
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(DefaultVerifies(pub.get(), long_message, *sig,
                              WithId("alice@example.com")));
  // Plain signing of a 32-byte e: verified as such by the default provider.
  std::string e = Hash("SM3", "any 32 bytes will do as e");
  sig = PkeySign(libctx_, key.get(), e);
  ASSERT_TRUE(sig.ok()) << sig.status();
  absl::StatusOr<bool> ok = PkeyVerify(verify_libctx_, pub.get(), e, *sig);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(*ok);
}

// Verification with the HSM key object runs locally (same default ID).
TEST_F(Sm2IntegrationTest, LocalVerificationThroughHsmproxy) {
  EvpPkeyPtr key = Key(kSignUri);
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> sig =
      DigestSign(libctx_, key.get(), "SM3", kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  absl::StatusOr<bool> ok =
      DigestVerify(libctx_, key.get(), "SM3", kMessage, *sig);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(*ok);
  ok = DigestVerify(libctx_, key.get(), "SM3", kMessage + ".", *sig);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_FALSE(*ok);
}

TEST_F(Sm2IntegrationTest, DecryptsWhatOpenSslEncrypted) {
  EvpPkeyPtr key = Key(kEncUri);
  ASSERT_NE(key, nullptr);
  EvpPkeyPtr pub = PublicKey(key.get());
  for (size_t length : {1, 16, 100, 1000}) {
    SCOPED_TRACE(length);
    std::string secret(length, '\0');
    for (size_t i = 0; i < length; ++i) secret[i] = static_cast<char>(i * 7);
    absl::StatusOr<std::string> ct =
        PkeyEncrypt(verify_libctx_, pub.get(), secret);
    ASSERT_TRUE(ct.ok()) << ct.status();
    absl::StatusOr<std::string> pt = PkeyDecrypt(libctx_, key.get(), *ct);
    ASSERT_TRUE(pt.ok()) << pt.status();
    EXPECT_EQ(*pt, secret);
  }
  absl::StatusOr<std::string> ct =
      PkeyEncrypt(verify_libctx_, pub.get(), "secret");
  ASSERT_TRUE(ct.ok());
  std::string bad = *ct;
  bad[bad.size() - 2] ^= 0x01;
  absl::StatusOr<std::string> pt = PkeyDecrypt(libctx_, key.get(), bad);
  ASSERT_FALSE(pt.ok());
  EXPECT_THAT(pt.status().message(), HasSubstr("decryption failed"));
}

TEST_F(Sm2IntegrationTest, SelfSignedCertificate) {
  EvpPkeyPtr key = Key(kSignUri);
  ASSERT_NE(key, nullptr);
  absl::StatusOr<X509Ptr> cert =
      SelfSignedCertificate(key.get(), "SM3", "SM2 CA");
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(X509_get_signature_nid(cert->get()), NID_SM2_with_SM3);
  ASN1_OCTET_STRING* id = ASN1_OCTET_STRING_new();
  ASSERT_EQ(ASN1_OCTET_STRING_set(
                id, reinterpret_cast<const unsigned char*>(kGmtDefaultId), 16),
            1);
  X509_set0_distinguishing_id(cert->get(), id);
  EvpPkeyPtr pub = PublicKey(key.get());
  EXPECT_EQ(X509_verify(cert->get(), pub.get()), 1) << DrainErrors();
  EXPECT_EQ(X509_check_private_key(cert->get(), key.get()), 1) << DrainErrors();
}

TEST_F(Sm2IntegrationTest, EightThreadsShareOneKey) {
  EvpPkeyPtr key = Key(kSignUri);
  ASSERT_NE(key, nullptr);
  EvpPkeyPtr pub = PublicKey(key.get());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string message = absl::StrCat("thread ", t, " message ", i);
        absl::StatusOr<std::string> sig =
            DigestSign(libctx_, key.get(), "SM3", message);
        if (!sig.ok()) {
          failures++;
          continue;
        }
        absl::StatusOr<bool> ok =
            DigestVerify(verify_libctx_, pub.get(), "SM3", message, *sig,
                         WithId(kGmtDefaultId));
        if (!ok.ok() || !*ok) failures++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(Sm2IntegrationTest, KeyKeepsWorkingAcrossHsmdRestart) {
  EvpPkeyPtr key = Key(kSignUri);
  ASSERT_NE(key, nullptr);
  EvpPkeyPtr pub = PublicKey(key.get());
  ASSERT_TRUE(DigestSign(libctx_, key.get(), "SM3", kMessage).ok());
  ASSERT_TRUE(daemon_->Stop().ok());
  absl::StatusOr<std::string> sig =
      DigestSign(libctx_, key.get(), "SM3", kMessage);
  ASSERT_FALSE(sig.ok());
  EXPECT_THAT(sig.status().message(), HasSubstr("hsmd unavailable"));
  ASSERT_TRUE(daemon_->Restart().ok());
  sig = DigestSign(libctx_, key.get(), "SM3", kMessage);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(
      DefaultVerifies(pub.get(), kMessage, *sig, WithId(kGmtDefaultId)));
}

}  // namespace
}  // namespace hsmd::testing
