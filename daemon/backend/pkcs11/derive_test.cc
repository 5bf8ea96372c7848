// ECDH against SoftHSM: through the backend (the secret equals the peer
// side's software ECDH) and RunDerive directly (no secret object is left on
// the session).
#include "daemon/backend/pkcs11/derive.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "common/openssl_ptr.h"
#include "daemon/backend/ec_peer_key.h"
#include "daemon/backend/pkcs11/module.h"
#include "daemon/backend/pkcs11/objects.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/backend/pkcs11/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/softhsm_env.h"

namespace hsmd::backend::pkcs11 {
namespace {

using ::testing::HasSubstr;

std::string Spki(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string Point(EVP_PKEY* pkey) {
  unsigned char buf[200];
  size_t len = 0;
  EXPECT_EQ(EVP_PKEY_get_octet_string_param(pkey, "encoded-pub-key", buf,
                                            sizeof(buf), &len),
            1);
  return std::string(reinterpret_cast<char*>(buf), len);
}

EvpPkeyPtr ParsePublic(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return EvpPkeyPtr(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
}

v1::DeriveRequest Request(const v1::Key& key, const std::string& peer) {
  v1::DeriveRequest request;
  request.mutable_key()->set_uri(key.uri());
  request.mutable_ecdh()->set_peer_public_key(peer);
  return request;
}

class DeriveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alarm(120);  // A hang fails the test instead of blocking the run.
    absl::StatusOr<std::unique_ptr<testing::SoftHsmEnv>> env =
        testing::SoftHsmEnv::New();
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = env->release();
    absl::StatusOr<std::unique_ptr<Backend>> backend =
        NewPkcs11Backend(env_->BackendOptions());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = backend->release();
    p256_ =
        new v1::Key(Generate("ecdh-p256", v1::KEY_TYPE_EC, v1::CURVE_P256, {}));
    p384_ =
        new v1::Key(Generate("ecdh-p384", v1::KEY_TYPE_EC, v1::CURVE_P384, {}));
    sign_only_ = new v1::Key(Generate("ec-sign-only", v1::KEY_TYPE_EC,
                                      v1::CURVE_P256, {v1::OPERATION_SIGN}));
    ed25519_ = new v1::Key(
        Generate("ed", v1::KEY_TYPE_ED25519, v1::CURVE_UNSPECIFIED, {}));
  }

  static void TearDownTestSuite() { backend_->Shutdown(); }

  static v1::Key Generate(const std::string& label, v1::KeyType type,
                          v1::Curve curve,
                          std::initializer_list<v1::Operation> ops) {
    v1::GenerateKeyRequest request;
    request.set_label(label);
    request.set_key_type(type);
    request.set_curve(curve);
    for (v1::Operation op : ops) request.add_allowed_operations(op);
    absl::StatusOr<v1::Key> key = backend_->GenerateKey(request, {});
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : v1::Key();
  }

  static testing::SoftHsmEnv* env_;
  static Backend* backend_;
  static v1::Key* p256_;
  static v1::Key* p384_;
  static v1::Key* sign_only_;
  static v1::Key* ed25519_;
};

testing::SoftHsmEnv* DeriveTest::env_ = nullptr;
Backend* DeriveTest::backend_ = nullptr;
v1::Key* DeriveTest::p256_ = nullptr;
v1::Key* DeriveTest::p384_ = nullptr;
v1::Key* DeriveTest::sign_only_ = nullptr;
v1::Key* DeriveTest::ed25519_ = nullptr;

TEST_F(DeriveTest, GeneratedEcKeysAllowDerive) {
  EXPECT_THAT(p256_->allowed_operations(),
              ::testing::Contains(v1::OPERATION_DERIVE));
  EXPECT_THAT(sign_only_->allowed_operations(),
              ::testing::Not(::testing::Contains(v1::OPERATION_DERIVE)));
  // Read back from the token, not just echoed from the request.
  v1::KeyRef ref;
  ref.set_uri(p384_->uri());
  absl::StatusOr<v1::Key> key = backend_->GetKey(ref, {});
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_THAT(key->allowed_operations(),
              ::testing::Contains(v1::OPERATION_DERIVE));
}

TEST_F(DeriveTest, SharedSecretEqualsThePeersSoftwareEcdh) {
  for (const v1::Key* key : {p256_, p384_}) {
    const char* curve = key == p256_ ? "P-256" : "P-384";
    EvpPkeyPtr peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
    EvpPkeyPtr hsm_public = ParsePublic(key->public_key_der());
    ASSERT_NE(hsm_public, nullptr);
    // What the peer computes: its private key with the HSM key's public key.
    absl::StatusOr<std::string> expected =
        SoftwareEcdh(peer.get(), Point(hsm_public.get()), key->curve());
    ASSERT_TRUE(expected.ok()) << expected.status();
    // Both accepted peer key forms.
    for (const std::string& form : {Spki(peer.get()), Point(peer.get())}) {
      absl::StatusOr<v1::DeriveResponse> response =
          backend_->Derive(Request(*key, form), {});
      ASSERT_TRUE(response.ok()) << response.status();
      EXPECT_EQ(response->shared_secret(), *expected) << curve;
      EXPECT_EQ(response->key_id(), key->key_id());
    }
  }
}

TEST_F(DeriveTest, WorksWithADeadline) {
  // A finite deadline runs the call on a worker thread.
  EvpPkeyPtr peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  RequestContext ctx;
  ctx.deadline = absl::Now() + absl::Seconds(30);
  absl::StatusOr<v1::DeriveResponse> response =
      backend_->Derive(Request(*p256_, Spki(peer.get())), ctx);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->shared_secret().size(), 32u);
}

TEST_F(DeriveTest, Errors) {
  EvpPkeyPtr p256_peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  EvpPkeyPtr p384_peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));

  absl::StatusOr<v1::DeriveResponse> r =
      backend_->Derive(Request(*sign_only_, Spki(p256_peer.get())), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("CKA_DERIVE"));

  r = backend_->Derive(Request(*ed25519_, Spki(p256_peer.get())), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("KEY_TYPE_ED25519"));

  r = backend_->Derive(Request(*p256_, Spki(p384_peer.get())), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("secp384r1"));

  std::string off_curve = Point(p256_peer.get());
  off_curve[50] ^= 0x04;
  r = backend_->Derive(Request(*p256_, off_curve), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("not a point on P-256"));

  r = backend_->Derive(Request(*p256_, "garbage"), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  v1::DeriveRequest no_algorithm = Request(*p256_, "");
  no_algorithm.clear_algorithm();
  r = backend_->Derive(no_algorithm, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  v1::DeriveRequest missing = Request(*p256_, Spki(p256_peer.get()));
  missing.mutable_key()->set_uri("pkcs11:object=no-such-key");
  r = backend_->Derive(missing, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DeriveTest, RunDeriveLeavesNoSecretObjectBehind) {
  absl::StatusOr<std::shared_ptr<Module>> module =
      Module::Load(testing::kSoftHsmModulePath);
  ASSERT_TRUE(module.ok()) << module.status();
  CK_FUNCTION_LIST* fns = (*module)->fns();
  absl::StatusOr<CK_SLOT_ID> slot =
      FindTokenSlot(**module, env_->token_label(), "", std::nullopt);
  ASSERT_TRUE(slot.ok()) << slot.status();
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  ASSERT_EQ(fns->C_OpenSession(*slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                               nullptr, nullptr, &session),
            CKR_OK);
  // The backend's login covers this session too (login state is per
  // application).
  AttributeTemplate find;
  find.AddUlong(CKA_CLASS, CKO_PRIVATE_KEY).AddBytes(CKA_LABEL, "ecdh-p256");
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> keys =
      FindObjects(fns, session, find, 1);
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 1u);

  EvpPkeyPtr peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  absl::StatusOr<DerivePlan> plan =
      PlanDerive(*p256_, Request(*p256_, Spki(peer.get())));
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<std::string> secret =
      RunDerive(fns, session, keys->front(), *plan);
  ASSERT_TRUE(secret.ok()) << secret.status();
  EvpPkeyPtr hsm_public = ParsePublic(p256_->public_key_der());
  EXPECT_EQ(*secret,
            SoftwareEcdh(peer.get(), Point(hsm_public.get()), v1::CURVE_P256)
                .value());

  AttributeTemplate secrets;
  secrets.AddUlong(CKA_CLASS, CKO_SECRET_KEY);
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> left =
      FindObjects(fns, session, secrets, 10);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_TRUE(left->empty());

  // A bad key handle fails with the CK_RV and leaves nothing either.
  secret = RunDerive(fns, session, 0x7ffffff0, *plan);
  EXPECT_FALSE(secret.ok());
  EXPECT_THAT(secret.status().message(), HasSubstr("C_DeriveKey"));
  EXPECT_EQ(fns->C_CloseSession(session), CKR_OK);
}

}  // namespace
}  // namespace hsmd::backend::pkcs11
