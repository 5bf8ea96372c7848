#include "daemon/testing/service_conformance.h"

#include <grpcpp/client_context.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/error_detail.h"
#include "common/openssl_ptr.h"
#include "daemon/testing/signature_verifier.h"
#include "daemon/testing/test_daemon.h"
#include "gmock/gmock.h"

namespace hsmd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

}  // namespace

struct ConformanceSuiteState {
  std::unique_ptr<TestDaemon> daemon;
  std::map<std::string, v1::Key> keys;  // By label.
};

namespace {

std::map<std::string, std::unique_ptr<ConformanceSuiteState>>& States() {
  static auto* states =
      new std::map<std::string, std::unique_ptr<ConformanceSuiteState>>;
  return *states;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  return out;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), ": ", s.error_message());
}

}  // namespace

void ServiceConformanceTest::SetUp() {
  std::unique_ptr<ConformanceSuiteState>& state = States()[GetParam().name];
  if (state == nullptr) {
    state = std::make_unique<ConformanceSuiteState>();
    absl::StatusOr<std::vector<std::unique_ptr<backend::Backend>>> backends =
        GetParam().make_backends();
    ASSERT_TRUE(backends.ok()) << backends.status();
    config::Config config = TestConfig();
    config.mutable_limits()->set_max_message_bytes(kTestMaxMessageBytes);
    absl::StatusOr<std::unique_ptr<TestDaemon>> daemon =
        TestDaemon::Start(*std::move(backends), config);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    state->daemon = *std::move(daemon);
    struct Spec {
      const char* label;
      v1::KeyType type;
      v1::Curve curve;
    };
    for (const Spec& spec :
         {Spec{"rsa-2048", v1::KEY_TYPE_RSA, v1::CURVE_UNSPECIFIED},
          Spec{"ec-p256", v1::KEY_TYPE_EC, v1::CURVE_P256},
          Spec{"ec-p384", v1::KEY_TYPE_EC, v1::CURVE_P384},
          Spec{"ed25519", v1::KEY_TYPE_ED25519, v1::CURVE_UNSPECIFIED}}) {
      v1::GenerateKeyRequest request;
      request.set_label(spec.label);
      request.set_key_type(spec.type);
      request.set_curve(spec.curve);
      if (spec.type == v1::KEY_TYPE_RSA) request.set_rsa_bits(2048);
      v1::GenerateKeyResponse response;
      grpc::Status s = state->daemon->admin().GenerateKey(Context().get(),
                                                          request, &response);
      ASSERT_TRUE(s.ok()) << spec.label << ": " << Describe(s);
      state->keys[spec.label] = response.key();
    }
  }
  state_ = state.get();
  ASSERT_NE(state_->daemon, nullptr) << "suite set-up failed earlier";
  ASSERT_EQ(state_->keys.size(), 4u) << "suite set-up failed earlier";
}

v1::KeyService::Stub& ServiceConformanceTest::keys() {
  return state_->daemon->keys();
}
v1::AdminService::Stub& ServiceConformanceTest::admin() {
  return state_->daemon->admin();
}
const v1::Key& ServiceConformanceTest::key(const std::string& label) {
  return state_->keys[label];
}
std::shared_ptr<grpc::Channel> ServiceConformanceTest::NewChannel() {
  return state_->daemon->NewChannel();
}
const std::string& ServiceConformanceTest::socket_path() {
  return state_->daemon->socket_path();
}

v1::SignRequest ServiceConformanceTest::SignRequestFor(
    const std::string& label) {
  v1::SignRequest r;
  r.mutable_key()->set_uri(key(label).uri());
  r.set_message("message to sign");
  return r;
}

grpc::Status ServiceConformanceTest::Sign(const v1::SignRequest& request,
                                          v1::SignResponse* response) {
  v1::SignResponse ignored;
  return keys().Sign(Context().get(), request,
                     response != nullptr ? response : &ignored);
}

void ServiceConformanceTest::SignAndVerify(const std::string& label,
                                           const v1::SignRequest& request) {
  v1::SignResponse response;
  grpc::Status s = Sign(request, &response);
  ASSERT_TRUE(s.ok()) << request.ShortDebugString().substr(0, 300) << ": "
                      << Describe(s);
  EXPECT_EQ(response.key_id(), key(label).key_id());
  absl::Status verified = VerifySignature(key(label).public_key_der(), request,
                                          response.signature());
  EXPECT_TRUE(verified.ok())
      << request.ShortDebugString().substr(0, 300) << ": " << verified;
}

void ServiceConformanceTest::ExpectError(const grpc::Status& s,
                                         grpc::StatusCode code,
                                         const std::string& text) {
  EXPECT_EQ(s.error_code(), code) << Describe(s);
  EXPECT_FALSE(s.error_message().empty());
  if (!text.empty()) {
    EXPECT_THAT(s.error_message(), HasSubstr(text));
  }
}

namespace {

TEST_P(ServiceConformanceTest, ListKeysAndFilters) {
  v1::ListKeysResponse all;
  ASSERT_TRUE(keys().ListKeys(Context().get(), {}, &all).ok());
  EXPECT_GE(all.keys_size(), 4);

  v1::ListKeysRequest by_label;
  by_label.set_label("ec-p384");
  v1::ListKeysResponse one;
  ASSERT_TRUE(keys().ListKeys(Context().get(), by_label, &one).ok());
  ASSERT_EQ(one.keys_size(), 1);
  EXPECT_EQ(one.keys(0).key_id(), key("ec-p384").key_id());
  EXPECT_EQ(one.keys(0).curve(), v1::CURVE_P384);

  v1::ListKeysRequest by_uri;
  by_uri.set_uri_filter("pkcs11:object=ed25519");
  ASSERT_TRUE(keys().ListKeys(Context().get(), by_uri, &one).ok());
  ASSERT_EQ(one.keys_size(), 1);
  EXPECT_EQ(one.keys(0).key_type(), v1::KEY_TYPE_ED25519);

  by_uri.set_uri_filter("pkcs11:object=%zz");
  ExpectError(keys().ListKeys(Context().get(), by_uri, &one),
              grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_P(ServiceConformanceTest, GetKeyByUriAndId) {
  const v1::Key& rsa = key("rsa-2048");
  EXPECT_EQ(rsa.key_type(), v1::KEY_TYPE_RSA);
  EXPECT_EQ(rsa.size_bits(), 2048u);
  EXPECT_EQ(rsa.key_id().size(), 32u);
  EXPECT_FALSE(rsa.public_key_der().empty());
  v1::GetKeyRequest request;
  request.mutable_key()->set_uri(rsa.uri());
  v1::GetKeyResponse response;
  grpc::Status s = keys().GetKey(Context().get(), request, &response);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(response.key().key_id(), rsa.key_id());
  request.mutable_key()->set_key_id(rsa.key_id());
  s = keys().GetKey(Context().get(), request, &response);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(response.key().label(), "rsa-2048");
  EXPECT_EQ(response.key().public_key_der(), rsa.public_key_der());
}

TEST_P(ServiceConformanceTest, SignEveryAlgorithmAndVerify) {
  v1::SignRequest r = SignRequestFor("rsa-2048");
  r.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  SignAndVerify("rsa-2048", r);
  r.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_SHA384);
  r.set_digest(RandomBytes(48));
  SignAndVerify("rsa-2048", r);
  // Raw PKCS#1: the caller's DigestInfo (SHA-256 prefix + digest).
  r.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_UNSPECIFIED);
  r.set_digest(std::string("\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03"
                           "\x04\x02\x01\x05\x00\x04\x20",
                           19) +
               RandomBytes(32));
  SignAndVerify("rsa-2048", r);

  r = SignRequestFor("rsa-2048");
  r.mutable_algorithm()->mutable_rsa_pss()->set_hash(v1::HASH_ALGORITHM_SHA256);
  SignAndVerify("rsa-2048", r);
  r.mutable_algorithm()->mutable_rsa_pss()->set_salt_length(0);
  SignAndVerify("rsa-2048", r);
  r.mutable_algorithm()->mutable_rsa_pss()->set_salt_length(222);
  SignAndVerify("rsa-2048", r);
  r.mutable_algorithm()->mutable_rsa_pss()->set_hash(v1::HASH_ALGORITHM_SHA512);
  r.mutable_algorithm()->mutable_rsa_pss()->clear_salt_length();
  r.set_digest(RandomBytes(64));
  SignAndVerify("rsa-2048", r);

  r = SignRequestFor("ec-p256");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  SignAndVerify("ec-p256", r);
  r.set_digest(RandomBytes(32));
  SignAndVerify("ec-p256", r);
  r = SignRequestFor("ec-p384");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA384);
  SignAndVerify("ec-p384", r);

  r = SignRequestFor("ed25519");
  r.mutable_algorithm()->mutable_ed25519();
  SignAndVerify("ed25519", r);

  // By key id too.
  r.mutable_key()->set_key_id(key("ed25519").key_id());
  SignAndVerify("ed25519", r);
}

TEST_P(ServiceConformanceTest, DecryptRoundTrips) {
  const v1::Key& rsa = key("rsa-2048");
  v1::DecryptRequest request;
  request.mutable_key()->set_uri(rsa.uri());
  request.mutable_algorithm()->mutable_rsa_pkcs1();
  absl::StatusOr<std::string> ct =
      EncryptForKey(rsa.public_key_der(), request.algorithm(), "pkcs1 secret");
  ASSERT_TRUE(ct.ok()) << ct.status();
  request.set_ciphertext(*ct);
  v1::DecryptResponse response;
  grpc::Status s = keys().Decrypt(Context().get(), request, &response);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(response.plaintext(), "pkcs1 secret");
  EXPECT_EQ(response.key_id(), rsa.key_id());

  request.mutable_algorithm()->mutable_rsa_oaep()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  ct = EncryptForKey(rsa.public_key_der(), request.algorithm(), "oaep secret");
  ASSERT_TRUE(ct.ok()) << ct.status();
  request.set_ciphertext(*ct);
  s = keys().Decrypt(Context().get(), request, &response);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(response.plaintext(), "oaep secret");

  // Decrypting with an EC key is the wrong algorithm for the key type.
  request.mutable_key()->set_uri(key("ec-p256").uri());
  s = keys().Decrypt(Context().get(), request, &response);
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
              s.error_code() == grpc::StatusCode::FAILED_PRECONDITION)
      << Describe(s);
}

TEST_P(ServiceConformanceTest, DeriveAgreesWithThePeerAndRejectsBadPeers) {
  const v1::Key& ec = key("ec-p256");
  EXPECT_THAT(ec.allowed_operations(),
              ::testing::Contains(v1::OPERATION_DERIVE));
  EvpPkeyPtr peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  unsigned char* der = nullptr;
  const int der_len = i2d_PUBKEY(peer.get(), &der);
  ASSERT_GT(der_len, 0);
  const std::string peer_spki(reinterpret_cast<char*>(der), der_len);
  OPENSSL_free(der);

  v1::DeriveRequest request;
  request.mutable_key()->set_uri(ec.uri());
  request.mutable_ecdh()->set_peer_public_key(peer_spki);
  v1::DeriveResponse response;
  grpc::Status s = keys().Derive(Context().get(), request, &response);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(response.key_id(), ec.key_id());
  // The peer's side of the agreement: its private key with the HSM key's
  // public key.
  const auto* p =
      reinterpret_cast<const unsigned char*>(ec.public_key_der().data());
  EvpPkeyPtr hsm_public(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(ec.public_key_der().size())));
  ASSERT_NE(hsm_public, nullptr);
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, peer.get(), nullptr));
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_derive_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(ctx.get(), hsm_public.get()), 1);
  ASSERT_EQ(EVP_PKEY_derive(ctx.get(), nullptr, &len), 1);
  std::string expected(len, '\0');
  ASSERT_EQ(
      EVP_PKEY_derive(ctx.get(),
                      reinterpret_cast<unsigned char*>(expected.data()), &len),
      1);
  EXPECT_EQ(response.shared_secret(), expected);

  // A peer on another curve, a key of another type, a missing peer.
  request.mutable_key()->set_uri(key("ec-p384").uri());
  s = keys().Derive(Context().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("prime256v1"));
  request.mutable_key()->set_uri(key("rsa-2048").uri());
  s = keys().Derive(Context().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(s);
  request.mutable_key()->set_uri(ec.uri());
  request.mutable_ecdh()->clear_peer_public_key();
  s = keys().Derive(Context().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("peer_public_key"));
}

TEST_P(ServiceConformanceTest, GenerateRandom) {
  v1::GenerateRandomRequest request;
  v1::GenerateRandomResponse response;
  request.set_length(32);
  grpc::Status s = keys().GenerateRandom(Context().get(), request, &response);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(response.data().size(), 32u);
  std::string first = response.data();
  ASSERT_TRUE(keys().GenerateRandom(Context().get(), request, &response).ok());
  EXPECT_NE(response.data(), first);
  request.set_length(65536);
  s = keys().GenerateRandom(Context().get(), request, &response);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(response.data().size(), 65536u);
  request.set_length(0);
  ExpectError(keys().GenerateRandom(Context().get(), request, &response),
              grpc::StatusCode::INVALID_ARGUMENT, "length: 0 is out of range");
  request.set_length(65537);
  ExpectError(keys().GenerateRandom(Context().get(), request, &response),
              grpc::StatusCode::INVALID_ARGUMENT, "length: 65537");
}

TEST_P(ServiceConformanceTest, UnknownKeyIsNotFoundNamingTheUri) {
  v1::SignRequest r = SignRequestFor("ec-p256");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  r.mutable_key()->set_uri("pkcs11:object=no-such-key;type=private");
  ExpectError(Sign(r), grpc::StatusCode::NOT_FOUND,
              "pkcs11:object=no-such-key;type=private");
  r.mutable_key()->set_key_id("00000000000000000000000000000000");
  ExpectError(Sign(r), grpc::StatusCode::NOT_FOUND,
              "00000000000000000000000000000000");
  v1::GetKeyRequest get;
  get.mutable_key()->set_uri("pkcs11:token=no-such-token;object=ec-p256");
  v1::GetKeyResponse response;
  ExpectError(keys().GetKey(Context().get(), get, &response),
              grpc::StatusCode::NOT_FOUND, "no-such-token");
}

TEST_P(ServiceConformanceTest, MalformedUriPartsAreInvalidArgument) {
  v1::SignRequest r = SignRequestFor("ec-p256");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  for (const std::string& uri : {
           std::string("pkcs12:object=ec-p256"),              // scheme
           std::string("ec-p256"),                            // no scheme
           std::string("pkcs11:object=ec%zzp256"),            // encoding
           std::string("pkcs11:object=ec-p256;colour=red"),   // attribute
           std::string("pkcs11:object=ec-p256;type=banana"),  // type value
           std::string("pkcs11:object=ec-p256;id=%0"),        // id encoding
           std::string("pkcs11:object=ec-p256?pin-value=12345678"),   // PIN
           std::string("pkcs11:object=ec-p256?pin-source=/etc/pin"),  // PIN
           "pkcs11:object=" + std::string(4100, 'a'),                 // length
           std::string(""),                                           // empty
       }) {
    r.mutable_key()->set_uri(uri);
    grpc::Status s = Sign(r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << uri.substr(0, 80) << " -> " << Describe(s);
    EXPECT_FALSE(s.error_message().empty());
    EXPECT_THAT(s.error_message(), Not(HasSubstr("12345678")));
  }
  r.mutable_key()->set_key_id("not-a-key-id");
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT, "key.key_id");
  r.clear_key();
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT,
              "key: a key reference");
}

TEST_P(ServiceConformanceTest, WrongAlgorithmForKeyType) {
  v1::SignRequest r = SignRequestFor("rsa-2048");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT);
  r = SignRequestFor("ec-p256");
  r.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.mutable_algorithm()->mutable_rsa_pss()->set_hash(v1::HASH_ALGORITHM_SHA256);
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.mutable_algorithm()->mutable_ed25519();
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT);
  r = SignRequestFor("ed25519");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.clear_algorithm();
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT,
              "algorithm: is required");
}

TEST_P(ServiceConformanceTest, PssSaltOutOfRange) {
  v1::SignRequest r = SignRequestFor("rsa-2048");
  r.mutable_algorithm()->mutable_rsa_pss()->set_hash(v1::HASH_ALGORITHM_SHA256);
  // emLen 256 - hLen 32 - 2 = 222 is the largest salt for RSA-2048/SHA-256.
  r.mutable_algorithm()->mutable_rsa_pss()->set_salt_length(223);
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT, "salt");
  r.mutable_algorithm()->mutable_rsa_pss()->set_salt_length(100000);
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT, "salt");
}

TEST_P(ServiceConformanceTest, EmptyAndWrongLengthInput) {
  v1::SignRequest r = SignRequestFor("ec-p256");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  r.set_message("");
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT,
              "message: must not be empty");
  r.set_digest("");
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT,
              "digest: must not be empty");
  r.clear_input();
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT, "input");
  r.set_digest(RandomBytes(20));
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT,
              "digest: is 20 bytes; a SHA-256 digest is 32");
  r.set_digest(RandomBytes(33));
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT, "is 33 bytes");
}

TEST_P(ServiceConformanceTest,
       OversizedInputIsRefusedAndTheDaemonKeepsServing) {
  v1::SignRequest r = SignRequestFor("ed25519");
  r.mutable_algorithm()->mutable_ed25519();
  // At the limit: fine.
  r.set_message(RandomBytes(kTestMaxMessageBytes));
  SignAndVerify("ed25519", r);
  // Just over: the service names the limit.
  r.set_message(RandomBytes(kTestMaxMessageBytes + 1));
  ExpectError(Sign(r), grpc::StatusCode::INVALID_ARGUMENT,
              "limits.max_message_bytes");
  // Far over: gRPC refuses the message before it is parsed.
  r.set_message(RandomBytes(4 * kTestMaxMessageBytes));
  grpc::Status s = Sign(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("larger than max"));
  // Still serving, on the same channel and on a new one.
  r.set_message("small");
  SignAndVerify("ed25519", r);
  auto stub = v1::KeyService::NewStub(NewChannel());
  v1::SignResponse response;
  EXPECT_TRUE(stub->Sign(Context().get(), r, &response).ok());
}

TEST_P(ServiceConformanceTest, GenerateAndDeleteKey) {
  v1::GenerateKeyRequest request;
  request.set_label("short-lived");
  request.set_key_type(v1::KEY_TYPE_EC);
  request.set_curve(v1::CURVE_P256);
  v1::GenerateKeyResponse generated;
  grpc::Status s = admin().GenerateKey(Context().get(), request, &generated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(generated.key().label(), "short-lived");

  v1::SignRequest sign;
  sign.mutable_key()->set_uri(generated.key().uri());
  sign.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  sign.set_message("m");
  v1::SignResponse signature;
  ASSERT_TRUE(Sign(sign, &signature).ok());
  EXPECT_TRUE(VerifySignature(generated.key().public_key_der(), sign,
                              signature.signature())
                  .ok());

  v1::DeleteKeyRequest del;
  del.mutable_key()->set_uri(generated.key().uri());
  v1::DeleteKeyResponse deleted;
  s = admin().DeleteKey(Context().get(), del, &deleted);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_GE(deleted.objects_deleted(), 1u);
  ExpectError(Sign(sign), grpc::StatusCode::NOT_FOUND, "short-lived");
  ExpectError(admin().DeleteKey(Context().get(), del, &deleted),
              grpc::StatusCode::NOT_FOUND);

  request.set_curve(v1::CURVE_ED25519);
  ExpectError(admin().GenerateKey(Context().get(), request, &generated),
              grpc::StatusCode::INVALID_ARGUMENT, "curve");
  request.set_backend("no-such-backend");
  request.set_curve(v1::CURVE_P256);
  ExpectError(admin().GenerateKey(Context().get(), request, &generated),
              grpc::StatusCode::NOT_FOUND, "no-such-backend");
}

TEST_P(ServiceConformanceTest, GetStatusAndStats) {
  v1::SignRequest r = SignRequestFor("ec-p256");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  ASSERT_TRUE(Sign(r).ok());
  r.mutable_key()->set_uri("pkcs11:object=stats-missing");
  ASSERT_FALSE(Sign(r).ok());

  v1::GetStatusResponse status;
  ASSERT_TRUE(admin().GetStatus(Context().get(), {}, &status).ok());
  EXPECT_EQ(status.version(), "0.1.0");
  EXPECT_GT(status.pid(), 0u);
  EXPECT_GT(status.start_time().seconds(), 0);
  ASSERT_GE(status.backends_size(), 1);
  EXPECT_EQ(status.backends(0).state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(status.config().socket_path(), socket_path());
  EXPECT_EQ(status.config().max_message_bytes(), kTestMaxMessageBytes);
  ASSERT_EQ(status.config().pin_sources_size(), 1);
  EXPECT_EQ(status.config().pin_sources(0), "file:/nonexistent/test.pin");

  v1::GetStatsResponse stats;
  ASSERT_TRUE(admin().GetStats(Context().get(), {}, &stats).ok());
  bool saw_sign = false, saw_not_found = false;
  for (const v1::OperationStats& op : stats.operations()) {
    if (op.operation() != "Sign") continue;
    if (op.key_id() == key("ec-p256").key_id()) {
      saw_sign = op.count() >= 1 && op.key_label() == "ec-p256";
      EXPECT_EQ(op.latency().counts_size(),
                op.latency().bucket_upper_bounds_us_size() + 1);
    }
    if (op.errors_by_code().count("NOT_FOUND") > 0) saw_not_found = true;
  }
  EXPECT_TRUE(saw_sign) << stats.DebugString();
  EXPECT_TRUE(saw_not_found) << stats.DebugString();
}

int ConcurrencySeconds(int fallback) {
  if (const char* s = std::getenv("HSMD_CONCURRENCY_SECONDS")) {
    int value = 0;
    if (absl::SimpleAtoi(s, &value) && value > 0) return value;
  }
  if (const char* s = std::getenv("HSMD_LONG_TESTS");
      s != nullptr && std::string(s) == "1") {
    return 60;
  }
  return fallback;
}

TEST_P(ServiceConformanceTest, SixteenConcurrentClientsAllSignaturesVerify) {
  const absl::Duration duration =
      absl::Seconds(ConcurrencySeconds(GetParam().concurrency_seconds));
  constexpr int kClients = 16;
  const std::vector<std::string> labels = {"ec-p256", "rsa-2048", "ed25519",
                                           "ec-p384"};
  std::atomic<int> signatures{0};
  std::mutex mu;
  std::vector<std::string> failures;
  const absl::Time end = absl::Now() + duration;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      // Each client has its own connection, like separate processes.
      auto stub = v1::KeyService::NewStub(NewChannel());
      for (int i = 0; absl::Now() < end; ++i) {
        const std::string& label = labels[(c + i) % labels.size()];
        const v1::Key& k = key(label);
        v1::SignRequest r;
        r.mutable_key()->set_uri(k.uri());
        r.set_message(RandomBytes(16 + i % 64));
        if (k.key_type() == v1::KEY_TYPE_RSA) {
          r.mutable_algorithm()->mutable_rsa_pss()->set_hash(
              v1::HASH_ALGORITHM_SHA256);
        } else if (k.key_type() == v1::KEY_TYPE_EC) {
          r.mutable_algorithm()->mutable_ecdsa()->set_hash(
              v1::HASH_ALGORITHM_SHA384);
        } else {
          r.mutable_algorithm()->mutable_ed25519();
        }
        v1::SignResponse response;
        grpc::Status s = stub->Sign(Context().get(), r, &response);
        absl::Status verified = s.ok() ? VerifySignature(k.public_key_der(), r,
                                                         response.signature())
                                       : absl::InternalError(Describe(s));
        if (!verified.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(absl::StrCat(label, ": ", verified.ToString()));
          return;
        }
        signatures.fetch_add(1);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_GE(signatures.load(), kClients);
  std::cerr << "concurrency: " << signatures.load() << " verified signatures "
            << "from " << kClients << " clients in " << duration << "\n";
}

}  // namespace

void ServiceConformanceTest::TearDownTestSuite() { States().clear(); }

}  // namespace hsmd::testing
