// hsmproxy.so against a real `hsmd --demo` (SoftHSM): key lookup, every
// signature and decryption family, errors, RAND, threads and daemon
// restarts. Signatures are verified with the public key in a library context
// holding only the default provider.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/store.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/provider/demo_daemon.h"
#include "tests/provider/hsmproxy_fixture.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {
namespace {

using ::testing::HasSubstr;

const std::string kMessage = "signed through hsmd";

std::string Uri(const std::string& label) {
  return absl::StrCat("pkcs11:token=demo;object=", label, ";type=private");
}

class IntegrationTest : public HsmproxyDaemonTest {
 protected:
  // The demo token's key labelled `label`.
  static EvpPkeyPtr Key(const std::string& label) {
    return HsmproxyDaemonTest::Key(Uri(label));
  }

  static void ExpectSignVerifies(const std::string& label, const char* md,
                                 const CtxSetup& setup = nullptr) {
    SCOPED_TRACE(absl::StrCat(label, " ", md == nullptr ? "(none)" : md));
    EvpPkeyPtr key = Key(label);
    ASSERT_NE(key, nullptr);
    absl::StatusOr<std::string> sig =
        DigestSign(libctx_, key.get(), md, kMessage, setup);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EvpPkeyPtr pub = PublicKey(key.get());
    absl::StatusOr<bool> ok =
        DigestVerify(verify_libctx_, pub.get(), md, kMessage, *sig, setup);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_TRUE(*ok);
  }
};

TEST_F(IntegrationTest, StoreFindsEveryDemoKey) {
  const struct {
    const char* label;
    const char* type;
    int bits;
  } kKeys[] = {{"rsa-2048", "RSA", 2048},
               {"rsa-3072", "RSA", 3072},
               {"ec-p256", "EC", 256},
               {"ec-p384", "EC", 384},
               {"ed25519", "ED25519", 256}};
  for (const auto& k : kKeys) {
    SCOPED_TRACE(k.label);
    EvpPkeyPtr key = Key(k.label);
    ASSERT_NE(key, nullptr);
    EXPECT_TRUE(EVP_PKEY_is_a(key.get(), k.type));
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), k.bits);
    EXPECT_STREQ(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key.get())),
                 "hsmproxy");
    // The store's public key is the same key.
    absl::StatusOr<EvpPkeyPtr> pub = LoadKey(
        libctx_,
        absl::StrCat("pkcs11:token=demo;object=", k.label, ";type=public"),
        OSSL_STORE_INFO_PUBKEY);
    ASSERT_TRUE(pub.ok()) << pub.status();
    EXPECT_EQ(EVP_PKEY_eq(key.get(), pub->get()), 1);
  }
}

TEST_F(IntegrationTest, SignaturesVerifyWithTheDefaultProvider) {
  for (const char* md : {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512"}) {
    ExpectSignVerifies("rsa-2048", md);
  }
  ExpectSignVerifies("rsa-3072", "SHA256");
  ExpectSignVerifies("ec-p256", "SHA256");
  ExpectSignVerifies("ec-p384", "SHA384");
  ExpectSignVerifies("ed25519", nullptr);
}

TEST_F(IntegrationTest, PssSaltLengthsAndMgf1) {
  for (int saltlen : {RSA_PSS_SALTLEN_DIGEST, RSA_PSS_SALTLEN_MAX,
                      RSA_PSS_SALTLEN_AUTO, 0, 32, 48}) {
    SCOPED_TRACE(saltlen);
    ExpectSignVerifies("rsa-2048", "SHA256", [saltlen](EVP_PKEY_CTX* c) {
      return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(c, saltlen) > 0;
    });
  }
  ExpectSignVerifies("rsa-3072", "SHA512", [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) > 0;
  });
}

TEST_F(IntegrationTest, RawDigestInfoAndPrehashedSignatures) {
  EvpPkeyPtr key = Key("rsa-2048");
  EvpPkeyPtr pub = PublicKey(key.get());
  std::string digest = Hash("SHA256", kMessage);
  const unsigned char kPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                   0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                   0x01, 0x05, 0x00, 0x04, 0x20};
  std::string digest_info(reinterpret_cast<const char*>(kPrefix),
                          sizeof(kPrefix));
  digest_info += digest;
  absl::StatusOr<std::string> sig = PkeySign(libctx_, key.get(), digest_info);
  ASSERT_TRUE(sig.ok()) << sig.status();
  auto sha256 = [](EVP_PKEY_CTX* c) {
    return EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) > 0;
  };
  EXPECT_TRUE(*PkeyVerify(verify_libctx_, pub.get(), digest, *sig, sha256));
  EvpPkeyPtr ec = Key("ec-p256");
  sig = PkeySign(libctx_, ec.get(), digest);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EvpPkeyPtr ec_pub = PublicKey(ec.get());
  EXPECT_TRUE(*PkeyVerify(verify_libctx_, ec_pub.get(), digest, *sig));
}

TEST_F(IntegrationTest, DecryptPkcs1AndOaep) {
  EvpPkeyPtr key = Key("rsa-2048");
  EvpPkeyPtr pub = PublicKey(key.get());
  const std::string secret = "premaster-ish secret";
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    CtxSetup setup = [variant](EVP_PKEY_CTX* c) {
      if (variant == 0)
        return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0;
      bool ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) > 0;
      if (variant == 2) {
        unsigned char* label =
            static_cast<unsigned char*>(OPENSSL_memdup("L", 1));
        ok = ok && EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set0_rsa_oaep_label(c, label, 1) > 0;
      }
      return ok;
    };
    absl::StatusOr<std::string> ct =
        PkeyEncrypt(verify_libctx_, pub.get(), secret, setup);
    ASSERT_TRUE(ct.ok()) << ct.status();
    absl::StatusOr<std::string> pt =
        PkeyDecrypt(libctx_, key.get(), *ct, setup);
    ASSERT_TRUE(pt.ok()) << pt.status();
    EXPECT_EQ(*pt, secret);
    std::string bad = *ct;
    bad[bad.size() - 1] ^= 1;
    pt = PkeyDecrypt(libctx_, key.get(), bad, setup);
    ASSERT_FALSE(pt.ok());
    EXPECT_THAT(pt.status().message(), HasSubstr("decryption failed"));
  }
}

TEST_F(IntegrationTest, EcdhWithHsmKeysEqualsThePeersDerivation) {
  for (const char* label : {"ec-p256", "ec-p384"}) {
    SCOPED_TRACE(label);
    const bool p256 = std::string(label) == "ec-p256";
    EvpPkeyPtr key = Key(label);
    ASSERT_NE(key, nullptr);
    // A software peer in the default-only library context.
    EvpPkeyPtr peer(EVP_PKEY_Q_keygen(verify_libctx_, nullptr, "EC",
                                      p256 ? "P-256" : "P-384"));
    ASSERT_NE(peer, nullptr);
    EvpPkeyPtr peer_public = PublicKeyFromSpki(libctx_, SpkiOf(peer.get()));
    absl::StatusOr<std::string> ours =
        PkeyDerive(libctx_, key.get(), peer_public.get());
    ASSERT_TRUE(ours.ok()) << ours.status();
    EvpPkeyPtr hsm_public = PublicKey(key.get());
    absl::StatusOr<std::string> theirs =
        PkeyDerive(verify_libctx_, peer.get(), hsm_public.get());
    ASSERT_TRUE(theirs.ok()) << theirs.status();
    EXPECT_EQ(ours->size(), p256 ? 32u : 48u);
    EXPECT_EQ(*ours, *theirs);
  }
  // A peer on another curve is refused.
  EvpPkeyPtr key = Key("ec-p256");
  EvpPkeyPtr p384(EVP_PKEY_Q_keygen(verify_libctx_, nullptr, "EC", "P-384"));
  EvpPkeyPtr p384_public = PublicKeyFromSpki(libctx_, SpkiOf(p384.get()));
  EXPECT_FALSE(PkeyDerive(libctx_, key.get(), p384_public.get()).ok());
}

TEST_F(IntegrationTest, TlsWithHsmKeys) {
  for (const char* label : {"rsa-2048", "ec-p256", "ed25519"}) {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      SCOPED_TRACE(absl::StrCat(label, " ", version));
      EvpPkeyPtr key = Key(label);
      const char* md = absl::StrContains(label, "ed25519") ? nullptr : "SHA256";
      absl::StatusOr<X509Ptr> cert =
          SelfSignedCertificate(key.get(), md, "localhost");
      ASSERT_TRUE(cert.ok()) << cert.status();
      absl::Status status = TlsHandshake(libctx_, cert->get(), key.get(),
                                         verify_libctx_, version);
      EXPECT_TRUE(status.ok()) << status;
    }
  }
}

TEST_F(IntegrationTest, RandFromHsmd) {
  EVP_RAND* rand = EVP_RAND_fetch(libctx_, "HSMPROXY-RAND", nullptr);
  ASSERT_NE(rand, nullptr) << DrainErrors();
  EVP_RAND_CTX* ctx = EVP_RAND_CTX_new(rand, nullptr);
  EVP_RAND_free(rand);
  ASSERT_EQ(EVP_RAND_instantiate(ctx, 256, 0, nullptr, 0, nullptr), 1);
  unsigned char a[32];
  unsigned char b[32];
  ASSERT_EQ(EVP_RAND_generate(ctx, a, sizeof(a), 0, 0, nullptr, 0), 1)
      << DrainErrors();
  ASSERT_EQ(EVP_RAND_generate(ctx, b, sizeof(b), 0, 0, nullptr, 0), 1);
  EXPECT_NE(std::string(reinterpret_cast<char*>(a), 32),
            std::string(reinterpret_cast<char*>(b), 32));
  std::vector<unsigned char> big(100000);
  EXPECT_EQ(EVP_RAND_generate(ctx, big.data(), big.size(), 0, 0, nullptr, 0), 1)
      << DrainErrors();
  EVP_RAND_CTX_free(ctx);
}

TEST_F(IntegrationTest, UnknownKeyIsNamed) {
  absl::StatusOr<EvpPkeyPtr> key =
      LoadKey(libctx_, Uri("missing-key"), OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), HasSubstr("key not found"));
  EXPECT_THAT(key.status().message(), HasSubstr("object=missing-key"));
}

TEST_F(IntegrationTest, ManyThreadsShareOneKey) {
  EvpPkeyPtr key = Key("ec-p256");
  EvpPkeyPtr pub = PublicKey(key.get());
  std::atomic<int> good{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string message = absl::StrCat("thread ", t, " message ", i);
        absl::StatusOr<std::string> sig =
            DigestSign(libctx_, key.get(), "SHA256", message);
        bool ok = sig.ok() && *DigestVerify(verify_libctx_, pub.get(), "SHA256",
                                            message, *sig);
        (ok ? good : bad)++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(good.load(), 8 * 40);
}

// Keys loaded before hsmd restarts keep working once it is back; while it
// is down, operations fail at once with a readable error.
TEST_F(IntegrationTest, DaemonRestart) {
  EvpPkeyPtr ec = Key("ec-p256");
  EvpPkeyPtr rsa = Key("rsa-2048");
  ASSERT_TRUE(DigestSign(libctx_, ec.get(), "SHA256", kMessage).ok());
  ASSERT_TRUE(daemon_->Stop().ok());

  absl::StatusOr<std::string> down =
      DigestSign(libctx_, ec.get(), "SHA256", kMessage);
  ASSERT_FALSE(down.ok());
  EXPECT_THAT(down.status().message(), HasSubstr("hsmd unavailable at"));
  EXPECT_THAT(down.status().message(), HasSubstr(daemon_->socket_path()));
  absl::StatusOr<EvpPkeyPtr> lookup =
      LoadKey(libctx_, Uri("ec-p384"), OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(lookup.ok());
  EXPECT_THAT(lookup.status().message(), HasSubstr("hsmd unavailable"));

  ASSERT_TRUE(daemon_->Restart().ok());
  for (EVP_PKEY* key : {ec.get(), rsa.get()}) {
    absl::StatusOr<std::string> sig =
        DigestSign(libctx_, key, "SHA256", kMessage);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EvpPkeyPtr pub = PublicKey(key);
    EXPECT_TRUE(
        *DigestVerify(verify_libctx_, pub.get(), "SHA256", kMessage, *sig));
  }
  // Also after a crash (SIGKILL).
  ASSERT_TRUE(daemon_->Stop(/*kill=*/true).ok());
  ASSERT_TRUE(daemon_->Restart().ok());
  absl::StatusOr<std::string> sig =
      DigestSign(libctx_, ec.get(), "SHA256", kMessage);
  EXPECT_TRUE(sig.ok()) << sig.status();
}

}  // namespace
}  // namespace hsmd::testing
