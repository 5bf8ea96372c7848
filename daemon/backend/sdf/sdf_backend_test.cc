// The SDF backend against the software SDF device (libsoftsdf.so, loaded with
// dlopen like a vendor library): key listing and URIs, every operation and
// its error codes, status, concurrency and shutdown. OpenSSL's default
// provider checks the cryptographic results.
#include "daemon/backend/sdf/sdf_backend.h"

#include <openssl/sha.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sdf/sdf_test_env.h"

namespace hsmd::backend {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// A hang fails the test instead of blocking the run.
const bool kWatchdog = (alarm(240), true);

constexpr char kDevice[] = "card0";
constexpr char kDefaultId[] = "1234567812345678";
// GB/T 32907-2016 appendix A, example 1.
constexpr char kSm4VectorHex[] = "0123456789abcdeffedcba9876543210";
constexpr char kSm4VectorCipherHex[] = "681edf34d206965e86b3e94f536e4246";

std::string Uri(uint32_t index, absl::string_view usage) {
  return absl::StrCat("sdf:device=", kDevice, ";index=", index,
                      ";usage=", usage);
}

v1::KeyRef ByUri(absl::string_view uri) {
  v1::KeyRef ref;
  ref.set_uri(std::string(uri));
  return ref;
}

v1::KeyRef ById(absl::string_view id) {
  v1::KeyRef ref;
  ref.set_key_id(std::string(id));
  return ref;
}

std::string KeyIdOf(absl::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
         digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), 16));
}

class SdfBackendTest : public ::testing::Test {
 protected:
  // Index 1: generated sign + enc keys and SM4 key. Index 2: OpenSSL-made
  // sign and enc keys. Index 3: the GB/T 32907 SM4 key; index 4 a random
  // one.
  static void SetUpTestSuite() {
    sign2_ = sdf_test::NewSm2Key().release();
    enc2_ = sdf_test::NewSm2Key().release();
    sm4_key4_ = new std::string(sdf_test::RandomBytes(16));
    sdf_test::StoreSpec spec;
    spec.sign_keys = {1};
    spec.enc_keys = {1};
    spec.sm4_keys = {1};
    spec.import_sign[2] = sdf_test::PrivateKeyPem(sign2_);
    spec.import_enc[2] = sdf_test::PrivateKeyPem(enc2_);
    spec.import_sm4[3] = absl::HexStringToBytes(kSm4VectorHex);
    spec.import_sm4[4] = *sm4_key4_;
    spec.passwords[1] = "pw-one";
    spec.passwords[2] = "two: with colon and spaces";
    absl::StatusOr<sdf_test::SoftSdfStore> store =
        sdf_test::SoftSdfStore::Create("backend-store", spec);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = new sdf_test::SoftSdfStore(*std::move(store));
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(sign2_);
    EVP_PKEY_free(enc2_);
    delete sm4_key4_;
    delete store_;
  }

  static SdfKeyConfig Key(uint32_t index, SdfKeyUsage usage,
                          absl::string_view label = "") {
    SdfKeyConfig key;
    key.index = index;
    key.usage = usage;
    key.label = std::string(label);
    if (usage != SdfKeyUsage::kSm4) {
      key.password_source = store_->PasswordSource(index);
    }
    return key;
  }

  static SdfBackendOptions Options() {
    SdfBackendOptions options;
    options.name = "sdf-test";
    options.library_path = sdf_test::SoftSdfLibrary();
    options.device_name = kDevice;
    options.session_pool_size = 4;
    options.keys = {Key(1, SdfKeyUsage::kSign, "one"),
                    Key(1, SdfKeyUsage::kEnc, "one-enc"),
                    Key(2, SdfKeyUsage::kSign, "alice"),
                    Key(2, SdfKeyUsage::kEnc, "alice-enc"),
                    Key(1, SdfKeyUsage::kSm4, "sm4-one"),
                    Key(3, SdfKeyUsage::kSm4, "vector"),
                    Key(4, SdfKeyUsage::kSm4, "k4")};
    return options;
  }

  void SetUp() override {
    store_->Activate();
    absl::StatusOr<std::unique_ptr<Backend>> backend = NewSdfBackend(Options());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
  }

  v1::Key GetKey(absl::string_view uri) {
    absl::StatusOr<v1::Key> key = backend_->GetKey(ByUri(uri), ctx_);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : v1::Key();
  }

  EvpPkeyPtr PublicKey(absl::string_view uri) {
    absl::StatusOr<EvpPkeyPtr> pkey =
        sdf_test::PublicKeyFromDer(GetKey(uri).public_key_der());
    EXPECT_TRUE(pkey.ok()) << pkey.status();
    return pkey.ok() ? *std::move(pkey) : nullptr;
  }

  absl::StatusOr<v1::SignResponse> SignMessage(absl::string_view uri,
                                               absl::string_view message,
                                               absl::string_view id = "") {
    v1::SignRequest request;
    *request.mutable_key() = ByUri(uri);
    request.mutable_algorithm()->mutable_sm2()->set_distinguishing_id(
        std::string(id));
    request.set_message(std::string(message));
    return backend_->Sign(request, ctx_);
  }

  absl::StatusOr<std::string> Sm4(absl::string_view uri, v1::CipherMode mode,
                                  absl::string_view iv, absl::string_view data,
                                  bool encrypt) {
    if (encrypt) {
      v1::EncryptRequest request;
      *request.mutable_key() = ByUri(uri);
      request.mutable_algorithm()->mutable_sm4()->set_mode(mode);
      request.mutable_algorithm()->mutable_sm4()->set_iv(std::string(iv));
      request.set_plaintext(std::string(data));
      absl::StatusOr<v1::EncryptResponse> r = backend_->Encrypt(request, ctx_);
      if (!r.ok()) return r.status();
      return r->ciphertext();
    }
    v1::DecryptRequest request;
    *request.mutable_key() = ByUri(uri);
    request.mutable_algorithm()->mutable_sm4()->set_mode(mode);
    request.mutable_algorithm()->mutable_sm4()->set_iv(std::string(iv));
    request.set_ciphertext(std::string(data));
    absl::StatusOr<v1::DecryptResponse> r = backend_->Decrypt(request, ctx_);
    if (!r.ok()) return r.status();
    return r->plaintext();
  }

  absl::StatusOr<std::string> Sm2Decrypt(absl::string_view uri,
                                         absl::string_view ciphertext) {
    v1::DecryptRequest request;
    *request.mutable_key() = ByUri(uri);
    request.mutable_algorithm()->mutable_sm2();
    request.set_ciphertext(std::string(ciphertext));
    absl::StatusOr<v1::DecryptResponse> r = backend_->Decrypt(request, ctx_);
    if (!r.ok()) return r.status();
    return r->plaintext();
  }

  static sdf_test::SoftSdfStore* store_;
  static EVP_PKEY* sign2_;
  static EVP_PKEY* enc2_;
  static std::string* sm4_key4_;
  std::unique_ptr<Backend> backend_;
  RequestContext ctx_;
};

sdf_test::SoftSdfStore* SdfBackendTest::store_ = nullptr;
EVP_PKEY* SdfBackendTest::sign2_ = nullptr;
EVP_PKEY* SdfBackendTest::enc2_ = nullptr;
std::string* SdfBackendTest::sm4_key4_ = nullptr;

void ExpectCode(const absl::Status& status, absl::StatusCode code,
                absl::string_view substring) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(substring));
}

template <typename T>
void ExpectCode(const absl::StatusOr<T>& result, absl::StatusCode code,
                absl::string_view substring) {
  ASSERT_FALSE(result.ok());
  ExpectCode(result.status(), code, substring);
}

TEST_F(SdfBackendTest, NameKindAndStatus) {
  EXPECT_EQ(backend_->name(), "sdf-test");
  EXPECT_EQ(backend_->kind(), "sdf");
  EXPECT_TRUE(backend_->IsServing());
  const v1::BackendStatus status = backend_->GetStatus();
  EXPECT_EQ(status.kind(), "sdf");
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(status.module_path(), sdf_test::SoftSdfLibrary());
  EXPECT_EQ(status.token_label(), kDevice);
  // softsdf's DEVICEINFO.
  EXPECT_EQ(status.token_manufacturer(), "hsmd project");
  EXPECT_EQ(status.token_model(), "softsdf");
  EXPECT_EQ(status.token_serial(), "2025010100100001");
  EXPECT_THAT(status.library_description(), HasSubstr("softsdf"));
  EXPECT_TRUE(status.logged_in());
  EXPECT_EQ(status.sessions_total(), 4u);
  EXPECT_EQ(status.sessions_in_use(), 0u);
  absl::StatusOr<SdfBackendCounters> counters =
      GetSdfBackendCounters(*backend_);
  ASSERT_TRUE(counters.ok());
  // Two private-key indexes on each of the four sessions.
  EXPECT_EQ(counters->access_rights_granted, 8u);
}

TEST_F(SdfBackendTest, ListsConfiguredKeys) {
  absl::StatusOr<std::vector<v1::Key>> keys = backend_->ListKeys({}, ctx_);
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::vector<std::string> uris;
  for (const v1::Key& key : *keys) {
    uris.push_back(key.uri());
    EXPECT_EQ(key.backend(), "sdf-test");
    EXPECT_EQ(key.token_label(), kDevice);
    EXPECT_EQ(key.key_id().size(), 32u);
    if (key.key_type() == v1::KEY_TYPE_SM2) {
      EXPECT_EQ(key.curve(), v1::CURVE_SM2);
      EXPECT_EQ(key.size_bits(), 256u);
      EXPECT_EQ(key.key_id(), KeyIdOf(key.public_key_der()));
    } else {
      EXPECT_EQ(key.key_type(), v1::KEY_TYPE_SM4);
      EXPECT_EQ(key.size_bits(), 128u);
      EXPECT_TRUE(key.public_key_der().empty());
      EXPECT_EQ(key.key_id(), KeyIdOf(key.uri()));
    }
  }
  EXPECT_THAT(
      uris, UnorderedElementsAre(Uri(1, "sign"), Uri(1, "enc"), Uri(2, "sign"),
                                 Uri(2, "enc"), Uri(1, "sm4"), Uri(3, "sm4"),
                                 Uri(4, "sm4")));
  const v1::Key sign = GetKey(Uri(1, "sign"));
  EXPECT_EQ(sign.label(), "one");
  EXPECT_THAT(sign.allowed_operations(),
              UnorderedElementsAre(v1::OPERATION_SIGN));
  EXPECT_THAT(GetKey(Uri(1, "enc")).allowed_operations(),
              UnorderedElementsAre(v1::OPERATION_DECRYPT));
  EXPECT_THAT(
      GetKey(Uri(3, "sm4")).allowed_operations(),
      UnorderedElementsAre(v1::OPERATION_ENCRYPT, v1::OPERATION_DECRYPT));
}

TEST_F(SdfBackendTest, ExportedPublicKeysAreTheDevicesKeys) {
  // softsdf-init wrote the public keys; the backend exported them with
  // SDF_Export{Sign,Enc}PublicKey_ECC.
  for (const auto& [usage, index] :
       std::vector<std::pair<std::string, uint32_t>>{
           {"sign", 1}, {"enc", 1}, {"sign", 2}, {"enc", 2}}) {
    absl::StatusOr<EvpPkeyPtr> expected =
        sdf_test::PublicKeyFromPem(store_->PublicKeyPem(usage, index));
    ASSERT_TRUE(expected.ok()) << usage << index;
    EXPECT_EQ(GetKey(Uri(index, usage)).public_key_der(),
              sdf_test::PublicKeyDer(expected->get()))
        << usage << index;
  }
  EXPECT_EQ(GetKey(Uri(2, "sign")).public_key_der(),
            sdf_test::PublicKeyDer(sign2_));
  EXPECT_EQ(GetKey(Uri(2, "enc")).public_key_der(),
            sdf_test::PublicKeyDer(enc2_));
}

TEST_F(SdfBackendTest, ListFilters) {
  auto list = [&](absl::string_view filter, absl::string_view label = "") {
    v1::ListKeysRequest request;
    request.set_uri_filter(std::string(filter));
    request.set_label(std::string(label));
    return backend_->ListKeys(request, ctx_);
  };
  absl::StatusOr<std::vector<v1::Key>> keys = list("sdf:usage=sign");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);
  keys = list("sdf:device=card0;index=1");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 3u);
  keys = list("SDF:object=alice");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].uri(), Uri(2, "sign"));
  keys = list("sdf:device=other");
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
  keys = list("", "k4");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].uri(), Uri(4, "sm4"));
  keys = list("sdf:");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 7u);
  ExpectCode(list("sdf:usage=verify"), absl::StatusCode::kInvalidArgument,
             "\"usage\"");
  ExpectCode(list("pkcs11:token=x"), absl::StatusCode::kInvalidArgument,
             "sdf: URI filters");
}

TEST_F(SdfBackendTest, ResolvesReferences) {
  const v1::Key sign = GetKey(Uri(1, "sign"));
  absl::StatusOr<v1::Key> by_id = backend_->GetKey(ById(sign.key_id()), ctx_);
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_EQ(by_id->uri(), Uri(1, "sign"));
  EXPECT_EQ(GetKey("sdf:device=card0;object=alice-enc").uri(), Uri(2, "enc"));
  // Attribute order does not matter; values are percent-decoded.
  EXPECT_EQ(GetKey("sdf:usage=sm4;index=3;device=%63ard0").uri(),
            Uri(3, "sm4"));
  EXPECT_EQ(GetKey("sdf:device=card0;index=3").uri(), Uri(3, "sm4"));
}

TEST_F(SdfBackendTest, ReferenceErrors) {
  auto get = [&](absl::string_view uri) {
    return backend_->GetKey(ByUri(uri), ctx_);
  };
  ExpectCode(get("sdf:device=card0;index=77;usage=sign"),
             absl::StatusCode::kNotFound, "matches sdf:device=card0;index=77");
  ExpectCode(get("sdf:device=card9;index=1;usage=sign"),
             absl::StatusCode::kNotFound, "no SDF device named \"card9\"");
  ExpectCode(get("sdf:device=card0;index=abc;usage=sign"),
             absl::StatusCode::kInvalidArgument, "\"index\"");
  ExpectCode(get("sdf:device=card0;index=99999999999;usage=sign"),
             absl::StatusCode::kInvalidArgument, "out of range");
  ExpectCode(get("sdf:device=card0;index=1;usage=verify"),
             absl::StatusCode::kInvalidArgument, "\"usage\"");
  ExpectCode(get("sdf:device=card0;index=1;usage=sign;slot=2"),
             absl::StatusCode::kInvalidArgument, "\"slot\" is unknown");
  ExpectCode(get("sdf:device=card0;index=1;index=2"),
             absl::StatusCode::kInvalidArgument, "more than once");
  ExpectCode(get("sdf:device=card0;index=1;usage=sign?pin-value=1"),
             absl::StatusCode::kInvalidArgument, "no query");
  ExpectCode(get("sdf:device=card 0;index=1"),
             absl::StatusCode::kInvalidArgument, "percent-encoded");
  ExpectCode(get("sdf:device=card0;index"), absl::StatusCode::kInvalidArgument,
             "has no '='");
  ExpectCode(get("sdf:index=1;usage=sign"), absl::StatusCode::kInvalidArgument,
             "names no device");
  ExpectCode(get("sdf:device=card0;usage=sign"),
             absl::StatusCode::kInvalidArgument, "names no key");
  // Index 1 holds sign, enc and SM4 keys.
  ExpectCode(get("sdf:device=card0;index=1"),
             absl::StatusCode::kFailedPrecondition, "matches 3 keys");
  ExpectCode(backend_->GetKey(ById(std::string(32, 'a')), ctx_),
             absl::StatusCode::kNotFound, "no key with key_id");
  // The reference travels in the error detail.
  absl::StatusOr<v1::Key> missing = get("sdf:device=card0;index=77;usage=enc");
  ASSERT_FALSE(missing.ok());
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(missing.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->key(), "sdf:device=card0;index=77;usage=enc");
}

TEST_F(SdfBackendTest, SignsMessagesThatOpenSslVerifies) {
  const std::string message = "SDF backend test message";
  for (uint32_t index : {1u, 2u}) {
    EvpPkeyPtr pub = PublicKey(Uri(index, "sign"));
    absl::StatusOr<v1::SignResponse> sig =
        SignMessage(Uri(index, "sign"), message);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_EQ(sig->key_id(), GetKey(Uri(index, "sign")).key_id());
    EXPECT_TRUE(
        sdf_test::Sm2Verify(pub.get(), kDefaultId, message, sig->signature()));
    // Not with another ID: the ID really is part of what was signed.
    EXPECT_FALSE(
        sdf_test::Sm2Verify(pub.get(), "other", message, sig->signature()));
    absl::StatusOr<v1::SignResponse> with_id =
        SignMessage(Uri(index, "sign"), message, "alice@example.com");
    ASSERT_TRUE(with_id.ok()) << with_id.status();
    EXPECT_TRUE(sdf_test::Sm2Verify(pub.get(), "alice@example.com", message,
                                    with_id->signature()));
  }
  // The imported key's own private half agrees.
  absl::StatusOr<v1::SignResponse> sig = SignMessage(Uri(2, "sign"), message);
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(
      sdf_test::Sm2Verify(sign2_, kDefaultId, message, sig->signature()));
}

TEST_F(SdfBackendTest, SignsDigests) {
  const std::string message = "digest input";
  EvpPkeyPtr pub = PublicKey(Uri(1, "sign"));
  absl::StatusOr<std::string> e =
      sdf_test::Sm2E(pub.get(), kDefaultId, message);
  ASSERT_TRUE(e.ok());
  v1::SignRequest request;
  *request.mutable_key() = ByUri(Uri(1, "sign"));
  request.mutable_algorithm()->mutable_sm2();
  request.set_digest(*e);
  absl::StatusOr<v1::SignResponse> sig = backend_->Sign(request, ctx_);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(
      sdf_test::Sm2Verify(pub.get(), kDefaultId, message, sig->signature()));

  request.set_digest(std::string(20, 'x'));
  ExpectCode(backend_->Sign(request, ctx_), absl::StatusCode::kInvalidArgument,
             "digest is 20 bytes");
}

TEST_F(SdfBackendTest, SignErrors) {
  ExpectCode(SignMessage(Uri(1, "enc"), "m"),
             absl::StatusCode::kFailedPrecondition, "does not allow signing");
  ExpectCode(SignMessage(Uri(3, "sm4"), "m"),
             absl::StatusCode::kInvalidArgument,
             "algorithm sm2 does not fit key type SM4");
  ExpectCode(SignMessage(Uri(1, "sign"), ""),
             absl::StatusCode::kInvalidArgument, "message is empty");
  ExpectCode(SignMessage(Uri(1, "sign"), "m", std::string(8192, 'i')),
             absl::StatusCode::kInvalidArgument, "distinguishing_id");
  v1::SignRequest request;
  *request.mutable_key() = ByUri(Uri(1, "sign"));
  request.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  request.set_message("m");
  ExpectCode(backend_->Sign(request, ctx_), absl::StatusCode::kInvalidArgument,
             "algorithm ecdsa does not fit key type SM2");
  request.clear_algorithm();
  ExpectCode(backend_->Sign(request, ctx_), absl::StatusCode::kInvalidArgument,
             "algorithm is missing");
  request.mutable_algorithm()->mutable_sm2();
  request.clear_input();
  ExpectCode(backend_->Sign(request, ctx_), absl::StatusCode::kInvalidArgument,
             "input is missing");
}

TEST_F(SdfBackendTest, DecryptsOpenSslCiphertexts) {
  for (uint32_t index : {1u, 2u}) {
    EvpPkeyPtr pub = PublicKey(Uri(index, "enc"));
    for (size_t length : {1u, 32u, 1000u}) {
      const std::string plaintext = sdf_test::RandomBytes(length);
      absl::StatusOr<std::string> ciphertext =
          sdf_test::Sm2Encrypt(pub.get(), plaintext);
      ASSERT_TRUE(ciphertext.ok());
      absl::StatusOr<std::string> decrypted =
          Sm2Decrypt(Uri(index, "enc"), *ciphertext);
      ASSERT_TRUE(decrypted.ok()) << decrypted.status();
      EXPECT_EQ(*decrypted, plaintext);
    }
  }
}

TEST_F(SdfBackendTest, DecryptErrors) {
  EvpPkeyPtr pub = PublicKey(Uri(1, "enc"));
  absl::StatusOr<std::string> ciphertext =
      sdf_test::Sm2Encrypt(pub.get(), "secret");
  ASSERT_TRUE(ciphertext.ok());
  // Encrypted to key 1, decrypted with key 2: C3 does not match.
  absl::StatusOr<std::string> wrong = Sm2Decrypt(Uri(2, "enc"), *ciphertext);
  ExpectCode(wrong, absl::StatusCode::kInvalidArgument, "SDR_ENCDATAERR");
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(wrong.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_kind(), "sdf");
  EXPECT_EQ(detail->backend_code_name(), "SDR_ENCDATAERR");
  EXPECT_EQ(detail->backend_function(), "SDF_InternalDecrypt_ECC");
  EXPECT_EQ(detail->key(), Uri(2, "enc"));

  ExpectCode(Sm2Decrypt(Uri(1, "enc"), "not DER"),
             absl::StatusCode::kInvalidArgument, "SM2 ciphertext");
  ExpectCode(Sm2Decrypt(Uri(1, "enc"), ""), absl::StatusCode::kInvalidArgument,
             "ciphertext is empty");
  ExpectCode(Sm2Decrypt(Uri(1, "sign"), *ciphertext),
             absl::StatusCode::kFailedPrecondition,
             "does not allow decryption");
  ExpectCode(Sm2Decrypt(Uri(3, "sm4"), *ciphertext),
             absl::StatusCode::kInvalidArgument,
             "algorithm sm2 does not fit key type SM4");
  v1::DecryptRequest request;
  *request.mutable_key() = ByUri(Uri(1, "enc"));
  request.mutable_algorithm()->mutable_rsa_pkcs1();
  request.set_ciphertext(*ciphertext);
  ExpectCode(backend_->Decrypt(request, ctx_),
             absl::StatusCode::kInvalidArgument,
             "algorithm rsa_pkcs1 does not fit key type SM2");
  request.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  ExpectCode(backend_->Decrypt(request, ctx_),
             absl::StatusCode::kInvalidArgument,
             "algorithm sm4 does not fit key type SM2");
}

TEST_F(SdfBackendTest, Sm4MatchesOpenSslAndTheStandardVector) {
  const std::string vector = absl::HexStringToBytes(kSm4VectorHex);
  absl::StatusOr<std::string> out =
      Sm4(Uri(3, "sm4"), v1::CIPHER_MODE_ECB, "", vector, true);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(absl::BytesToHexString(*out), kSm4VectorCipherHex);
  out = Sm4(Uri(3, "sm4"), v1::CIPHER_MODE_ECB, "", *out, false);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, vector);

  const std::string data = sdf_test::RandomBytes(160);
  const std::string iv = sdf_test::RandomBytes(16);
  for (const auto& [mode, mode_iv] :
       std::vector<std::pair<v1::CipherMode, std::string>>{
           {v1::CIPHER_MODE_ECB, ""}, {v1::CIPHER_MODE_CBC, iv}}) {
    absl::StatusOr<std::string> expected =
        sdf_test::Sm4(*sm4_key4_, mode_iv, data, true);
    ASSERT_TRUE(expected.ok());
    absl::StatusOr<std::string> encrypted =
        Sm4(Uri(4, "sm4"), mode, mode_iv, data, true);
    ASSERT_TRUE(encrypted.ok()) << encrypted.status();
    EXPECT_EQ(*encrypted, *expected) << mode;
    absl::StatusOr<std::string> decrypted =
        Sm4(Uri(4, "sm4"), mode, mode_iv, *expected, false);
    ASSERT_TRUE(decrypted.ok()) << decrypted.status();
    EXPECT_EQ(*decrypted, data) << mode;
  }
}

TEST_F(SdfBackendTest, Sm4InPiecesChainsCbc) {
  backend_.reset();
  SdfBackendOptions options = Options();
  options.max_chunk_bytes = 40;  // 32 per SM4 call, 40 per random call
  absl::StatusOr<std::unique_ptr<Backend>> backend = NewSdfBackend(options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  backend_ = *std::move(backend);
  const std::string data = sdf_test::RandomBytes(16 * 11);
  const std::string iv = sdf_test::RandomBytes(16);
  absl::StatusOr<std::string> expected =
      sdf_test::Sm4(*sm4_key4_, iv, data, true);
  ASSERT_TRUE(expected.ok());
  absl::StatusOr<std::string> encrypted =
      Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_CBC, iv, data, true);
  ASSERT_TRUE(encrypted.ok()) << encrypted.status();
  EXPECT_EQ(*encrypted, *expected);
  absl::StatusOr<std::string> decrypted =
      Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_CBC, iv, *expected, false);
  ASSERT_TRUE(decrypted.ok());
  EXPECT_EQ(*decrypted, data);
  absl::StatusOr<std::string> random = backend_->GenerateRandom(1000, ctx_);
  ASSERT_TRUE(random.ok()) << random.status();
  EXPECT_EQ(random->size(), 1000u);
}

TEST_F(SdfBackendTest, Sm4Errors) {
  const std::string block(16, 'b');
  ExpectCode(
      Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_ECB, "", std::string(15, 'x'), true),
      absl::StatusCode::kInvalidArgument, "multiple of 16");
  ExpectCode(
      Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_CBC, "", std::string(33, 'x'), false),
      absl::StatusCode::kInvalidArgument, "iv is 0 bytes");
  ExpectCode(Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_ECB, "", "", true),
             absl::StatusCode::kInvalidArgument, "plaintext is empty");
  ExpectCode(
      Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_CBC, std::string(8, 'i'), block, true),
      absl::StatusCode::kInvalidArgument, "CBC needs 16");
  ExpectCode(Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_ECB, std::string(16, 'i'),
                 block, true),
             absl::StatusCode::kInvalidArgument, "ECB takes none");
  ExpectCode(Sm4(Uri(4, "sm4"), v1::CIPHER_MODE_UNSPECIFIED, "", block, true),
             absl::StatusCode::kInvalidArgument, "mode is missing");
  ExpectCode(Sm4(Uri(1, "enc"), v1::CIPHER_MODE_ECB, "", block, true),
             absl::StatusCode::kInvalidArgument,
             "algorithm sm4 does not fit key type SM2");
  ExpectCode(Sm4(Uri(1, "sign"), v1::CIPHER_MODE_ECB, "", block, false),
             absl::StatusCode::kInvalidArgument,
             "algorithm sm4 does not fit key type SM2");
  ExpectCode(Sm4("sdf:device=card0;index=9;usage=sm4", v1::CIPHER_MODE_ECB, "",
                 block, true),
             absl::StatusCode::kNotFound, "no configured key");
  v1::EncryptRequest request;
  *request.mutable_key() = ByUri(Uri(4, "sm4"));
  request.set_plaintext(block);
  ExpectCode(backend_->Encrypt(request, ctx_),
             absl::StatusCode::kInvalidArgument, "algorithm is missing");
}

TEST_F(SdfBackendTest, GeneratesRandom) {
  absl::StatusOr<std::string> a = backend_->GenerateRandom(65536, ctx_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->size(), 65536u);
  absl::StatusOr<std::string> b = backend_->GenerateRandom(32, ctx_);
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->substr(0, 32), *b);
  ExpectCode(backend_->GenerateRandom(0, ctx_),
             absl::StatusCode::kInvalidArgument, "out of range");
  ExpectCode(backend_->GenerateRandom(65537, ctx_),
             absl::StatusCode::kInvalidArgument, "out of range");
}

TEST_F(SdfBackendTest, KeysAreProvisionedWithVendorTools) {
  v1::GenerateKeyRequest request;
  request.set_label("new");
  request.set_key_type(v1::KEY_TYPE_SM2);
  ExpectCode(backend_->GenerateKey(request, ctx_),
             absl::StatusCode::kUnimplemented, "vendor's tools");
  ExpectCode(backend_->DeleteKey(ByUri(Uri(1, "sign")), ctx_),
             absl::StatusCode::kUnimplemented, "vendor's tools");
}

TEST_F(SdfBackendTest, EightThreadsShareTheSessions) {
  const v1::Key sign_key = GetKey(Uri(2, "sign"));
  EvpPkeyPtr enc_pub = PublicKey(Uri(1, "enc"));
  constexpr int kThreads = 8;
  constexpr int kRounds = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      RequestContext ctx;
      // Half the threads hand their calls to workers (finite deadline).
      if (t % 2 == 0) ctx.deadline = absl::Now() + absl::Minutes(2);
      for (int i = 0; i < kRounds; ++i) {
        const std::string message = absl::StrCat("thread ", t, " round ", i);
        v1::SignRequest sign;
        *sign.mutable_key() = ByUri(Uri(2, "sign"));
        sign.mutable_algorithm()->mutable_sm2();
        sign.set_message(message);
        absl::StatusOr<v1::SignResponse> sig = backend_->Sign(sign, ctx);
        if (!sig.ok() || !sdf_test::Sm2Verify(sign2_, kDefaultId, message,
                                              sig->signature())) {
          failures.fetch_add(1);
        }
        absl::StatusOr<std::string> ciphertext =
            sdf_test::Sm2Encrypt(enc_pub.get(), message);
        v1::DecryptRequest decrypt;
        *decrypt.mutable_key() = ByUri(Uri(1, "enc"));
        decrypt.mutable_algorithm()->mutable_sm2();
        decrypt.set_ciphertext(ciphertext.value_or(""));
        absl::StatusOr<v1::DecryptResponse> plain =
            backend_->Decrypt(decrypt, ctx);
        if (!plain.ok() || plain->plaintext() != message) failures.fetch_add(1);
        const std::string block = sdf_test::RandomBytes(32);
        v1::EncryptRequest encrypt;
        *encrypt.mutable_key() = ByUri(Uri(4, "sm4"));
        encrypt.mutable_algorithm()->mutable_sm4()->set_mode(
            v1::CIPHER_MODE_ECB);
        encrypt.set_plaintext(block);
        absl::StatusOr<v1::EncryptResponse> enc =
            backend_->Encrypt(encrypt, ctx);
        if (!enc.ok() ||
            enc->ciphertext() !=
                sdf_test::Sm4(*sm4_key4_, "", block, true).value_or("")) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(backend_->GetStatus().state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(backend_->GetStatus().sessions_in_use(), 0u);
}

TEST_F(SdfBackendTest, ShutdownStopsServing) {
  backend_->Shutdown();
  EXPECT_FALSE(backend_->IsServing());
  const v1::BackendStatus status = backend_->GetStatus();
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_FAILED);
  EXPECT_EQ(status.state_reason(), "shut down");
  ExpectCode(SignMessage(Uri(1, "sign"), "m"), absl::StatusCode::kUnavailable,
             "shut down");
  ExpectCode(backend_->GenerateRandom(8, ctx_), absl::StatusCode::kUnavailable,
             "shut down");
  backend_->Shutdown();  // Idempotent.
}

TEST_F(SdfBackendTest, RejectsBadOptions) {
  auto error = [](SdfBackendOptions options) {
    absl::StatusOr<std::unique_ptr<Backend>> b =
        NewSdfBackend(std::move(options));
    return b.ok() ? absl::OkStatus() : b.status();
  };
  SdfBackendOptions o = Options();
  o.library_path = "";
  ExpectCode(error(o), absl::StatusCode::kInvalidArgument,
             "library path is empty");
  o = Options();
  o.library_path = "/nonexistent/libsdf.so";
  ExpectCode(error(o), absl::StatusCode::kFailedPrecondition,
             "cannot load SDF library /nonexistent/libsdf.so");
  o = Options();
  o.device_name = "";
  ExpectCode(error(o), absl::StatusCode::kInvalidArgument,
             "device name is empty");
  o = Options();
  o.session_pool_size = 0;
  ExpectCode(error(o), absl::StatusCode::kInvalidArgument,
             "session pool size 0");
  o = Options();
  o.keys.push_back(Key(1, SdfKeyUsage::kSign, "again"));
  ExpectCode(error(o), absl::StatusCode::kInvalidArgument,
             "key index 1 usage sign is configured twice");
  o = Options();
  o.keys[0].password_source = nullptr;
  ExpectCode(error(o), absl::StatusCode::kInvalidArgument,
             "has no password source");
  o = Options();
  o.keys.back().wrapped_key = "short";
  ExpectCode(error(o), absl::StatusCode::kInvalidArgument,
             "wrapped_key is 5 bytes");
  o = Options();
  o.reinit_backoff_initial = absl::ZeroDuration();
  ExpectCode(error(o), absl::StatusCode::kInvalidArgument, "backoff");
  // A configured key the device does not hold fails the start.
  o = Options();
  o.keys.push_back(Key(9, SdfKeyUsage::kSm4));
  ExpectCode(error(o), absl::StatusCode::kNotFound,
             "SDF_GetSymmKeyHandle failed: SDR_KEYNOTEXIST");
  o = Options();
  o.keys = {Key(1, SdfKeyUsage::kSign), Key(5, SdfKeyUsage::kEnc)};
  o.keys[1].password_source = store_->PasswordSource(1);
  ExpectCode(error(o), absl::StatusCode::kNotFound, "key index 5");
}

}  // namespace
}  // namespace hsmd::backend
