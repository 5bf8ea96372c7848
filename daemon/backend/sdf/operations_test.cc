#include "daemon/backend/sdf/operations.h"

#include <openssl/evp.h>

#include <cstring>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/softsdf/sm2_codec.h"

namespace hsmd::backend::sdf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using EvpCipherCtxPtr = OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

// A fake device: SM4 with a fixed key that, unlike softsdf, never updates
// the IV buffer, and that records the length of every call.
constexpr char kKeyHex[] = "0123456789abcdeffedcba9876543210";
std::vector<unsigned int>* calls = nullptr;

std::string OpenSslSm4(absl::string_view iv, absl::string_view data,
                       bool encrypt) {
  const std::string key = absl::HexStringToBytes(kKeyHex);
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  std::string out(data.size() + 16, '\0');
  int n1 = 0, n2 = 0;
  EVP_CipherInit_ex(ctx.get(), iv.empty() ? EVP_sm4_ecb() : EVP_sm4_cbc(),
                    nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                    reinterpret_cast<const unsigned char*>(iv.data()),
                    encrypt ? 1 : 0);
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  EVP_CipherUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n1,
                   reinterpret_cast<const unsigned char*>(data.data()),
                   static_cast<int>(data.size()));
  EVP_CipherFinal_ex(ctx.get(),
                     reinterpret_cast<unsigned char*>(out.data()) + n1, &n2);
  out.resize(static_cast<size_t>(n1 + n2));
  return out;
}

int FakeCrypt(bool encrypt, unsigned int alg, unsigned char* iv,
              unsigned char* in, unsigned int len, unsigned char* out,
              unsigned int* out_len) {
  calls->push_back(len);
  const std::string result =
      OpenSslSm4(alg == SGD_SM4_CBC
                     ? std::string(reinterpret_cast<char*>(iv), kSm4BlockSize)
                     : "",
                 std::string(reinterpret_cast<char*>(in), len), encrypt);
  std::memcpy(out, result.data(), result.size());
  *out_len = static_cast<unsigned int>(result.size());
  return SDR_OK;
}

int FakeEncrypt(void*, void*, unsigned int alg, unsigned char* iv,
                unsigned char* in, unsigned int len, unsigned char* out,
                unsigned int* out_len) {
  return FakeCrypt(true, alg, iv, in, len, out, out_len);
}

int FakeDecrypt(void*, void*, unsigned int alg, unsigned char* iv,
                unsigned char* in, unsigned int len, unsigned char* out,
                unsigned int* out_len) {
  return FakeCrypt(false, alg, iv, in, len, out, out_len);
}

int FakeRandom(void*, unsigned int len, unsigned char* out) {
  calls->push_back(len);
  std::memset(out, 0x5a, len);
  return SDR_OK;
}

// Puts r and s at the start of the 64-byte fields (a vendor ABI mistake).
int LeftAlignedSign(void*, unsigned int, unsigned char*, unsigned int,
                    ECCSignature* signature) {
  std::memset(signature, 0x11, sizeof(*signature));
  return SDR_OK;
}

int FailingSign(void*, unsigned int, unsigned char*, unsigned int,
                ECCSignature*) {
  return SDR_PARDENY;
}

class OperationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    calls_.clear();
    calls = &calls_;
    fns_.Encrypt = FakeEncrypt;
    fns_.Decrypt = FakeDecrypt;
    fns_.GenerateRandom = FakeRandom;
    key_ = EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    ECCrefPublicKey ref;
    ASSERT_TRUE(softsdf::Sm2PublicKeyToRef(key_.get(), &ref).ok());
    sign_ = *MakeSm2Entry("b", "d", 1, KeyUsage::kSign, "", ref);
    enc_ = *MakeSm2Entry("b", "d", 1, KeyUsage::kEnc, "", ref);
    sm4_ = MakeSm4Entry("b", "d", 2, "");
  }

  std::vector<unsigned int> calls_;
  SdfFunctions fns_;
  EvpPkeyPtr key_;
  KeyEntry sign_, enc_, sm4_;
};

TEST_F(OperationsTest, MessageDigestIsE) {
  v1::SignRequest request;
  request.mutable_algorithm()->mutable_sm2()->set_distinguishing_id("alice");
  request.set_message("hello");
  absl::StatusOr<std::string> e = PlanSign(sign_, request);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 32u);
  // OpenSSL signs e raw (EVP_PKEY_sign: no Z); the signature must verify as
  // a signature over the message with that ID.
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_sign_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_sign(ctx.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char*>(e->data()),
                          e->size()),
            1);
  std::string sig(len, '\0');
  ASSERT_EQ(EVP_PKEY_sign(
                ctx.get(), reinterpret_cast<unsigned char*>(&sig[0]), &len,
                reinterpret_cast<const unsigned char*>(e->data()), e->size()),
            1);
  sig.resize(len);
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  ASSERT_EQ(
      EVP_DigestVerifyInit(md.get(), &pctx, EVP_sm3(), nullptr, key_.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set1_id(pctx, "alice", 5), 1);
  EXPECT_EQ(EVP_DigestVerify(
                md.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                sig.size(), reinterpret_cast<const unsigned char*>("hello"), 5),
            1);
  // The default ID is GM/T 0009's.
  request.mutable_algorithm()->mutable_sm2()->clear_distinguishing_id();
  absl::StatusOr<std::string> default_e = PlanSign(sign_, request);
  request.mutable_algorithm()->mutable_sm2()->set_distinguishing_id(
      "1234567812345678");
  EXPECT_EQ(*default_e, *PlanSign(sign_, request));
  EXPECT_NE(*default_e, *e);
}

TEST_F(OperationsTest, DigestInputIsPassedThrough) {
  v1::SignRequest request;
  request.mutable_algorithm()->mutable_sm2();
  request.set_digest(std::string(32, 'e'));
  EXPECT_EQ(*PlanSign(sign_, request), std::string(32, 'e'));
  request.set_digest(std::string(33, 'e'));
  EXPECT_EQ(PlanSign(sign_, request).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanSign(enc_, request).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(OperationsTest, RejectsMalformedDeviceSignatures) {
  fns_.InternalSign_ECC = LeftAlignedSign;
  absl::StatusOr<std::string> sig =
      InternalSign(fns_, nullptr, 1, std::string(32, 'e'));
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(sig.status().message()),
              HasSubstr("malformed signature"));
  fns_.InternalSign_ECC = FailingSign;
  sig = InternalSign(fns_, nullptr, 1, std::string(32, 'e'));
  EXPECT_EQ(sig.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(sig.status().message()),
              HasSubstr("SDF_InternalSign_ECC failed: SDR_PARDENY"));
}

TEST_F(OperationsTest, Sm4ChainsCbcAcrossPiecesItself) {
  const std::string iv(16, '\x07');
  const std::string data(16 * 7, 'd');
  v1::Sm4Cipher cipher;
  cipher.set_mode(v1::CIPHER_MODE_CBC);
  cipher.set_iv(iv);
  absl::StatusOr<Sm4Plan> plan = PlanSm4(sm4_, cipher, data, true);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // 50 rounds down to 48: three blocks per call.
  absl::StatusOr<std::string> out =
      RunSm4(fns_, nullptr, nullptr, SGD_SM4_CBC, *plan, data, 50);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, OpenSslSm4(iv, data, true));
  EXPECT_THAT(calls_, ElementsAre(48u, 48u, 16u));
  plan->encrypt = false;
  calls_.clear();
  absl::StatusOr<std::string> back =
      RunSm4(fns_, nullptr, nullptr, SGD_SM4_CBC, *plan, *out, 32);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, data);
  EXPECT_THAT(calls_, ElementsAre(32u, 32u, 32u, 16u));
}

TEST_F(OperationsTest, Sm4Checks) {
  v1::Sm4Cipher ecb;
  ecb.set_mode(v1::CIPHER_MODE_ECB);
  EXPECT_TRUE(PlanSm4(sm4_, ecb, std::string(32, 'x'), true).ok());
  EXPECT_EQ(PlanSm4(sm4_, ecb, std::string(31, 'x'), true).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanSm4(sign_, ecb, std::string(32, 'x'), true).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Sm4Cipher cbc;
  cbc.set_mode(v1::CIPHER_MODE_CBC);
  EXPECT_EQ(PlanSm4(sm4_, cbc, std::string(32, 'x'), false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(OperationsTest, RandomInPieces) {
  absl::StatusOr<std::string> out = GenerateRandom(fns_, nullptr, 2500, 1000);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, std::string(2500, '\x5a'));
  EXPECT_THAT(calls_, ElementsAre(1000u, 1000u, 500u));
}

TEST_F(OperationsTest, DecryptChecksAndCiphertextParsing) {
  v1::DecryptRequest request;
  request.mutable_algorithm()->mutable_sm2();
  request.set_ciphertext("x");
  EXPECT_TRUE(CheckDecrypt(enc_, request).ok());
  EXPECT_EQ(CheckDecrypt(sign_, request).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckDecrypt(sm4_, request).code(),
            absl::StatusCode::kInvalidArgument);
  request.clear_algorithm();
  EXPECT_EQ(CheckDecrypt(enc_, request).code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<softsdf::EccCipherBuffer> parsed =
      ParseSm2Ciphertext("\x30\x03\x02\x01\x01");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr("OpenSSL's SM2 ciphertext"));
  // OpenSSL's own ciphertext parses, C as long as the plaintext.
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_encrypt_init(ctx.get()), 1);
  unsigned char out[256];
  size_t len = sizeof(out);
  ASSERT_EQ(EVP_PKEY_encrypt(ctx.get(), out, &len,
                             reinterpret_cast<const unsigned char*>("hi"), 2),
            1);
  parsed =
      ParseSm2Ciphertext(absl::string_view(reinterpret_cast<char*>(out), len));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->get()->L, 2u);
}

}  // namespace
}  // namespace hsmd::backend::sdf
