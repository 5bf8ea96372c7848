#include "daemon/service/request_validation.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kUri[] = "pkcs11:token=demo;object=ec-p256;type=private";

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

v1::SignRequest EcdsaRequest() {
  v1::SignRequest r;
  r.mutable_key()->set_uri(kUri);
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_SHA256);
  r.set_message("data");
  return r;
}

void ExpectInvalid(const absl::Status& s, const std::string& text) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(Msg(s), HasSubstr(text));
}

TEST(RequestValidationTest, KeyRef) {
  RequestLimits limits;
  EXPECT_TRUE(ValidateSign(EcdsaRequest(), limits).ok());

  v1::SignRequest r = EcdsaRequest();
  r.clear_key();
  ExpectInvalid(ValidateSign(r, limits), "key: a key reference");
  r.mutable_key()->set_uri("");
  ExpectInvalid(ValidateSign(r, limits), "key.uri: must not be empty");
  r.mutable_key()->set_uri("pkcs11:object=" + std::string(5000, 'a'));
  ExpectInvalid(ValidateSign(r, limits), "key.uri: is 5014 bytes; the limit");
  r.mutable_key()->set_uri("pkcs11:object=a?pin-value=1234");
  ExpectInvalid(ValidateSign(r, limits), "pin-value and pin-source");
  r.mutable_key()->set_key_id("ABC");
  ExpectInvalid(ValidateSign(r, limits), "key.key_id: must be 32");
  r.mutable_key()->set_key_id(std::string(32, 'a'));
  EXPECT_TRUE(ValidateSign(r, limits).ok());
}

TEST(RequestValidationTest, SignInputAndAlgorithm) {
  RequestLimits limits{.max_message_bytes = 100};
  v1::SignRequest r = EcdsaRequest();
  r.clear_algorithm();
  ExpectInvalid(ValidateSign(r, limits), "algorithm: is required");

  r = EcdsaRequest();
  r.clear_input();
  ExpectInvalid(ValidateSign(r, limits), "input: message or digest");
  r.set_message("");
  ExpectInvalid(ValidateSign(r, limits), "message: must not be empty");
  r.set_message(std::string(101, 'x'));
  ExpectInvalid(ValidateSign(r, limits),
                "message: is 101 bytes; the limit (limits.max_message_bytes) "
                "is 100");
  r.set_digest(std::string(31, 'x'));
  ExpectInvalid(ValidateSign(r, limits),
                "digest: is 31 bytes; a SHA-256 digest is 32");
  r.set_digest(std::string(32, 'x'));
  EXPECT_TRUE(ValidateSign(r, limits).ok());

  r.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_UNSPECIFIED);
  ExpectInvalid(ValidateSign(r, limits), "algorithm.ecdsa.hash: is required");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(v1::HASH_ALGORITHM_MD5_SHA1);
  ExpectInvalid(ValidateSign(r, limits), "MD5-SHA1 is only valid");
  r.mutable_algorithm()->mutable_ecdsa()->set_hash(
      static_cast<v1::HashAlgorithm>(99));
  ExpectInvalid(ValidateSign(r, limits), "unknown hash algorithm 99");

  r.mutable_algorithm()->mutable_ed25519();
  ExpectInvalid(ValidateSign(r, limits), "ed25519 signs the message itself");
  r.set_message("m");
  EXPECT_TRUE(ValidateSign(r, limits).ok());

  // RSA PKCS#1: raw needs a digest; MD5-SHA1 needs 36 bytes.
  r.mutable_algorithm()->mutable_rsa_pkcs1();
  ExpectInvalid(ValidateSign(r, limits),
                "algorithm.rsa_pkcs1.hash: is required");
  r.set_digest("any DigestInfo");
  EXPECT_TRUE(ValidateSign(r, limits).ok());
  r.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_MD5_SHA1);
  ExpectInvalid(ValidateSign(r, limits), "a MD5-SHA1 digest is 36");
  r.set_digest(std::string(36, 'x'));
  EXPECT_TRUE(ValidateSign(r, limits).ok());
  r.set_message("m");
  ExpectInvalid(ValidateSign(r, limits), "MD5-SHA1 takes the 36-byte digest");

  r.mutable_algorithm()->mutable_rsa_pss();
  ExpectInvalid(ValidateSign(r, limits), "algorithm.rsa_pss.hash: is required");
  r.mutable_algorithm()->mutable_rsa_pss()->set_hash(v1::HASH_ALGORITHM_SHA384);
  r.mutable_algorithm()->mutable_rsa_pss()->set_mgf1_hash(
      v1::HASH_ALGORITHM_MD5_SHA1);
  ExpectInvalid(ValidateSign(r, limits), "algorithm.rsa_pss.mgf1_hash");
  r.mutable_algorithm()->mutable_rsa_pss()->set_mgf1_hash(
      v1::HASH_ALGORITHM_SHA1);
  EXPECT_TRUE(ValidateSign(r, limits).ok());
  r.set_digest(std::string(32, 'x'));
  ExpectInvalid(ValidateSign(r, limits), "a SHA-384 digest is 48");
}

TEST(RequestValidationTest, Decrypt) {
  RequestLimits limits{.max_message_bytes = 1000};
  v1::DecryptRequest r;
  r.mutable_key()->set_uri(kUri);
  r.set_ciphertext(std::string(256, 'c'));
  ExpectInvalid(ValidateDecrypt(r, limits), "algorithm: is required");
  r.mutable_algorithm()->mutable_rsa_pkcs1();
  EXPECT_TRUE(ValidateDecrypt(r, limits).ok());
  r.set_ciphertext("");
  ExpectInvalid(ValidateDecrypt(r, limits), "ciphertext: must not be empty");
  r.set_ciphertext(std::string(1001, 'c'));
  ExpectInvalid(ValidateDecrypt(r, limits), "ciphertext: is 1001 bytes");
  r.set_ciphertext("c");
  r.mutable_algorithm()->mutable_rsa_oaep();
  ExpectInvalid(ValidateDecrypt(r, limits), "algorithm.rsa_oaep.hash");
  r.mutable_algorithm()->mutable_rsa_oaep()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  EXPECT_TRUE(ValidateDecrypt(r, limits).ok());
}

TEST(RequestValidationTest, Derive) {
  v1::DeriveRequest r;
  ExpectInvalid(ValidateDerive(r), "key");
  r.mutable_key()->set_uri(kUri);
  ExpectInvalid(ValidateDerive(r), "algorithm: is required (ecdh)");
  r.mutable_ecdh();
  ExpectInvalid(ValidateDerive(r), "ecdh.peer_public_key: must not be empty");
  r.mutable_ecdh()->set_peer_public_key("garbage");
  ExpectInvalid(ValidateDerive(r), "ecdh.peer_public_key: is neither");
  r.mutable_ecdh()->set_peer_public_key(std::string(2000, '\x04'));
  ExpectInvalid(ValidateDerive(r), "ecdh.peer_public_key: is 2000 bytes");
  // Well-formed enough here; the backend checks the point against the key.
  r.mutable_ecdh()->set_peer_public_key(std::string(65, '\x04'));
  EXPECT_TRUE(ValidateDerive(r).ok());
  r.mutable_ecdh()->set_peer_public_key(std::string("\x30\x59", 2));
  EXPECT_TRUE(ValidateDerive(r).ok());
  EXPECT_EQ(DescribeMechanism(r), "ecdh");
  EXPECT_EQ(DescribeMechanism(v1::DeriveRequest()), "");
}

TEST(RequestValidationTest, GenerateRandom) {
  RequestLimits limits{.max_random_bytes = 64};
  v1::GenerateRandomRequest r;
  ExpectInvalid(ValidateGenerateRandom(r, limits),
                "length: 0 is out of range (1..64)");
  r.set_length(65);
  ExpectInvalid(ValidateGenerateRandom(r, limits), "length: 65");
  r.set_length(64);
  EXPECT_TRUE(ValidateGenerateRandom(r, limits).ok());
}

TEST(RequestValidationTest, GenerateKey) {
  v1::GenerateKeyRequest r;
  ExpectInvalid(ValidateGenerateKey(r), "label: is required");
  r.set_label("k");
  ExpectInvalid(ValidateGenerateKey(r), "key_type: is required");
  r.set_key_type(v1::KEY_TYPE_RSA);
  r.set_rsa_bits(1024);
  ExpectInvalid(ValidateGenerateKey(r), "rsa_bits: 1024 is not 2048");
  r.set_rsa_bits(3072);
  EXPECT_TRUE(ValidateGenerateKey(r).ok());
  r.set_key_type(v1::KEY_TYPE_EC);
  r.set_rsa_bits(0);
  ExpectInvalid(ValidateGenerateKey(r), "curve: EC keys need");
  r.set_curve(v1::CURVE_P384);
  EXPECT_TRUE(ValidateGenerateKey(r).ok());
  r.add_allowed_operations(v1::OPERATION_DERIVE);
  EXPECT_TRUE(ValidateGenerateKey(r).ok());
  r.add_allowed_operations(v1::OPERATION_DECRYPT);
  ExpectInvalid(ValidateGenerateKey(r), "allowed_operations: DECRYPT");
  r.clear_allowed_operations();
  r.set_key_type(v1::KEY_TYPE_ED25519);
  r.set_curve(v1::CURVE_UNSPECIFIED);
  r.add_allowed_operations(v1::OPERATION_DERIVE);
  ExpectInvalid(ValidateGenerateKey(r), "allowed_operations: DERIVE");
}

TEST(RequestValidationTest, ListKeys) {
  v1::ListKeysRequest r;
  EXPECT_TRUE(ValidateListKeys(r).ok());
  r.set_uri_filter(std::string(4097, 'x'));
  ExpectInvalid(ValidateListKeys(r), "uri_filter: is 4097 bytes");
  r.set_uri_filter("pkcs11:token=x?PIN-SOURCE=file:/etc/pin");
  ExpectInvalid(ValidateListKeys(r), "uri_filter: pin-value");
}

TEST(RequestValidationTest, DescribeKeyRefRedactsPins) {
  v1::KeyRef ref;
  ref.set_uri("pkcs11:object=a;type=private?pin-value=1234&module-name=x");
  std::string text = DescribeKeyRef(ref);
  EXPECT_THAT(text, Not(HasSubstr("1234")));
  EXPECT_EQ(text,
            "pkcs11:object=a;type=private?pin-value=REDACTED&module-name=x");
  ref.set_uri("pkcs11:?Pin-Value=secret");
  EXPECT_THAT(DescribeKeyRef(ref), Not(HasSubstr("secret")));
  ref.set_key_id("0123456789abcdef0123456789abcdef");
  EXPECT_EQ(DescribeKeyRef(ref), "key_id:0123456789abcdef0123456789abcdef");
  ref.set_uri(std::string(1000, 'u'));
  EXPECT_EQ(DescribeKeyRef(ref).size(), 515u);
}

TEST(RequestValidationTest, Sm2AndSm4) {
  RequestLimits limits;
  v1::SignRequest sign;
  sign.mutable_key()->set_uri("sdf:device=d;index=1;usage=sign");
  sign.mutable_algorithm()->mutable_sm2();
  sign.set_message("m");
  EXPECT_TRUE(ValidateSign(sign, limits).ok());
  sign.set_digest(std::string(32, 'e'));
  EXPECT_TRUE(ValidateSign(sign, limits).ok());
  sign.set_digest(std::string(20, 'e'));
  ExpectInvalid(ValidateSign(sign, limits), "digest: is 20 bytes");
  sign.set_message("m");
  sign.mutable_algorithm()->mutable_sm2()->set_distinguishing_id(
      std::string(300, 'i'));
  ExpectInvalid(ValidateSign(sign, limits), "algorithm.sm2.distinguishing_id");

  v1::DecryptRequest decrypt;
  decrypt.mutable_key()->set_uri("sdf:device=d;index=1;usage=sm4");
  decrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_CBC);
  decrypt.mutable_algorithm()->mutable_sm4()->set_iv(std::string(16, 'v'));
  decrypt.set_ciphertext(std::string(32, 'c'));
  EXPECT_TRUE(ValidateDecrypt(decrypt, limits).ok());
  decrypt.set_ciphertext(std::string(33, 'c'));
  ExpectInvalid(ValidateDecrypt(decrypt, limits),
                "ciphertext: is 33 bytes; SM4 without padding");
  decrypt.set_ciphertext(std::string(32, 'c'));
  decrypt.mutable_algorithm()->mutable_sm4()->set_iv("short");
  ExpectInvalid(ValidateDecrypt(decrypt, limits),
                "algorithm.sm4.iv: is 5 bytes; CBC needs 16");
  decrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  ExpectInvalid(ValidateDecrypt(decrypt, limits),
                "algorithm.sm4.iv: must be empty for ECB");
  decrypt.mutable_algorithm()->mutable_sm4()->clear_mode();
  ExpectInvalid(ValidateDecrypt(decrypt, limits), "algorithm.sm4.mode");
  decrypt.mutable_algorithm()->mutable_sm2();
  EXPECT_TRUE(ValidateDecrypt(decrypt, limits).ok());

  v1::EncryptRequest encrypt;
  encrypt.mutable_key()->set_uri("sdf:device=d;index=1;usage=sm4");
  encrypt.set_plaintext(std::string(16, 'p'));
  ExpectInvalid(ValidateEncrypt(encrypt, limits), "algorithm: is required");
  encrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  EXPECT_TRUE(ValidateEncrypt(encrypt, limits).ok());
  encrypt.set_plaintext("");
  ExpectInvalid(ValidateEncrypt(encrypt, limits), "plaintext: must not be");
  encrypt.set_plaintext(std::string(17, 'p'));
  ExpectInvalid(ValidateEncrypt(encrypt, limits), "plaintext: is 17 bytes");
  limits.max_message_bytes = 4096;
  encrypt.set_plaintext(std::string(8192, 'p'));
  ExpectInvalid(ValidateEncrypt(encrypt, limits), "limits.max_message_bytes");
}

TEST(RequestValidationTest, DescribeMechanismForTheAudit) {
  v1::SignRequest sign;
  EXPECT_EQ(DescribeMechanism(sign), "");
  sign.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA384);
  sign.set_message("m");
  EXPECT_EQ(DescribeMechanism(sign), "ecdsa-sha-384");
  sign.set_digest(std::string(48, 'd'));
  EXPECT_EQ(DescribeMechanism(sign), "ecdsa-sha-384+digest");
  sign.mutable_algorithm()->mutable_rsa_pkcs1();
  EXPECT_EQ(DescribeMechanism(sign), "rsa-pkcs1-raw+digest");
  sign.set_message("m");
  sign.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(DescribeMechanism(sign), "rsa-pkcs1-sha-256");
  v1::RsaPssSignature* pss = sign.mutable_algorithm()->mutable_rsa_pss();
  pss->set_hash(v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(DescribeMechanism(sign), "rsa-pss-sha-256-mgf1-sha-256");
  pss->set_mgf1_hash(v1::HASH_ALGORITHM_SHA1);
  pss->set_salt_length(20);
  EXPECT_EQ(DescribeMechanism(sign), "rsa-pss-sha-256-mgf1-sha-1-salt-20");
  sign.mutable_algorithm()->mutable_ed25519();
  EXPECT_EQ(DescribeMechanism(sign), "ed25519");

  sign.mutable_algorithm()->mutable_sm2();
  EXPECT_EQ(DescribeMechanism(sign), "sm2-sm3");

  v1::DecryptRequest decrypt;
  EXPECT_EQ(DescribeMechanism(decrypt), "");
  decrypt.mutable_algorithm()->mutable_sm2();
  EXPECT_EQ(DescribeMechanism(decrypt), "sm2");
  decrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_CBC);
  EXPECT_EQ(DescribeMechanism(decrypt), "sm4-cbc");
  v1::EncryptRequest encrypt;
  EXPECT_EQ(DescribeMechanism(encrypt), "");
  encrypt.mutable_algorithm()->mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  EXPECT_EQ(DescribeMechanism(encrypt), "sm4-ecb");
  decrypt.mutable_algorithm()->mutable_rsa_pkcs1();
  EXPECT_EQ(DescribeMechanism(decrypt), "rsa-pkcs1");
  decrypt.mutable_algorithm()->mutable_rsa_oaep()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  EXPECT_EQ(DescribeMechanism(decrypt), "rsa-oaep-sha-256-mgf1-sha-256");
}

}  // namespace
}  // namespace hsmd::service
