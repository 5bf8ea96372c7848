// hsmctl's commands end to end inside one process: RunCommandLine with a
// fake hsmd behind the client_lib Client interface. The fake signs and
// decrypts with real OpenSSL keys, so sign/verify and encrypt/decrypt round
// trips prove the requests hsmctl builds are the right ones. (The real daemon
// is exercised by tests/e2e/hsmctl_e2e_test.sh.)
#include "tools/hsmctl/commands.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

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
      return Sign(*k, req, out->mutable_signature());
    }
    if (method == "/hsmd.v1.KeyService/Decrypt") {
      const auto& req = static_cast<const v1::DecryptRequest&>(request);
      const FakeKey* k = Find(req.key());
      if (k == nullptr) return NotFound(req.key());
      return Decrypt(
          *k, req,
          static_cast<v1::DecryptResponse*>(response)->mutable_plaintext());
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
