// Interoperability of the SDF backend (over the software SDF device) with
// OpenSSL's default provider: the proof that it is real SM2 / SM3 / SM4, not
// just self-consistent.
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/sdf/sdf_backend.h"
#include "gtest/gtest.h"
#include "tests/sdf/sdf_test_env.h"

namespace hsmd {
namespace {

using backend::Backend;
using backend::RequestContext;
using backend::SdfKeyUsage;

const bool kWatchdog = (alarm(240), true);

constexpr char kDefaultId[] = "1234567812345678";

v1::KeyRef Ref(uint32_t index, absl::string_view usage) {
  v1::KeyRef ref;
  ref.set_uri(
      absl::StrCat("sdf:device=interop;index=", index, ";usage=", usage));
  return ref;
}

class InteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    openssl_sign_ = sdf_test::NewSm2Key();
    openssl_enc_ = sdf_test::NewSm2Key();
    sm4_key_ = sdf_test::RandomBytes(16);
    sdf_test::StoreSpec spec;
    spec.sign_keys = {1};
    spec.enc_keys = {1};
    spec.import_sign[2] = sdf_test::PrivateKeyPem(openssl_sign_.get());
    spec.import_enc[2] = sdf_test::PrivateKeyPem(openssl_enc_.get());
    spec.import_sm4[5] = sm4_key_;
    spec.import_sm4[6] =
        absl::HexStringToBytes("0123456789abcdeffedcba9876543210");
    spec.passwords[1] = "first";
    spec.passwords[2] = "second";
    absl::StatusOr<sdf_test::SoftSdfStore> store =
        sdf_test::SoftSdfStore::Create("interop-store", spec);
    ASSERT_TRUE(store.ok()) << store.status();
    store->Activate();
    backend::SdfBackendOptions options;
    options.name = "interop";
    options.library_path = sdf_test::SoftSdfLibrary();
    options.device_name = "interop";
    for (const auto& [index, usage] :
         std::vector<std::pair<uint32_t, SdfKeyUsage>>{
             {1, SdfKeyUsage::kSign},
             {1, SdfKeyUsage::kEnc},
             {2, SdfKeyUsage::kSign},
             {2, SdfKeyUsage::kEnc},
             {5, SdfKeyUsage::kSm4},
             {6, SdfKeyUsage::kSm4}}) {
      backend::SdfKeyConfig key;
      key.index = index;
      key.usage = usage;
      if (usage != SdfKeyUsage::kSm4) {
        key.password_source = store->PasswordSource(index);
      }
      options.keys.push_back(std::move(key));
    }
    absl::StatusOr<std::unique_ptr<Backend>> b =
        backend::NewSdfBackend(std::move(options));
    ASSERT_TRUE(b.ok()) << b.status();
    backend_ = *std::move(b);
  }

  EvpPkeyPtr Exported(uint32_t index, absl::string_view usage) {
    absl::StatusOr<v1::Key> key = backend_->GetKey(Ref(index, usage), ctx_);
    EXPECT_TRUE(key.ok()) << key.status();
    absl::StatusOr<EvpPkeyPtr> pkey =
        sdf_test::PublicKeyFromDer(key.ok() ? key->public_key_der() : "");
    EXPECT_TRUE(pkey.ok());
    return pkey.ok() ? *std::move(pkey) : nullptr;
  }

  std::string Sign(uint32_t index, absl::string_view message,
                   absl::string_view id) {
    v1::SignRequest request;
    *request.mutable_key() = Ref(index, "sign");
    request.mutable_algorithm()->mutable_sm2()->set_distinguishing_id(
        std::string(id));
    request.set_message(std::string(message));
    absl::StatusOr<v1::SignResponse> r = backend_->Sign(request, ctx_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->signature() : "";
  }

  absl::StatusOr<std::string> Sm4(uint32_t index, v1::CipherMode mode,
                                  absl::string_view iv, absl::string_view data,
                                  bool encrypt) {
    v1::Sm4Cipher cipher;
    cipher.set_mode(mode);
    cipher.set_iv(std::string(iv));
    if (encrypt) {
      v1::EncryptRequest request;
      *request.mutable_key() = Ref(index, "sm4");
      *request.mutable_algorithm()->mutable_sm4() = cipher;
      request.set_plaintext(std::string(data));
      absl::StatusOr<v1::EncryptResponse> r = backend_->Encrypt(request, ctx_);
      if (!r.ok()) return r.status();
      return r->ciphertext();
    }
    v1::DecryptRequest request;
    *request.mutable_key() = Ref(index, "sm4");
    *request.mutable_algorithm()->mutable_sm4() = cipher;
    request.set_ciphertext(std::string(data));
    absl::StatusOr<v1::DecryptResponse> r = backend_->Decrypt(request, ctx_);
    if (!r.ok()) return r.status();
    return r->plaintext();
  }

  EvpPkeyPtr openssl_sign_;
  EvpPkeyPtr openssl_enc_;
  std::string sm4_key_;
  std::unique_ptr<Backend> backend_;
  RequestContext ctx_;
};

TEST_F(InteropTest, DeviceSignaturesVerifyWithOpenSsl) {
  EvpPkeyPtr pub = Exported(1, "sign");
  const std::string message = "国密 SM2 signature through hsmd";
  // Message + default ID, message + another ID.
  EXPECT_TRUE(sdf_test::Sm2Verify(pub.get(), kDefaultId, message,
                                  Sign(1, message, "")));
  EXPECT_TRUE(sdf_test::Sm2Verify(pub.get(), "ALICE123@YAHOO.COM", message,
                                  Sign(1, message, "ALICE123@YAHOO.COM")));
  // Digest input: e = SM3(Z || M) computed here from the curve parameters.
  absl::StatusOr<std::string> e =
      sdf_test::Sm2E(pub.get(), "digest-id", message);
  ASSERT_TRUE(e.ok());
  v1::SignRequest request;
  *request.mutable_key() = Ref(1, "sign");
  request.mutable_algorithm()->mutable_sm2();
  request.set_digest(*e);
  absl::StatusOr<v1::SignResponse> signed_e = backend_->Sign(request, ctx_);
  ASSERT_TRUE(signed_e.ok()) << signed_e.status();
  EXPECT_TRUE(sdf_test::Sm2Verify(pub.get(), "digest-id", message,
                                  signed_e->signature()));
  EXPECT_FALSE(sdf_test::Sm2Verify(pub.get(), kDefaultId, message,
                                   signed_e->signature()));
}

TEST_F(InteropTest, ImportedSoftwareKey) {
  EvpPkeyPtr pub = Exported(2, "sign");
  const std::string message = "imported key";
  // Sanity: OpenSSL's signature with the software key verifies with the key
  // the device exports.
  absl::StatusOr<std::string> openssl_sig =
      sdf_test::Sm2Sign(openssl_sign_.get(), kDefaultId, message);
  ASSERT_TRUE(openssl_sig.ok());
  EXPECT_TRUE(
      sdf_test::Sm2Verify(pub.get(), kDefaultId, message, *openssl_sig));
  // The device's signature with the imported key verifies with OpenSSL's
  // copy of that key.
  EXPECT_TRUE(sdf_test::Sm2Verify(openssl_sign_.get(), "user-id", message,
                                  Sign(2, message, "user-id")));
}

TEST_F(InteropTest, OpenSslCiphertextsDecryptThroughTheBackend) {
  for (uint32_t index : {1u, 2u}) {
    EvpPkeyPtr pub = Exported(index, "enc");
    for (size_t length : {1u, 19u, 256u, 4096u}) {
      const std::string plaintext = sdf_test::RandomBytes(length);
      absl::StatusOr<std::string> ciphertext =
          sdf_test::Sm2Encrypt(pub.get(), plaintext);
      ASSERT_TRUE(ciphertext.ok());
      v1::DecryptRequest request;
      *request.mutable_key() = Ref(index, "enc");
      request.mutable_algorithm()->mutable_sm2();
      request.set_ciphertext(*ciphertext);
      absl::StatusOr<v1::DecryptResponse> r = backend_->Decrypt(request, ctx_);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->plaintext(), plaintext) << index << " " << length;
    }
  }
  // The software key's public half encrypts for the device too.
  absl::StatusOr<std::string> ciphertext =
      sdf_test::Sm2Encrypt(openssl_enc_.get(), "to the imported key");
  ASSERT_TRUE(ciphertext.ok());
  v1::DecryptRequest request;
  *request.mutable_key() = Ref(2, "enc");
  request.mutable_algorithm()->mutable_sm2();
  request.set_ciphertext(*ciphertext);
  absl::StatusOr<v1::DecryptResponse> r = backend_->Decrypt(request, ctx_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->plaintext(), "to the imported key");
  // Beyond the device's plaintext bound (softsdf: 4096): its SDR_INARGERR.
  ciphertext =
      sdf_test::Sm2Encrypt(Exported(1, "enc").get(), std::string(4097, 'x'));
  ASSERT_TRUE(ciphertext.ok());
  *request.mutable_key() = Ref(1, "enc");
  request.set_ciphertext(*ciphertext);
  r = backend_->Decrypt(request, ctx_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("SDR_INARGERR"), absl::string_view::npos)
      << r.status();
}

TEST_F(InteropTest, Sm4MatchesOpenSsl) {
  for (size_t length : {16u, 48u, 4096u}) {
    const std::string data = sdf_test::RandomBytes(length);
    const std::string iv = sdf_test::RandomBytes(16);
    for (const auto& [mode, mode_iv] :
         std::vector<std::pair<v1::CipherMode, std::string>>{
             {v1::CIPHER_MODE_ECB, ""}, {v1::CIPHER_MODE_CBC, iv}}) {
      absl::StatusOr<std::string> expected =
          sdf_test::Sm4(sm4_key_, mode_iv, data, true);
      ASSERT_TRUE(expected.ok());
      absl::StatusOr<std::string> ours = Sm4(5, mode, mode_iv, data, true);
      ASSERT_TRUE(ours.ok()) << ours.status();
      EXPECT_EQ(*ours, *expected) << mode << " " << length;
      // OpenSSL's ciphertext decrypts through the backend.
      absl::StatusOr<std::string> back =
          Sm4(5, mode, mode_iv, *expected, false);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, data);
    }
  }
}

TEST_F(InteropTest, Sm4StandardVector) {
  // GB/T 32907-2016 appendix A, example 1: key = plaintext.
  const std::string plaintext =
      absl::HexStringToBytes("0123456789abcdeffedcba9876543210");
  absl::StatusOr<std::string> ciphertext =
      Sm4(6, v1::CIPHER_MODE_ECB, "", plaintext, true);
  ASSERT_TRUE(ciphertext.ok()) << ciphertext.status();
  EXPECT_EQ(absl::BytesToHexString(*ciphertext),
            "681edf34d206965e86b3e94f536e4246");
  absl::StatusOr<std::string> back =
      Sm4(6, v1::CIPHER_MODE_ECB, "", *ciphertext, false);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, plaintext);
}

}  // namespace
}  // namespace hsmd
