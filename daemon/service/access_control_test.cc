// The access policy and the audit trail at the RPC level: a real server on
// a Unix socket, the fake backend, and policies written for this process's
// own uid (0 here when run as root, whatever it is otherwise) or for others.
// Requests from other users are tested in tests/security.
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/logging.h"
#include "daemon/testing/log_lines.h"
#include "daemon/testing/signature_verifier.h"
#include "daemon/testing/test_daemon.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace hsmd::testing {
namespace {

using backend::FakeBackend;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// "$ME" in policy text is this process's uid.
std::string WithMe(const std::string& text) {
  return absl::StrReplaceAll(text, {{"$ME", std::to_string(getuid())}});
}

class AccessControlTest : public ::testing::Test {
 protected:
  void Start(const std::string& policy_text) {
    auto fake = FakeBackend::New({.name = "hsm", .token_label = "demo"});
    ASSERT_TRUE(fake.ok());
    fake_ = fake->get();
    for (const char* label : {"web-1", "db", "other"}) {
      v1::GenerateKeyRequest request;
      request.set_label(label);
      request.set_key_type(v1::KEY_TYPE_EC);
      request.set_curve(v1::CURVE_P256);
      absl::StatusOr<v1::Key> key = fake_->GenerateKey(request, {});
      ASSERT_TRUE(key.ok());
      keys_[label] = *key;
    }
    config::Config config = TestConfig();
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        WithMe(policy_text), config.mutable_policy()))
        << policy_text;
    std::vector<std::unique_ptr<backend::Backend>> backends;
    backends.push_back(*std::move(fake));
    auto daemon = TestDaemon::Start(std::move(backends), config);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
  }

  grpc::Status Sign(const std::string& uri, v1::SignResponse* response,
                    v1::SignRequest* sent = nullptr) {
    v1::SignRequest request;
    request.mutable_key()->set_uri(uri);
    request.mutable_algorithm()->mutable_ecdsa()->set_hash(
        v1::HASH_ALGORITHM_SHA256);
    request.set_message("message");
    if (sent != nullptr) *sent = request;
    return daemon_->keys().Sign(Context().get(), request, response);
  }

  std::vector<std::string> ListedLabels() {
    v1::ListKeysResponse response;
    grpc::Status s = daemon_->keys().ListKeys(Context().get(), {}, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> labels;
    for (const v1::Key& k : response.keys()) labels.push_back(k.label());
    return labels;
  }

  void ExpectDenied(const grpc::Status& s, const std::string& action) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message();
    EXPECT_EQ(s.error_message(), absl::StrCat("permission denied: uid ",
                                              getuid(), " may not ", action));
  }

  FakeBackend* fake_ = nullptr;
  std::map<std::string, v1::Key> keys_;
  std::unique_ptr<TestDaemon> daemon_;
};

TEST_F(AccessControlTest, SignOnlyWithGrantedKeys) {
  Start(R"(
    rules { name: "web" users: "$ME" keys: "pkcs11:token=demo;object=web-*"
            operations: [SIGN] }
    rules { users: "$ME" keys: "db" operations: [LIST] })");
  v1::SignResponse response;
  v1::SignRequest sent;
  grpc::Status s = Sign("pkcs11:object=web-1", &response, &sent);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(VerifySignature(keys_["web-1"].public_key_der(), sent,
                              response.signature())
                  .ok());
  // By key id too: the policy matches what the reference resolves to.
  v1::SignRequest by_id = sent;
  by_id.mutable_key()->set_key_id(keys_["web-1"].key_id());
  EXPECT_TRUE(daemon_->keys().Sign(Context().get(), by_id, &response).ok());

  ExpectDenied(Sign("pkcs11:object=db", &response),
               "sign with pkcs11:object=db");
  ExpectDenied(Sign("pkcs11:object=other", &response),
               "sign with pkcs11:object=other");
  by_id.mutable_key()->set_key_id(keys_["other"].key_id());
  ExpectDenied(daemon_->keys().Sign(Context().get(), by_id, &response),
               absl::StrCat("sign with key_id:", keys_["other"].key_id()));
  // An allowed caller learns that a key does not exist...
  EXPECT_EQ(Sign("pkcs11:object=web-none", &response).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::DecryptRequest decrypt;
  decrypt.mutable_key()->set_uri("pkcs11:object=db");
  decrypt.mutable_algorithm()->mutable_rsa_pkcs1();
  decrypt.set_ciphertext(std::string(256, 'x'));
  v1::DecryptResponse plain;
  ExpectDenied(daemon_->keys().Decrypt(Context().get(), decrypt, &plain),
               "decrypt with pkcs11:object=db");
  v1::EncryptRequest encrypt;
  encrypt.mutable_key()->set_uri("pkcs11:object=web-1");
  encrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  encrypt.set_plaintext(std::string(16, 'p'));
  v1::EncryptResponse sealed;
  ExpectDenied(daemon_->keys().Encrypt(Context().get(), encrypt, &sealed),
               "encrypt with pkcs11:object=web-1");
  // No backend operation ran for a denied request.
  EXPECT_EQ(fake_->CallCount("Sign"), 2u);
  EXPECT_EQ(fake_->CallCount("Decrypt"), 0u);
}

TEST_F(AccessControlTest, EncryptNeedsItsOwnGrant) {
  Start(R"(rules { users: "$ME" keys: "web-*" operations: [ENCRYPT] })");
  v1::EncryptRequest encrypt;
  encrypt.mutable_key()->set_uri("pkcs11:object=web-1");
  encrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  encrypt.set_plaintext(std::string(16, 'p'));
  v1::EncryptResponse sealed;
  // Allowed: the request reaches the backend, whose EC key cannot encrypt.
  grpc::Status s = daemon_->keys().Encrypt(Context().get(), encrypt, &sealed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("holds no keys that can encrypt"));
  encrypt.mutable_key()->set_uri("pkcs11:object=db");
  ExpectDenied(daemon_->keys().Encrypt(Context().get(), encrypt, &sealed),
               "encrypt with pkcs11:object=db");
  // ENCRYPT makes the key visible, as every key operation does.
  EXPECT_THAT(ListedLabels(), UnorderedElementsAre("web-1"));
}

TEST_F(AccessControlTest, DeriveNeedsItsOwnGrant) {
  Start(R"(rules { users: "$ME" keys: "web-*" operations: [DERIVE] })");
  v1::DeriveRequest derive;
  derive.mutable_key()->set_uri("pkcs11:object=web-1");
  // Any P-256 public key serves as the peer.
  derive.mutable_ecdh()->set_peer_public_key(keys_["other"].public_key_der());
  v1::DeriveResponse response;
  grpc::Status s = daemon_->keys().Derive(Context().get(), derive, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.shared_secret().size(), 32u);
  EXPECT_EQ(response.key_id(), keys_["web-1"].key_id());
  derive.mutable_key()->set_uri("pkcs11:object=db");
  ExpectDenied(daemon_->keys().Derive(Context().get(), derive, &response),
               "derive with pkcs11:object=db");
  // DERIVE grants neither signing nor anything on other keys.
  v1::SignResponse signature;
  ExpectDenied(Sign("pkcs11:object=web-1", &signature),
               "sign with pkcs11:object=web-1");
  EXPECT_THAT(ListedLabels(), UnorderedElementsAre("web-1"));
}

TEST_F(AccessControlTest, CallersWithoutGrantsLearnNothingAboutKeys) {
  Start(R"(rules { users: "4242" keys: "*" operations: [SIGN, LIST] })");
  v1::SignResponse response;
  // ...one without any grant does not: missing and existing keys look alike.
  ExpectDenied(Sign("pkcs11:object=web-none", &response),
               "sign with pkcs11:object=web-none");
  ExpectDenied(Sign("pkcs11:object=web-1", &response),
               "sign with pkcs11:object=web-1");
  v1::ListKeysResponse keys;
  ExpectDenied(daemon_->keys().ListKeys(Context().get(), {}, &keys),
               "list keys");
  v1::GetKeyRequest get;
  get.mutable_key()->set_uri("pkcs11:object=db");
  v1::GetKeyResponse key;
  ExpectDenied(daemon_->keys().GetKey(Context().get(), get, &key),
               "read pkcs11:object=db");
  EXPECT_EQ(fake_->CallCount("GetKey"), 0u);
  EXPECT_EQ(fake_->CallCount("ListKeys"), 0u);
}

TEST_F(AccessControlTest, ListAndGetShowOnlyVisibleKeys) {
  Start(R"(
    rules { users: "$ME" keys: "web-*" operations: [SIGN] }
    rules { users: "$ME" keys: "db" operations: [LIST] })");
  EXPECT_THAT(ListedLabels(), UnorderedElementsAre("web-1", "db"));
  v1::GetKeyRequest get;
  v1::GetKeyResponse key;
  get.mutable_key()->set_uri("pkcs11:object=web-1");
  EXPECT_TRUE(daemon_->keys().GetKey(Context().get(), get, &key).ok());
  get.mutable_key()->set_uri("pkcs11:object=other");
  ExpectDenied(daemon_->keys().GetKey(Context().get(), get, &key),
               "read pkcs11:object=other");
}

TEST_F(AccessControlTest, RandomStatusAndStatsNeedTheirGrants) {
  Start(R"(rules { users: "$ME" keys: "*" operations: [SIGN] })");
  v1::GenerateRandomRequest random;
  random.set_length(16);
  v1::GenerateRandomResponse bytes;
  ExpectDenied(daemon_->keys().GenerateRandom(Context().get(), random, &bytes),
               "generate random bytes");
  v1::GetStatusResponse status;
  ExpectDenied(daemon_->admin().GetStatus(Context().get(), {}, &status),
               "read the daemon status");
  v1::GetStatsResponse stats;
  ExpectDenied(daemon_->admin().GetStats(Context().get(), {}, &stats),
               "read statistics");
}

TEST_F(AccessControlTest, RandomAndStatusWhenGranted) {
  Start(R"(rules { users: "*" operations: [RANDOM, STATUS] })");
  v1::GenerateRandomRequest random;
  random.set_length(16);
  v1::GenerateRandomResponse bytes;
  ASSERT_TRUE(
      daemon_->keys().GenerateRandom(Context().get(), random, &bytes).ok());
  EXPECT_EQ(bytes.data().size(), 16u);
  v1::GetStatusResponse status;
  EXPECT_TRUE(daemon_->admin().GetStatus(Context().get(), {}, &status).ok());
  v1::GetStatsResponse stats;
  EXPECT_TRUE(daemon_->admin().GetStats(Context().get(), {}, &stats).ok());
}

TEST_F(AccessControlTest, AdminRulesCoverKeyLifecycleByPattern) {
  Start(R"(rules { users: "$ME" keys: "pkcs11:token=demo;object=test-*"
                   operations: [ADMIN] })");
  v1::GenerateKeyRequest gen;
  gen.set_key_type(v1::KEY_TYPE_EC);
  gen.set_curve(v1::CURVE_P256);
  gen.set_label("test-1");
  v1::GenerateKeyResponse generated;
  ASSERT_TRUE(
      daemon_->admin().GenerateKey(Context().get(), gen, &generated).ok());
  gen.set_label("prod-1");
  ExpectDenied(daemon_->admin().GenerateKey(Context().get(), gen, &generated),
               "generate key \"prod-1\" on backend hsm");
  // Three set-up keys, test-1; prod-1 was never made.
  EXPECT_EQ(fake_->CallCount("GenerateKey"), 4u);

  v1::DeleteKeyRequest del;
  v1::DeleteKeyResponse deleted;
  del.mutable_key()->set_uri("pkcs11:object=web-1");
  ExpectDenied(daemon_->admin().DeleteKey(Context().get(), del, &deleted),
               "delete pkcs11:object=web-1");
  del.mutable_key()->set_uri("pkcs11:object=test-1");
  EXPECT_TRUE(daemon_->admin().DeleteKey(Context().get(), del, &deleted).ok());
  EXPECT_EQ(fake_->CallCount("DeleteKey"), 1u);
  // ADMIN implies STATUS.
  v1::GetStatusResponse status;
  EXPECT_TRUE(daemon_->admin().GetStatus(Context().get(), {}, &status).ok());
}

// Audit records, one per request, agree with GetStats: the same requests,
// per method and key, with the same errors.
TEST_F(AccessControlTest, AuditRecordsAgreeWithStats) {
  std::mutex mu;
  std::vector<std::string> lines;
  log::SetSinkForTesting([&](absl::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  Start(R"(
    rules { users: "$ME" keys: "web-*" operations: [SIGN] }
    rules { users: "$ME" keys: "db" operations: [LIST] }
    rules { users: "$ME" operations: [STATUS, RANDOM] })");
  v1::SignResponse response;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Sign("pkcs11:object=web-1", &response).ok());
  }
  for (int i = 0; i < 2; ++i) Sign("pkcs11:object=db", &response);
  Sign("pkcs11:object=other", &response);
  Sign("pkcs11:object=web-none", &response);
  fake_->FailNext("Sign", absl::UnavailableError("token removed"));
  Sign("pkcs11:object=web-1", &response);
  v1::GenerateRandomRequest random;
  random.set_length(8);
  v1::GenerateRandomResponse bytes;
  daemon_->keys().GenerateRandom(Context().get(), random, &bytes);
  ListedLabels();
  v1::GetStatsResponse stats;
  ASSERT_TRUE(daemon_->admin().GetStats(Context().get(), {}, &stats).ok());
  daemon_.reset();
  log::SetSinkForTesting(nullptr);

  // (method, key_id) -> [count, errors] from the audit trail.
  std::map<std::pair<std::string, std::string>, std::pair<int, int>> audited;
  int denials = 0;
  for (const std::string& line : lines) {
    if (line.find("\"msg\":\"audit\"") == std::string::npos) continue;
    std::optional<std::string> method = JsonValue(line, "method");
    std::optional<std::string> result = JsonValue(line, "result");
    ASSERT_TRUE(method.has_value() && result.has_value()) << line;
    const std::string key_id = JsonValue(line, "key_id").value_or("");
    // The GetStats call itself is counted after its own snapshot.
    if (*method == "GetStats") continue;
    auto& entry = audited[{*method, key_id}];
    ++entry.first;
    if (*result != "OK") ++entry.second;
    if (JsonValue(line, "decision") == "deny") {
      ++denials;
      EXPECT_EQ(JsonValue(line, "peer_uid"), std::to_string(getuid()));
      EXPECT_EQ(JsonValue(line, "level"), "warning");
    }
  }
  EXPECT_EQ(denials, 3);
  std::map<std::pair<std::string, std::string>, std::pair<int, int>> counted;
  for (const v1::OperationStats& op : stats.operations()) {
    counted[{op.operation(), op.key_id()}] = {
        static_cast<int>(op.count()), static_cast<int>(op.error_count())};
  }
  EXPECT_EQ(audited, counted);
  // Spot checks of what the maps hold.
  const std::pair<int, int> web = counted[{"Sign", keys_["web-1"].key_id()}];
  EXPECT_EQ(web, std::make_pair(4, 1));
  EXPECT_EQ((counted[{"Sign", keys_["db"].key_id()}]), std::make_pair(2, 2));
}

}  // namespace
}  // namespace hsmd::testing
