// The SDF backend's failure handling, over libfaultysdf.so (forwarding to
// the software SDF device and failing chosen calls): rejected passwords are
// tried exactly once, device faults reopen the device with backoff, broken
// sessions are replaced, lost access rights restored, hung calls end at the
// deadline; and libraries without optional / required functions.
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/sdf/gmt0018.h"
#include "daemon/backend/sdf/sdf_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sdf/sdf_test_env.h"

namespace hsmd {
namespace {

using backend::Backend;
using backend::RequestContext;
using backend::SdfBackendCounters;
using backend::SdfKeyUsage;
using ::testing::HasSubstr;

const bool kWatchdog = (alarm(240), true);

constexpr char kAccess[] = "SDF_GetPrivateKeyAccessRight";
constexpr char kSign[] = "SDF_InternalSign_ECC";

// Polls `condition` until it holds; false after a minute (then the test
// fails rather than hangs).
bool WaitFor(const std::function<bool()>& condition) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return condition();
}

v1::KeyRef Ref(uint32_t index, absl::string_view usage) {
  v1::KeyRef ref;
  ref.set_uri(
      absl::StrCat("sdf:device=faulty;index=", index, ";usage=", usage));
  return ref;
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kek_ = sdf_test::RandomBytes(16);
    sdf_test::StoreSpec spec;
    spec.sign_keys = {1};
    spec.enc_keys = {1};
    spec.import_sm4[2] = kek_;
    spec.sm4_keys = {3};
    spec.passwords[1] = "right password";
    absl::StatusOr<sdf_test::SoftSdfStore> store =
        sdf_test::SoftSdfStore::Create("faults-store", spec);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::make_unique<sdf_test::SoftSdfStore>(*std::move(store));
    store_->Activate();
    library_ = sdf_test::FaultySdfLibrary();
    absl::StatusOr<sdf_test::FaultControl> control =
        sdf_test::FaultControl::Open(library_);
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *control;
    control_.Clear();
  }

  void TearDown() override {
    control_.Clear();
    backend_.reset();
  }

  backend::SdfBackendOptions Options() {
    backend::SdfBackendOptions options;
    options.name = "faulty";
    options.library_path = library_;
    options.device_name = "faulty";
    options.session_pool_size = 2;
    options.reinit_backoff_initial = absl::Milliseconds(5);
    options.reinit_backoff_max = absl::Milliseconds(20);
    options.reinit_drain_timeout = absl::Milliseconds(200);
    for (SdfKeyUsage usage : {SdfKeyUsage::kSign, SdfKeyUsage::kEnc}) {
      backend::SdfKeyConfig key;
      key.index = 1;
      key.usage = usage;
      key.password_source = store_->PasswordSource(1);
      options.keys.push_back(std::move(key));
    }
    backend::SdfKeyConfig sm4;
    sm4.index = 3;
    sm4.usage = SdfKeyUsage::kSm4;
    options.keys.push_back(sm4);
    return options;
  }

  void Start(backend::SdfBackendOptions options) {
    absl::StatusOr<std::unique_ptr<Backend>> b =
        backend::NewSdfBackend(std::move(options));
    ASSERT_TRUE(b.ok()) << b.status();
    backend_ = *std::move(b);
  }

  absl::StatusOr<v1::SignResponse> Sign(const RequestContext& ctx = {}) {
    v1::SignRequest request;
    *request.mutable_key() = Ref(1, "sign");
    request.mutable_algorithm()->mutable_sm2();
    request.set_message("fault test");
    return backend_->Sign(request, ctx);
  }

  // The signature verifies with the exported key.
  bool SignsCorrectly() {
    absl::StatusOr<v1::SignResponse> sig = Sign();
    absl::StatusOr<v1::Key> key = backend_->GetKey(Ref(1, "sign"), {});
    if (!sig.ok() || !key.ok()) return false;
    absl::StatusOr<EvpPkeyPtr> pub =
        sdf_test::PublicKeyFromDer(key->public_key_der());
    return pub.ok() && sdf_test::Sm2Verify(pub->get(), "1234567812345678",
                                           "fault test", sig->signature());
  }

  v1::BackendState State() { return backend_->GetStatus().state(); }
  SdfBackendCounters Counters() {
    return backend::GetSdfBackendCounters(*backend_).value();
  }

  std::string kek_;
  std::unique_ptr<sdf_test::SoftSdfStore> store_;
  std::string library_;
  sdf_test::FaultControl control_;
  std::unique_ptr<Backend> backend_;
};

TEST_F(FaultsTest, WrongPasswordAtStartIsTriedOnce) {
  store_->SetPassword(1, "wrong password");
  const unsigned long before = control_.Calls(kAccess);
  const unsigned long closes = control_.Calls("SDF_CloseDevice");
  absl::StatusOr<std::unique_ptr<Backend>> b =
      backend::NewSdfBackend(Options());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("the password of key index 1 was rejected"));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("SDR_PRKRERR"));
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("will not try it again"));
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(b.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_kind(), "sdf");
  EXPECT_EQ(detail->backend_code_name(), "SDR_PRKRERR");
  EXPECT_EQ(detail->backend_function(), kAccess);
  // One attempt on one session, never on the others; the device is closed.
  EXPECT_EQ(control_.Calls(kAccess) - before, 1u);
  EXPECT_EQ(control_.Calls("SDF_CloseDevice") - closes, 1u);
}

TEST_F(FaultsTest, PasswordRejectedWhileReopeningFailsForGood) {
  Start(Options());
  const unsigned long before = control_.Calls(kAccess);
  // The operator put a wrong password in place; then the device resets.
  store_->SetPassword(1, "changed by mistake");
  control_.Fail(kSign, SDR_HARDFAIL, 1);
  absl::StatusOr<v1::SignResponse> failed = Sign();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GetErrorDetail(failed.status())->backend_code_name(),
            "SDR_HARDFAIL");
  ASSERT_TRUE(WaitFor([&] { return State() == v1::BACKEND_STATE_FAILED; }));
  const v1::BackendStatus status = backend_->GetStatus();
  EXPECT_THAT(status.state_reason(),
              HasSubstr("the password of key index 1 was rejected"));
  EXPECT_THAT(status.state_reason(), HasSubstr("SDR_PRKRERR"));
  EXPECT_FALSE(backend_->IsServing());
  absl::StatusOr<v1::SignResponse> refused = Sign();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("SDF backend \"faulty\" failed: the password"));
  EXPECT_EQ(GetErrorDetail(refused.status())->backend_code_name(),
            "SDR_PRKRERR");
  EXPECT_EQ(control_.Calls(kAccess) - before, 1u);
  // Well past several backoff periods: still exactly one attempt.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(control_.Calls(kAccess) - before, 1u);
  EXPECT_EQ(State(), v1::BACKEND_STATE_FAILED);
}

TEST_F(FaultsTest, DeviceFaultReopensTheDeviceWithBackoff) {
  Start(Options());
  const std::string key_id = backend_->GetKey(Ref(1, "sign"), {})->key_id();
  const unsigned long opens = control_.Calls("SDF_OpenDevice");
  control_.Fail("*", SDR_COMMFAIL, -1);
  absl::StatusOr<v1::SignResponse> failed = Sign();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(failed.status().message()),
              HasSubstr("SDF_InternalSign_ECC failed: SDR_COMMFAIL"));
  // While the device stays down, attempts fail and requests fail fast.
  ASSERT_TRUE(WaitFor([&] { return Counters().reinit_attempts >= 3; }));
  EXPECT_EQ(State(), v1::BACKEND_STATE_REINITIALIZING);
  absl::StatusOr<v1::SignResponse> refused = Sign();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("is re-initialising after SDR_COMMFAIL in "
                        "SDF_InternalSign_ECC"));
  EXPECT_EQ(GetErrorDetail(refused.status())->backend_code_name(),
            "SDR_COMMFAIL");
  EXPECT_GE(control_.Calls("SDF_OpenDevice") - opens, 3u);
  control_.Clear();
  ASSERT_TRUE(WaitFor([&] { return State() == v1::BACKEND_STATE_READY; }));
  EXPECT_EQ(backend_->GetStatus().reinitializations(), 1u);
  EXPECT_EQ(backend_->GetStatus().sessions_total(), 2u);
  EXPECT_TRUE(SignsCorrectly());
  EXPECT_EQ(backend_->GetKey(Ref(1, "sign"), {})->key_id(), key_id);
}

TEST_F(FaultsTest, BrokenSessionIsReplacedAndTheRequestRetried) {
  backend::SdfBackendOptions options = Options();
  options.degraded_hold = absl::Milliseconds(50);
  Start(std::move(options));
  control_.Fail(kSign, SDR_OPENSESSION, 1);
  EXPECT_TRUE(SignsCorrectly());
  EXPECT_EQ(Counters().sessions_replaced, 1u);
  // DEGRADED for degraded_hold, then READY again.
  ASSERT_TRUE(WaitFor([&] { return State() == v1::BACKEND_STATE_READY; }));
  EXPECT_EQ(backend_->GetStatus().sessions_total(), 2u);
  EXPECT_EQ(backend_->GetStatus().reinitializations(), 0u);
}

TEST_F(FaultsTest, BrokenSessionMakesTheBackendDegraded) {
  Start(Options());
  control_.Fail(kSign, SDR_OPENSESSION, 1);
  EXPECT_TRUE(SignsCorrectly());
  EXPECT_EQ(State(), v1::BACKEND_STATE_DEGRADED);
  EXPECT_TRUE(backend_->IsServing());
  EXPECT_THAT(backend_->GetStatus().state_reason(),
              HasSubstr("SDR_OPENSESSION"));
}

TEST_F(FaultsTest, LostAccessRightIsObtainedAgain) {
  Start(Options());
  const unsigned long before = control_.Calls(kAccess);
  control_.Fail(kSign, SDR_PARDENY, 1);
  EXPECT_TRUE(SignsCorrectly());
  EXPECT_EQ(Counters().regrants, 1u);
  EXPECT_EQ(control_.Calls(kAccess) - before, 1u);
  EXPECT_EQ(State(), v1::BACKEND_STATE_READY);
}

TEST_F(FaultsTest, NoSessionCanBeOpenedReopensTheDevice) {
  backend::SdfBackendOptions options = Options();
  options.session_pool_size = 1;
  Start(std::move(options));
  // The only session breaks, and neither its replacement nor the retry's
  // session can be opened, nor the first reopen's.
  control_.Fail(kSign, SDR_OPENSESSION, 1);
  control_.Fail("SDF_OpenSession", SDR_OPENSESSION, 3);
  absl::StatusOr<v1::SignResponse> first = Sign();
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(first.status().message()),
              HasSubstr("SDF_OpenSession failed: SDR_OPENSESSION"));
  ASSERT_TRUE(WaitFor([&] { return State() == v1::BACKEND_STATE_READY; }));
  EXPECT_EQ(backend_->GetStatus().reinitializations(), 1u);
  EXPECT_GE(Counters().reinit_attempts, 2u);
  EXPECT_TRUE(SignsCorrectly());
}

TEST_F(FaultsTest, HungCallEndsAtTheDeadline) {
  backend::SdfBackendOptions options = Options();
  options.session_pool_size = 1;
  Start(std::move(options));
  control_.Hang(kSign, true);
  RequestContext ctx;
  ctx.deadline = absl::Now() + absl::Milliseconds(200);
  absl::StatusOr<v1::SignResponse> hung = Sign(ctx);
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Counters().abandoned_calls_running, 1u);
  EXPECT_EQ(Counters().calls_abandoned, 1u);
  // The only session is still inside the device.
  ctx.deadline = absl::Now() + absl::Milliseconds(50);
  absl::StatusOr<std::string> random = backend_->GenerateRandom(16, ctx);
  ASSERT_FALSE(random.ok());
  EXPECT_EQ(random.status().code(), absl::StatusCode::kResourceExhausted);
  control_.Hang(kSign, false);
  ASSERT_TRUE(WaitFor([&] { return Counters().abandoned_calls_running == 0; }));
  EXPECT_TRUE(SignsCorrectly());
}

TEST_F(FaultsTest, ShutdownReleasesRightsSessionsAndDevice) {
  Start(Options());
  // Make an SM4 key handle in some session.
  v1::EncryptRequest encrypt;
  *encrypt.mutable_key() = Ref(3, "sm4");
  encrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  encrypt.set_plaintext(std::string(16, 'p'));
  ASSERT_TRUE(backend_->Encrypt(encrypt, {}).ok());
  const unsigned long releases =
      control_.Calls("SDF_ReleasePrivateKeyAccessRight");
  const unsigned long sessions = control_.Calls("SDF_CloseSession");
  const unsigned long devices = control_.Calls("SDF_CloseDevice");
  const unsigned long keys = control_.Calls("SDF_DestroyKey");
  backend_->Shutdown();
  // Two sessions, one private-key index.
  EXPECT_EQ(control_.Calls("SDF_ReleasePrivateKeyAccessRight") - releases, 2u);
  EXPECT_EQ(control_.Calls("SDF_CloseSession") - sessions, 2u);
  EXPECT_EQ(control_.Calls("SDF_CloseDevice") - devices, 1u);
  // The SM4 handle made at start-up and the one made for the request (on
  // the other session, or the same one reused).
  EXPECT_GE(control_.Calls("SDF_DestroyKey") - keys, 1u);
}

TEST_F(FaultsTest, LibraryWithoutOptionalFunctions) {
  library_ = sdf_test::FaultySdfLibrary("_minimal");
  backend::SdfBackendOptions options = Options();
  // SM4 without SDF_GetSymmKeyHandle: a key wrapped under the device's
  // key-encryption key 2, imported with SDF_ImportKeyWithKEK.
  const std::string key = sdf_test::RandomBytes(16);
  backend::SdfKeyConfig wrapped;
  wrapped.index = 2;
  wrapped.usage = SdfKeyUsage::kSm4;
  wrapped.wrapped_key = sdf_test::Sm4(kek_, "", key, true).value();
  options.keys.push_back(wrapped);
  Start(std::move(options));

  const std::string data = sdf_test::RandomBytes(64);
  v1::EncryptRequest encrypt;
  encrypt.mutable_key()->set_uri("sdf:device=faulty;index=2;usage=sm4");
  encrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  encrypt.set_plaintext(data);
  absl::StatusOr<v1::EncryptResponse> encrypted =
      backend_->Encrypt(encrypt, {});
  ASSERT_TRUE(encrypted.ok()) << encrypted.status();
  EXPECT_EQ(encrypted->ciphertext(),
            sdf_test::Sm4(key, "", data, true).value());

  // The device's own SM4 key needs the extension.
  *encrypt.mutable_key() = Ref(3, "sm4");
  absl::StatusOr<v1::EncryptResponse> unavailable =
      backend_->Encrypt(encrypt, {});
  ASSERT_FALSE(unavailable.ok());
  EXPECT_EQ(unavailable.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(unavailable.status().message()),
              HasSubstr("SDF_GetSymmKeyHandle is not exported by the SDF "
                        "library"));

  // SM2 decryption needs SDF_InternalDecrypt_ECC.
  absl::StatusOr<v1::Key> enc_key = backend_->GetKey(Ref(1, "enc"), {});
  ASSERT_TRUE(enc_key.ok());
  absl::StatusOr<EvpPkeyPtr> pub =
      sdf_test::PublicKeyFromDer(enc_key->public_key_der());
  ASSERT_TRUE(pub.ok());
  v1::DecryptRequest decrypt;
  *decrypt.mutable_key() = Ref(1, "enc");
  decrypt.mutable_algorithm()->mutable_sm2();
  decrypt.set_ciphertext(sdf_test::Sm2Encrypt(pub->get(), "x").value());
  absl::StatusOr<v1::DecryptResponse> no_decrypt =
      backend_->Decrypt(decrypt, {});
  ASSERT_FALSE(no_decrypt.ok());
  EXPECT_EQ(no_decrypt.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(no_decrypt.status().message()),
              HasSubstr("SDF_InternalDecrypt_ECC is not exported"));
  // Signing works (its self-test used OpenSSL only).
  EXPECT_TRUE(SignsCorrectly());
}

TEST_F(FaultsTest, LibraryWithoutARequiredFunction) {
  library_ = sdf_test::FaultySdfLibrary("_nosign");
  absl::StatusOr<std::unique_ptr<Backend>> b =
      backend::NewSdfBackend(Options());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("libfaultysdf_nosign.so does not export "
                        "SDF_InternalSign_ECC, which hsmd requires"));
}

TEST_F(FaultsTest, MissingKeyAndBadAlgorithmIdFailTheStart) {
  backend::SdfBackendOptions options = Options();
  options.keys[0].index = 9;
  absl::StatusOr<std::unique_ptr<Backend>> b = backend::NewSdfBackend(options);
  ASSERT_FALSE(b.ok());
  // Index 9 has no private key: the access right is refused first.
  EXPECT_EQ(b.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("key index 9"));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("SDR_KEYNOTEXIST"));

  // A vendor numbering mismatch shows in the start-up self-test.
  options = Options();
  options.algorithm_ids.sm2_sign = 0x00020400;
  b = backend::NewSdfBackend(options);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("self-test of the signing key at index 1"));
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("SDR_ALGNOTSUPPORT"));
  // The legacy SGD_SM2 identifier works with softsdf.
  options.algorithm_ids.sm2_sign = SGD_SM2;
  options.algorithm_ids.sm2_encrypt = SGD_SM2;
  Start(options);
  EXPECT_TRUE(SignsCorrectly());
}

}  // namespace
}  // namespace hsmd
