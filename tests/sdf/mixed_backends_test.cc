// The real hsmd binary with two backends of different kinds in one config: a
// PKCS#11 token (SoftHSM) and an SDF device (softsdf, 国密). Everything is
// checked through the gRPC API with OpenSSL as the reference: both backends
// list their keys and report their own status and health; an SM2 signature
// verifies with the exported public key and the default ID; an OpenSSL SM2
// ciphertext decrypts; SM4-CBC through hsmd equals OpenSSL's on an imported
// key. A policy rule with an sdf: pattern grants exactly its keys. A wrong
// SDF key password stops the start-up with exit code 3.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/testing/subprocess.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.grpc.pb.h"
#include "tests/sdf/sdf_test_env.h"
#include "tests/util/softhsm_env.h"

namespace hsmd {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::Subprocess;

constexpr char kGmtDefaultId[] = "1234567812345678";
constexpr char kPassword[] = "index 1: correct horse";
const absl::Duration kStartTimeout = absl::Seconds(120);

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(30));
  return context;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

class MixedBackendsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // SoftHSM reads SOFTHSM2_CONF once per process; hsmd inherits it.
    absl::StatusOr<std::unique_ptr<testing::SoftHsmEnv>> softhsm =
        testing::SoftHsmEnv::New("mixed");
    ASSERT_TRUE(softhsm.ok()) << softhsm.status();
    softhsm_ = softhsm->release();
  }
  static void TearDownTestSuite() {
    delete softhsm_;
    softhsm_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(softhsm_, nullptr);
    sm4_key_ = sdf_test::RandomBytes(16);
    sdf_test::StoreSpec spec;
    spec.sign_keys = {1};
    spec.enc_keys = {1};
    spec.import_sm4 = {{2, sm4_key_}};
    spec.passwords = {{1, kPassword}};
    absl::StatusOr<sdf_test::SoftSdfStore> store =
        sdf_test::SoftSdfStore::Create("mixed-store", spec);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::make_unique<sdf_test::SoftSdfStore>(*std::move(store));
    // libsoftsdf.so in hsmd finds the store here.
    store_->Activate();

    char tmpl[] = "/tmp/hsmdXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/hsmd.sock";
    config_ = dir_ + "/hsmd.conf";
    WriteFile(config_,
              absl::StrCat(R"(
listen { socket_path: ")",
                           socket_, R"(" socket_mode: "0600" }
backends {
  name: "token"
  pkcs11 {
    module_path: ")",
                           testing::kSoftHsmModulePath, R"("
    token_label: "mixed"
    pin { file: ")",
                           softhsm_->pin_file(), R"(" }
  }
}
backends {
  name: "card"
  sdf {
    library_path: ")",
                           sdf_test::SoftSdfLibrary(), R"("
    device_name: "card0"
    keys {
      index: 1 usage: SIGN label: "server"
      password { file: ")",
                           store_->PasswordFile(1), R"(" }
    }
    keys { index: 1 usage: ENC label: "server" }
    keys { index: 2 usage: SM4 label: "data-key" }
    session_pool_size: 2
  }
  recovery { reinit_backoff_initial_ms: 50 }
}
)"));
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  absl::StatusOr<std::unique_ptr<Subprocess>> StartHsmd() {
    return Subprocess::Start(
        {testing::RunfilePath("daemon/hsmd"), "--config", config_},
        {"OPENSSL_CONF=/dev/null"});
  }

  static testing::SoftHsmEnv* softhsm_;
  std::string sm4_key_;
  std::unique_ptr<sdf_test::SoftSdfStore> store_;
  std::string dir_;
  std::string socket_;
  std::string config_;
};

testing::SoftHsmEnv* MixedBackendsTest::softhsm_ = nullptr;

TEST_F(MixedBackendsTest, ServesBothKindsThroughTheApi) {
  absl::StatusOr<std::unique_ptr<Subprocess>> hsmd = StartHsmd();
  ASSERT_TRUE(hsmd.ok()) << hsmd.status();
  absl::Status up = testing::WaitForSocket(**hsmd, socket_, kStartTimeout);
  ASSERT_TRUE(up.ok()) << up;
  auto channel =
      grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
  auto keys = v1::KeyService::NewStub(channel);
  auto admin = v1::AdminService::NewStub(channel);

  // A key on the token, made through the API.
  v1::GenerateKeyRequest generate;
  generate.set_label("ec");
  generate.set_key_type(v1::KEY_TYPE_EC);
  generate.set_curve(v1::CURVE_P256);
  generate.set_backend("token");
  v1::GenerateKeyResponse generated;
  grpc::Status s = admin->GenerateKey(Context().get(), generate, &generated);
  ASSERT_TRUE(s.ok()) << s.error_message();

  // ListKeys: both backends' keys.
  v1::ListKeysResponse list;
  s = keys->ListKeys(Context().get(), {}, &list);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::map<std::string, v1::Key> by_uri;
  for (const v1::Key& key : list.keys()) by_uri[key.uri()] = key;
  ASSERT_EQ(list.keys_size(), 4);
  EXPECT_EQ(by_uri[generated.key().uri()].backend(), "token");
  const std::string sign_uri = "sdf:device=card0;index=1;usage=sign";
  const std::string enc_uri = "sdf:device=card0;index=1;usage=enc";
  const std::string sm4_uri = "sdf:device=card0;index=2;usage=sm4";
  for (const std::string& uri : {sign_uri, enc_uri, sm4_uri}) {
    ASSERT_EQ(by_uri.count(uri), 1u) << uri;
    EXPECT_EQ(by_uri[uri].backend(), "card");
    EXPECT_EQ(by_uri[uri].token_label(), "card0");
  }
  EXPECT_EQ(by_uri[sign_uri].key_type(), v1::KEY_TYPE_SM2);
  EXPECT_EQ(by_uri[sign_uri].label(), "server");
  EXPECT_EQ(by_uri[sm4_uri].key_type(), v1::KEY_TYPE_SM4);
  EXPECT_EQ(by_uri[sm4_uri].label(), "data-key");
  // A filter on the device lists only its keys.
  v1::ListKeysRequest filter;
  filter.set_uri_filter("sdf:device=card0;usage=sign");
  v1::ListKeysResponse filtered;
  s = keys->ListKeys(Context().get(), filter, &filtered);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(filtered.keys_size(), 1);
  EXPECT_EQ(filtered.keys(0).uri(), sign_uri);

  // The exported public key is the store's.
  absl::StatusOr<EvpPkeyPtr> sign_pub =
      sdf_test::PublicKeyFromDer(by_uri[sign_uri].public_key_der());
  ASSERT_TRUE(sign_pub.ok()) << sign_pub.status();
  absl::StatusOr<EvpPkeyPtr> stored =
      sdf_test::PublicKeyFromPem(store_->PublicKeyPem("sign", 1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(sdf_test::PublicKeyDer(sign_pub->get()),
            sdf_test::PublicKeyDer(stored->get()));

  // SM2 signature over a message with the default ID: verifies with OpenSSL.
  const std::string message = "signed by the SDF device through hsmd";
  v1::SignRequest sign;
  sign.mutable_key()->set_uri(sign_uri);
  sign.mutable_algorithm()->mutable_sm2();
  sign.set_message(message);
  v1::SignResponse signature;
  s = keys->Sign(Context().get(), sign, &signature);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(sdf_test::Sm2Verify(sign_pub->get(), kGmtDefaultId, message,
                                  signature.signature()));
  EXPECT_FALSE(sdf_test::Sm2Verify(sign_pub->get(), "another id", message,
                                   signature.signature()));
  EXPECT_EQ(signature.key_id(), by_uri[sign_uri].key_id());

  // The PKCS#11 key signs too, in the same daemon.
  v1::SignRequest ecdsa;
  ecdsa.mutable_key()->set_uri(generated.key().uri());
  ecdsa.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  ecdsa.set_message(message);
  v1::SignResponse ecdsa_signature;
  s = keys->Sign(Context().get(), ecdsa, &ecdsa_signature);
  ASSERT_TRUE(s.ok()) << s.error_message();

  // SM2 decryption of OpenSSL's ciphertext for the exported enc key.
  absl::StatusOr<EvpPkeyPtr> enc_pub =
      sdf_test::PublicKeyFromDer(by_uri[enc_uri].public_key_der());
  ASSERT_TRUE(enc_pub.ok()) << enc_pub.status();
  const std::string secret = "a session key, say";
  absl::StatusOr<std::string> ciphertext =
      sdf_test::Sm2Encrypt(enc_pub->get(), secret);
  ASSERT_TRUE(ciphertext.ok()) << ciphertext.status();
  v1::DecryptRequest decrypt;
  decrypt.mutable_key()->set_uri(enc_uri);
  decrypt.mutable_algorithm()->mutable_sm2();
  decrypt.set_ciphertext(*ciphertext);
  v1::DecryptResponse plaintext;
  s = keys->Decrypt(Context().get(), decrypt, &plaintext);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(plaintext.plaintext(), secret);

  // SM4-CBC with the imported key: OpenSSL's result, and back.
  const std::string iv = sdf_test::RandomBytes(16);
  const std::string data = sdf_test::RandomBytes(64);
  v1::EncryptRequest encrypt;
  encrypt.mutable_key()->set_uri(sm4_uri);
  encrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_CBC);
  encrypt.mutable_algorithm()->mutable_sm4()->set_iv(iv);
  encrypt.set_plaintext(data);
  v1::EncryptResponse encrypted;
  s = keys->Encrypt(Context().get(), encrypt, &encrypted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  absl::StatusOr<std::string> expected =
      sdf_test::Sm4(sm4_key_, iv, data, /*encrypt=*/true);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(encrypted.ciphertext(), *expected);
  v1::DecryptRequest sm4_decrypt;
  sm4_decrypt.mutable_key()->set_uri(sm4_uri);
  *sm4_decrypt.mutable_algorithm()->mutable_sm4() = encrypt.algorithm().sm4();
  sm4_decrypt.set_ciphertext(encrypted.ciphertext());
  v1::DecryptResponse decrypted;
  s = keys->Decrypt(Context().get(), sm4_decrypt, &decrypted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(decrypted.plaintext(), data);

  // SDF devices offer no key agreement: a clear UNIMPLEMENTED.
  v1::DeriveRequest derive;
  derive.mutable_key()->set_uri(sign_uri);
  derive.mutable_ecdh()->set_peer_public_key(
      by_uri[generated.key().uri()].public_key_der());
  v1::DeriveResponse derived;
  s = keys->Derive(Context().get(), derive, &derived);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("does not support key agreement"));

  // An sdf: URI for a device no backend serves.
  v1::SignRequest elsewhere = sign;
  elsewhere.mutable_key()->set_uri("sdf:device=card9;index=1;usage=sign");
  s = keys->Sign(Context().get(), elsewhere, &signature);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("card9"));

  // GetStatus: one entry per backend, each with its own state.
  v1::GetStatusResponse status;
  s = admin->GetStatus(Context().get(), {}, &status);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(status.backends_size(), 2);
  EXPECT_EQ(status.backends(0).name(), "token");
  EXPECT_EQ(status.backends(0).kind(), "pkcs11");
  EXPECT_EQ(status.backends(0).state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(status.backends(0).token_label(), "mixed");
  EXPECT_EQ(status.backends(1).name(), "card");
  EXPECT_EQ(status.backends(1).kind(), "sdf");
  EXPECT_EQ(status.backends(1).state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(status.backends(1).token_label(), "card0");
  EXPECT_EQ(status.backends(1).module_path(), sdf_test::SoftSdfLibrary());
  EXPECT_TRUE(status.backends(1).logged_in());
  EXPECT_EQ(status.backends(1).sessions_total(), 2u);
  EXPECT_THAT(status.config().pin_sources(),
              ::testing::ElementsAre("file:" + softhsm_->pin_file(),
                                     "file:" + store_->PasswordFile(1)));

  // Stats count each key's requests separately, whichever backend holds it.
  v1::GetStatsResponse stats;
  s = admin->GetStats(Context().get(), {}, &stats);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::map<std::string, uint64_t> signs;  // key_id -> count
  for (const v1::OperationStats& op : stats.operations()) {
    if (op.operation() == "Sign") signs[op.key_id()] += op.count();
  }
  EXPECT_EQ(signs[by_uri[sign_uri].key_id()], 1u);
  EXPECT_EQ(signs[generated.key().key_id()], 1u);

  // Health: overall and per backend.
  auto health = Health::NewStub(channel);
  for (const std::string service : {"", "backend/token", "backend/card"}) {
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    s = health->Check(Context().get(), request, &response);
    ASSERT_TRUE(s.ok()) << service << ": " << s.error_message();
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << service;
  }

  (*hsmd)->Signal(SIGTERM);
  absl::StatusOr<int> code = (*hsmd)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*hsmd)->Stderr();
  // No password in the log.
  EXPECT_THAT((*hsmd)->Stderr(), Not(HasSubstr(kPassword)));
}

// Access policy with an sdf: key pattern: only the device's signing key may
// be used.
TEST_F(MixedBackendsTest, PolicyWithSdfPattern) {
  std::ifstream in(config_);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  WriteFile(config_, absl::StrCat(text, "policy {\n  rules { users: \"",
                                  getuid(),
                                  "\" keys: \"sdf:device=card0;usage=sign\" "
                                  "operations: [SIGN, LIST] }\n}\n"));
  absl::StatusOr<std::unique_ptr<Subprocess>> hsmd = StartHsmd();
  ASSERT_TRUE(hsmd.ok()) << hsmd.status();
  absl::Status up = testing::WaitForSocket(**hsmd, socket_, kStartTimeout);
  ASSERT_TRUE(up.ok()) << up;
  auto keys = v1::KeyService::NewStub(
      grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));

  v1::ListKeysResponse list;
  grpc::Status s = keys->ListKeys(Context().get(), {}, &list);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(list.keys_size(), 1);
  EXPECT_EQ(list.keys(0).uri(), "sdf:device=card0;index=1;usage=sign");

  v1::SignRequest sign;
  sign.mutable_key()->set_uri("sdf:device=card0;index=1;usage=sign");
  sign.mutable_algorithm()->mutable_sm2();
  sign.set_message("allowed");
  v1::SignResponse signature;
  s = keys->Sign(Context().get(), sign, &signature);
  EXPECT_TRUE(s.ok()) << s.error_message();

  v1::DecryptRequest decrypt;
  decrypt.mutable_key()->set_uri("sdf:device=card0;index=1;usage=enc");
  decrypt.mutable_algorithm()->mutable_sm2();
  decrypt.set_ciphertext("x");
  v1::DecryptResponse plaintext;
  s = keys->Decrypt(Context().get(), decrypt, &plaintext);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("may not decrypt"));

  (*hsmd)->Signal(SIGTERM);
  absl::StatusOr<int> code = (*hsmd)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*hsmd)->Stderr();
}

TEST_F(MixedBackendsTest, WrongPasswordFailsTheStart) {
  store_->SetPassword(1, "not the password");
  absl::StatusOr<std::unique_ptr<Subprocess>> hsmd = StartHsmd();
  ASSERT_TRUE(hsmd.ok()) << hsmd.status();
  absl::StatusOr<int> code = (*hsmd)->Wait(kStartTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  // 3: a backend failed to start.
  EXPECT_EQ(*code, 3) << (*hsmd)->Stderr();
  const std::string log = (*hsmd)->Stderr();
  EXPECT_THAT(log, HasSubstr("backend failed to start"));
  EXPECT_THAT(log, HasSubstr("backend=card"));
  EXPECT_THAT(log, HasSubstr("password of key index 1"));
  EXPECT_THAT(log, Not(HasSubstr("not the password")));
  struct stat st;
  EXPECT_NE(stat(socket_.c_str(), &st), 0) << "socket left behind";
}

TEST_F(MixedBackendsTest, CheckConfigReadsTheSdfPassword) {
  std::string out, err;
  absl::StatusOr<int> code = testing::RunToCompletion(
      {testing::RunfilePath("daemon/hsmd"), "--config", config_,
       "--check-config"},
      &out, &err);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << err;
  EXPECT_THAT(out, HasSubstr("config OK"));

  ASSERT_EQ(chmod(store_->PasswordFile(1).c_str(), 0644), 0);
  code = testing::RunToCompletion({testing::RunfilePath("daemon/hsmd"),
                                   "--config", config_, "--check-config"},
                                  &out, &err);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 2);
  EXPECT_THAT(err, HasSubstr("backends[1].sdf.keys[0].password"));
}

}  // namespace
}  // namespace hsmd
