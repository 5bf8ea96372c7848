#include "daemon/backend/pkcs11/pkcs11_backend.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/pkcs11/spki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/softhsm_env.h"

namespace hsmd::backend {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// ---------------------------------------------------------------------------
// OpenSSL helpers for checking results.

EvpPkeyPtr PublicKey(const v1::Key& key) {
  absl::StatusOr<EvpPkeyPtr> pkey = pkcs11::ParseSpki(key.public_key_der());
  EXPECT_TRUE(pkey.ok()) << pkey.status();
  return pkey.ok() ? *std::move(pkey) : nullptr;
}

const EVP_MD* Md(v1::HashAlgorithm hash) {
  switch (hash) {
    case v1::HASH_ALGORITHM_SHA1:
      return EVP_sha1();
    case v1::HASH_ALGORITHM_SHA224:
      return EVP_sha224();
    case v1::HASH_ALGORITHM_SHA256:
      return EVP_sha256();
    case v1::HASH_ALGORITHM_SHA384:
      return EVP_sha384();
    case v1::HASH_ALGORITHM_SHA512:
      return EVP_sha512();
    default:
      return nullptr;
  }
}

std::string Hash(v1::HashAlgorithm hash, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), out, &length, Md(hash), nullptr);
  return std::string(reinterpret_cast<char*>(out), length);
}

struct VerifyParams {
  int padding = 0;  // RSA padding, 0 for EC
  const EVP_MD* md = nullptr;
  const EVP_MD* mgf1 = nullptr;
  int salt_length = RSA_PSS_SALTLEN_AUTO;
};

bool VerifyDigest(EVP_PKEY* pkey, const VerifyParams& params,
                  const std::string& digest, const std::string& signature) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1) return false;
  if (params.padding != 0 &&
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), params.padding) != 1) {
    return false;
  }
  if (params.md != nullptr &&
      EVP_PKEY_CTX_set_signature_md(ctx.get(), params.md) != 1) {
    return false;
  }
  if (params.padding == RSA_PKCS1_PSS_PADDING) {
    if (EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), params.salt_length) != 1) {
      return false;
    }
    if (params.mgf1 != nullptr &&
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), params.mgf1) != 1) {
      return false;
    }
  }
  return EVP_PKEY_verify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature.data()),
             signature.size(),
             reinterpret_cast<const unsigned char*>(digest.data()),
             digest.size()) == 1;
}

// The data inside an RSA PKCS#1 v1.5 signature (DigestInfo or raw bytes).
std::string RecoverRsaPkcs1(EVP_PKEY* pkey, const std::string& signature) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
  std::string out(EVP_PKEY_get_size(pkey), '\0');
  size_t length = out.size();
  if (EVP_PKEY_verify_recover_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_verify_recover(
          ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length,
          reinterpret_cast<const unsigned char*>(signature.data()),
          signature.size()) != 1) {
    return "";
  }
  out.resize(length);
  return out;
}

bool VerifyEd25519(EVP_PKEY* pkey, const std::string& message,
                   const std::string& signature) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  return EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey) ==
             1 &&
         EVP_DigestVerify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature.data()),
             signature.size(),
             reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

std::string Encrypt(EVP_PKEY* pkey, int padding, const EVP_MD* md,
                    const EVP_MD* mgf1, const std::string& label,
                    const std::string& plaintext) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
  EXPECT_EQ(EVP_PKEY_encrypt_init(ctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), padding), 1);
  if (padding == RSA_PKCS1_OAEP_PADDING) {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1), 1);
    if (!label.empty()) {
      void* copy = OPENSSL_memdup(label.data(), label.size());
      EXPECT_EQ(EVP_PKEY_CTX_set0_rsa_oaep_label(
                    ctx.get(), copy, static_cast<int>(label.size())),
                1);
    }
  }
  std::string out(EVP_PKEY_get_size(pkey), '\0');
  size_t length = out.size();
  EXPECT_EQ(
      EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &length,
                       reinterpret_cast<const unsigned char*>(plaintext.data()),
                       plaintext.size()),
      1);
  out.resize(length);
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  return out;
}

// ---------------------------------------------------------------------------
// Request builders.

v1::KeyRef UriRef(const std::string& uri) {
  v1::KeyRef ref;
  ref.set_uri(uri);
  return ref;
}

v1::KeyRef IdRef(const std::string& key_id) {
  v1::KeyRef ref;
  ref.set_key_id(key_id);
  return ref;
}

v1::SignRequest Pkcs1(const v1::Key& key, v1::HashAlgorithm hash) {
  v1::SignRequest request;
  *request.mutable_key() = UriRef(key.uri());
  request.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(hash);
  return request;
}

v1::SignRequest Pss(const v1::Key& key, v1::HashAlgorithm hash,
                    std::optional<uint32_t> salt,
                    v1::HashAlgorithm mgf1 = v1::HASH_ALGORITHM_UNSPECIFIED) {
  v1::SignRequest request;
  *request.mutable_key() = UriRef(key.uri());
  v1::RsaPssSignature* pss = request.mutable_algorithm()->mutable_rsa_pss();
  pss->set_hash(hash);
  pss->set_mgf1_hash(mgf1);
  if (salt.has_value()) pss->set_salt_length(*salt);
  return request;
}

v1::SignRequest Ecdsa(const v1::Key& key, v1::HashAlgorithm hash) {
  v1::SignRequest request;
  *request.mutable_key() = UriRef(key.uri());
  request.mutable_algorithm()->mutable_ecdsa()->set_hash(hash);
  return request;
}

v1::SignRequest Ed25519(const v1::Key& key) {
  v1::SignRequest request;
  *request.mutable_key() = UriRef(key.uri());
  request.mutable_algorithm()->mutable_ed25519();
  return request;
}

v1::DecryptRequest Oaep(const v1::Key& key, v1::HashAlgorithm hash,
                        v1::HashAlgorithm mgf1, const std::string& label,
                        const std::string& ciphertext) {
  v1::DecryptRequest request;
  *request.mutable_key() = UriRef(key.uri());
  v1::RsaOaepDecryption* oaep = request.mutable_algorithm()->mutable_rsa_oaep();
  oaep->set_hash(hash);
  oaep->set_mgf1_hash(mgf1);
  oaep->set_label(label);
  request.set_ciphertext(ciphertext);
  return request;
}

RequestContext Ctx() { return RequestContext(); }

RequestContext ShortCtx() {
  RequestContext ctx;
  ctx.deadline = absl::Now() + absl::Milliseconds(100);
  return ctx;
}

// ---------------------------------------------------------------------------

class Pkcs11BackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alarm(110);  // A hang fails the test instead of blocking the run.
    absl::StatusOr<std::unique_ptr<testing::SoftHsmEnv>> env =
        testing::SoftHsmEnv::New();
    ASSERT_TRUE(env.ok()) << env.status();
    env_ = env->release();
    absl::StatusOr<std::unique_ptr<Backend>> backend =
        NewPkcs11Backend(env_->BackendOptions());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = backend->release();
    absl::StatusOr<std::vector<v1::Key>> keys =
        testing::GenerateDemoKeys(*backend_);
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = new std::map<std::string, v1::Key>;
    for (const v1::Key& key : *keys) (*keys_)[key.label()] = key;
  }

  static const v1::Key& K(const std::string& label) { return keys_->at(label); }
  Backend& backend() { return *backend_; }

  static testing::SoftHsmEnv* env_;
  static Backend* backend_;
  static std::map<std::string, v1::Key>* keys_;
};

testing::SoftHsmEnv* Pkcs11BackendTest::env_ = nullptr;
Backend* Pkcs11BackendTest::backend_ = nullptr;
std::map<std::string, v1::Key>* Pkcs11BackendTest::keys_ = nullptr;

void ExpectStatus(const absl::Status& status, absl::StatusCode code,
                  const std::string& part) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(status.message(), HasSubstr(part)) << status;
}

TEST_F(Pkcs11BackendTest, ListsTheDemoKeys) {
  absl::StatusOr<std::vector<v1::Key>> keys =
      backend().ListKeys(v1::ListKeysRequest(), Ctx());
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::map<std::string, v1::Key> by_label;
  for (const v1::Key& key : *keys) by_label[key.label()] = key;
  for (const char* label :
       {"rsa-2048", "rsa-3072", "ec-p256", "ec-p384", "ed25519"}) {
    ASSERT_TRUE(by_label.count(label)) << label;
    const v1::Key& key = by_label[label];
    EXPECT_EQ(key.key_id(), pkcs11::KeyIdFromSpki(key.public_key_der()));
    EXPECT_TRUE(pkcs11::IsWellFormedKeyId(key.key_id()));
    EXPECT_EQ(key.backend(), "softhsm");
    EXPECT_EQ(key.token_label(), env_->token_label());
    std::string id_hex;
    for (char c : absl::BytesToHexString(key.id())) {
      if (id_hex.size() % 3 == 0) id_hex.push_back('%');
      id_hex.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
    }
    EXPECT_EQ(key.uri(), absl::StrCat("pkcs11:token=hsmd-test;object=", label,
                                      ";id=", id_hex, ";type=private"));
    // The derived CKA_ID: first 8 bytes of the key id.
    EXPECT_EQ(absl::BytesToHexString(key.id()), key.key_id().substr(0, 16));
    EvpPkeyPtr pkey = PublicKey(key);
    ASSERT_NE(pkey, nullptr);
    if (key.key_type() != v1::KEY_TYPE_ED25519) {  // OpenSSL says 256
      EXPECT_EQ(static_cast<uint32_t>(EVP_PKEY_get_bits(pkey.get())),
                key.size_bits());
    }
    EXPECT_EQ(key.SerializeAsString(), K(label).SerializeAsString());
  }
  EXPECT_EQ(by_label["rsa-2048"].key_type(), v1::KEY_TYPE_RSA);
  EXPECT_EQ(by_label["rsa-2048"].size_bits(), 2048u);
  EXPECT_EQ(by_label["rsa-3072"].size_bits(), 3072u);
  EXPECT_THAT(by_label["rsa-2048"].allowed_operations(),
              UnorderedElementsAre(v1::OPERATION_SIGN, v1::OPERATION_DECRYPT));
  EXPECT_EQ(by_label["ec-p256"].key_type(), v1::KEY_TYPE_EC);
  EXPECT_EQ(by_label["ec-p256"].curve(), v1::CURVE_P256);
  EXPECT_EQ(by_label["ec-p256"].size_bits(), 256u);
  EXPECT_EQ(by_label["ec-p384"].curve(), v1::CURVE_P384);
  EXPECT_THAT(by_label["ec-p256"].allowed_operations(),
              UnorderedElementsAre(v1::OPERATION_SIGN, v1::OPERATION_DERIVE));
  EXPECT_EQ(by_label["ed25519"].key_type(), v1::KEY_TYPE_ED25519);
  EXPECT_EQ(by_label["ed25519"].curve(), v1::CURVE_ED25519);
  EXPECT_EQ(by_label["ed25519"].size_bits(), 255u);
  EXPECT_EQ(EVP_PKEY_get_id(PublicKey(by_label["ed25519"]).get()),
            EVP_PKEY_ED25519);
}

TEST_F(Pkcs11BackendTest, EcPublicKeysAreNamedCurve) {
  for (const char* label : {"ec-p256", "ec-p384"}) {
    EvpPkeyPtr pkey = PublicKey(K(label));
    char group[64];
    size_t length = 0;
    ASSERT_EQ(EVP_PKEY_get_utf8_string_param(pkey.get(), "group", group,
                                             sizeof(group), &length),
              1);
    EXPECT_STREQ(group,
                 std::string(label) == "ec-p256" ? "prime256v1" : "secp384r1");
    // Re-encoding with OpenSSL's defaults (named curve) gives the same DER.
    absl::StatusOr<std::string> der = pkcs11::EncodeSpki(pkey.get());
    ASSERT_TRUE(der.ok());
    EXPECT_EQ(*der, K(label).public_key_der());
  }
}

TEST_F(Pkcs11BackendTest, ListKeysFilters) {
  v1::ListKeysRequest request;
  request.set_label("ec-p256");
  absl::StatusOr<std::vector<v1::Key>> keys =
      backend().ListKeys(request, Ctx());
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].key_id(), K("ec-p256").key_id());

  request.Clear();
  request.set_uri_filter("pkcs11:token=hsmd-test;object=rsa-3072");
  keys = backend().ListKeys(request, Ctx());
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].label(), "rsa-3072");

  request.set_uri_filter("pkcs11:token=another-token");
  keys = backend().ListKeys(request, Ctx());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->empty());

  request.set_uri_filter("pkcs11:object=%zz");
  keys = backend().ListKeys(request, Ctx());
  ExpectStatus(keys.status(), absl::StatusCode::kInvalidArgument,
               "bad percent-encoding");
}

TEST_F(Pkcs11BackendTest, GetKeyByUriAndKeyIdRoundTrips) {
  for (const auto& [label, key] : *keys_) {
    absl::StatusOr<v1::Key> by_uri = backend().GetKey(UriRef(key.uri()), Ctx());
    ASSERT_TRUE(by_uri.ok()) << by_uri.status();
    EXPECT_EQ(by_uri->SerializeAsString(), key.SerializeAsString()) << label;
    absl::StatusOr<v1::Key> by_id =
        backend().GetKey(IdRef(key.key_id()), Ctx());
    ASSERT_TRUE(by_id.ok()) << by_id.status();
    EXPECT_EQ(by_id->SerializeAsString(), key.SerializeAsString()) << label;
  }
  // A shorter URI naming the same key, and type=public naming the pair.
  absl::StatusOr<v1::Key> key =
      backend().GetKey(UriRef("pkcs11:object=ec-p384;type=public"), Ctx());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->key_id(), K("ec-p384").key_id());
}

TEST_F(Pkcs11BackendTest, KeyIdsAreStableAcrossBackendInstances) {
  absl::StatusOr<std::unique_ptr<Backend>> second =
      NewPkcs11Backend(env_->BackendOptions(2));
  ASSERT_TRUE(second.ok()) << second.status();
  absl::StatusOr<std::vector<v1::Key>> keys =
      (*second)->ListKeys(v1::ListKeysRequest(), Ctx());
  ASSERT_TRUE(keys.ok()) << keys.status();
  int matched = 0;
  for (const v1::Key& key : *keys) {
    auto it = keys_->find(key.label());
    if (it == keys_->end()) continue;
    EXPECT_EQ(key.key_id(), it->second.key_id());
    EXPECT_EQ(key.public_key_der(), it->second.public_key_der());
    ++matched;
  }
  EXPECT_EQ(matched, 5);
  // Shutting the second instance down leaves the first logged in.
  (*second)->Shutdown();
  EXPECT_FALSE((*second)->IsServing());
  v1::SignRequest request = Ecdsa(K("ec-p256"), v1::HASH_ALGORITHM_SHA256);
  request.set_message("still logged in");
  absl::StatusOr<v1::SignResponse> response = backend().Sign(request, Ctx());
  EXPECT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(backend().GetStatus().logged_in());
}

TEST_F(Pkcs11BackendTest, SignsRsaPkcs1WithEveryHash) {
  const std::string message = "hsmd pkcs1 test message";
  for (const char* label : {"rsa-2048", "rsa-3072"}) {
    EvpPkeyPtr pkey = PublicKey(K(label));
    for (v1::HashAlgorithm hash :
         {v1::HASH_ALGORITHM_SHA1, v1::HASH_ALGORITHM_SHA224,
          v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_SHA384,
          v1::HASH_ALGORITHM_SHA512}) {
      for (bool digest_input : {false, true}) {
        v1::SignRequest request = Pkcs1(K(label), hash);
        if (digest_input) {
          request.set_digest(Hash(hash, message));
        } else {
          request.set_message(message);
        }
        absl::StatusOr<v1::SignResponse> response =
            backend().Sign(request, Ctx());
        ASSERT_TRUE(response.ok()) << label << " " << hash << response.status();
        EXPECT_EQ(response->key_id(), K(label).key_id());
        VerifyParams params;
        params.padding = RSA_PKCS1_PADDING;
        params.md = Md(hash);
        EXPECT_TRUE(VerifyDigest(pkey.get(), params, Hash(hash, message),
                                 response->signature()))
            << label << " hash " << hash;
      }
    }
  }
}

TEST_F(Pkcs11BackendTest, SignsRawRsaPkcs1AndMd5Sha1) {
  const v1::Key& key = K("rsa-2048");
  EvpPkeyPtr pkey = PublicKey(key);
  // A DER DigestInfo, as scripts/sign-file produces it.
  const std::string digest = Hash(v1::HASH_ALGORITHM_SHA256, "kernel module");
  const std::string digest_info = absl::StrCat(
      absl::HexStringToBytes("3031300d060960864801650304020105000420"), digest);
  v1::SignRequest request = Pkcs1(key, v1::HASH_ALGORITHM_UNSPECIFIED);
  request.set_digest(digest_info);
  absl::StatusOr<v1::SignResponse> response = backend().Sign(request, Ctx());
  ASSERT_TRUE(response.ok()) << response.status();
  VerifyParams params;
  params.padding = RSA_PKCS1_PADDING;
  params.md = EVP_sha256();
  EXPECT_TRUE(VerifyDigest(pkey.get(), params, digest, response->signature()));

  const std::string md5_sha1 = RandomBytes(36);
  request = Pkcs1(key, v1::HASH_ALGORITHM_MD5_SHA1);
  request.set_digest(md5_sha1);
  response = backend().Sign(request, Ctx());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(RecoverRsaPkcs1(pkey.get(), response->signature()), md5_sha1);
}

TEST_F(Pkcs11BackendTest, SignsRsaPssWithSeveralSaltLengths) {
  const std::string message = "hsmd pss test message";
  struct Case {
    const char* label;
    v1::HashAlgorithm hash;
    v1::HashAlgorithm mgf1;
    std::optional<uint32_t> salt;
  };
  const Case cases[] = {
      {"rsa-2048", v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_UNSPECIFIED,
       std::nullopt},
      {"rsa-2048", v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_UNSPECIFIED,
       0},
      {"rsa-2048", v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_UNSPECIFIED,
       20},
      {"rsa-2048", v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_UNSPECIFIED,
       222},  // the maximum: 256 - 32 - 2
      {"rsa-2048", v1::HASH_ALGORITHM_SHA1, v1::HASH_ALGORITHM_UNSPECIFIED, 20},
      {"rsa-3072", v1::HASH_ALGORITHM_SHA384, v1::HASH_ALGORITHM_UNSPECIFIED,
       std::nullopt},
      {"rsa-3072", v1::HASH_ALGORITHM_SHA512, v1::HASH_ALGORITHM_UNSPECIFIED,
       64},
      // MGF1 hash different from the hash (padded in software for SoftHSM).
      {"rsa-2048", v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_SHA1, 32},
      {"rsa-3072", v1::HASH_ALGORITHM_SHA384, v1::HASH_ALGORITHM_SHA512, 48},
  };
  for (const Case& c : cases) {
    for (bool digest_input : {false, true}) {
      v1::SignRequest request = Pss(K(c.label), c.hash, c.salt, c.mgf1);
      if (digest_input) {
        request.set_digest(Hash(c.hash, message));
      } else {
        request.set_message(message);
      }
      absl::StatusOr<v1::SignResponse> response =
          backend().Sign(request, Ctx());
      ASSERT_TRUE(response.ok()) << c.label << response.status();
      VerifyParams params;
      params.padding = RSA_PKCS1_PSS_PADDING;
      params.md = Md(c.hash);
      params.mgf1 =
          Md(c.mgf1 == v1::HASH_ALGORITHM_UNSPECIFIED ? c.hash : c.mgf1);
      params.salt_length = c.salt.has_value()
                               ? static_cast<int>(*c.salt)
                               : static_cast<int>(EVP_MD_get_size(Md(c.hash)));
      EXPECT_TRUE(VerifyDigest(PublicKey(K(c.label)).get(), params,
                               Hash(c.hash, message), response->signature()))
          << c.label << " hash " << c.hash << " salt " << c.salt.value_or(9999);
    }
  }
}

TEST_F(Pkcs11BackendTest, SignsEcdsaWithMessageAndDigest) {
  const std::string message = "hsmd ecdsa test message";
  struct Case {
    const char* label;
    v1::HashAlgorithm hash;
  };
  for (const Case& c : {Case{"ec-p256", v1::HASH_ALGORITHM_SHA256},
                        Case{"ec-p256", v1::HASH_ALGORITHM_SHA512},
                        Case{"ec-p256", v1::HASH_ALGORITHM_SHA1},
                        Case{"ec-p384", v1::HASH_ALGORITHM_SHA384},
                        Case{"ec-p384", v1::HASH_ALGORITHM_SHA256}}) {
    for (bool digest_input : {false, true}) {
      v1::SignRequest request = Ecdsa(K(c.label), c.hash);
      if (digest_input) {
        request.set_digest(Hash(c.hash, message));
      } else {
        request.set_message(message);
      }
      absl::StatusOr<v1::SignResponse> response =
          backend().Sign(request, Ctx());
      ASSERT_TRUE(response.ok()) << c.label << response.status();
      // DER ECDSA-Sig-Value.
      const unsigned char* p =
          reinterpret_cast<const unsigned char*>(response->signature().data());
      EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, response->signature().size()));
      EXPECT_NE(sig, nullptr);
      VerifyParams params;
      params.md = Md(c.hash);
      EXPECT_TRUE(VerifyDigest(PublicKey(K(c.label)).get(), params,
                               Hash(c.hash, message), response->signature()))
          << c.label << " hash " << c.hash;
    }
  }
}

TEST_F(Pkcs11BackendTest, SignsEd25519) {
  for (const std::string& message :
       {std::string("hsmd ed25519"), RandomBytes(5000)}) {
    v1::SignRequest request = Ed25519(K("ed25519"));
    request.set_message(message);
    absl::StatusOr<v1::SignResponse> response = backend().Sign(request, Ctx());
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->signature().size(), 64u);
    EXPECT_TRUE(VerifyEd25519(PublicKey(K("ed25519")).get(), message,
                              response->signature()));
  }
}

TEST_F(Pkcs11BackendTest, DecryptsPkcs1AndOaep) {
  const v1::Key& key = K("rsa-2048");
  EvpPkeyPtr pkey = PublicKey(key);
  const std::string secret = "a premaster secret of 48 bytes, more or less!!!";

  v1::DecryptRequest request;
  *request.mutable_key() = UriRef(key.uri());
  request.mutable_algorithm()->mutable_rsa_pkcs1();
  request.set_ciphertext(
      Encrypt(pkey.get(), RSA_PKCS1_PADDING, nullptr, nullptr, "", secret));
  absl::StatusOr<v1::DecryptResponse> response =
      backend().Decrypt(request, Ctx());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->plaintext(), secret);
  EXPECT_EQ(response->key_id(), key.key_id());

  struct Case {
    v1::HashAlgorithm hash;
    v1::HashAlgorithm mgf1;
    std::string label;
  };
  for (const Case& c :
       {Case{v1::HASH_ALGORITHM_SHA1, v1::HASH_ALGORITHM_SHA1, ""},
        Case{v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_SHA256, ""},
        Case{v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_SHA1, ""},
        Case{v1::HASH_ALGORITHM_SHA1, v1::HASH_ALGORITHM_SHA1, "a label"},
        Case{v1::HASH_ALGORITHM_SHA512, v1::HASH_ALGORITHM_SHA256,
             std::string("bin\0label", 9)}}) {
    std::string ciphertext = Encrypt(pkey.get(), RSA_PKCS1_OAEP_PADDING,
                                     Md(c.hash), Md(c.mgf1), c.label, secret);
    response = backend().Decrypt(Oaep(key, c.hash, c.mgf1, c.label, ciphertext),
                                 Ctx());
    ASSERT_TRUE(response.ok()) << c.hash << " " << response.status();
    EXPECT_EQ(response->plaintext(), secret) << c.hash;
    // UNSPECIFIED MGF1 means the same as the hash.
    if (c.mgf1 == c.hash) {
      response =
          backend().Decrypt(Oaep(key, c.hash, v1::HASH_ALGORITHM_UNSPECIFIED,
                                 c.label, ciphertext),
                            Ctx());
      ASSERT_TRUE(response.ok()) << response.status();
      EXPECT_EQ(response->plaintext(), secret);
    }
  }
  // rsa-3072 too.
  EvpPkeyPtr pkey3072 = PublicKey(K("rsa-3072"));
  response =
      backend().Decrypt(Oaep(K("rsa-3072"), v1::HASH_ALGORITHM_SHA256,
                             v1::HASH_ALGORITHM_SHA256, "",
                             Encrypt(pkey3072.get(), RSA_PKCS1_OAEP_PADDING,
                                     EVP_sha256(), EVP_sha256(), "", secret)),
                        Ctx());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->plaintext(), secret);
}

TEST_F(Pkcs11BackendTest, DecryptionFailuresSayNothingMore) {
  const v1::Key& key = K("rsa-2048");
  EvpPkeyPtr pkey = PublicKey(key);
  const std::string ciphertext =
      Encrypt(pkey.get(), RSA_PKCS1_OAEP_PADDING, EVP_sha256(), EVP_sha256(),
              "right label", "secret");
  // Wrong label (software OAEP path), wrong hash, and garbage (native path).
  for (const v1::DecryptRequest& request :
       {Oaep(key, v1::HASH_ALGORITHM_SHA256, v1::HASH_ALGORITHM_SHA256,
             "wrong label", ciphertext),
        Oaep(key, v1::HASH_ALGORITHM_SHA384, v1::HASH_ALGORITHM_SHA256,
             "right label", ciphertext),
        Oaep(key, v1::HASH_ALGORITHM_SHA1, v1::HASH_ALGORITHM_SHA1, "",
             RandomBytes(256))}) {
    absl::StatusOr<v1::DecryptResponse> response =
        backend().Decrypt(request, Ctx());
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(response.status().message(), "decryption failed");
    std::optional<v1::ErrorDetail> detail = GetErrorDetail(response.status());
    if (detail.has_value()) {
      EXPECT_EQ(detail->backend_code_name(), "");
      EXPECT_EQ(detail->key(), key.uri());
    }
  }
}

TEST_F(Pkcs11BackendTest, RejectsBadSignRequests) {
  const v1::Key& rsa = K("rsa-2048");
  const v1::Key& ec = K("ec-p256");
  const v1::Key& ed = K("ed25519");
  struct Case {
    v1::SignRequest request;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  auto add = [&](v1::SignRequest request, const std::string& message,
                 absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
    cases.push_back({std::move(request), code, message});
  };
  {
    v1::SignRequest r = Pss(ec, v1::HASH_ALGORITHM_SHA256, std::nullopt);
    r.set_message("m");
    add(r, "algorithm rsa_pss does not fit key type EC");
  }
  {
    v1::SignRequest r = Pkcs1(ed, v1::HASH_ALGORITHM_SHA256);
    r.set_message("m");
    add(r, "algorithm rsa_pkcs1 does not fit key type ED25519");
  }
  {
    v1::SignRequest r = Ecdsa(rsa, v1::HASH_ALGORITHM_SHA256);
    r.set_message("m");
    add(r, "algorithm ecdsa does not fit key type RSA");
  }
  {
    v1::SignRequest r = Ed25519(ec);
    r.set_message("m");
    add(r, "algorithm ed25519 does not fit key type EC");
  }
  {
    v1::SignRequest r;
    *r.mutable_key() = UriRef(rsa.uri());
    r.set_message("m");
    add(r, "signature algorithm is missing");
  }
  {
    v1::SignRequest r = Pss(rsa, v1::HASH_ALGORITHM_UNSPECIFIED, std::nullopt);
    r.set_message("m");
    add(r, "rsa_pss hash is missing");
  }
  {
    v1::SignRequest r = Ecdsa(ec, v1::HASH_ALGORITHM_UNSPECIFIED);
    r.set_message("m");
    add(r, "ecdsa hash is missing");
  }
  {
    v1::SignRequest r = Ecdsa(ec, v1::HASH_ALGORITHM_SHA256);
    r.set_digest(std::string(31, 'x'));
    add(r, "digest is 31 bytes; SHA256 digests are 32");
  }
  {
    v1::SignRequest r = Pkcs1(rsa, v1::HASH_ALGORITHM_SHA384);
    r.set_digest(std::string(32, 'x'));
    add(r, "digest is 32 bytes; SHA384 digests are 48");
  }
  {
    v1::SignRequest r = Ecdsa(ec, v1::HASH_ALGORITHM_SHA256);
    r.set_message("");
    add(r, "message is empty");
  }
  {
    v1::SignRequest r = Pkcs1(rsa, v1::HASH_ALGORITHM_UNSPECIFIED);
    r.set_digest("");
    add(r, "digest is empty");
  }
  {
    v1::SignRequest r = Ecdsa(ec, v1::HASH_ALGORITHM_SHA256);
    add(r, "input is missing");
  }
  {
    v1::SignRequest r = Ed25519(ed);
    r.set_digest(std::string(32, 'x'));
    add(r, "ed25519 signs the message itself; digest input is not supported");
  }
  {
    v1::SignRequest r = Pss(rsa, v1::HASH_ALGORITHM_SHA256, 223);
    r.set_message("m");
    add(r,
        "salt_length 223 is too large for a 2048-bit key with SHA256 (at "
        "most 222)");
  }
  {
    v1::SignRequest r = Pkcs1(rsa, v1::HASH_ALGORITHM_UNSPECIFIED);
    r.set_digest(std::string(246, 'x'));
    add(r, "rsa_pkcs1 input is 246 bytes; a 2048-bit key takes at most 245");
  }
  {
    v1::SignRequest r = Pkcs1(rsa, v1::HASH_ALGORITHM_UNSPECIFIED);
    r.set_message("m");
    add(r, "message input needs a hash");
  }
  {
    v1::SignRequest r = Pkcs1(rsa, v1::HASH_ALGORITHM_MD5_SHA1);
    r.set_message("m");
    add(r, "hash MD5_SHA1 takes a 36-byte digest, not a message");
  }
  {
    v1::SignRequest r = Pkcs1(rsa, v1::HASH_ALGORITHM_MD5_SHA1);
    r.set_digest(std::string(20, 'x'));
    add(r, "digest is 20 bytes; MD5_SHA1 digests are 36");
  }
  {
    v1::SignRequest r = Ecdsa(ec, v1::HASH_ALGORITHM_SM3);
    r.set_message("m");
    add(r, "ecdsa hash SM3 is not supported");
  }
  {
    v1::SignRequest r = Pss(rsa, v1::HASH_ALGORITHM_MD5_SHA1, std::nullopt);
    r.set_digest(std::string(36, 'x'));
    add(r, "rsa_pss hash MD5_SHA1 is not supported");
  }
  for (const Case& c : cases) {
    absl::StatusOr<v1::SignResponse> response =
        backend().Sign(c.request, Ctx());
    ExpectStatus(response.status(), c.code, c.message);
  }
}

TEST_F(Pkcs11BackendTest, RejectsBadDecryptRequests) {
  const v1::Key& rsa = K("rsa-2048");
  {
    v1::DecryptRequest r;
    *r.mutable_key() = UriRef(rsa.uri());
    r.set_ciphertext(std::string(256, 'x'));
    ExpectStatus(backend().Decrypt(r, Ctx()).status(),
                 absl::StatusCode::kInvalidArgument,
                 "decryption algorithm is missing");
  }
  ExpectStatus(backend()
                   .Decrypt(Oaep(rsa, v1::HASH_ALGORITHM_SHA256,
                                 v1::HASH_ALGORITHM_UNSPECIFIED, "",
                                 std::string(255, 'x')),
                            Ctx())
                   .status(),
               absl::StatusCode::kInvalidArgument,
               "ciphertext is 255 bytes; a 2048-bit key needs exactly 256");
  ExpectStatus(backend()
                   .Decrypt(Oaep(rsa, v1::HASH_ALGORITHM_SHA256,
                                 v1::HASH_ALGORITHM_UNSPECIFIED, "", ""),
                            Ctx())
                   .status(),
               absl::StatusCode::kInvalidArgument, "ciphertext is empty");
  ExpectStatus(backend()
                   .Decrypt(Oaep(rsa, v1::HASH_ALGORITHM_UNSPECIFIED,
                                 v1::HASH_ALGORITHM_UNSPECIFIED, "",
                                 std::string(256, 'x')),
                            Ctx())
                   .status(),
               absl::StatusCode::kInvalidArgument, "rsa_oaep hash is missing");
  {
    v1::DecryptRequest r;
    *r.mutable_key() = UriRef(K("ec-p256").uri());
    r.mutable_algorithm()->mutable_rsa_pkcs1();
    r.set_ciphertext(std::string(64, 'x'));
    ExpectStatus(backend().Decrypt(r, Ctx()).status(),
                 absl::StatusCode::kInvalidArgument,
                 "algorithm rsa_pkcs1 does not fit key type EC");
  }
}

TEST_F(Pkcs11BackendTest, OperationsTheKeyDoesNotAllow) {
  v1::GenerateKeyRequest generate;
  generate.set_label("decrypt-only");
  generate.set_key_type(v1::KEY_TYPE_RSA);
  generate.set_rsa_bits(2048);
  generate.add_allowed_operations(v1::OPERATION_DECRYPT);
  absl::StatusOr<v1::Key> decrypt_only = backend().GenerateKey(generate, Ctx());
  ASSERT_TRUE(decrypt_only.ok()) << decrypt_only.status();
  EXPECT_THAT(decrypt_only->allowed_operations(),
              UnorderedElementsAre(v1::OPERATION_DECRYPT));
  v1::SignRequest sign = Pkcs1(*decrypt_only, v1::HASH_ALGORITHM_SHA256);
  sign.set_message("m");
  ExpectStatus(backend().Sign(sign, Ctx()).status(),
               absl::StatusCode::kFailedPrecondition,
               "key \"decrypt-only\" does not allow signing (CKA_SIGN is "
               "false)");

  generate.set_label("sign-only");
  generate.clear_allowed_operations();
  generate.add_allowed_operations(v1::OPERATION_SIGN);
  absl::StatusOr<v1::Key> sign_only = backend().GenerateKey(generate, Ctx());
  ASSERT_TRUE(sign_only.ok()) << sign_only.status();
  v1::DecryptRequest decrypt;
  *decrypt.mutable_key() = UriRef(sign_only->uri());
  decrypt.mutable_algorithm()->mutable_rsa_pkcs1();
  decrypt.set_ciphertext(std::string(256, 'x'));
  ExpectStatus(backend().Decrypt(decrypt, Ctx()).status(),
               absl::StatusCode::kFailedPrecondition,
               "does not allow decryption (CKA_DECRYPT is false)");
  EXPECT_TRUE(backend().DeleteKey(UriRef(decrypt_only->uri()), Ctx()).ok());
  EXPECT_TRUE(backend().DeleteKey(UriRef(sign_only->uri()), Ctx()).ok());
}

TEST_F(Pkcs11BackendTest, UnknownKeysAndBadReferences) {
  v1::SignRequest request = Ecdsa(K("ec-p256"), v1::HASH_ALGORITHM_SHA256);
  request.set_message("m");

  *request.mutable_key() = UriRef("pkcs11:token=hsmd-test;object=no-such-key");
  absl::Status status = backend().Sign(request, Ctx()).status();
  ExpectStatus(status, absl::StatusCode::kNotFound,
               "no key matches pkcs11:token=hsmd-test;object=no-such-key");
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->key(), "pkcs11:token=hsmd-test;object=no-such-key");

  *request.mutable_key() = IdRef(std::string(32, '0'));
  ExpectStatus(backend().Sign(request, Ctx()).status(),
               absl::StatusCode::kNotFound,
               "no key with key_id 00000000000000000000000000000000");
  *request.mutable_key() = IdRef("not-a-key-id");
  ExpectStatus(backend().Sign(request, Ctx()).status(),
               absl::StatusCode::kInvalidArgument,
               "key_id \"not-a-key-id\" is malformed");
  request.clear_key();
  ExpectStatus(backend().Sign(request, Ctx()).status(),
               absl::StatusCode::kInvalidArgument, "key reference is empty");
  ExpectStatus(backend().GetKey(v1::KeyRef(), Ctx()).status(),
               absl::StatusCode::kInvalidArgument, "key reference is empty");
}

TEST_F(Pkcs11BackendTest, MalformedUris) {
  for (const auto& [uri, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"file:/etc/key.pem", "not a pkcs11: URI"},
           {"pkcs11:object=%4", "bad percent-encoding in attribute \"object\""},
           {"pkcs11:objekt=rsa-2048", "unknown path attribute \"objekt\""},
           {"pkcs11:object=rsa-2048?pin-value=1234",
            "\"pin-value\" is not accepted"},
           {"pkcs11:object=rsa-2048;type=secret-key",
            "type=secret-key is not supported"},
       }) {
    ExpectStatus(backend().GetKey(UriRef(uri), Ctx()).status(),
                 absl::StatusCode::kInvalidArgument, message);
    v1::SignRequest request = Pkcs1(K("rsa-2048"), v1::HASH_ALGORITHM_SHA256);
    *request.mutable_key() = UriRef(uri);
    request.set_message("m");
    ExpectStatus(backend().Sign(request, Ctx()).status(),
                 absl::StatusCode::kInvalidArgument, message);
  }
}

TEST_F(Pkcs11BackendTest, UriOfAnotherTokenIsNotFound) {
  absl::Status status =
      backend()
          .GetKey(UriRef("pkcs11:token=other-token;object=rsa-2048"), Ctx())
          .status();
  ExpectStatus(status, absl::StatusCode::kNotFound,
               "no key matches pkcs11:token=other-token;object=rsa-2048 (it "
               "names another token");
}

TEST_F(Pkcs11BackendTest, AmbiguousUri) {
  absl::Status status =
      backend()
          .GetKey(UriRef("pkcs11:token=hsmd-test;type=private"), Ctx())
          .status();
  ExpectStatus(status, absl::StatusCode::kFailedPrecondition,
               "keys; add id= or object= to name one");
  EXPECT_THAT(status.message(),
              HasSubstr("URI pkcs11:token=hsmd-test;type=private matches"));
}

TEST_F(Pkcs11BackendTest, GenerateAndDeleteRoundTrip) {
  v1::GenerateKeyRequest generate;
  generate.set_label("round-trip");
  generate.set_key_type(v1::KEY_TYPE_EC);
  generate.set_curve(v1::CURVE_P521);
  absl::StatusOr<v1::Key> key = backend().GenerateKey(generate, Ctx());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->curve(), v1::CURVE_P521);
  EXPECT_EQ(key->size_bits(), 521u);
  EXPECT_EQ(key->id().size(), 8u);

  v1::SignRequest sign = Ecdsa(*key, v1::HASH_ALGORITHM_SHA512);
  sign.set_message("p-521");
  absl::StatusOr<v1::SignResponse> signature = backend().Sign(sign, Ctx());
  ASSERT_TRUE(signature.ok()) << signature.status();
  VerifyParams params;
  params.md = EVP_sha512();
  EXPECT_TRUE(VerifyDigest(PublicKey(*key).get(), params,
                           Hash(v1::HASH_ALGORITHM_SHA512, "p-521"),
                           signature->signature()));

  // Same label again, and an id already in use.
  ExpectStatus(backend().GenerateKey(generate, Ctx()).status(),
               absl::StatusCode::kAlreadyExists,
               "label \"round-trip\" is already in use");
  generate.set_label("round-trip-2");
  generate.set_id(key->id());
  ExpectStatus(backend().GenerateKey(generate, Ctx()).status(),
               absl::StatusCode::kAlreadyExists, "is already in use");

  absl::StatusOr<uint32_t> deleted =
      backend().DeleteKey(UriRef(key->uri()), Ctx());
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 2u);  // private + public
  ExpectStatus(backend().GetKey(UriRef(key->uri()), Ctx()).status(),
               absl::StatusCode::kNotFound, "no key matches");
  ExpectStatus(backend().Sign(sign, Ctx()).status(),
               absl::StatusCode::kNotFound, "no key matches");
  ExpectStatus(backend().DeleteKey(IdRef(key->key_id()), Ctx()).status(),
               absl::StatusCode::kNotFound, "no key with key_id");

  // With an explicit id, then delete by key id.
  generate.set_label("explicit-id");
  generate.set_id(std::string("\x01\x02\x03", 3));
  generate.set_key_type(v1::KEY_TYPE_ED25519);
  generate.set_curve(v1::CURVE_UNSPECIFIED);
  key = backend().GenerateKey(generate, Ctx());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->id(), std::string("\x01\x02\x03", 3));
  EXPECT_EQ(
      key->uri(),
      "pkcs11:token=hsmd-test;object=explicit-id;id=%01%02%03;type=private");
  deleted = backend().DeleteKey(IdRef(key->key_id()), Ctx());
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 2u);
}

TEST_F(Pkcs11BackendTest, RejectsBadGenerateRequests) {
  struct Case {
    std::function<void(v1::GenerateKeyRequest&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](v1::GenerateKeyRequest& r) { r.clear_label(); }, "label is missing"},
      {[](v1::GenerateKeyRequest& r) { r.set_rsa_bits(1024); },
       "rsa_bits 1024 is not supported"},
      {[](v1::GenerateKeyRequest& r) {
         r.set_key_type(v1::KEY_TYPE_UNSPECIFIED);
       },
       "key_type is missing"},
      {[](v1::GenerateKeyRequest& r) {
         r.set_key_type(v1::KEY_TYPE_EC);
         r.set_curve(v1::CURVE_ED25519);
       },
       "curve Ed25519 is not supported for EC keys"},
      {[](v1::GenerateKeyRequest& r) {
         r.set_key_type(v1::KEY_TYPE_EC);
         r.set_curve(v1::CURVE_P256);
         r.add_allowed_operations(v1::OPERATION_DECRYPT);
       },
       "operation DECRYPT is only possible with RSA keys"},
      {[](v1::GenerateKeyRequest& r) { r.set_key_type(v1::KEY_TYPE_SM2); },
       "key_type is not supported by the PKCS#11 backend"},
  };
  for (const Case& c : cases) {
    v1::GenerateKeyRequest request;
    request.set_label("bad");
    request.set_key_type(v1::KEY_TYPE_RSA);
    request.set_rsa_bits(2048);
    c.edit(request);
    ExpectStatus(backend().GenerateKey(request, Ctx()).status(),
                 absl::StatusCode::kInvalidArgument, c.message);
  }
}

TEST_F(Pkcs11BackendTest, StaleHandlesAreReResolvedByUri) {
  v1::GenerateKeyRequest generate;
  generate.set_label("stale");
  generate.set_id("\x42\x42");
  generate.set_key_type(v1::KEY_TYPE_EC);
  generate.set_curve(v1::CURVE_P256);
  absl::StatusOr<v1::Key> old_key = backend().GenerateKey(generate, Ctx());
  ASSERT_TRUE(old_key.ok()) << old_key.status();
  const std::string uri = "pkcs11:token=hsmd-test;object=stale";
  v1::SignRequest sign = Ecdsa(*old_key, v1::HASH_ALGORITHM_SHA256);
  *sign.mutable_key() = UriRef(uri);
  sign.set_message("before");
  absl::StatusOr<v1::SignResponse> response = backend().Sign(sign, Ctx());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->key_id(), old_key->key_id());

  // Another owner of the token replaces the key behind our cached handle.
  absl::StatusOr<std::unique_ptr<Backend>> other =
      NewPkcs11Backend(env_->BackendOptions(1));
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->DeleteKey(UriRef(uri), Ctx()).ok());
  absl::StatusOr<v1::Key> new_key = (*other)->GenerateKey(generate, Ctx());
  ASSERT_TRUE(new_key.ok()) << new_key.status();
  ASSERT_NE(new_key->key_id(), old_key->key_id());

  sign.set_message("after");
  response = backend().Sign(sign, Ctx());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->key_id(), new_key->key_id());
  VerifyParams params;
  params.md = EVP_sha256();
  EXPECT_TRUE(VerifyDigest(PublicKey(*new_key).get(), params,
                           Hash(v1::HASH_ALGORITHM_SHA256, "after"),
                           response->signature()));
  // The old key's id names nothing any more.
  *sign.mutable_key() = IdRef(old_key->key_id());
  ExpectStatus(backend().Sign(sign, Ctx()).status(),
               absl::StatusCode::kNotFound, "no key with key_id");
  absl::StatusOr<v1::Key> got = backend().GetKey(UriRef(uri), Ctx());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->key_id(), new_key->key_id());
  EXPECT_TRUE(backend().DeleteKey(UriRef(uri), Ctx()).ok());
}

TEST_F(Pkcs11BackendTest, WrongPinIsAClearErrorAndNotRetried) {
  ASSERT_TRUE(env_->AddToken("pin-test").ok());
  Pkcs11BackendOptions options = env_->BackendOptions();
  options.token_label = "pin-test";
  int calls = 0;
  options.pin_source = [&calls]() -> absl::StatusOr<SecretString> {
    ++calls;
    return SecretString("wrong-pin");
  };
  absl::StatusOr<std::unique_ptr<Backend>> backend =
      NewPkcs11Backend(std::move(options));
  ASSERT_FALSE(backend.ok());
  ExpectStatus(backend.status(), absl::StatusCode::kPermissionDenied,
               "token \"pin-test\"");
  EXPECT_THAT(backend.status().message(), HasSubstr("CKR_PIN_INCORRECT"));
  EXPECT_THAT(backend.status().message(),
              HasSubstr("the token rejected the user PIN"));
  EXPECT_THAT(backend.status().message(),
              ::testing::Not(HasSubstr("wrong-pin")));
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(backend.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_code_name(), "CKR_PIN_INCORRECT");
  EXPECT_EQ(detail->backend_function(), "C_Login");
  EXPECT_EQ(calls, 1);

  // A PIN source that fails is reported as such.
  options = env_->BackendOptions();
  options.token_label = "pin-test";
  options.pin_source = []() -> absl::StatusOr<SecretString> {
    return absl::NotFoundError("cannot read /nonexistent/pin");
  };
  backend = NewPkcs11Backend(std::move(options));
  ExpectStatus(backend.status(), absl::StatusCode::kNotFound,
               "reading the PIN for token \"pin-test\"");
}

TEST_F(Pkcs11BackendTest, MissingTokenAndModule) {
  Pkcs11BackendOptions options = env_->BackendOptions();
  options.token_label = "no-such-token";
  absl::StatusOr<std::unique_ptr<Backend>> backend = NewPkcs11Backend(options);
  ExpectStatus(backend.status(), absl::StatusCode::kNotFound,
               "no token matches label \"no-such-token\"");
  EXPECT_THAT(backend.status().message(), HasSubstr("\"hsmd-test\""));

  options = env_->BackendOptions();
  options.module_path = "/nonexistent/libpkcs11.so";
  backend = NewPkcs11Backend(options);
  ExpectStatus(backend.status(), absl::StatusCode::kFailedPrecondition,
               "cannot load PKCS#11 module /nonexistent/libpkcs11.so");

  options = env_->BackendOptions(0);
  ExpectStatus(NewPkcs11Backend(options).status(),
               absl::StatusCode::kInvalidArgument, "session pool size 0");
}

TEST_F(Pkcs11BackendTest, RejectsBadRecoveryOptions) {
  Pkcs11BackendOptions options = env_->BackendOptions();
  options.reinit_backoff_initial = absl::ZeroDuration();
  ExpectStatus(NewPkcs11Backend(options).status(),
               absl::StatusCode::kInvalidArgument,
               "re-initialisation backoff must be positive");
  options = env_->BackendOptions();
  options.reinit_backoff_max = absl::Milliseconds(10);
  ExpectStatus(NewPkcs11Backend(options).status(),
               absl::StatusCode::kInvalidArgument, "at least its start");
  options = env_->BackendOptions();
  options.reinit_drain_timeout = absl::InfiniteDuration();
  ExpectStatus(NewPkcs11Backend(options).status(),
               absl::StatusCode::kInvalidArgument,
               "reinit_drain_timeout inf is out of range");
  options = env_->BackendOptions();
  options.degraded_hold = -absl::Seconds(1);
  ExpectStatus(NewPkcs11Backend(options).status(),
               absl::StatusCode::kInvalidArgument, "degraded_hold -1s");
}

TEST_F(Pkcs11BackendTest, CountersStartAtZero) {
  absl::StatusOr<Pkcs11BackendCounters> counters =
      GetPkcs11BackendCounters(backend());
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->calls_abandoned, 0u);
  EXPECT_EQ(counters->abandoned_calls_running, 0u);
  EXPECT_EQ(counters->reinit_attempts, 0u);
  EXPECT_EQ(counters->relogins, 0u);
  EXPECT_EQ(counters->waiting_for_session, 0u);
}

TEST_F(Pkcs11BackendTest, PoolExhaustionGivesResourceExhausted) {
  absl::StatusOr<std::unique_ptr<Backend>> small =
      NewPkcs11Backend(env_->BackendOptions(1));
  ASSERT_TRUE(small.ok()) << small.status();
  v1::SignRequest sign = Ecdsa(K("ec-p256"), v1::HASH_ALGORITHM_SHA256);
  sign.set_message("m");
  {
    absl::StatusOr<std::unique_ptr<HeldSessionForTesting>> held =
        HoldSessionForTesting(**small, absl::InfiniteFuture());
    ASSERT_TRUE(held.ok()) << held.status();
    EXPECT_EQ((*small)->GetStatus().sessions_in_use(), 1u);
    ExpectStatus((*small)->Sign(sign, ShortCtx()).status(),
                 absl::StatusCode::kResourceExhausted,
                 "no HSM session became free before the deadline (pool size "
                 "1)");
  }
  EXPECT_EQ((*small)->GetStatus().sessions_in_use(), 0u);
  // The freed session serves again (no deadline: this checks the outcome,
  // and a loaded sanitizer run can take longer than ShortCtx's 100 ms).
  absl::StatusOr<v1::SignResponse> after = (*small)->Sign(sign, Ctx());
  EXPECT_TRUE(after.ok()) << after.status();
}

TEST_F(Pkcs11BackendTest, PassedDeadlineIsDeadlineExceeded) {
  RequestContext ctx;
  ctx.deadline = absl::Now() - absl::Seconds(1);
  ExpectStatus(backend().GenerateRandom(16, ctx).status(),
               absl::StatusCode::kDeadlineExceeded, "deadline passed");
}

TEST_F(Pkcs11BackendTest, SixteenThreadsSignConcurrently) {
  const std::vector<std::string> labels = {"ec-p256", "rsa-2048", "ed25519",
                                           "ec-p384"};
  std::atomic<int> failures{0};
  std::atomic<int> verified{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        const v1::Key& key = K(labels[(t + i) % labels.size()]);
        const std::string message = absl::StrCat("thread ", t, " message ", i);
        v1::SignRequest request;
        VerifyParams params;
        if (key.key_type() == v1::KEY_TYPE_RSA) {
          request = Pss(key, v1::HASH_ALGORITHM_SHA256, std::nullopt);
          params.padding = RSA_PKCS1_PSS_PADDING;
          params.md = EVP_sha256();
          params.salt_length = 32;
        } else if (key.key_type() == v1::KEY_TYPE_EC) {
          request = Ecdsa(key, v1::HASH_ALGORITHM_SHA256);
          params.md = EVP_sha256();
        } else {
          request = Ed25519(key);
        }
        request.set_message(message);
        absl::StatusOr<v1::SignResponse> response =
            backend_->Sign(request, Ctx());
        if (!response.ok()) {
          ++failures;
          continue;
        }
        EvpPkeyPtr pkey = PublicKey(key);
        bool ok =
            key.key_type() == v1::KEY_TYPE_ED25519
                ? VerifyEd25519(pkey.get(), message, response->signature())
                : VerifyDigest(pkey.get(), params,
                               Hash(v1::HASH_ALGORITHM_SHA256, message),
                               response->signature());
        if (ok) {
          ++verified;
        } else {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(verified.load(), 16 * 12);
}

TEST_F(Pkcs11BackendTest, GeneratesRandom) {
  absl::StatusOr<std::string> a = backend().GenerateRandom(32, Ctx());
  absl::StatusOr<std::string> b = backend().GenerateRandom(32, Ctx());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
  absl::StatusOr<std::string> big = backend().GenerateRandom(65536, Ctx());
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->size(), 65536u);
  ExpectStatus(backend().GenerateRandom(0, Ctx()).status(),
               absl::StatusCode::kInvalidArgument, "random length 0");
  ExpectStatus(backend().GenerateRandom(65537, Ctx()).status(),
               absl::StatusCode::kInvalidArgument, "random length 65537");
}

TEST_F(Pkcs11BackendTest, StatusAndShutdown) {
  v1::BackendStatus status = backend().GetStatus();
  EXPECT_EQ(status.name(), "softhsm");
  EXPECT_EQ(status.kind(), "pkcs11");
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_READY);
  EXPECT_EQ(status.module_path(), testing::kSoftHsmModulePath);
  EXPECT_FALSE(status.library_description().empty());
  EXPECT_EQ(status.token_label(), "hsmd-test");
  EXPECT_FALSE(status.token_serial().empty());
  EXPECT_EQ(status.token_manufacturer(), "SoftHSM project");
  // Selecting the token by slot id works too.
  Pkcs11BackendOptions by_slot = env_->BackendOptions(1);
  by_slot.token_label.clear();
  by_slot.slot_id = status.slot_id();
  absl::StatusOr<std::unique_ptr<Backend>> slot_backend =
      NewPkcs11Backend(by_slot);
  ASSERT_TRUE(slot_backend.ok()) << slot_backend.status();
  EXPECT_EQ((*slot_backend)->GetStatus().token_label(), "hsmd-test");
  EXPECT_TRUE(status.logged_in());
  EXPECT_EQ(status.sessions_total(), 4u);
  EXPECT_TRUE(backend().IsServing());

  absl::StatusOr<std::unique_ptr<Backend>> other =
      NewPkcs11Backend(env_->BackendOptions(2));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ((*other)->name(), "softhsm");
  EXPECT_EQ((*other)->kind(), "pkcs11");
  (*other)->Shutdown();
  (*other)->Shutdown();  // idempotent
  EXPECT_FALSE((*other)->IsServing());
  status = (*other)->GetStatus();
  EXPECT_EQ(status.state(), v1::BACKEND_STATE_FAILED);
  EXPECT_EQ(status.state_reason(), "shut down");
  EXPECT_EQ(status.token_label(), "hsmd-test");
  EXPECT_FALSE(status.logged_in());
  ExpectStatus((*other)->GenerateRandom(8, Ctx()).status(),
               absl::StatusCode::kUnavailable, "is not serving: shut down");
  EXPECT_TRUE(backend().GetStatus().logged_in());
}

}  // namespace
}  // namespace hsmd::backend
