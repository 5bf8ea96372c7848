// hsmctl's commands end to end inside one process: RunCommandLine with a
// fake hsmd behind the client_lib Client interface. The fake signs and
// decrypts with real OpenSSL keys, so sign/verify and encrypt/decrypt round
// trips prove the requests hsmctl builds are the right ones. (The real daemon
// is exercised by tests/e2e/hsmctl_e2e_test.sh.)
#include "tools/hsmctl/commands.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/error_detail.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/hsmctl/algorithms.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// OpenSSL's SM4 with PKCS#7 padding (or none), as `openssl enc -sm4-cbc -K
// KEY -iv IV` computes it.
std::string OpenSslSm4Encrypt(const std::string& key, const std::string& iv,
                              const std::string& data, bool pad = true) {
  OpenSslPtr<EVP_CIPHER, EVP_CIPHER_free> cipher(
      EVP_CIPHER_fetch(nullptr, iv.empty() ? "SM4-ECB" : "SM4-CBC", nullptr));
  OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free> ctx(EVP_CIPHER_CTX_new());
  EXPECT_EQ(EVP_EncryptInit_ex2(
                ctx.get(), cipher.get(),
                reinterpret_cast<const unsigned char*>(key.data()),
                iv.empty() ? nullptr
                           : reinterpret_cast<const unsigned char*>(iv.data()),
                nullptr),
            1);
  EVP_CIPHER_CTX_set_padding(ctx.get(), pad ? 1 : 0);
  std::string out(data.size() + 32, '\0');
  int len = 0;
  int final_len = 0;
  EXPECT_EQ(EVP_EncryptUpdate(
                ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                reinterpret_cast<const unsigned char*>(data.data()),
                static_cast<int>(data.size())),
            1);
  EXPECT_EQ(EVP_EncryptFinal_ex(
                ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len,
                &final_len),
            1);
  out.resize(static_cast<size_t>(len + final_len));
  return out;
}

// OpenSSL's own SM2 verification with `id` (Z and e computed by OpenSSL).
bool OpenSslSm2Verifies(EVP_PKEY* key, const std::string& id,
                        const std::string& message, const std::string& sig) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestVerifyInit_ex(ctx.get(), &pctx, "SM3", nullptr, nullptr,
                                    key, nullptr),
            1);
  EXPECT_EQ(EVP_PKEY_CTX_set1_id(pctx, id.data(), id.size()), 1);
  return EVP_DigestVerify(
             ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
             sig.size(), reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

struct FakeKey {
  v1::Key key;
  EvpPkeyPtr private_key;
};

// hsmd's behaviour, reduced to what hsmctl relies on.
class FakeHsmd {
 public:
  FakeHsmd() {
    Add("rsa-2048", v1::KEY_TYPE_RSA, 2048, v1::CURVE_UNSPECIFIED,
        EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    Add("ec-p256", v1::KEY_TYPE_EC, 256, v1::CURVE_P256,
        EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    Add("ed25519", v1::KEY_TYPE_ED25519, 255, v1::CURVE_ED25519,
        EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    AddSdf("sm2-sign", "sign", EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    AddSdf("sm2-enc", "enc", EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    AddSdf("sm4", "sm4", nullptr);
  }

  // The SM4 key of the fake device (the GB/T 32907 example key).
  static std::string Sm4Key() {
    return absl::HexStringToBytes("0123456789abcdeffedcba9876543210");
  }

  absl::Status Call(absl::string_view method,
                    const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite* response) {
    calls.push_back(std::string(method));
    requests.push_back(request.SerializeAsString());
    if (next_error.has_value()) {
      absl::Status error = *next_error;
      next_error.reset();
      return error;
    }
    if (method == "/hsmd.v1.KeyService/ListKeys") {
      auto* out = static_cast<v1::ListKeysResponse*>(response);
      for (const auto& [label, k] : keys_) *out->add_keys() = k.key;
      return absl::OkStatus();
    }
    if (method == "/hsmd.v1.KeyService/GetKey") {
      const auto& req = static_cast<const v1::GetKeyRequest&>(request);
      const FakeKey* k = Find(req.key());
      if (k == nullptr) return NotFound(req.key());
      *static_cast<v1::GetKeyResponse*>(response)->mutable_key() = k->key;
      return absl::OkStatus();
    }
    if (method == "/hsmd.v1.KeyService/Sign") {
      const auto& req = static_cast<const v1::SignRequest&>(request);
      const FakeKey* k = Find(req.key());
      if (k == nullptr) return NotFound(req.key());
      last_sign = req;
      auto* out = static_cast<v1::SignResponse*>(response);
      out->set_key_id(k->key.key_id());
      if (req.algorithm().has_sm2()) {
        return SignSm2(*k, req, out->mutable_signature());
      }
      return Sign(*k, req, out->mutable_signature());
    }
    if (method == "/hsmd.v1.KeyService/Decrypt") {
      const auto& req = static_cast<const v1::DecryptRequest&>(request);
      const FakeKey* k = Find(req.key());
      if (k == nullptr) return NotFound(req.key());
      auto* out = static_cast<v1::DecryptResponse*>(response);
      out->set_key_id(k->key.key_id());
      if (req.algorithm().has_sm2()) {
        return DecryptSm2(*k, req.ciphertext(), out->mutable_plaintext());
      }
      if (req.algorithm().has_sm4()) {
        last_sm4 = req.algorithm().sm4();
        return Sm4(*k, req.algorithm().sm4(), req.ciphertext(), false,
                   out->mutable_plaintext());
      }
      return Decrypt(
          *k, req,
          static_cast<v1::DecryptResponse*>(response)->mutable_plaintext());
    }
    if (method == "/hsmd.v1.KeyService/Encrypt") {
      const auto& req = static_cast<const v1::EncryptRequest&>(request);
      const FakeKey* k = Find(req.key());
      if (k == nullptr) return NotFound(req.key());
      auto* out = static_cast<v1::EncryptResponse*>(response);
      out->set_key_id(k->key.key_id());
      last_sm4 = req.algorithm().sm4();
      return Sm4(*k, req.algorithm().sm4(), req.plaintext(), true,
                 out->mutable_ciphertext());
    }
    if (method == "/hsmd.v1.KeyService/GenerateRandom") {
      const auto& req = static_cast<const v1::GenerateRandomRequest&>(request);
      static_cast<v1::GenerateRandomResponse*>(response)->set_data(
          std::string(req.length(), '\x5a'));
      return absl::OkStatus();
    }
    if (method == "/hsmd.v1.AdminService/GenerateKey") {
      last_generate = static_cast<const v1::GenerateKeyRequest&>(request);
      v1::Key key = keys_.at("ec-p256").key;
      key.set_label(last_generate.label());
      *static_cast<v1::GenerateKeyResponse*>(response)->mutable_key() = key;
      return absl::OkStatus();
    }
    if (method == "/hsmd.v1.AdminService/DeleteKey") {
      const auto& req = static_cast<const v1::DeleteKeyRequest&>(request);
      if (Find(req.key()) == nullptr) return NotFound(req.key());
      static_cast<v1::DeleteKeyResponse*>(response)->set_objects_deleted(2);
      return absl::OkStatus();
    }
    if (method == "/hsmd.v1.AdminService/GetStatus") {
      auto* out = static_cast<v1::GetStatusResponse*>(response);
      out->set_version("9.9.9");
      out->add_backends()->set_name("softhsm");
      return absl::OkStatus();
    }
    if (method == "/hsmd.v1.AdminService/GetStats") {
      static_cast<v1::GetStatsResponse*>(response)
          ->add_operations()
          ->set_operation("Sign");
      return absl::OkStatus();
    }
    return absl::UnimplementedError(absl::StrCat("fake: no ", method));
  }

  const FakeKey& key(const std::string& label) const { return keys_.at(label); }

  std::vector<std::string> calls;
  std::vector<std::string> requests;
  absl::optional<absl::Status> next_error;
  v1::SignRequest last_sign;
  v1::Sm4Cipher last_sm4;
  v1::GenerateKeyRequest last_generate;
  client::ClientOptions last_options;

 private:
  void Add(const std::string& label, v1::KeyType type, uint32_t bits,
           v1::Curve curve, EVP_PKEY* pkey) {
    FakeKey k;
    k.private_key.reset(pkey);
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(pkey, &der);
    k.key.set_public_key_der(
        std::string(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
    OPENSSL_free(der);
    // Any distinct 32-hex-digit id will do for the fake.
    k.key.set_key_id(
        (absl::BytesToHexString(label) + std::string(32, '0')).substr(0, 32));
    k.key.set_label(label);
    k.key.set_key_type(type);
    k.key.set_size_bits(bits);
    k.key.set_curve(curve);
    k.key.add_allowed_operations(v1::OPERATION_SIGN);
    if (type == v1::KEY_TYPE_RSA) {
      k.key.add_allowed_operations(v1::OPERATION_DECRYPT);
    }
    k.key.set_uri(
        absl::StrCat("pkcs11:token=demo;object=", label, ";type=private"));
    k.key.set_token_label("demo");
    keys_[label] = std::move(k);
  }

  // Keys of an SDF device "soft0" at index 1, as the SDF backend lists them.
  void AddSdf(const std::string& label, const std::string& usage,
              EVP_PKEY* pkey) {
    FakeKey k;
    k.key.set_label(label);
    k.key.set_uri(absl::StrCat("sdf:device=soft0;index=1;usage=", usage));
    k.key.set_key_id(
        (absl::BytesToHexString(label) + std::string(32, '0')).substr(0, 32));
    k.key.set_backend("soft0");
    k.key.set_token_label("soft0");
    if (pkey == nullptr) {
      k.key.set_key_type(v1::KEY_TYPE_SM4);
      k.key.set_size_bits(128);
      k.key.add_allowed_operations(v1::OPERATION_ENCRYPT);
      k.key.add_allowed_operations(v1::OPERATION_DECRYPT);
    } else {
      k.private_key.reset(pkey);
      unsigned char* der = nullptr;
      const int len = i2d_PUBKEY(pkey, &der);
      k.key.set_public_key_der(
          std::string(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
      OPENSSL_free(der);
      k.key.set_key_type(v1::KEY_TYPE_SM2);
      k.key.set_size_bits(256);
      k.key.set_curve(v1::CURVE_SM2);
      k.key.add_allowed_operations(usage == "sign" ? v1::OPERATION_SIGN
                                                   : v1::OPERATION_DECRYPT);
    }
    keys_[label] = std::move(k);
  }

  // The SDF backend's rules: SM2 signs e (32 bytes) with sign keys only.
  static absl::Status SignSm2(const FakeKey& k, const v1::SignRequest& req,
                              std::string* signature) {
    if (k.key.key_type() != v1::KEY_TYPE_SM2) {
      return absl::InvalidArgumentError(
          absl::StrCat("algorithm sm2 does not fit key type ",
                       KeyTypeName(k.key.key_type()), " (", k.key.uri(), ")"));
    }
    if (!AllowsOperation(k.key, v1::OPERATION_SIGN)) {
      return absl::FailedPreconditionError(
          absl::StrCat(k.key.uri(), " does not allow sign"));
    }
    if (!req.has_digest() || req.digest().size() != 32) {
      return absl::InvalidArgumentError("fake: sm2 takes a 32-byte e here");
    }
    EvpPkeyCtxPtr ctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, k.private_key.get(), nullptr));
    size_t len = 0;
    const auto* in =
        reinterpret_cast<const unsigned char*>(req.digest().data());
    if (EVP_PKEY_sign_init(ctx.get()) != 1 ||
        EVP_PKEY_sign(ctx.get(), nullptr, &len, in, 32) != 1) {
      return absl::InternalError("fake: sm2 sign failed");
    }
    signature->resize(len);
    if (EVP_PKEY_sign(ctx.get(),
                      reinterpret_cast<unsigned char*>(signature->data()), &len,
                      in, 32) != 1) {
      return absl::InternalError("fake: sm2 sign failed");
    }
    signature->resize(len);
    return absl::OkStatus();
  }

  static absl::Status DecryptSm2(const FakeKey& k, const std::string& ct,
                                 std::string* plaintext) {
    if (k.key.key_type() != v1::KEY_TYPE_SM2) {
      return absl::InvalidArgumentError(
          absl::StrCat("algorithm sm2 does not fit key type ",
                       KeyTypeName(k.key.key_type()), " (", k.key.uri(), ")"));
    }
    if (!AllowsOperation(k.key, v1::OPERATION_DECRYPT)) {
      return absl::FailedPreconditionError(
          absl::StrCat(k.key.uri(),
                       " does not allow decrypt (it is the sign key at index "
                       "1; use usage=enc)"));
    }
    EvpPkeyCtxPtr ctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, k.private_key.get(), nullptr));
    size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(ct.data());
    if (EVP_PKEY_decrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, ct.size()) != 1) {
      return absl::InvalidArgumentError("SM2 decryption failed");
    }
    plaintext->resize(len);
    if (EVP_PKEY_decrypt(ctx.get(),
                         reinterpret_cast<unsigned char*>(plaintext->data()),
                         &len, in, ct.size()) != 1) {
      return absl::InvalidArgumentError("SM2 decryption failed");
    }
    plaintext->resize(len);
    return absl::OkStatus();
  }

  // SM4 without padding, as an SDF device does it.
  static absl::Status Sm4(const FakeKey& k, const v1::Sm4Cipher& sm4,
                          const std::string& in, bool encrypt,
                          std::string* out) {
    if (k.key.key_type() != v1::KEY_TYPE_SM4) {
      return absl::InvalidArgumentError(
          absl::StrCat("algorithm sm4 does not fit key type ",
                       KeyTypeName(k.key.key_type()), " (", k.key.uri(), ")"));
    }
    if (in.empty() || in.size() % 16 != 0) {
      return absl::InvalidArgumentError("fake: sm4 length");
    }
    const bool cbc = sm4.mode() == v1::CIPHER_MODE_CBC;
    OpenSslPtr<EVP_CIPHER, EVP_CIPHER_free> cipher(
        EVP_CIPHER_fetch(nullptr, cbc ? "SM4-CBC" : "SM4-ECB", nullptr));
    OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free> ctx(EVP_CIPHER_CTX_new());
    const std::string key = Sm4Key();
    out->resize(in.size() + 16);
    int len = 0;
    if (EVP_CipherInit_ex2(
            ctx.get(), cipher.get(),
            reinterpret_cast<const unsigned char*>(key.data()),
            cbc ? reinterpret_cast<const unsigned char*>(sm4.iv().data())
                : nullptr,
            encrypt ? 1 : 0, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
        EVP_CipherUpdate(ctx.get(),
                         reinterpret_cast<unsigned char*>(out->data()), &len,
                         reinterpret_cast<const unsigned char*>(in.data()),
                         static_cast<int>(in.size())) != 1) {
      return absl::InternalError("fake: sm4 failed");
    }
    out->resize(static_cast<size_t>(len));
    return absl::OkStatus();
  }

  const FakeKey* Find(const v1::KeyRef& ref) const {
    for (const auto& [label, k] : keys_) {
      if (ref.has_key_id() && ref.key_id() == k.key.key_id()) return &k;
      if (ref.has_uri() &&
          (ref.uri() == k.key.uri() ||
           ref.uri() == absl::StrCat("pkcs11:object=", label))) {
        return &k;
      }
    }
    return nullptr;
  }

  static absl::Status NotFound(const v1::KeyRef& ref) {
    absl::Status status = absl::NotFoundError(absl::StrCat(
        "no key matches ", ref.has_uri() ? ref.uri() : ref.key_id()));
    v1::ErrorDetail detail;
    detail.set_key(ref.has_uri() ? ref.uri() : ref.key_id());
    SetErrorDetail(status, detail);
    return status;
  }

  static absl::Status Sign(const FakeKey& k, const v1::SignRequest& req,
                           std::string* signature) {
    EVP_PKEY* pkey = k.private_key.get();
    const v1::SignatureAlgorithm& alg = req.algorithm();
    size_t len = 0;
    if (alg.has_ed25519()) {
      EvpMdCtxPtr ctx(EVP_MD_CTX_new());
      signature->resize(64);
      len = 64;
      if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey) != 1 ||
          EVP_DigestSign(
              ctx.get(), reinterpret_cast<unsigned char*>(signature->data()),
              &len,
              reinterpret_cast<const unsigned char*>(req.message().data()),
              req.message().size()) != 1) {
        return absl::InternalError("fake: ed25519 sign failed");
      }
      return absl::OkStatus();
    }
    v1::HashAlgorithm hash = alg.has_rsa_pkcs1() ? alg.rsa_pkcs1().hash()
                             : alg.has_rsa_pss() ? alg.rsa_pss().hash()
                                                 : alg.ecdsa().hash();
    EvpMdPtr md(
        EVP_MD_fetch(nullptr, OpenSslDigestName(hash).c_str(), nullptr));
    std::string tbs = req.digest();
    if (req.has_message()) {
      unsigned char out[EVP_MAX_MD_SIZE];
      unsigned int out_len = 0;
      EVP_Digest(req.message().data(), req.message().size(), out, &out_len,
                 md.get(), nullptr);
      tbs.assign(reinterpret_cast<char*>(out), out_len);
    }
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
    EVP_PKEY_sign_init(ctx.get());
    if (alg.has_rsa_pss()) {
      EvpMdPtr mgf1(EVP_MD_fetch(
          nullptr, OpenSslDigestName(alg.rsa_pss().mgf1_hash()).c_str(),
          nullptr));
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1.get());
      EVP_PKEY_CTX_set_rsa_pss_saltlen(
          ctx.get(), static_cast<int>(alg.rsa_pss().salt_length()));
    } else if (alg.has_rsa_pkcs1()) {
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
    }
    if (md != nullptr) EVP_PKEY_CTX_set_signature_md(ctx.get(), md.get());
    const auto* in = reinterpret_cast<const unsigned char*>(tbs.data());
    if (EVP_PKEY_sign(ctx.get(), nullptr, &len, in, tbs.size()) != 1) {
      return absl::InvalidArgumentError("fake: bad sign parameters");
    }
    signature->resize(len);
    if (EVP_PKEY_sign(ctx.get(),
                      reinterpret_cast<unsigned char*>(signature->data()), &len,
                      in, tbs.size()) != 1) {
      return absl::InvalidArgumentError("fake: sign failed");
    }
    signature->resize(len);
    return absl::OkStatus();
  }

  static absl::Status Decrypt(const FakeKey& k, const v1::DecryptRequest& req,
                              std::string* plaintext) {
    EvpPkeyCtxPtr ctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, k.private_key.get(), nullptr));
    EVP_PKEY_decrypt_init(ctx.get());
    if (req.algorithm().has_rsa_oaep()) {
      const v1::RsaOaepDecryption& oaep = req.algorithm().rsa_oaep();
      EvpMdPtr md(EVP_MD_fetch(nullptr, OpenSslDigestName(oaep.hash()).c_str(),
                               nullptr));
      EvpMdPtr mgf1(EVP_MD_fetch(
          nullptr, OpenSslDigestName(oaep.mgf1_hash()).c_str(), nullptr));
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING);
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md.get());
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1.get());
    } else {
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
    }
    const auto* in =
        reinterpret_cast<const unsigned char*>(req.ciphertext().data());
    size_t len = 0;
    if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in,
                         req.ciphertext().size()) != 1) {
      return absl::InvalidArgumentError("decryption failed");
    }
    plaintext->resize(len);
    if (EVP_PKEY_decrypt(ctx.get(),
                         reinterpret_cast<unsigned char*>(plaintext->data()),
                         &len, in, req.ciphertext().size()) != 1) {
      return absl::InvalidArgumentError("decryption failed");
    }
    plaintext->resize(len);
    return absl::OkStatus();
  }

  std::map<std::string, FakeKey> keys_;
};

class FakeClient : public client::Client {
 public:
  FakeClient(FakeHsmd* hsmd, client::ClientOptions options)
      : hsmd_(hsmd), options_(std::move(options)) {}
  const client::ClientOptions& options() const override { return options_; }
  absl::Status Call(absl::string_view method,
                    const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite* response,
                    const client::CallOptions&) override {
    return hsmd_->Call(method, request, response);
  }

 private:
  FakeHsmd* hsmd_;
  client::ClientOptions options_;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

class CommandsTest : public ::testing::Test {
 protected:
  static FakeHsmd& Hsmd() {
    // Key generation is slow: one fake daemon for all tests, calls reset.
    static FakeHsmd* hsmd = new FakeHsmd;
    return *hsmd;
  }

  void SetUp() override {
    Hsmd().calls.clear();
    Hsmd().requests.clear();
    Hsmd().next_error.reset();
  }

  Result Run(std::vector<std::string> args, const std::string& stdin_data = "",
             bool tty = false,
             absl::optional<std::string> socket_env = absl::nullopt) {
    std::istringstream in(stdin_data);
    std::ostringstream out;
    std::ostringstream err;
    Environment env;
    env.in = &in;
    env.out = &out;
    env.err = &err;
    env.stdin_is_tty = tty;
    env.socket_from_env = std::move(socket_env);
    env.client_factory = [](const client::ClientOptions& options)
        -> absl::StatusOr<std::unique_ptr<client::Client>> {
      Hsmd().last_options = options;
      return std::unique_ptr<client::Client>(new FakeClient(&Hsmd(), options));
    };
    int code = RunCommandLine(args, std::move(env));
    return {code, out.str(), err.str()};
  }

  static std::string Path(const std::string& name) {
    const char* dir = std::getenv("TEST_TMPDIR");
    return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  }

  static void WriteFile(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  static std::string Uri(const std::string& label) {
    return Hsmd().key(label).key.uri();
  }
};

TEST_F(CommandsTest, ListTableAndJson) {
  Result r = Run({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("LABEL"));
  EXPECT_THAT(r.out, HasSubstr("rsa-2048  RSA-2048  sign,decrypt"));
  EXPECT_THAT(r.out, HasSubstr("ec-p256   EC P-256  sign"));
  r = Run({"--json", "list"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, StartsWith("{\n"));
  EXPECT_THAT(r.out, HasSubstr("\"label\": \"ed25519\""));
  // Global options also work after the command.
  EXPECT_EQ(Run({"list", "--json"}).out, r.out);
}

TEST_F(CommandsTest, ListPassesFilters) {
  EXPECT_EQ(Run({"list", "--uri", "pkcs11:token=demo", "--label", "x"}).code,
            0);
  v1::ListKeysRequest request;
  ASSERT_TRUE(request.ParseFromString(Hsmd().requests.back()));
  EXPECT_EQ(request.uri_filter(), "pkcs11:token=demo");
  EXPECT_EQ(request.label(), "x");
}

TEST_F(CommandsTest, ShowAndPubout) {
  const std::string pubout = Path("ec.pub.pem");
  Result r = Run({"show", Uri("ec-p256"), "--pubout", pubout});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Label:        ec-p256"));
  EXPECT_THAT(r.out, HasSubstr("-----BEGIN PUBLIC KEY-----"));
  const std::string pem = ReadFile(pubout);
  EXPECT_THAT(pem, StartsWith("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_THAT(r.out, HasSubstr(pem));
  // By key id, and --pubout - prints only the PEM.
  r = Run({"show", Hsmd().key("ec-p256").key.key_id(), "--pubout", "-"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, pem);
}

TEST_F(CommandsTest, SignThenVerifyEveryKeyType) {
  const std::string msg = Path("msg.txt");
  WriteFile(msg, "hello from hsmctl");
  struct Case {
    std::string label;
    std::vector<std::string> alg;
  };
  const std::vector<Case> cases = {
      {"rsa-2048", {"--alg", "rsa-pkcs1"}},
      {"rsa-2048", {"--alg", "rsa-pkcs1-sha512"}},
      {"rsa-2048", {"--alg", "rsa-pss", "--hash", "sha384"}},
      {"rsa-2048", {"--alg", "rsa-pss", "--salt-len", "max"}},
      {"ec-p256", {"--alg", "ecdsa"}},
      {"ec-p256", {"--alg", "ecdsa-sha384"}},
      {"ed25519", {"--alg", "ed25519"}},
  };
  for (const Case& c : cases) {
    const std::string sig = Path("sig.bin");
    std::vector<std::string> sign = {"sign", Uri(c.label), "--in",
                                     msg,    "--out",      sig};
    sign.insert(sign.end(), c.alg.begin(), c.alg.end());
    Result r = Run(sign);
    ASSERT_EQ(r.code, 0) << c.label << " " << c.alg[1] << ": " << r.err;
    EXPECT_THAT(r.out, IsEmpty());
    EXPECT_FALSE(ReadFile(sig).empty());

    Hsmd().calls.clear();
    std::vector<std::string> verify = {"verify", Uri(c.label), "--in",
                                       msg,      "--sig",      sig};
    verify.insert(verify.end(), c.alg.begin(), c.alg.end());
    r = Run(verify);
    EXPECT_EQ(r.code, 0) << c.label << " " << c.alg[1] << ": " << r.err;
    EXPECT_EQ(r.out, "Signature OK\n");
    // Verification is local: only the public key was fetched.
    EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.KeyService/GetKey"));

    std::string bad = ReadFile(sig);
    bad[bad.size() / 2] ^= 1;
    WriteFile(sig, bad);
    r = Run(verify);
    EXPECT_EQ(r.code, 1) << c.label << " " << c.alg[1];
    EXPECT_EQ(r.out, "Signature verification FAILED\n");
  }
}

TEST_F(CommandsTest, SignRequestShapes) {
  const std::string digest = Path("digest.bin");
  WriteFile(digest, std::string(32, 'd'));
  Result r = Run({"sign", Uri("ec-p256"), "--alg", "ecdsa", "--digest-input",
                  "--in", digest, "--out", Path("s.bin")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Hsmd().last_sign.digest(), std::string(32, 'd'));
  EXPECT_FALSE(Hsmd().last_sign.has_message());

  // --salt-len max fetches the key to compute emLen - hLen - 2.
  Hsmd().calls.clear();
  r = Run({"sign", Uri("rsa-2048"), "--alg", "rsa-pss", "--salt-len", "max",
           "--in", "-", "--out", "-"},
          "stdin message");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Hsmd().last_sign.algorithm().rsa_pss().salt_length(), 222u);
  EXPECT_EQ(Hsmd().last_sign.message(), "stdin message");
  EXPECT_EQ(r.out.size(), 256u);  // the raw signature on stdout
  EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.KeyService/GetKey",
                                        "/hsmd.v1.KeyService/Sign"));

  r = Run({"--json", "sign", Uri("ed25519"), "--alg", "ed25519", "--in", "-"},
          "m");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"signature\": \""));
  EXPECT_THAT(r.out, HasSubstr(Hsmd().key("ed25519").key.key_id()));
}

TEST_F(CommandsTest, UsageErrorsMakeNoCall) {
  const std::string digest = Path("digest48.bin");
  WriteFile(digest, std::string(48, 'd'));
  const std::vector<std::vector<std::string>> bad = {
      {"sign", Uri("ec-p256"), "--alg", "nope", "--in", "-", "--out", "-"},
      {"sign", Uri("ec-p256"), "--in", "-", "--out", "-"},
      {"sign", Uri("ec-p256"), "--alg", "ecdsa", "--out", "-"},
      {"sign", Uri("ec-p256"), "--alg", "ecdsa", "--in", "-"},
      {"sign", Uri("ec-p256"), "--alg", "ecdsa", "--digest-input", "--in",
       digest, "--out", "-"},
      {"sign", Uri("rsa-2048"), "--alg", "rsa-pss", "--salt-len", "auto",
       "--in", "-", "--out", "-"},
      {"--json", "sign", Uri("ec-p256"), "--alg", "ecdsa", "--in", "-", "--out",
       "-"},
      {"sign", "not-a-uri", "--alg", "ecdsa", "--in", "-", "--out", "-"},
      {"sign", "--alg", "ecdsa", "--in", "-", "--out", "-"},
      {"show", Uri("ec-p256"), "extra"},
      {"show", Uri("ec-p256"), "--pubout", "-", "--json"},
      {"random", "0"},
      {"random", "65537"},
      {"random", "8", "--hex", "--out", "x"},
      {"genkey", "--type", "rsa"},
      {"genkey", "--label", "k", "--type", "dsa"},
      {"genkey", "--label", "k", "--type", "ec", "--bits", "2048"},
      {"decrypt", Uri("rsa-2048"), "--alg", "rsa-pkcs1", "--label", "00",
       "--in", "-", "--out", "-"},
      {"frobnicate"},
      {"list", "--nope"},
      {"--timeout", "soon", "list"},
  };
  for (const auto& args : bad) {
    Result r = Run(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << "\n" << r.err;
    EXPECT_THAT(r.err, StartsWith("hsmctl: ")) << absl::StrJoin(args, " ");
    EXPECT_THAT(r.err, HasSubstr("--help' for usage"))
        << absl::StrJoin(args, " ");
    EXPECT_THAT(Hsmd().calls, IsEmpty()) << absl::StrJoin(args, " ");
  }
}

TEST_F(CommandsTest, ServerErrorsExitFourWithMessage) {
  Result r = Run({"show", "pkcs11:token=demo;object=nope"});
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.err,
            "hsmctl: show: no key matches pkcs11:token=demo;object=nope\n");

  absl::Status backend = absl::InternalError("C_Sign failed");
  v1::ErrorDetail detail;
  detail.set_backend_code_name("CKR_DEVICE_ERROR");
  detail.set_backend_code(0x30);
  SetErrorDetail(backend, detail);
  Hsmd().next_error = backend;
  r = Run({"sign", Uri("ec-p256"), "--alg", "ecdsa", "--in", "-", "--out", "-"},
          "m");
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.err, "hsmctl: sign: C_Sign failed (CKR_DEVICE_ERROR 0x30)\n");
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(CommandsTest, UnavailableExitsThree) {
  Hsmd().next_error = absl::UnavailableError(
      "hsmd unavailable at /tmp/x.sock: connection refused");
  Result r = Run({"status"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "hsmctl: status: hsmd unavailable at /tmp/x.sock: connection "
            "refused\n");
  Hsmd().next_error = absl::DeadlineExceededError("deadline exceeded");
  EXPECT_EQ(Run({"list"}).code, 3);
}

TEST_F(CommandsTest, LocalIoErrorsExitFive) {
  Result r = Run({"sign", Uri("ec-p256"), "--alg", "ecdsa", "--in",
                  "/nonexistent/msg", "--out", "-"});
  EXPECT_EQ(r.code, 5);
  EXPECT_THAT(r.err, HasSubstr("cannot read --in /nonexistent/msg"));
  EXPECT_THAT(Hsmd().calls, IsEmpty());
  r = Run({"random", "8", "--out", "/nonexistent/dir/r.bin"});
  EXPECT_EQ(r.code, 5);
}

TEST_F(CommandsTest, GlobalOptionsReachTheClient) {
  EXPECT_EQ(Run({"--socket", "/tmp/a.sock", "--timeout", "5s", "status"}).code,
            0);
  EXPECT_EQ(Hsmd().last_options.socket_path, "/tmp/a.sock");
  EXPECT_EQ(Hsmd().last_options.default_timeout, absl::Seconds(5));
  EXPECT_LE(Hsmd().last_options.connect_timeout, absl::Seconds(5));
  EXPECT_EQ(Run({"status"}, "", false, "/tmp/env.sock").code, 0);
  EXPECT_EQ(Hsmd().last_options.socket_path, "/tmp/env.sock");
  // --socket wins over $HSMD_SOCKET.
  EXPECT_EQ(
      Run({"status", "--socket=/tmp/b.sock"}, "", false, "/tmp/env.sock").code,
      0);
  EXPECT_EQ(Hsmd().last_options.socket_path, "/tmp/b.sock");
  EXPECT_EQ(Run({"status"}).code, 0);
  EXPECT_EQ(Hsmd().last_options.socket_path, "/run/hsmd/hsmd.sock");
  EXPECT_EQ(Hsmd().last_options.default_timeout, absl::Seconds(30));
}

TEST_F(CommandsTest, StatusAndStats) {
  Result r = Run({"status"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Version:      9.9.9"));
  r = Run({"stats", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("\"operation\": \"Sign\""));
}

TEST_F(CommandsTest, Random) {
  Result r = Run({"random", "4"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "5a5a5a5a\n");
  EXPECT_EQ(Run({"random", "4", "--hex"}).out, "5a5a5a5a\n");
  r = Run({"random", "3", "--out", "-"});
  EXPECT_EQ(r.out, "ZZZ");
  const std::string file = Path("random.bin");
  EXPECT_EQ(Run({"random", "5", "--out", file}).code, 0);
  EXPECT_EQ(ReadFile(file), "ZZZZZ");
  EXPECT_THAT(Run({"random", "2", "--json"}).out,
              HasSubstr("\"data\": \"Wlo=\""));
}

TEST_F(CommandsTest, EncryptThenDecrypt) {
  const std::string plain = Path("plain.txt");
  const std::string ct = Path("ct.bin");
  const std::string back = Path("back.txt");
  WriteFile(plain, "the secret");
  for (std::vector<std::string> alg :
       {std::vector<std::string>{"--alg", "rsa-pkcs1"},
        std::vector<std::string>{"--alg", "rsa-oaep"},
        std::vector<std::string>{"--alg", "rsa-oaep", "--hash", "sha256"}}) {
    std::vector<std::string> enc = {"encrypt", Uri("rsa-2048"), "--in",
                                    plain,     "--out",         ct};
    enc.insert(enc.end(), alg.begin(), alg.end());
    Result r = Run(enc);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ReadFile(ct).size(), 256u);
    std::vector<std::string> dec = {"decrypt", Uri("rsa-2048"), "--in",
                                    ct,        "--out",         back};
    dec.insert(dec.end(), alg.begin(), alg.end());
    r = Run(dec);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ReadFile(back), "the secret");
  }
  // Encrypting to an EC key is a usage error, found locally.
  Result r = Run({"encrypt", Uri("ec-p256"), "--alg", "rsa-pkcs1", "--in",
                  plain, "--out", ct});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("an EC key"));
}

TEST_F(CommandsTest, GenKeyRequest) {
  Result r = Run({"genkey", "--label", "new-key", "--type", "ec", "--curve",
                  "p384", "--id", "0a0b", "--ops", "sign"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Generated key:\nLabel:        new-key"));
  const v1::GenerateKeyRequest& req = Hsmd().last_generate;
  EXPECT_EQ(req.label(), "new-key");
  EXPECT_EQ(req.key_type(), v1::KEY_TYPE_EC);
  EXPECT_EQ(req.curve(), v1::CURVE_P384);
  EXPECT_EQ(req.id(), "\x0a\x0b");
  EXPECT_THAT(req.allowed_operations(), ElementsAre(v1::OPERATION_SIGN));

  ASSERT_EQ(Run({"genkey", "--label", "r", "--type", "rsa"}).code, 0);
  EXPECT_EQ(Hsmd().last_generate.rsa_bits(), 2048u);
  EXPECT_EQ(Hsmd().last_generate.curve(), v1::CURVE_UNSPECIFIED);
  ASSERT_EQ(Run({"genkey", "--label", "e", "--type", "ed25519"}).code, 0);
  EXPECT_EQ(Hsmd().last_generate.key_type(), v1::KEY_TYPE_ED25519);
  EXPECT_EQ(Hsmd().last_generate.rsa_bits(), 0u);
}

TEST_F(CommandsTest, DeleteNeedsConfirmation) {
  Result r = Run({"delete", Uri("ec-p256")});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("refusing to delete without --yes"));
  EXPECT_THAT(Hsmd().calls, IsEmpty());

  r = Run({"delete", Uri("ec-p256")}, "n\n", /*tty=*/true);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("Delete key 'ec-p256'"));
  EXPECT_THAT(r.err, HasSubstr("nothing was deleted"));
  EXPECT_THAT(Hsmd().calls,
              Not(::testing::Contains("/hsmd.v1.AdminService/DeleteKey")));

  r = Run({"delete", Uri("ec-p256")}, "yes\n", /*tty=*/true);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(2 token objects)"));

  Hsmd().calls.clear();
  r = Run({"delete", "-y", Uri("ec-p256")});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.AdminService/DeleteKey"));
  EXPECT_EQ(Run({"delete", "--yes", "pkcs11:object=gone"}).code, 4);
}

TEST_F(CommandsTest, ExportUriPem) {
  // A short URI in, hsmd's canonical URI in the file.
  Result r = Run({"export-uri-pem", "pkcs11:object=rsa-2048"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("-----BEGIN PKCS#11 PROVIDER URI-----\n"));
  EXPECT_THAT(r.out, HasSubstr("-----END PKCS#11 PROVIDER URI-----\n"));
  const std::string file = Path("key.pem");
  EXPECT_EQ(Run({"export-uri-pem", Hsmd().key("rsa-2048").key.key_id(), "--out",
                 file})
                .code,
            0);
  EXPECT_EQ(ReadFile(file), r.out);
  // The base64 body decodes to DER holding the canonical URI.
  std::string body;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    if (!line.empty() && line[0] != '-') body += std::string(line);
  }
  std::string der;
  ASSERT_TRUE(absl::Base64Unescape(body, &der));
  EXPECT_THAT(der, HasSubstr(Uri("rsa-2048")));
  EXPECT_THAT(der, HasSubstr("PKCS#11 Provider URI v1.0"));

  EXPECT_EQ(Run({"export-uri-pem", "pkcs11:object=missing"}).code, 4);
}

TEST_F(CommandsTest, ListAndShowSdfKeys) {
  Result r = Run({"list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("sm2-sign  SM2       sign             "));
  EXPECT_THAT(r.out, HasSubstr("sm2-enc   SM2       decrypt          "));
  EXPECT_THAT(r.out, HasSubstr("sm4       SM4-128   encrypt,decrypt  "));
  EXPECT_THAT(r.out, HasSubstr("sdf:device=soft0;index=1;usage=sm4\n"));
  r = Run({"--json", "list"});
  EXPECT_THAT(r.out, HasSubstr("\"keyType\": \"KEY_TYPE_SM4\""));
  EXPECT_THAT(r.out, HasSubstr("\"OPERATION_ENCRYPT\""));

  r = Run({"show", Uri("sm4")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Type:         SM4-128\n"));
  EXPECT_THAT(r.out, HasSubstr("Public key:   none (symmetric key)\n"));
  r = Run({"show", Uri("sm4"), "--pubout", Path("sm4.pub")});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--pubout: sdf:device=soft0;index=1;usage=sm4 "
                               "is SM4-128, a key without a public half"));

  const std::string pubout = Path("sm2.pub.pem");
  r = Run({"show", Uri("sm2-sign"), "--pubout", pubout});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Curve:        SM2\n"));
  BioPtr bio(BIO_new_file(pubout.c_str(), "r"));
  EvpPkeyPtr pub(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(EVP_PKEY_is_a(pub.get(), "SM2"), 1);

  r = Run({"export-uri-pem", Uri("sm2-sign")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("-----BEGIN PKCS#11 PROVIDER URI-----\n"));
}

TEST_F(CommandsTest, Sm2SignSendsOnlyEAndVerifies) {
  const std::string msg = Path("sm2.msg");
  const std::string sig = Path("sm2.sig");
  // Larger than any request hsmd accepts: only e travels.
  const std::string message(3 * 1024 * 1024, 'm');
  WriteFile(msg, message);
  Result r =
      Run({"sign", Uri("sm2-sign"), "--alg", "sm2", "--in", msg, "--out", sig});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.KeyService/GetKey",
                                        "/hsmd.v1.KeyService/Sign"));
  EXPECT_TRUE(Hsmd().last_sign.algorithm().has_sm2());
  EXPECT_EQ(Hsmd().last_sign.digest().size(), 32u);
  EXPECT_FALSE(Hsmd().last_sign.has_message());
  EXPECT_LT(Hsmd().requests.back().size(), 200u);
  EVP_PKEY* key = Hsmd().key("sm2-sign").private_key.get();
  EXPECT_TRUE(
      OpenSslSm2Verifies(key, "1234567812345678", message, ReadFile(sig)));

  Hsmd().calls.clear();
  r = Run(
      {"verify", Uri("sm2-sign"), "--alg", "sm2", "--in", msg, "--sig", sig});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Signature OK\n");
  EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.KeyService/GetKey"));
  r = Run({"verify", Uri("sm2-sign"), "--alg", "sm2", "--id", "other", "--in",
           msg, "--sig", sig});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "Signature verification FAILED\n");

  // Another ID, given as text or hex.
  WriteFile(msg, "short message");
  r = Run({"sign", Uri("sm2-sign"), "--alg", "sm2-sm3", "--id",
           "alice@example.com", "--in", msg, "--out", sig});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(OpenSslSm2Verifies(key, "alice@example.com", "short message",
                                 ReadFile(sig)));
  EXPECT_FALSE(OpenSslSm2Verifies(key, "1234567812345678", "short message",
                                  ReadFile(sig)));
  r = Run({"verify", Uri("sm2-sign"), "--alg", "sm2", "--id-hex",
           absl::BytesToHexString("alice@example.com"), "--in", msg, "--sig",
           sig});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Run(
      {"verify", Uri("sm2-sign"), "--alg", "sm2", "--in", msg, "--sig", sig});
  EXPECT_EQ(r.code, 1);

  // --digest-input: e from a file, no GetKey needed.
  const std::string e_file = Path("sm2.e");
  WriteFile(e_file, Hsmd().last_sign.digest());
  Hsmd().calls.clear();
  r = Run({"sign", Uri("sm2-sign"), "--alg", "sm2", "--digest-input", "--in",
           e_file, "--out", sig});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.KeyService/Sign"));
  EXPECT_TRUE(OpenSslSm2Verifies(key, "alice@example.com", "short message",
                                 ReadFile(sig)));
  r = Run({"verify", Uri("sm2-sign"), "--alg", "sm2", "--digest-input", "--in",
           e_file, "--sig", sig});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(CommandsTest, Sm2WrongKeysAndBadInput) {
  const std::string msg = Path("sm2-bad.msg");
  WriteFile(msg, "m");
  const std::string e_file = Path("sm2-bad.e");
  WriteFile(e_file, std::string(32, 'e'));
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"sign", Uri("sm4"), "--alg", "sm2", "--in", msg, "--out", "-"},
       2,
       "hsmctl: sign: sm2 signing needs an SM2 key; "
       "sdf:device=soft0;index=1;usage=sm4 is SM4-128\n"},
      {{"sign", Uri("sm2-enc"), "--alg", "sm2", "--in", msg, "--out", "-"},
       2,
       "hsmctl: sign: sm2 signing needs an SM2 key that allows sign; "
       "sdf:device=soft0;index=1;usage=enc allows decrypt (use usage=sign)\n"},
      {{"sign", Uri("ec-p256"), "--alg", "sm2", "--in", msg, "--out", "-"},
       2,
       "is EC P-256"},
      // With --digest-input hsmctl needs no key: hsmd refuses.
      {{"sign", Uri("sm2-enc"), "--alg", "sm2", "--digest-input", "--in",
        e_file, "--out", "-"},
       4,
       "hsmctl: sign: sdf:device=soft0;index=1;usage=enc does not allow "
       "sign\n"},
      {{"sign", Uri("sm2-sign"), "--alg", "sm2", "--digest-input", "--in", msg,
        "--out", "-"},
       2,
       "the input is 1 bytes but sm2 takes e = SM3(Z || M), 32 bytes"},
      {{"sign", Uri("sm2-sign"), "--alg", "sm2", "--id", "", "--in", msg,
        "--out", "-"},
       2,
       "the SM2 distinguishing ID is empty"},
      {{"sign", Uri("sm2-sign"), "--alg", "sm2", "--id", std::string(8192, 'i'),
        "--in", msg, "--out", "-"},
       2,
       "8192 bytes; at most 8191"},
      {{"sign", Uri("sm2-sign"), "--alg", "sm2", "--id", "a", "--digest-input",
        "--in", e_file, "--out", "-"},
       2,
       "--id cannot be combined with --digest-input"},
      {{"sign", Uri("sm2-sign"), "--alg", "sm2", "--hash", "sha256", "--in",
        msg, "--out", "-"},
       2,
       "sm2 signs with sm3 only, not sha256"},
      {{"verify", Uri("sm4"), "--alg", "sm2", "--in", msg, "--sig", msg},
       2,
       "sdf:device=soft0;index=1;usage=sm4 is SM4-128, a key without a "
       "public half"},
      {{"verify", Uri("sm2-sign"), "--alg", "ecdsa", "--in", msg, "--sig", msg},
       2,
       "ecdsa sha256 cannot be used with an SM2 key"},
      {{"decrypt", Uri("sm2-sign"), "--alg", "sm2", "--in", msg, "--out", "-"},
       4,
       "hsmctl: decrypt: sdf:device=soft0;index=1;usage=sign does not allow "
       "decrypt (it is the sign key at index 1; use usage=enc)\n"},
      {{"decrypt", Uri("sm2-enc"), "--alg", "sm2", "--in", "-", "--out", "-"},
       2,
       "the SM2 ciphertext is empty"},
      {{"decrypt", Uri("sm2-enc"), "--alg", "sm2", "--in", msg, "--out", "-"},
       4,
       "SM2 decryption failed"},
      {{"decrypt", Uri("sm4"), "--alg", "sm2", "--in", msg, "--out", "-"},
       4,
       "algorithm sm2 does not fit key type SM4"},
      {{"encrypt", Uri("sm2-sign"), "--alg", "sm2", "--in", msg, "--out", "-"},
       2,
       "sm2 encryption needs an SM2 key that allows decrypt; "
       "sdf:device=soft0;index=1;usage=sign allows sign (use usage=enc)"},
      {{"encrypt", Uri("rsa-2048"), "--alg", "sm2", "--in", msg, "--out", "-"},
       2,
       "sm2 encryption needs an SM2 key; "},
      {{"encrypt", Uri("sm2-enc"), "--alg", "rsa-pkcs1", "--in", msg, "--out",
        "-"},
       2,
       "RSA encryption cannot be used with an SM2 key"},
      {{"encrypt", Uri("sm2-enc"), "--alg", "sm2", "--in", "-", "--out", "-"},
       2,
       "the plaintext is empty"},
      {{"sign", "sdf:device=soft0;index=9;usage=sign", "--alg", "sm2", "--in",
        msg, "--out", "-"},
       4,
       "hsmctl: sign: no key matches sdf:device=soft0;index=9;usage=sign\n"},
  };
  for (const Case& c : cases) {
    Result r = Run(c.args);
    EXPECT_EQ(r.code, c.code) << absl::StrJoin(c.args, " ") << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << absl::StrJoin(c.args, " ");
    EXPECT_THAT(r.out, IsEmpty()) << absl::StrJoin(c.args, " ");
  }
}

TEST_F(CommandsTest, Sm2EncryptAndDecrypt) {
  const std::string plain = Path("sm2.plain");
  const std::string ct = Path("sm2.ct");
  const std::string back = Path("sm2.back");
  WriteFile(plain, "an SM2 secret");
  Result r = Run(
      {"encrypt", Uri("sm2-enc"), "--alg", "sm2", "--in", plain, "--out", ct});
  ASSERT_EQ(r.code, 0) << r.err;
  // Local: only the public key was fetched.
  EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.KeyService/GetKey"));
  r = Run(
      {"decrypt", Uri("sm2-enc"), "--alg", "sm2", "--in", ct, "--out", back});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadFile(back), "an SM2 secret");
  struct stat st;
  ASSERT_EQ(stat(back.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  v1::DecryptRequest request;
  ASSERT_TRUE(request.ParseFromString(Hsmd().requests.back()));
  EXPECT_TRUE(request.algorithm().has_sm2());

  // Ciphertext made by OpenSSL (as `openssl pkeyutl -encrypt` makes it).
  EVP_PKEY* key = Hsmd().key("sm2-enc").private_key.get();
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  ASSERT_EQ(EVP_PKEY_encrypt_init(ctx.get()), 1);
  const std::string secret = "from openssl";
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(secret.data());
  ASSERT_EQ(EVP_PKEY_encrypt(ctx.get(), nullptr, &len, in, secret.size()), 1);
  std::string openssl_ct(len, '\0');
  ASSERT_EQ(EVP_PKEY_encrypt(
                ctx.get(), reinterpret_cast<unsigned char*>(openssl_ct.data()),
                &len, in, secret.size()),
            1);
  openssl_ct.resize(len);
  r = Run(
      {"decrypt", Uri("sm2-enc"), "--alg", "sm2", "--in", "-", "--out", "-"},
      openssl_ct);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, secret);
  r = Run({"--json", "encrypt", Uri("sm2-enc"), "--alg", "sm2", "--in", plain});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"ciphertext\": \""));
  EXPECT_THAT(r.out, HasSubstr(Hsmd().key("sm2-enc").key.key_id()));
}

TEST_F(CommandsTest, Sm4MatchesOpenSslEnc) {
  const std::string key = FakeHsmd::Sm4Key();
  const std::string iv =
      absl::HexStringToBytes("000102030405060708090a0b0c0d0e0f");
  const std::string iv_hex = absl::BytesToHexString(iv);
  const std::string plain = Path("sm4.plain");
  const std::string ct = Path("sm4.ct");
  const std::string back = Path("sm4.back");
  const std::string message = "thirty-three bytes of plaintext!!";
  WriteFile(plain, message);

  // CBC with --iv: exactly `openssl enc -sm4-cbc -K KEY -iv IV`.
  Result r = Run({"encrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv", iv_hex,
                  "--in", plain, "--out", ct});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadFile(ct), OpenSslSm4Encrypt(key, iv, message));
  EXPECT_EQ(ReadFile(ct).size(), 48u);
  EXPECT_EQ(Hsmd().last_sm4.mode(), v1::CIPHER_MODE_CBC);
  EXPECT_EQ(Hsmd().last_sm4.iv(), iv);
  r = Run({"decrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv", iv_hex, "--in",
           ct, "--out", back});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadFile(back), message);

  // ECB.
  r = Run(
      {"encrypt", Uri("sm4"), "--alg", "sm4-ecb", "--in", plain, "--out", ct});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadFile(ct), OpenSslSm4Encrypt(key, "", message));
  EXPECT_EQ(Hsmd().last_sm4.mode(), v1::CIPHER_MODE_ECB);
  r = Run(
      {"decrypt", Uri("sm4"), "--alg", "sm4-ecb", "--in", ct, "--out", "-"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, message);

  // The GB/T 32907 example, unpadded.
  r = Run({"encrypt", Uri("sm4"), "--alg", "sm4-ecb", "--padding", "none",
           "--in", "-", "--out", "-"},
          key);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(absl::BytesToHexString(r.out), "681edf34d206965e86b3e94f536e4246");

  // CBC without --iv: a random IV from the HSM, written first.
  Hsmd().calls.clear();
  r = Run(
      {"encrypt", Uri("sm4"), "--alg", "sm4-cbc", "--in", plain, "--out", ct});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Hsmd().calls, ElementsAre("/hsmd.v1.KeyService/GenerateRandom",
                                        "/hsmd.v1.KeyService/Encrypt"));
  const std::string with_iv = ReadFile(ct);
  ASSERT_EQ(with_iv.size(), 16u + 48u);
  EXPECT_EQ(with_iv.substr(0, 16), std::string(16, '\x5a'));
  EXPECT_EQ(with_iv.substr(16),
            OpenSslSm4Encrypt(key, with_iv.substr(0, 16), message));
  r = Run(
      {"decrypt", Uri("sm4"), "--alg", "sm4-cbc", "--in", ct, "--out", "-"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, message);

  // A file larger than one request goes in chained pieces.
  const std::string big(200 * 1024 + 5, 'b');
  WriteFile(plain, big);
  Hsmd().calls.clear();
  r = Run({"encrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv", iv_hex, "--in",
           plain, "--out", ct});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Hsmd().calls.size(), 4u);
  EXPECT_EQ(ReadFile(ct), OpenSslSm4Encrypt(key, iv, big));
  r = Run({"decrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv", iv_hex, "--in",
           ct, "--out", back});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadFile(back), big);

  r = Run({"--json", "encrypt", Uri("sm4"), "--alg", "sm4-ecb", "--in", "-"},
          "x");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"ciphertext\": \""));
  EXPECT_THAT(r.out, HasSubstr(Hsmd().key("sm4").key.key_id()));
}

TEST_F(CommandsTest, Sm4BadInput) {
  const std::string iv_hex = "000102030405060708090a0b0c0d0e0f";
  const std::string ct = Path("sm4-bad.ct");
  // A valid CBC ciphertext, to decrypt with the wrong IV.
  ASSERT_EQ(Run({"encrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv", iv_hex,
                 "--in", "-", "--out", ct},
                "some plaintext")
                .code,
            0);
  struct Case {
    std::vector<std::string> args;
    std::string stdin_data;
    int code;
    std::string message;
    bool calls_hsmd;
  };
  const std::vector<Case> cases = {
      {{"encrypt", Uri("sm4"), "--alg", "sm4-cbc", "--padding", "none", "--iv",
        iv_hex, "--in", "-", "--out", "-"},
       std::string(33, 'x'),
       2,
       "the plaintext is 33 bytes; SM4 needs a non-zero multiple of 16 with "
       "--padding none",
       false},
      {{"encrypt", Uri("sm4"), "--alg", "sm4-ecb", "--padding", "none", "--in",
        "-", "--out", "-"},
       "",
       2,
       "the plaintext is 0 bytes",
       false},
      {{"decrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv", iv_hex, "--in", "-",
        "--out", "-"},
       std::string(17, 'x'),
       2,
       "the ciphertext is 17 bytes",
       false},
      {{"decrypt", Uri("sm4"), "--alg", "sm4-cbc", "--in", "-", "--out", "-"},
       std::string(8, 'x'),
       2,
       "the input is 8 bytes, too short to start with the 16-byte IV",
       false},
      {{"encrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv", "0011", "--in", "-",
        "--out", "-"},
       "x",
       2,
       "--iv is 2 bytes; the SM4-CBC IV is 16 bytes",
       false},
      {{"encrypt", Uri("sm4"), "--alg", "sm4-ecb", "--iv", iv_hex, "--in", "-",
        "--out", "-"},
       "x",
       2,
       "sm4-ecb takes no --iv",
       false},
      {{"encrypt", Uri("sm4"), "--alg", "sm4", "--in", "-", "--out", "-"},
       "x",
       2,
       "--alg sm4 needs a mode: sm4-ecb or sm4-cbc",
       false},
      {{"decrypt", Uri("sm4"), "--alg", "sm4-cbc", "--iv",
        "ffffffffffffffffffffffffffffffff", "--in", ct, "--out", "-"},
       "",
       4,
       "decryption failed: the PKCS#7 padding is invalid",
       true},
      {{"encrypt", Uri("sm2-sign"), "--alg", "sm4-cbc", "--iv", iv_hex, "--in",
        "-", "--out", "-"},
       "x",
       4,
       "algorithm sm4 does not fit key type SM2",
       true},
  };
  for (const Case& c : cases) {
    Hsmd().calls.clear();
    Result r = Run(c.args, c.stdin_data);
    EXPECT_EQ(r.code, c.code) << absl::StrJoin(c.args, " ") << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << absl::StrJoin(c.args, " ");
    EXPECT_THAT(r.out, IsEmpty()) << absl::StrJoin(c.args, " ");
    EXPECT_EQ(Hsmd().calls.empty(), !c.calls_hsmd)
        << absl::StrJoin(c.args, " ");
  }
}

TEST_F(CommandsTest, HelpAndVersion) {
  Result r = Run({});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("Commands:"));
  r = Run({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("export-uri-pem"));
  EXPECT_THAT(r.out, HasSubstr("Exit codes:"));
  r = Run({"help", "verify"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: hsmctl verify"));
  EXPECT_THAT(r.out, HasSubstr("--salt-len N"));
  EXPECT_EQ(Run({"sign", "--help"}).code, 0);
  EXPECT_EQ(Run({"help", "nope"}).code, 2);
  r = Run({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, absl::StrCat("hsmctl ", kHsmctlVersion, "\n"));
  EXPECT_THAT(Hsmd().calls, IsEmpty());
}

}  // namespace
}  // namespace hsmd::hsmctl
