#include "daemon/backend/fake/fake_backend.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/ec_peer_key.h"
#include "daemon/testing/signature_verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

class FakeBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = FakeBackend::New({.name = "fake", .token_label = "tok"});
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
  }

  v1::Key Generate(const std::string& label, v1::KeyType type,
                   v1::Curve curve = v1::CURVE_UNSPECIFIED) {
    v1::GenerateKeyRequest request;
    request.set_label(label);
    request.set_key_type(type);
    request.set_rsa_bits(2048);
    request.set_curve(curve);
    absl::StatusOr<v1::Key> key = backend_->GenerateKey(request, ctx_);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : v1::Key();
  }

  v1::SignRequest SignRequestFor(const v1::Key& key) {
    v1::SignRequest request;
    request.mutable_key()->set_uri(key.uri());
    request.set_message("hello");
    return request;
  }

  RequestContext ctx_;
  std::unique_ptr<FakeBackend> backend_;
};

TEST_F(FakeBackendTest, GeneratedKeysDescribeThemselves) {
  v1::Key rsa = Generate("r", v1::KEY_TYPE_RSA);
  EXPECT_EQ(rsa.size_bits(), 2048u);
  EXPECT_EQ(rsa.key_id().size(), 32u);
  EXPECT_EQ(rsa.backend(), "fake");
  EXPECT_EQ(rsa.token_label(), "tok");
  EXPECT_THAT(rsa.uri(), HasSubstr("pkcs11:token=tok;object=r;id=%"));
  EXPECT_EQ(rsa.allowed_operations_size(), 2);
  v1::Key ed = Generate("e", v1::KEY_TYPE_ED25519);
  EXPECT_EQ(ed.size_bits(), 255u);
  EXPECT_EQ(ed.curve(), v1::CURVE_ED25519);

  absl::StatusOr<std::vector<v1::Key>> all = backend_->ListKeys({}, ctx_);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  v1::ListKeysRequest by_label;
  by_label.set_label("e");
  EXPECT_EQ(backend_->ListKeys(by_label, ctx_)->size(), 1u);
  v1::ListKeysRequest by_uri;
  by_uri.set_uri_filter("pkcs11:object=r");
  EXPECT_EQ(backend_->ListKeys(by_uri, ctx_)->size(), 1u);
  by_uri.set_uri_filter("pkcs11:token=other");
  EXPECT_EQ(backend_->ListKeys(by_uri, ctx_)->size(), 0u);

  v1::KeyRef by_id;
  by_id.set_key_id(rsa.key_id());
  EXPECT_EQ(backend_->GetKey(by_id, ctx_)->label(), "r");
}

TEST_F(FakeBackendTest, SignaturesVerify) {
  v1::Key rsa = Generate("rsa", v1::KEY_TYPE_RSA);
  v1::Key ec = Generate("ec", v1::KEY_TYPE_EC, v1::CURVE_P256);
  v1::Key ed = Generate("ed", v1::KEY_TYPE_ED25519);

  std::vector<std::pair<v1::Key, v1::SignRequest>> cases;
  v1::SignRequest r = SignRequestFor(rsa);
  r.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  cases.push_back({rsa, r});
  r.mutable_algorithm()->mutable_rsa_pss()->set_hash(v1::HASH_ALGORITHM_SHA384);
  cases.push_back({rsa, r});
  r.mutable_algorithm()->mutable_rsa_pss()->set_salt_length(0);
  cases.push_back({rsa, r});
  r = SignRequestFor(ec);
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  cases.push_back({ec, r});
  r.set_digest(std::string(32, 'd'));
  cases.push_back({ec, r});
  r = SignRequestFor(ed);
  r.mutable_algorithm()->mutable_ed25519();
  cases.push_back({ed, r});
  for (const auto& [key, request] : cases) {
    absl::StatusOr<v1::SignResponse> response = backend_->Sign(request, ctx_);
    ASSERT_TRUE(response.ok()) << response.status() << request.DebugString();
    EXPECT_EQ(response->key_id(), key.key_id());
    EXPECT_TRUE(hsmd::testing::VerifySignature(key.public_key_der(), request,
                                               response->signature())
                    .ok())
        << request.DebugString();
  }
}

TEST_F(FakeBackendTest, DecryptRoundTrips) {
  v1::Key rsa = Generate("rsa", v1::KEY_TYPE_RSA);
  for (bool oaep : {false, true}) {
    v1::DecryptRequest request;
    request.mutable_key()->set_key_id(rsa.key_id());
    if (oaep) {
      request.mutable_algorithm()->mutable_rsa_oaep()->set_hash(
          v1::HASH_ALGORITHM_SHA256);
      request.mutable_algorithm()->mutable_rsa_oaep()->set_label("L");
    } else {
      request.mutable_algorithm()->mutable_rsa_pkcs1();
    }
    absl::StatusOr<std::string> ct = hsmd::testing::EncryptForKey(
        rsa.public_key_der(), request.algorithm(), "secret");
    ASSERT_TRUE(ct.ok()) << ct.status();
    request.set_ciphertext(*ct);
    absl::StatusOr<v1::DecryptResponse> response =
        backend_->Decrypt(request, ctx_);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->plaintext(), "secret");

    request.set_ciphertext(std::string(256, '\x01'));
    response = backend_->Decrypt(request, ctx_);
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Msg(response.status()), "decryption failed");
  }
}

TEST_F(FakeBackendTest, DeriveAgreesWithThePeer) {
  v1::Key ec = Generate("ec", v1::KEY_TYPE_EC, v1::CURVE_P256);
  EXPECT_THAT(ec.allowed_operations(),
              ::testing::Contains(v1::OPERATION_DERIVE));
  EvpPkeyPtr peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  unsigned char* der = nullptr;
  const int der_len = i2d_PUBKEY(peer.get(), &der);
  ASSERT_GT(der_len, 0);
  const std::string peer_spki(reinterpret_cast<char*>(der), der_len);
  OPENSSL_free(der);
  v1::DeriveRequest request;
  request.mutable_key()->set_key_id(ec.key_id());
  request.mutable_ecdh()->set_peer_public_key(peer_spki);
  absl::StatusOr<v1::DeriveResponse> response = backend_->Derive(request, ctx_);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->key_id(), ec.key_id());

  // The peer's side: its private key with the fake key's public point.
  absl::StatusOr<std::string> point =
      EcdhPeerPoint(ec.public_key_der(), v1::CURVE_P256, "k");
  ASSERT_TRUE(point.ok()) << point.status();
  absl::StatusOr<std::string> expected =
      SoftwareEcdh(peer.get(), *point, v1::CURVE_P256);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(response->shared_secret(), *expected);

  // Not EC, not allowed, wrong curve.
  v1::Key rsa = Generate("rsa", v1::KEY_TYPE_RSA);
  request.mutable_key()->set_key_id(rsa.key_id());
  EXPECT_EQ(backend_->Derive(request, ctx_).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::GenerateKeyRequest sign_only;
  sign_only.set_label("sign-only");
  sign_only.set_key_type(v1::KEY_TYPE_EC);
  sign_only.set_curve(v1::CURVE_P256);
  sign_only.add_allowed_operations(v1::OPERATION_SIGN);
  absl::StatusOr<v1::Key> no_derive = backend_->GenerateKey(sign_only, ctx_);
  ASSERT_TRUE(no_derive.ok()) << no_derive.status();
  request.mutable_key()->set_key_id(no_derive->key_id());
  absl::Status status = backend_->Derive(request, ctx_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(status), HasSubstr("CKA_DERIVE"));
  v1::Key p384 = Generate("p384", v1::KEY_TYPE_EC, v1::CURVE_P384);
  request.mutable_key()->set_key_id(p384.key_id());
  status = backend_->Derive(request, ctx_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(status), HasSubstr("prime256v1"));
  EXPECT_EQ(backend_->CallCount("Derive"), 4u);
}

TEST_F(FakeBackendTest, KeyAndAlgorithmErrors) {
  v1::Key rsa = Generate("rsa", v1::KEY_TYPE_RSA);
  v1::Key ec = Generate("ec", v1::KEY_TYPE_EC, v1::CURVE_P256);

  v1::SignRequest r = SignRequestFor(ec);
  r.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  absl::Status s = backend_->Sign(r, ctx_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("needs an RSA key"));

  r = SignRequestFor(rsa);
  r.mutable_algorithm()->mutable_rsa_pss()->set_hash(v1::HASH_ALGORITHM_SHA256);
  r.mutable_algorithm()->mutable_rsa_pss()->set_salt_length(223);
  s = backend_->Sign(r, ctx_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("salt_length 223 is out of range"));
  r.mutable_algorithm()->mutable_rsa_pss()->set_salt_length(222);
  EXPECT_TRUE(backend_->Sign(r, ctx_).ok());

  r.mutable_key()->set_uri("pkcs11:object=missing");
  s = backend_->Sign(r, ctx_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(s), HasSubstr("pkcs11:object=missing"));

  r.mutable_key()->set_uri("pkcs11:");
  EXPECT_EQ(backend_->Sign(r, ctx_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  r.mutable_key()->set_uri("pkcs11:object=%zz");
  EXPECT_EQ(backend_->Sign(r, ctx_).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.mutable_key()->set_uri("pkcs11:object=rsa?pin-value=1234");
  s = backend_->Sign(r, ctx_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), ::testing::Not(HasSubstr("1234")));
  r.mutable_key()->set_uri("pkcs11:object=rsa;type=public");
  EXPECT_EQ(backend_->Sign(r, ctx_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(FakeBackendTest, InjectedFaultsDelaysAndReadiness) {
  absl::Status device_error = absl::InternalError("C_Sign failed");
  v1::ErrorDetail detail;
  detail.set_backend_code_name("CKR_DEVICE_ERROR");
  detail.set_backend_code(0x30);
  SetErrorDetail(device_error, detail);
  backend_->FailNext("GenerateRandom", device_error, 1);
  absl::StatusOr<std::string> random = backend_->GenerateRandom(8, ctx_);
  EXPECT_EQ(random.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(GetErrorDetail(random.status())->backend_code_name(),
            "CKR_DEVICE_ERROR");
  EXPECT_EQ(backend_->GenerateRandom(8, ctx_)->size(), 8u);
  EXPECT_EQ(backend_->CallCount("GenerateRandom"), 2u);

  backend_->SetDelay("GenerateRandom", absl::Seconds(30));
  RequestContext short_ctx{absl::Now() + absl::Milliseconds(10)};
  EXPECT_EQ(backend_->GenerateRandom(8, short_ctx).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  backend_->ClearFaults();

  backend_->SetServing(false, "token not present");
  EXPECT_FALSE(backend_->IsServing());
  EXPECT_EQ(backend_->GetStatus().state(), v1::BACKEND_STATE_STARTING);
  EXPECT_EQ(backend_->GetStatus().state_reason(), "token not present");
  EXPECT_EQ(backend_->GenerateRandom(8, ctx_).status().code(),
            absl::StatusCode::kUnavailable);
  backend_->SetServing(true);
  EXPECT_TRUE(backend_->IsServing());
  backend_->Shutdown();
  EXPECT_FALSE(backend_->IsServing());
}

}  // namespace
}  // namespace hsmd::backend
