// Loads libfaulty_pkcs11.so like an application would, over a SoftHSM token
// created in $TEST_TMPDIR through the module itself, and checks that every
// kind of control rule has its effect.

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faulty_pkcs11/control.h"

namespace hsmd::faulty_pkcs11 {
namespace {

using ::testing::HasSubstr;

// Test-only PINs, passed to the module in memory only.
constexpr char kSoPin[] = "faulty-so-pin";
constexpr char kUserPin[] = "faulty-user-pin";
constexpr char kTokenLabel[] = "faulty";
constexpr char kKeyLabel[] = "faulty-p256";

using OsslParamBldPtr = OpenSslPtr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using OsslParamPtr = OpenSslPtr<OSSL_PARAM, OSSL_PARAM_free>;
using Asn1OctetStringPtr =
    OpenSslPtr<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;

std::string RvText(CK_RV rv) { return absl::StrCat("0x", absl::Hex(rv)); }

#define ASSERT_CKR(expected, expr)                         \
  do {                                                     \
    const CK_RV assert_ckr_rv = (expr);                    \
    ASSERT_EQ(assert_ckr_rv, static_cast<CK_RV>(expected)) \
        << #expr << " returned " << RvText(assert_ckr_rv); \
  } while (0)
#define EXPECT_CKR(expected, expr)                         \
  do {                                                     \
    const CK_RV expect_ckr_rv = (expr);                    \
    EXPECT_EQ(expect_ckr_rv, static_cast<CK_RV>(expected)) \
        << #expr << " returned " << RvText(expect_ckr_rv); \
  } while (0)

std::string Padded(absl::string_view label) {
  std::string out(label);
  out.resize(32, ' ');
  return out;
}

std::vector<unsigned char> Sha256(absl::string_view message) {
  std::vector<unsigned char> digest(32);
  unsigned int length = 0;
  EXPECT_EQ(EVP_Digest(message.data(), message.size(), digest.data(), &length,
                       EVP_sha256(), nullptr),
            1);
  return digest;
}

// The P-256 public key from a DER-wrapped CKA_EC_POINT.
EvpPkeyPtr PublicKeyFromEcPoint(const std::vector<unsigned char>& ec_point) {
  const unsigned char* p = ec_point.data();
  Asn1OctetStringPtr point(
      d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(ec_point.size())));
  if (point == nullptr) return nullptr;
  OsslParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                      "prime256v1", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(
          builder.get(), OSSL_PKEY_PARAM_PUB_KEY,
          ASN1_STRING_get0_data(point.get()),
          static_cast<size_t>(ASN1_STRING_length(point.get()))) != 1) {
    return nullptr;
  }
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(builder.get()));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (params == nullptr || ctx == nullptr ||
      EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) !=
          1) {
    return nullptr;
  }
  return EvpPkeyPtr(key);
}

// Verifies a PKCS#11 ECDSA signature (r || s) over `digest` with OpenSSL.
bool Verifies(EVP_PKEY* key, const std::vector<unsigned char>& digest,
              const std::vector<unsigned char>& signature) {
  if (signature.size() != 64) return false;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(signature.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(signature.data() + 32, 32, nullptr);
  if (ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return false;
  std::unique_ptr<unsigned char, void (*)(void*)> der_owner(
      der, [](void* ptr) { OPENSSL_free(ptr); });
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  return ctx != nullptr && EVP_PKEY_verify_init(ctx.get()) == 1 &&
         EVP_PKEY_verify(ctx.get(), der, static_cast<size_t>(der_len),
                         digest.data(), digest.size()) == 1;
}

class FaultyPkcs11Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Watchdog: a hang must fail the test, not block the run.
    alarm(50);
    const char* tmpdir = getenv("TEST_TMPDIR");
    ASSERT_NE(tmpdir, nullptr);
    dir_ = tmpdir;
    const std::string tokens = dir_ + "/tokens";
    ASSERT_EQ(mkdir(tokens.c_str(), 0700), 0);
    const std::string conf = dir_ + "/softhsm2.conf";
    std::ofstream(conf) << "directories.tokendir = " << tokens
                        << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    ASSERT_EQ(setenv("SOFTHSM2_CONF", conf.c_str(), 1), 0);
    control_ = new FaultControl(dir_ + "/control", dir_ + "/stats");
    ASSERT_EQ(
        setenv("FAULTY_PKCS11_CONTROL", control_->control_path().c_str(), 1),
        0);
    ASSERT_EQ(setenv("FAULTY_PKCS11_STATS", control_->stats_path().c_str(), 1),
              0);

    const std::string module =
        absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                     "/tests/faulty_pkcs11/libfaulty_pkcs11.so");
    dl_ = dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(dl_, nullptr) << dlerror();
    auto get_function_list =
        reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl_, "C_GetFunctionList"));
    ASSERT_NE(get_function_list, nullptr);
    ASSERT_CKR(CKR_OK, get_function_list(&p_));
    // Nothing but the entry point is exported.
    EXPECT_EQ(dlsym(dl_, "C_Sign"), nullptr);

    ASSERT_NO_FATAL_FAILURE(CreateTokenAndKey());
  }

  static void TearDownTestSuite() {
    // Unloading stops the module's stats thread; under ASan this also checks
    // that nothing of the module leaks.
    EXPECT_EQ(dlclose(dl_), 0);
    EVP_PKEY_free(public_key_);
    public_key_ = nullptr;
    delete control_;
    control_ = nullptr;
    alarm(0);
  }

  void SetUp() override {
    ASSERT_TRUE(control_->Clear().ok());
    ASSERT_CKR(CKR_OK, Initialize());
    ASSERT_NO_FATAL_FAILURE(slot_ = FindSlot());
  }

  void TearDown() override {
    ASSERT_TRUE(control_->Clear().ok());
    const CK_RV rv = p_->C_Finalize(nullptr);
    EXPECT_TRUE(rv == CKR_OK || rv == CKR_CRYPTOKI_NOT_INITIALIZED)
        << RvText(rv);
  }

  static CK_RV Initialize() {
    CK_C_INITIALIZE_ARGS args = {};
    args.flags = CKF_OS_LOCKING_OK;
    return p_->C_Initialize(&args);
  }

  static void CreateTokenAndKey() {
    ASSERT_CKR(CKR_OK, Initialize());
    CK_ULONG count = 0;
    ASSERT_CKR(CKR_OK, p_->C_GetSlotList(CK_FALSE, nullptr, &count));
    ASSERT_GT(count, 0u);
    std::vector<CK_SLOT_ID> slots(count);
    ASSERT_CKR(CKR_OK, p_->C_GetSlotList(CK_FALSE, slots.data(), &count));
    std::string label = Padded(kTokenLabel);
    ASSERT_CKR(
        CKR_OK,
        p_->C_InitToken(
            slots[0],
            reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kSoPin)),
            strlen(kSoPin), reinterpret_cast<CK_UTF8CHAR_PTR>(label.data())));
    CK_SLOT_ID slot = 0;
    ASSERT_NO_FATAL_FAILURE(slot = FindSlot());
    CK_SESSION_HANDLE session = 0;
    ASSERT_CKR(CKR_OK,
               p_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                 nullptr, nullptr, &session));
    ASSERT_CKR(CKR_OK, Login(session, CKU_SO, kSoPin));
    ASSERT_CKR(CKR_OK, p_->C_InitPIN(session,
                                     reinterpret_cast<CK_UTF8CHAR_PTR>(
                                         const_cast<char*>(kUserPin)),
                                     strlen(kUserPin)));
    ASSERT_CKR(CKR_OK, p_->C_Logout(session));
    ASSERT_CKR(CKR_OK, Login(session, CKU_USER, kUserPin));

    CK_MECHANISM mechanism = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                          0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE;
    std::string key_label = kKeyLabel;
    CK_ATTRIBUTE public_template[] = {
        {CKA_EC_PARAMS, p256_oid, sizeof(p256_oid)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_LABEL, key_label.data(), key_label.size()}};
    CK_ATTRIBUTE private_template[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_LABEL, key_label.data(), key_label.size()}};
    CK_OBJECT_HANDLE public_key = 0;
    CK_OBJECT_HANDLE private_key = 0;
    ASSERT_CKR(CKR_OK,
               p_->C_GenerateKeyPair(
                   session, &mechanism, public_template,
                   std::size(public_template), private_template,
                   std::size(private_template), &public_key, &private_key));
    CK_ATTRIBUTE point = {CKA_EC_POINT, nullptr, 0};
    ASSERT_CKR(CKR_OK, p_->C_GetAttributeValue(session, public_key, &point, 1));
    std::vector<unsigned char> ec_point(point.ulValueLen);
    point.pValue = ec_point.data();
    ASSERT_CKR(CKR_OK, p_->C_GetAttributeValue(session, public_key, &point, 1));
    public_key_ = PublicKeyFromEcPoint(ec_point).release();
    ASSERT_NE(public_key_, nullptr);
    ASSERT_CKR(CKR_OK, p_->C_Finalize(nullptr));
  }

  static CK_RV Login(CK_SESSION_HANDLE session, CK_USER_TYPE user,
                     const char* pin) {
    return p_->C_Login(
        session, user,
        reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin)), strlen(pin));
  }

  // The slot holding our token.
  static CK_SLOT_ID FindSlot() {
    CK_ULONG count = 0;
    EXPECT_CKR(CKR_OK, p_->C_GetSlotList(CK_TRUE, nullptr, &count));
    std::vector<CK_SLOT_ID> slots(count);
    EXPECT_CKR(CKR_OK, p_->C_GetSlotList(CK_TRUE, slots.data(), &count));
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_TOKEN_INFO info;
      if (p_->C_GetTokenInfo(slots[i], &info) == CKR_OK &&
          std::string(reinterpret_cast<char*>(info.label), 32) ==
              Padded(kTokenLabel)) {
        return slots[i];
      }
    }
    ADD_FAILURE() << "token '" << kTokenLabel << "' not found";
    return 0;
  }

  // A read-only session, logged in as user (login is per token, so later
  // sessions share it).
  CK_SESSION_HANDLE OpenSession() {
    CK_SESSION_HANDLE session = 0;
    EXPECT_CKR(CKR_OK, p_->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr,
                                         nullptr, &session));
    const CK_RV rv = Login(session, CKU_USER, kUserPin);
    EXPECT_TRUE(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) << RvText(rv);
    return session;
  }

  static CK_OBJECT_HANDLE FindPrivateKey(CK_SESSION_HANDLE session) {
    CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
    std::string label = kKeyLabel;
    CK_ATTRIBUTE search[] = {{CKA_CLASS, &klass, sizeof(klass)},
                             {CKA_LABEL, label.data(), label.size()}};
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    EXPECT_CKR(CKR_OK, p_->C_FindObjectsInit(session, search, 2));
    EXPECT_CKR(CKR_OK, p_->C_FindObjects(session, &key, 1, &found));
    EXPECT_CKR(CKR_OK, p_->C_FindObjectsFinal(session));
    EXPECT_EQ(found, 1u);
    return key;
  }

  // C_SignInit + C_Sign with CKM_ECDSA; returns the first failing CK_RV.
  static CK_RV Sign(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key,
                    const std::vector<unsigned char>& digest,
                    std::vector<unsigned char>& signature) {
    CK_MECHANISM mechanism = {CKM_ECDSA, nullptr, 0};
    CK_RV rv = p_->C_SignInit(session, &mechanism, key);
    if (rv != CKR_OK) return rv;
    signature.assign(64, 0);
    CK_ULONG length = signature.size();
    rv = p_->C_Sign(session, const_cast<CK_BYTE_PTR>(digest.data()),
                    digest.size(), signature.data(), &length);
    signature.resize(rv == CKR_OK ? length : 0);
    return rv;
  }

  // Signs a fresh digest and checks the signature with OpenSSL.
  void SignAndVerify(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key) {
    const std::vector<unsigned char> digest =
        Sha256(absl::StrCat("message ", absl::ToUnixNanos(absl::Now())));
    std::vector<unsigned char> signature;
    ASSERT_CKR(CKR_OK, Sign(session, key, digest, signature));
    EXPECT_TRUE(Verifies(public_key_, digest, signature));
  }

  // Fresh stats from the module (see FaultControl::Sync).
  static Stats SyncedStats() {
    absl::StatusOr<Stats> stats = control_->Sync();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : Stats{};
  }

  static FunctionStats Synced(absl::string_view function) {
    return SyncedStats().For(function);
  }

  void SetRules(absl::string_view rules) {
    ASSERT_TRUE(control_->SetRules(rules).ok());
  }

  static std::string dir_;
  static void* dl_;
  static CK_FUNCTION_LIST* p_;
  static FaultControl* control_;
  static EVP_PKEY* public_key_;
  CK_SLOT_ID slot_ = 0;
};

std::string FaultyPkcs11Test::dir_;
void* FaultyPkcs11Test::dl_ = nullptr;
CK_FUNCTION_LIST* FaultyPkcs11Test::p_ = nullptr;
FaultControl* FaultyPkcs11Test::control_ = nullptr;
EVP_PKEY* FaultyPkcs11Test::public_key_ = nullptr;

TEST_F(FaultyPkcs11Test, PassThroughSignVerifies) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  SignAndVerify(session, key);
  // The verifier is not vacuous: another digest does not verify.
  std::vector<unsigned char> signature;
  ASSERT_CKR(CKR_OK, Sign(session, key, Sha256("one"), signature));
  EXPECT_FALSE(Verifies(public_key_, Sha256("two"), signature));
  CK_INFO info;
  ASSERT_CKR(CKR_OK, p_->C_GetInfo(&info));
  EXPECT_THAT(std::string(reinterpret_cast<char*>(info.manufacturerID), 32),
              HasSubstr("SoftHSM"));
}

TEST_F(FaultyPkcs11Test, RvRuleFailsEveryCallUntilRemoved) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  const FunctionStats before = Synced("C_Sign");
  SetRules("C_Sign rv=CKR_DEVICE_ERROR\n");
  std::vector<unsigned char> signature;
  for (int i = 0; i < 3; ++i) {
    // C_SignInit succeeding each time shows the failed C_Sign ended the
    // operation in SoftHSM too.
    EXPECT_CKR(CKR_DEVICE_ERROR, Sign(session, key, Sha256("x"), signature));
  }
  const FunctionStats during = Synced("C_Sign");
  EXPECT_EQ(during.calls - before.calls, 3u);
  EXPECT_EQ(during.faults - before.faults, 3u);
  ASSERT_TRUE(control_->Clear().ok());
  SignAndVerify(session, key);
}

TEST_F(FaultyPkcs11Test, CountRuleFailsOnlyTheNextCalls) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  SetRules("C_Sign rv=0x5 count=2  # CKR_GENERAL_ERROR\n");
  std::vector<unsigned char> signature;
  EXPECT_CKR(CKR_GENERAL_ERROR, Sign(session, key, Sha256("a"), signature));
  EXPECT_CKR(CKR_GENERAL_ERROR, Sign(session, key, Sha256("b"), signature));
  SignAndVerify(session, key);
  SignAndVerify(session, key);
}

TEST_F(FaultyPkcs11Test, FaultsInOtherOperationsEndThemInTheTarget) {
  const CK_SESSION_HANDLE session = OpenSession();
  SetRules(
      "C_Digest rv=CKR_DEVICE_ERROR count=1\n"
      "C_DigestUpdate rv=CKR_DEVICE_ERROR count=1\n"
      "C_FindObjectsFinal rv=CKR_DEVICE_ERROR count=1\n");
  CK_MECHANISM sha256 = {CKM_SHA256, nullptr, 0};
  CK_BYTE data[] = {1, 2, 3};
  CK_BYTE digest[32];
  CK_ULONG digest_len = sizeof(digest);
  ASSERT_CKR(CKR_OK, p_->C_DigestInit(session, &sha256));
  EXPECT_CKR(CKR_DEVICE_ERROR,
             p_->C_Digest(session, data, sizeof(data), digest, &digest_len));
  ASSERT_CKR(CKR_OK, p_->C_DigestInit(session, &sha256));
  EXPECT_CKR(CKR_DEVICE_ERROR, p_->C_DigestUpdate(session, data, sizeof(data)));
  ASSERT_CKR(CKR_OK, p_->C_DigestInit(session, &sha256));
  digest_len = sizeof(digest);
  ASSERT_CKR(CKR_OK,
             p_->C_Digest(session, data, sizeof(data), digest, &digest_len));
  std::vector<unsigned char> expected(32);
  unsigned int expected_len = 0;
  EVP_Digest(data, sizeof(data), expected.data(), &expected_len, EVP_sha256(),
             nullptr);
  EXPECT_EQ(std::vector<unsigned char>(digest, digest + 32), expected);

  ASSERT_CKR(CKR_OK, p_->C_FindObjectsInit(session, nullptr, 0));
  EXPECT_CKR(CKR_DEVICE_ERROR, p_->C_FindObjectsFinal(session));
  EXPECT_NE(FindPrivateKey(session), CK_INVALID_HANDLE);
}

TEST_F(FaultyPkcs11Test, DelayRuleStillForwards) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  const FunctionStats before = Synced("C_Sign");
  SetRules("C_Sign delay_ms=50\n");
  SignAndVerify(session, key);
  const FunctionStats after = Synced("C_Sign");
  EXPECT_EQ(after.delayed - before.delayed, 1u);
  EXPECT_EQ(after.faults, before.faults);
}

TEST_F(FaultyPkcs11Test, DelayAndRvCombine) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  SetRules("C_SignInit delay_ms=20 rv=CKR_DEVICE_MEMORY count=1\n");
  std::vector<unsigned char> signature;
  EXPECT_CKR(CKR_DEVICE_MEMORY, Sign(session, key, Sha256("x"), signature));
  SignAndVerify(session, key);
}

TEST_F(FaultyPkcs11Test, HangRuleBlocksUntilRemovedWhileOthersServe) {
  const CK_SESSION_HANDLE stuck = OpenSession();
  const CK_SESSION_HANDLE other = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(stuck);
  const FunctionStats before = Synced("C_Sign");
  SetRules("C_Sign hang count=1\n");
  const std::vector<unsigned char> digest = Sha256("stuck");
  std::vector<unsigned char> signature;
  std::future<CK_RV> hung = std::async(
      std::launch::async, [&] { return Sign(stuck, key, digest, signature); });
  // Wait until the module reports the call as hung.
  while (Synced("C_Sign").hung == before.hung) {
  }
  // The rule is still in the file, so the call cannot have returned.
  EXPECT_EQ(hung.wait_for(std::chrono::seconds(0)),
            std::future_status::timeout);
  // count=1: later calls on other sessions are served.
  SignAndVerify(other, key);
  ASSERT_TRUE(control_->Clear().ok());
  ASSERT_CKR(CKR_OK, hung.get());
  EXPECT_TRUE(Verifies(public_key_, digest, signature));
}

TEST_F(FaultyPkcs11Test, HangEndsAtFinalize) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  const FunctionStats before = Synced("C_Sign");
  SetRules("C_Sign hang\n");
  std::vector<unsigned char> signature;
  std::future<CK_RV> hung = std::async(std::launch::async, [&] {
    return Sign(session, key, Sha256("x"), signature);
  });
  while (Synced("C_Sign").hung == before.hung) {
  }
  ASSERT_CKR(CKR_OK, p_->C_Finalize(nullptr));
  EXPECT_CKR(CKR_CRYPTOKI_NOT_INITIALIZED, hung.get());
}

TEST_F(FaultyPkcs11Test, StarRuleFailsEverythingButFinalize) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  SetRules("* rv=CKR_DEVICE_REMOVED\n");
  std::vector<unsigned char> signature;
  EXPECT_CKR(CKR_DEVICE_REMOVED, Sign(session, key, Sha256("x"), signature));
  CK_ULONG count = 0;
  EXPECT_CKR(CKR_DEVICE_REMOVED, p_->C_GetSlotList(CK_TRUE, nullptr, &count));
  CK_INFO info;
  EXPECT_CKR(CKR_DEVICE_REMOVED, p_->C_GetInfo(&info));
  CK_SESSION_HANDLE another = 0;
  EXPECT_CKR(CKR_DEVICE_REMOVED, p_->C_OpenSession(slot_, CKF_SERIAL_SESSION,
                                                   nullptr, nullptr, &another));
  CK_FUNCTION_LIST* list = nullptr;
  EXPECT_CKR(CKR_OK, p_->C_GetFunctionList(&list));
  EXPECT_EQ(list, p_);
  // The "token removed" recovery path: finalize works, re-initialising fails
  // while the token is gone and works once it is back.
  ASSERT_CKR(CKR_OK, p_->C_Finalize(nullptr));
  EXPECT_CKR(CKR_DEVICE_REMOVED, Initialize());
  ASSERT_TRUE(control_->Clear().ok());
  ASSERT_CKR(CKR_OK, Initialize());
  ASSERT_NO_FATAL_FAILURE(slot_ = FindSlot());
  const CK_SESSION_HANDLE fresh = OpenSession();
  SignAndVerify(fresh, FindPrivateKey(fresh));
}

TEST_F(FaultyPkcs11Test, TokenAbsentHidesTheToken) {
  SetRules("C_GetSlotList token_absent\n");
  CK_ULONG count = 99;
  ASSERT_CKR(CKR_OK, p_->C_GetSlotList(CK_TRUE, nullptr, &count));
  EXPECT_EQ(count, 0u);
  ASSERT_CKR(CKR_OK, p_->C_GetSlotList(CK_FALSE, nullptr, &count));
  EXPECT_GT(count, 0u);
  CK_SLOT_INFO slot_info;
  ASSERT_CKR(CKR_OK, p_->C_GetSlotInfo(slot_, &slot_info));
  EXPECT_EQ(slot_info.flags & CKF_TOKEN_PRESENT, 0u);
  CK_TOKEN_INFO token_info;
  EXPECT_CKR(CKR_TOKEN_NOT_PRESENT, p_->C_GetTokenInfo(slot_, &token_info));
  CK_SESSION_HANDLE session = 0;
  EXPECT_CKR(
      CKR_TOKEN_NOT_PRESENT,
      p_->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &session));
  ASSERT_TRUE(control_->Clear().ok());
  ASSERT_CKR(CKR_OK, p_->C_GetSlotInfo(slot_, &slot_info));
  EXPECT_NE(slot_info.flags & CKF_TOKEN_PRESENT, 0u);
  EXPECT_EQ(FindSlot(), slot_);
  const CK_SESSION_HANDLE fresh = OpenSession();
  SignAndVerify(fresh, FindPrivateKey(fresh));
}

TEST_F(FaultyPkcs11Test, InvalidateSessionsIsOneShot) {
  const CK_SESSION_HANDLE first = OpenSession();
  const CK_SESSION_HANDLE second = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(first);
  SetRules("invalidate_sessions\n");
  std::vector<unsigned char> signature;
  EXPECT_CKR(CKR_SESSION_HANDLE_INVALID,
             Sign(first, key, Sha256("x"), signature));
  CK_SESSION_INFO info;
  EXPECT_CKR(CKR_SESSION_HANDLE_INVALID, p_->C_GetSessionInfo(second, &info));
  // Sessions opened later are unaffected while the file stays the same.
  const CK_SESSION_HANDLE later = OpenSession();
  SignAndVerify(later, key);
  ASSERT_CKR(CKR_OK, p_->C_GetSessionInfo(later, &info));
  EXPECT_CKR(CKR_SESSION_HANDLE_INVALID, p_->C_CloseSession(first));
  // Closing reached SoftHSM: the handle is gone there too.
  EXPECT_CKR(CKR_SESSION_HANDLE_INVALID, p_->C_CloseSession(first));
  EXPECT_CKR(CKR_OK, p_->C_CloseSession(later));
}

TEST_F(FaultyPkcs11Test, PinRuleRejectsLoginAndCountsIt) {
  CK_SESSION_HANDLE session = 0;
  ASSERT_CKR(CKR_OK, p_->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr,
                                       nullptr, &session));
  const FunctionStats before = Synced("C_Login");
  SetRules("C_Login rv=CKR_PIN_INCORRECT\n");
  EXPECT_CKR(CKR_PIN_INCORRECT, Login(session, CKU_USER, kUserPin));
  const FunctionStats after = Synced("C_Login");
  EXPECT_EQ(after.calls - before.calls, 1u);
  EXPECT_EQ(after.faults - before.faults, 1u);
  // The rejected login never reached SoftHSM: still logged out.
  CK_SESSION_INFO info;
  ASSERT_CKR(CKR_OK, p_->C_GetSessionInfo(session, &info));
  EXPECT_EQ(info.state, static_cast<CK_STATE>(CKS_RO_PUBLIC_SESSION));
  ASSERT_TRUE(control_->Clear().ok());
  ASSERT_CKR(CKR_OK, Login(session, CKU_USER, kUserPin));
}

TEST_F(FaultyPkcs11Test, OpenSessionRuleFails) {
  SetRules("C_OpenSession rv=CKR_SESSION_COUNT\n");
  CK_SESSION_HANDLE session = 0;
  EXPECT_CKR(CKR_SESSION_COUNT, p_->C_OpenSession(slot_, CKF_SERIAL_SESSION,
                                                  nullptr, nullptr, &session));
  ASSERT_TRUE(control_->Clear().ok());
  const CK_SESSION_HANDLE fresh = OpenSession();
  SignAndVerify(fresh, FindPrivateKey(fresh));
}

TEST_F(FaultyPkcs11Test, ReinitializeReloadsTheTarget) {
  CK_SESSION_HANDLE session = OpenSession();
  SetRules("C_Sign rv=CKR_DEVICE_ERROR\n");
  std::vector<unsigned char> signature;
  EXPECT_CKR(CKR_DEVICE_ERROR,
             Sign(session, FindPrivateKey(session), Sha256("x"), signature));
  const uint64_t finalizes_before = Synced("C_Finalize").calls;
  ASSERT_CKR(CKR_OK, p_->C_Finalize(nullptr));
  // Stats are written at C_Finalize, without waiting for the next tick.
  absl::StatusOr<Stats> stats = control_->ReadStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->For("C_Finalize").calls, finalizes_before + 1);
  EXPECT_CKR(CKR_CRYPTOKI_NOT_INITIALIZED, p_->C_Finalize(nullptr));
  // C_Finalize unloaded SoftHSM; C_Initialize loads it afresh.
  void* still_loaded =
      dlopen("/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW | RTLD_NOLOAD);
  EXPECT_EQ(still_loaded, nullptr);
  if (still_loaded != nullptr) dlclose(still_loaded);
  CK_INFO info;
  EXPECT_CKR(CKR_CRYPTOKI_NOT_INITIALIZED, p_->C_GetInfo(&info));
  ASSERT_TRUE(control_->Clear().ok());
  ASSERT_CKR(CKR_OK, Initialize());
  EXPECT_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED, Initialize());
  ASSERT_NO_FATAL_FAILURE(slot_ = FindSlot());
  session = OpenSession();
  SignAndVerify(session, FindPrivateKey(session));
}

TEST_F(FaultyPkcs11Test, FinalizeRuleKeepsTheModuleInitialised) {
  SetRules("C_Finalize rv=CKR_GENERAL_ERROR count=1\n");
  EXPECT_CKR(CKR_GENERAL_ERROR, p_->C_Finalize(nullptr));
  const CK_SESSION_HANDLE session = OpenSession();
  SignAndVerify(session, FindPrivateKey(session));
}

TEST_F(FaultyPkcs11Test, ForkedChildExitsCleanly) {
  // The stats flusher thread exists only in the parent; a child that runs
  // static destructors at exit() must not wait for it.
  ASSERT_TRUE(control_->Sync().ok());
  for (int i = 0; i < 10; ++i) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) exit(0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    // Spread the forks over the stats thread's 100 ms tick.
    std::this_thread::sleep_for(std::chrono::milliseconds(i * 7));
  }
  const CK_SESSION_HANDLE session = OpenSession();
  SignAndVerify(session, FindPrivateKey(session));
}

// Redirects stderr (fd 2) to a file for the lifetime of the object.
class StderrCapture {
 public:
  explicit StderrCapture(const std::string& path) : path_(path) {
    fflush(stderr);
    saved_ = dup(2);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
  }
  std::string Finish() {
    fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    std::ifstream in(path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::string path_;
  int saved_ = -1;
};

int Occurrences(absl::string_view haystack, absl::string_view needle) {
  int n = 0;
  for (size_t pos = haystack.find(needle); pos != absl::string_view::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST_F(FaultyPkcs11Test, MalformedLinesAreIgnoredAndReportedOnce) {
  const CK_SESSION_HANDLE session = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(session);
  const uint64_t bad_before = SyncedStats().bad_lines;
  StderrCapture capture(dir_ + "/stderr.txt");
  SetRules(
      "C_Sgn rv=CKR_DEVICE_ERROR\n"
      "C_Sign rv=CKR_DEVICE_ERROR count=1\n"
      "C_Sign rv=NOT_A_CODE\n");
  std::vector<unsigned char> signature;
  const CK_RV first = Sign(session, key, Sha256("x"), signature);
  const CK_RV second = Sign(session, key, Sha256("y"), signature);
  const CK_RV third = Sign(session, key, Sha256("z"), signature);
  const std::string captured = capture.Finish();
  EXPECT_CKR(CKR_DEVICE_ERROR, first);
  EXPECT_CKR(CKR_OK, second);
  EXPECT_CKR(CKR_OK, third);
  EXPECT_EQ(Occurrences(captured, "line 1: unknown function 'C_Sgn'"), 1)
      << captured;
  EXPECT_EQ(Occurrences(captured, "line 3: 'NOT_A_CODE'"), 1) << captured;
  EXPECT_EQ(Occurrences(captured, "line 2"), 0) << captured;
  EXPECT_EQ(SyncedStats().bad_lines - bad_before, 2u);
}

TEST_F(FaultyPkcs11Test, ConcurrentCallsWithChangingRulesAreSafe) {
  constexpr int kThreads = 8;
  constexpr int kIterations = 200;
  // Keeps the token logged in while sessions come and go (the shim may
  // invalidate this handle, but SoftHSM keeps it open).
  const CK_SESSION_HANDLE anchor = OpenSession();
  const CK_OBJECT_HANDLE key = FindPrivateKey(anchor);
  std::atomic<bool> stop{false};
  std::atomic<int> signatures{0};
  std::atomic<int> wrong{0};
  std::atomic<int> failures{0};

  std::thread changer([&] {
    const char* const kRuleSets[] = {
        "C_Sign rv=CKR_DEVICE_ERROR count=5\n",
        "C_SignInit delay_ms=1\nC_Sign rv=CKR_GENERAL_ERROR count=2\n",
        "invalidate_sessions\n",
        "* rv=CKR_DEVICE_REMOVED count=20\n",
        "",
        "C_Sign hang count=1\n",
        "C_OpenSession rv=CKR_SESSION_COUNT count=3\nC_Sgn bad\n",
        "C_GetSlotList token_absent\n",
    };
    for (int i = 0; !stop.load(); ++i) {
      EXPECT_TRUE(control_->SetRules(kRuleSets[i % std::size(kRuleSets)]).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });

  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
      for (int i = 0; i < kIterations; ++i) {
        if (session == CK_INVALID_HANDLE &&
            p_->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr,
                              &session) != CKR_OK) {
          session = CK_INVALID_HANDLE;
          failures.fetch_add(1);
          continue;
        }
        const std::vector<unsigned char> digest =
            Sha256(absl::StrCat("thread ", t, " iteration ", i));
        std::vector<unsigned char> signature;
        const CK_RV rv = Sign(session, key, digest, signature);
        if (rv == CKR_OK) {
          signatures.fetch_add(1);
          if (!Verifies(public_key_, digest, signature)) wrong.fetch_add(1);
        } else {
          failures.fetch_add(1);
          if (rv == CKR_SESSION_HANDLE_INVALID) {
            p_->C_CloseSession(session);
            session = CK_INVALID_HANDLE;
          }
        }
      }
      if (session != CK_INVALID_HANDLE) p_->C_CloseSession(session);
    });
  }
  for (std::thread& worker : workers) worker.join();
  stop.store(true);
  changer.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(signatures.load(), 0);
  EXPECT_GT(failures.load(), 0);
  // Back to pass-through, everything works.
  ASSERT_TRUE(control_->Clear().ok());
  const CK_SESSION_HANDLE fresh = OpenSession();
  SignAndVerify(fresh, key);
}

}  // namespace
}  // namespace hsmd::faulty_pkcs11
