#include "daemon/backend/pkcs11/signing.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <string>

#include "common/openssl_ptr.h"
#include "daemon/backend/pkcs11/spki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend::pkcs11 {
namespace {

using ::testing::HasSubstr;

// An RSA key made in software, described like a token key.
struct SoftwareRsaKey {
  EvpPkeyPtr pkey;
  v1::Key key;
};

SoftwareRsaKey MakeRsaKey() {
  SoftwareRsaKey out;
  out.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  out.key.set_key_type(v1::KEY_TYPE_RSA);
  out.key.set_size_bits(2048);
  out.key.add_allowed_operations(v1::OPERATION_SIGN);
  out.key.add_allowed_operations(v1::OPERATION_DECRYPT);
  out.key.set_public_key_der(EncodeSpki(out.pkey.get()).value());
  return out;
}

// What CKM_RSA_X_509 computes: the raw private-key operation.
std::string RawRsa(EVP_PKEY* pkey, const std::string& input) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
  EXPECT_EQ(EVP_PKEY_sign_init(ctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_NO_PADDING), 1);
  std::string out(256, '\0');
  size_t length = out.size();
  EXPECT_EQ(EVP_PKEY_sign(ctx.get(),
                          reinterpret_cast<unsigned char*>(out.data()), &length,
                          reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()),
            1);
  out.resize(length);
  return out;
}

TEST(SigningTest, SoftwarePssVerifiesWithOpenSsl) {
  SoftwareRsaKey rsa = MakeRsaKey();
  v1::SignRequest request;
  v1::RsaPssSignature* pss = request.mutable_algorithm()->mutable_rsa_pss();
  pss->set_hash(v1::HASH_ALGORITHM_SHA256);
  pss->set_mgf1_hash(v1::HASH_ALGORITHM_SHA1);
  pss->set_salt_length(17);
  request.set_message("software pss");
  ModuleQuirks quirks;
  quirks.pss_mgf1_must_match_hash = true;
  absl::StatusOr<SignPlan> plan = PlanSign(rsa.key, request, quirks);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mechanism_type, CKM_RSA_X_509);
  EXPECT_EQ(plan->data.size(), 256u);
  const std::string signature = RawRsa(rsa.pkey.get(), plan->data);

  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(rsa.pkey.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_verify_init(ctx.get()), 1);
  EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING);
  EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256());
  EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha1());
  EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), 17);
  unsigned char digest[32];
  unsigned int digest_length = 0;
  EVP_Digest("software pss", 12, digest, &digest_length, EVP_sha256(), nullptr);
  EXPECT_EQ(
      EVP_PKEY_verify(ctx.get(),
                      reinterpret_cast<const unsigned char*>(signature.data()),
                      signature.size(), digest, digest_length),
      1);

  // Without the quirk the module's own PSS mechanism is used.
  plan = PlanSign(rsa.key, request, ModuleQuirks());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->mechanism_type, CKM_RSA_PKCS_PSS);
  EXPECT_TRUE(plan->software_fallback_possible);
  EXPECT_EQ(plan->pss_params.hashAlg, CKM_SHA256);
  EXPECT_EQ(plan->pss_params.mgf, CKG_MGF1_SHA1);
  EXPECT_EQ(plan->pss_params.sLen, 17u);
  EXPECT_EQ(plan->data.size(), 32u);
}

TEST(SigningTest, Pkcs1PrependsDigestInfo) {
  SoftwareRsaKey rsa = MakeRsaKey();
  v1::SignRequest request;
  request.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_SHA1);
  request.set_digest(std::string(20, '\xab'));
  absl::StatusOr<SignPlan> plan = PlanSign(rsa.key, request, ModuleQuirks());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mechanism_type, CKM_RSA_PKCS);
  EXPECT_EQ(plan->data, std::string("\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02"
                                    "\x1a\x05\x00\x04\x14",
                                    15) +
                            std::string(20, '\xab'));
}

TEST(SigningTest, OaepPlans) {
  SoftwareRsaKey rsa = MakeRsaKey();
  ModuleQuirks softhsm;
  softhsm.oaep_sha1_only_ignores_label = true;
  v1::DecryptRequest request;
  request.set_ciphertext(std::string(256, 'x'));
  v1::RsaOaepDecryption* oaep = request.mutable_algorithm()->mutable_rsa_oaep();
  oaep->set_hash(v1::HASH_ALGORITHM_SHA1);

  absl::StatusOr<DecryptPlan> plan = PlanDecrypt(rsa.key, request, softhsm);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mechanism_type, CKM_RSA_PKCS_OAEP);
  EXPECT_FALSE(plan->software_oaep);

  oaep->set_label("label");
  plan = PlanDecrypt(rsa.key, request, softhsm);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->mechanism_type, CKM_RSA_X_509);
  EXPECT_TRUE(plan->software_oaep);

  oaep->clear_label();
  oaep->set_hash(v1::HASH_ALGORITHM_SHA256);
  plan = PlanDecrypt(rsa.key, request, softhsm);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->software_oaep);

  oaep->set_label("label");
  plan = PlanDecrypt(rsa.key, request, ModuleQuirks());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->mechanism_type, CKM_RSA_PKCS_OAEP);
  CK_MECHANISM mechanism = plan->mechanism();
  auto* params = static_cast<CK_RSA_PKCS_OAEP_PARAMS*>(mechanism.pParameter);
  EXPECT_EQ(params->hashAlg, CKM_SHA256);
  EXPECT_EQ(params->mgf, CKG_MGF1_SHA256);
  EXPECT_EQ(params->source, CKZ_DATA_SPECIFIED);
  EXPECT_EQ(std::string(static_cast<char*>(params->pSourceData),
                        params->ulSourceDataLen),
            "label");
}

TEST(SigningTest, EcdsaRawToDer) {
  std::string raw(64, '\0');
  raw[31] = 5;       // r = 5
  raw[32] = '\x80';  // s has its top bit set
  absl::StatusOr<std::string> der = EcdsaRawToDer(raw);
  ASSERT_TRUE(der.ok()) << der.status();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der->data());
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, der->size()));
  ASSERT_NE(sig, nullptr);
  EXPECT_EQ(BN_get_word(ECDSA_SIG_get0_r(sig.get())), 5u);
  EXPECT_EQ(BN_num_bits(ECDSA_SIG_get0_s(sig.get())), 256);
  EXPECT_EQ(EcdsaRawToDer("abc").status().code(), absl::StatusCode::kInternal);
}

TEST(SigningTest, HashNames) {
  EXPECT_EQ(HashName(v1::HASH_ALGORITHM_SHA384), "SHA384");
  EXPECT_EQ(HashName(v1::HASH_ALGORITHM_MD5_SHA1), "MD5_SHA1");
  EXPECT_EQ(FindHash(v1::HASH_ALGORITHM_SM3), nullptr);
  EXPECT_EQ(FindHash(v1::HASH_ALGORITHM_SHA512)->length, 64u);
  EXPECT_THAT(KeyTypeName(v1::KEY_TYPE_ED25519), HasSubstr("ED25519"));
}

}  // namespace
}  // namespace hsmd::backend::pkcs11
