// PKCS#7 padding and SM4 through a fake hsmd that really runs SM4 (OpenSSL,
// no padding, like an SDF device): pieces chained by Sm4ThroughHsmd must give
// exactly OpenSSL's one-shot result over the whole input.
#include "tools/hsmctl/sm4.h"

#include <openssl/evp.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "client_lib/client.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::HasSubstr;

using EvpCipherCtxPtr = OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

// SM4 without padding, in one go.
std::string OpenSslSm4(const std::string& key, v1::CipherMode mode,
                       const std::string& iv, const std::string& data,
                       bool encrypt) {
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  const char* name = mode == v1::CIPHER_MODE_CBC ? "SM4-CBC" : "SM4-ECB";
  OpenSslPtr<EVP_CIPHER, EVP_CIPHER_free> cipher(
      EVP_CIPHER_fetch(nullptr, name, nullptr));
  EXPECT_NE(cipher, nullptr);
  EXPECT_EQ(EVP_CipherInit_ex2(
                ctx.get(), cipher.get(),
                reinterpret_cast<const unsigned char*>(key.data()),
                iv.empty() ? nullptr
                           : reinterpret_cast<const unsigned char*>(iv.data()),
                encrypt ? 1 : 0, nullptr),
            1);
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  std::string out(data.size() + 16, '\0');
  int length = 0;
  int final_length = 0;
  EXPECT_EQ(EVP_CipherUpdate(
                ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                &length, reinterpret_cast<const unsigned char*>(data.data()),
                static_cast<int>(data.size())),
            1);
  EXPECT_EQ(
      EVP_CipherFinal_ex(ctx.get(),
                         reinterpret_cast<unsigned char*>(out.data()) + length,
                         &final_length),
      1);
  out.resize(static_cast<size_t>(length + final_length));
  return out;
}

// hsmd with one SM4 key, checking requests as the SDF backend does.
class FakeSm4Client : public client::Client {
 public:
  explicit FakeSm4Client(std::string key) : key_(std::move(key)) {}

  const client::ClientOptions& options() const override { return options_; }

  absl::Status Call(absl::string_view method,
                    const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite* response,
                    const client::CallOptions&) override {
    ++calls;
    if (next_error.has_value()) {
      absl::Status error = *next_error;
      next_error.reset();
      return error;
    }
    const bool encrypt = method == "/hsmd.v1.KeyService/Encrypt";
    const v1::Sm4Cipher& sm4 =
        encrypt
            ? static_cast<const v1::EncryptRequest&>(request).algorithm().sm4()
            : static_cast<const v1::DecryptRequest&>(request).algorithm().sm4();
    const std::string& data =
        encrypt ? static_cast<const v1::EncryptRequest&>(request).plaintext()
                : static_cast<const v1::DecryptRequest&>(request).ciphertext();
    largest_piece = std::max(largest_piece, data.size());
    std::string out = OpenSslSm4(key_, sm4.mode(), sm4.iv(), data, encrypt);
    if (truncate) out.pop_back();
    if (encrypt) {
      auto* r = static_cast<v1::EncryptResponse*>(response);
      r->set_ciphertext(out);
      r->set_key_id("sm4-key");
    } else {
      auto* r = static_cast<v1::DecryptResponse*>(response);
      r->set_plaintext(out);
      r->set_key_id("sm4-key");
    }
    return absl::OkStatus();
  }

  int calls = 0;
  size_t largest_piece = 0;
  bool truncate = false;
  absl::optional<absl::Status> next_error;

 private:
  std::string key_;
  client::ClientOptions options_;
};

std::string Pattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(i * 31 + 5);
  return out;
}

v1::KeyRef Sm4Key() {
  v1::KeyRef ref;
  ref.set_uri("sdf:device=soft0;index=1;usage=sm4");
  return ref;
}

TEST(Pkcs7Test, PadsLikeOpenSslEncAndUnpads) {
  for (size_t n = 0; n <= 33; ++n) {
    const std::string data = Pattern(n);
    const std::string padded = Pkcs7Pad(data);
    EXPECT_EQ(padded.size(), (n / 16 + 1) * 16) << n;
    const size_t pad = padded.size() - n;
    EXPECT_EQ(padded.substr(n), std::string(pad, static_cast<char>(pad))) << n;
    absl::StatusOr<std::string> back = Pkcs7Unpad(padded);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, data);
  }
}

TEST(Pkcs7Test, RejectsInvalidPadding) {
  const std::string block = Pattern(15);
  for (const std::string& bad :
       {block + '\0', block + '\x11', Pattern(14) + "\x01\x02",
        Pattern(30) + "\x03\x02", std::string(32, '\x21')}) {
    absl::Status status = Pkcs7Unpad(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(),
                HasSubstr("decryption failed: the PKCS#7 padding is invalid"));
  }
  EXPECT_THAT(Pkcs7Unpad("").status().message(),
              HasSubstr("0 bytes cannot carry PKCS#7 padding"));
  EXPECT_THAT(Pkcs7Unpad(Pattern(17)).status().message(),
              HasSubstr("17 bytes cannot carry"));
  // 16 bytes of 0x10 is a whole block of padding around nothing.
  EXPECT_EQ(*Pkcs7Unpad(std::string(16, '\x10')), "");
}

TEST(Sm4ThroughHsmdTest, GbT32907Vector) {
  // GB/T 32907-2016 Appendix A, example 1.
  const std::string key =
      absl::HexStringToBytes("0123456789abcdeffedcba9876543210");
  FakeSm4Client hsmd(key);
  absl::StatusOr<Sm4Result> result =
      Sm4ThroughHsmd(hsmd, Sm4Key(), v1::CIPHER_MODE_ECB, "", key, true);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(absl::BytesToHexString(result->output),
            "681edf34d206965e86b3e94f536e4246");
  EXPECT_EQ(result->key_id, "sm4-key");
}

TEST(Sm4ThroughHsmdTest, PiecesChainToTheOneShotResult) {
  const std::string key = Pattern(16);
  const std::string iv =
      absl::HexStringToBytes("000102030405060708090a0b0c0d0e0f");
  const std::string data = Pattern(100 * 16);
  for (v1::CipherMode mode : {v1::CIPHER_MODE_CBC, v1::CIPHER_MODE_ECB}) {
    const std::string mode_iv = mode == v1::CIPHER_MODE_CBC ? iv : "";
    const std::string expected = OpenSslSm4(key, mode, mode_iv, data, true);
    for (size_t chunk :
         {size_t{16}, size_t{48}, size_t{1600}, kSm4ChunkBytes}) {
      FakeSm4Client hsmd(key);
      absl::StatusOr<Sm4Result> encrypted =
          Sm4ThroughHsmd(hsmd, Sm4Key(), mode, mode_iv, data, true, chunk);
      ASSERT_TRUE(encrypted.ok()) << encrypted.status();
      EXPECT_EQ(encrypted->output, expected)
          << "mode " << mode << " chunk " << chunk;
      EXPECT_EQ(hsmd.calls,
                static_cast<int>((data.size() + chunk - 1) / chunk));
      EXPECT_LE(hsmd.largest_piece, chunk);

      absl::StatusOr<Sm4Result> decrypted = Sm4ThroughHsmd(
          hsmd, Sm4Key(), mode, mode_iv, encrypted->output, false, chunk);
      ASSERT_TRUE(decrypted.ok()) << decrypted.status();
      EXPECT_EQ(decrypted->output, data)
          << "mode " << mode << " chunk " << chunk;
    }
  }
}

TEST(Sm4ThroughHsmdTest, Errors) {
  FakeSm4Client hsmd(Pattern(16));
  // Length and IV mistakes are caught before any call.
  absl::Status status =
      Sm4ThroughHsmd(hsmd, Sm4Key(), v1::CIPHER_MODE_ECB, "", Pattern(20), true)
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("20 bytes"));
  status = Sm4ThroughHsmd(hsmd, Sm4Key(), v1::CIPHER_MODE_ECB, "", "", false)
               .status();
  EXPECT_THAT(status.message(), HasSubstr("the SM4 ciphertext is 0 bytes"));
  status = Sm4ThroughHsmd(hsmd, Sm4Key(), v1::CIPHER_MODE_CBC, "short",
                          Pattern(16), true)
               .status();
  EXPECT_THAT(status.message(), HasSubstr("IV is 5 bytes"));
  status = Sm4ThroughHsmd(hsmd, Sm4Key(), v1::CIPHER_MODE_ECB, "", Pattern(32),
                          true, 20)
               .status();
  EXPECT_THAT(status.message(), HasSubstr("piece size 20"));
  EXPECT_EQ(hsmd.calls, 0);

  // hsmd's errors come back unchanged; a wrong-sized answer is caught.
  hsmd.next_error = absl::FailedPreconditionError("not an SM4 key");
  status =
      Sm4ThroughHsmd(hsmd, Sm4Key(), v1::CIPHER_MODE_ECB, "", Pattern(32), true)
          .status();
  EXPECT_EQ(status, absl::FailedPreconditionError("not an SM4 key"));
  hsmd.truncate = true;
  status = Sm4ThroughHsmd(hsmd, Sm4Key(), v1::CIPHER_MODE_ECB, "", Pattern(32),
                          false)
               .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(),
              HasSubstr("31 bytes of SM4 plaintext for 32 bytes"));
}

}  // namespace
}  // namespace hsmd::hsmctl
