#include "tools/softsdf/sm2_codec.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hsmd::softsdf {
namespace {

using SecretBignumPtr = OpenSslPtr<BIGNUM, BN_clear_free>;
using EcGroupPtr = OpenSslPtr<EC_GROUP, EC_GROUP_free>;

void FreeSequence(ASN1_SEQUENCE_ANY* seq) {
  sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}
using SequencePtr = OpenSslPtr<ASN1_SEQUENCE_ANY, FreeSequence>;

// SM2 values occupy the low 32 bytes of the 64-byte ECCref fields.
bool FitsSm2Field(const unsigned char* field) {
  for (size_t i = 0; i < SDF_SM2_OFFSET; ++i) {
    if (field[i] != 0) return false;
  }
  return true;
}

absl::Status PutSm2Field(const BIGNUM* bn, unsigned char* field) {
  if (BN_is_negative(bn) || BN_num_bytes(bn) > static_cast<int>(SDF_SM2_LEN)) {
    return absl::InvalidArgumentError("value does not fit in 256 bits");
  }
  std::memset(field, 0, ECCref_MAX_LEN);
  if (BN_bn2binpad(bn, field + SDF_SM2_OFFSET, SDF_SM2_LEN) !=
      static_cast<int>(SDF_SM2_LEN)) {
    return absl::InternalError("BN_bn2binpad failed");
  }
  return absl::OkStatus();
}

unsigned char* CipherC(ECCCipher* cipher) {
  return reinterpret_cast<unsigned char*>(cipher) + offsetof(ECCCipher, C);
}
const unsigned char* CipherC(const ECCCipher& cipher) {
  return reinterpret_cast<const unsigned char*>(&cipher) +
         offsetof(ECCCipher, C);
}

absl::Status PushInteger(ASN1_SEQUENCE_ANY* seq, const unsigned char* field) {
  BignumPtr bn(BN_bin2bn(field + SDF_SM2_OFFSET, SDF_SM2_LEN, nullptr));
  if (bn == nullptr) return absl::ResourceExhaustedError("BN_bin2bn failed");
  ASN1_INTEGER* integer = BN_to_ASN1_INTEGER(bn.get(), nullptr);
  ASN1_TYPE* any = ASN1_TYPE_new();
  if (integer == nullptr || any == nullptr) {
    ASN1_INTEGER_free(integer);
    ASN1_TYPE_free(any);
    return absl::ResourceExhaustedError("out of memory encoding an INTEGER");
  }
  ASN1_TYPE_set(any, V_ASN1_INTEGER, integer);
  if (sk_ASN1_TYPE_push(seq, any) <= 0) {
    ASN1_TYPE_free(any);
    return absl::ResourceExhaustedError("out of memory encoding a SEQUENCE");
  }
  return absl::OkStatus();
}

absl::Status PushOctets(ASN1_SEQUENCE_ANY* seq, const unsigned char* data,
                        size_t len) {
  ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
  ASN1_TYPE* any = ASN1_TYPE_new();
  if (octets == nullptr || any == nullptr ||
      ASN1_OCTET_STRING_set(octets, data, static_cast<int>(len)) != 1) {
    ASN1_OCTET_STRING_free(octets);
    ASN1_TYPE_free(any);
    return absl::ResourceExhaustedError(
        "out of memory encoding an OCTET STRING");
  }
  ASN1_TYPE_set(any, V_ASN1_OCTET_STRING, octets);
  if (sk_ASN1_TYPE_push(seq, any) <= 0) {
    ASN1_TYPE_free(any);
    return absl::ResourceExhaustedError("out of memory encoding a SEQUENCE");
  }
  return absl::OkStatus();
}

absl::StatusOr<BignumPtr> IntegerAt(ASN1_SEQUENCE_ANY* seq, int i,
                                    const char* name) {
  const ASN1_TYPE* any = sk_ASN1_TYPE_value(seq, i);
  if (ASN1_TYPE_get(any) != V_ASN1_INTEGER) {
    return absl::InvalidArgumentError(
        absl::StrCat("SM2Cipher ", name, " is not an INTEGER"));
  }
  BignumPtr bn(ASN1_INTEGER_to_BN(any->value.integer, nullptr));
  if (bn == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("SM2Cipher ", name, " is not a valid INTEGER"));
  }
  if (BN_is_negative(bn.get()) ||
      BN_num_bytes(bn.get()) > static_cast<int>(SDF_SM2_LEN)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SM2Cipher ", name, " is not a 256-bit coordinate"));
  }
  return bn;
}

absl::StatusOr<absl::string_view> OctetsAt(ASN1_SEQUENCE_ANY* seq, int i,
                                           const char* name) {
  const ASN1_TYPE* any = sk_ASN1_TYPE_value(seq, i);
  if (ASN1_TYPE_get(any) != V_ASN1_OCTET_STRING) {
    return absl::InvalidArgumentError(
        absl::StrCat("SM2Cipher ", name, " is not an OCTET STRING"));
  }
  const ASN1_OCTET_STRING* octets = any->value.octet_string;
  return absl::string_view(
      reinterpret_cast<const char*>(ASN1_STRING_get0_data(octets)),
      static_cast<size_t>(ASN1_STRING_length(octets)));
}

struct ParsedCipher {
  BignumPtr x;
  BignumPtr y;
  absl::string_view hash;
  absl::string_view c2;
  SequencePtr owner;  // hash and c2 point into it
};

absl::StatusOr<ParsedCipher> ParseCipher(absl::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = p + der.size();
  SequencePtr seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, der.size()));
  if (seq == nullptr || p != end) {
    return absl::InvalidArgumentError(
        "SM2 ciphertext is not a DER SEQUENCE (GM/T 0009 SM2Cipher)");
  }
  if (sk_ASN1_TYPE_num(seq.get()) != 4) {
    return absl::InvalidArgumentError(
        "SM2Cipher must have 4 fields (x, y, hash, ciphertext)");
  }
  ParsedCipher parsed;
  absl::StatusOr<BignumPtr> x = IntegerAt(seq.get(), 0, "x");
  if (!x.ok()) return x.status();
  absl::StatusOr<BignumPtr> y = IntegerAt(seq.get(), 1, "y");
  if (!y.ok()) return y.status();
  absl::StatusOr<absl::string_view> hash = OctetsAt(seq.get(), 2, "hash");
  if (!hash.ok()) return hash.status();
  absl::StatusOr<absl::string_view> c2 = OctetsAt(seq.get(), 3, "ciphertext");
  if (!c2.ok()) return c2.status();
  if (hash->size() != kSm3DigestBytes) {
    return absl::InvalidArgumentError("SM2Cipher hash is not 32 bytes (SM3)");
  }
  if (c2->empty()) {
    return absl::InvalidArgumentError("SM2Cipher ciphertext is empty");
  }
  parsed.x = *std::move(x);
  parsed.y = *std::move(y);
  parsed.hash = *hash;
  parsed.c2 = *c2;
  parsed.owner = std::move(seq);
  return parsed;
}

}  // namespace

absl::StatusOr<EvpPkeyPtr> Sm2PublicKeyFromRef(const ECCrefPublicKey& ref) {
  if (ref.bits != 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("ECCrefPublicKey.bits is ", ref.bits, "; SM2 needs 256"));
  }
  if (!FitsSm2Field(ref.x) || !FitsSm2Field(ref.y)) {
    return absl::InvalidArgumentError(
        "ECCrefPublicKey coordinates exceed 256 bits");
  }
  unsigned char point[1 + 2 * SDF_SM2_LEN];
  point[0] = POINT_CONVERSION_UNCOMPRESSED;
  std::memcpy(point + 1, ref.x + SDF_SM2_OFFSET, SDF_SM2_LEN);
  std::memcpy(point + 1 + SDF_SM2_LEN, ref.y + SDF_SM2_OFFSET, SDF_SM2_LEN);
  char group[] = "SM2";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point,
                                        sizeof(point)),
      OSSL_PARAM_construct_end(),
  };
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "SM2", nullptr));
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1) {
    return absl::InternalError("OpenSSL has no SM2 key management");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    return absl::InvalidArgumentError(
        "ECCrefPublicKey is not a point on the SM2 curve");
  }
  EvpPkeyPtr key(raw);
  EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
    return absl::InvalidArgumentError(
        "ECCrefPublicKey is not a valid SM2 public key");
  }
  return key;
}

absl::Status Sm2PublicKeyToRef(const EVP_PKEY* key, ECCrefPublicKey* ref) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "SM2")) {
    return absl::InvalidArgumentError("not an SM2 key");
  }
  BIGNUM* x_raw = nullptr;
  BIGNUM* y_raw = nullptr;
  const bool got_x =
      EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x_raw) == 1;
  BignumPtr x(x_raw);
  const bool got_y =
      EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y_raw) == 1;
  BignumPtr y(y_raw);
  if (!got_x || !got_y) {
    return absl::InvalidArgumentError("SM2 key has no public point");
  }
  std::memset(ref, 0, sizeof(*ref));
  ref->bits = 256;
  if (absl::Status s = PutSm2Field(x.get(), ref->x); !s.ok()) return s;
  return PutSm2Field(y.get(), ref->y);
}

absl::Status Sm2PrivateKeyToRef(const EVP_PKEY* key, ECCrefPrivateKey* ref) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "SM2")) {
    return absl::InvalidArgumentError("not an SM2 key");
  }
  BIGNUM* d_raw = nullptr;
  const bool got =
      EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d_raw) == 1;
  SecretBignumPtr d(d_raw);
  if (!got) return absl::InvalidArgumentError("SM2 key has no private part");
  std::memset(ref, 0, sizeof(*ref));
  ref->bits = 256;
  return PutSm2Field(d.get(), ref->K);
}

absl::StatusOr<std::string> SignatureToDer(const ECCSignature& sig) {
  if (!FitsSm2Field(sig.r) || !FitsSm2Field(sig.s)) {
    return absl::InvalidArgumentError("ECCSignature r or s exceeds 256 bits");
  }
  BIGNUM* r = BN_bin2bn(sig.r + SDF_SM2_OFFSET, SDF_SM2_LEN, nullptr);
  BIGNUM* s = BN_bin2bn(sig.s + SDF_SM2_OFFSET, SDF_SM2_LEN, nullptr);
  EcdsaSigPtr ecdsa(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || ecdsa == nullptr ||
      ECDSA_SIG_set0(ecdsa.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return absl::ResourceExhaustedError("out of memory encoding a signature");
  }
  const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
  if (len <= 0) return absl::InternalError("i2d_ECDSA_SIG failed");
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(ecdsa.get(), &p) != len) {
    return absl::InternalError("i2d_ECDSA_SIG failed");
  }
  return der;
}

absl::Status SignatureFromDer(absl::string_view der, ECCSignature* sig) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = p + der.size();
  EcdsaSigPtr ecdsa(d2i_ECDSA_SIG(nullptr, &p, der.size()));
  if (ecdsa == nullptr || p != end) {
    return absl::InvalidArgumentError(
        "SM2 signature is not a DER SEQUENCE { r INTEGER, s INTEGER }");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(ecdsa.get(), &r, &s);
  std::memset(sig, 0, sizeof(*sig));
  if (!PutSm2Field(r, sig->r).ok() || !PutSm2Field(s, sig->s).ok()) {
    return absl::InvalidArgumentError(
        "SM2 signature r or s is negative or exceeds 256 bits");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CipherToDer(const ECCCipher& cipher,
                                        size_t max_c_len) {
  if (cipher.L == 0 || cipher.L > max_c_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ECCCipher.L is ", cipher.L, "; must be in [1, ", max_c_len, "]"));
  }
  if (!FitsSm2Field(cipher.x) || !FitsSm2Field(cipher.y)) {
    return absl::InvalidArgumentError("ECCCipher x or y exceeds 256 bits");
  }
  SequencePtr seq(sk_ASN1_TYPE_new_null());
  if (seq == nullptr) return absl::ResourceExhaustedError("out of memory");
  if (absl::Status s = PushInteger(seq.get(), cipher.x); !s.ok()) return s;
  if (absl::Status s = PushInteger(seq.get(), cipher.y); !s.ok()) return s;
  if (absl::Status s = PushOctets(seq.get(), cipher.M, sizeof(cipher.M));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = PushOctets(seq.get(), CipherC(cipher), cipher.L);
      !s.ok()) {
    return s;
  }
  const int len = i2d_ASN1_SEQUENCE_ANY(seq.get(), nullptr);
  if (len <= 0) return absl::InternalError("encoding SM2Cipher failed");
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ASN1_SEQUENCE_ANY(seq.get(), &p) != len) {
    return absl::InternalError("encoding SM2Cipher failed");
  }
  return der;
}

absl::Status CipherFromDer(absl::string_view der, size_t c_capacity,
                           ECCCipher* cipher) {
  absl::StatusOr<ParsedCipher> parsed = ParseCipher(der);
  if (!parsed.ok()) return parsed.status();
  if (parsed->c2.size() > c_capacity) {
    return absl::OutOfRangeError(
        absl::StrCat("SM2 ciphertext has ", parsed->c2.size(),
                     " bytes; the ECCCipher has room for ", c_capacity));
  }
  std::memset(cipher, 0, offsetof(ECCCipher, C));
  if (absl::Status s = PutSm2Field(parsed->x.get(), cipher->x); !s.ok()) {
    return s;
  }
  if (absl::Status s = PutSm2Field(parsed->y.get(), cipher->y); !s.ok()) {
    return s;
  }
  std::memcpy(cipher->M, parsed->hash.data(), sizeof(cipher->M));
  cipher->L = static_cast<unsigned int>(parsed->c2.size());
  std::memcpy(CipherC(cipher), parsed->c2.data(), parsed->c2.size());
  return absl::OkStatus();
}

EccCipherBuffer::EccCipherBuffer(size_t c_capacity)
    : c_capacity_(c_capacity),
      bytes_(new unsigned char[SDF_ECCCIPHER_SIZE(c_capacity)]()) {}

absl::StatusOr<EccCipherBuffer> CipherFromDer(absl::string_view der) {
  absl::StatusOr<ParsedCipher> parsed = ParseCipher(der);
  if (!parsed.ok()) return parsed.status();
  EccCipherBuffer buffer(parsed->c2.size());
  if (absl::Status s = CipherFromDer(der, buffer.c_capacity(), buffer.get());
      !s.ok()) {
    return s;
  }
  return buffer;
}

absl::StatusOr<std::string> Sm2Z(const ECCrefPublicKey& ref,
                                 absl::string_view id) {
  if (id.empty() || id.size() > kSm2MaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("SM2 ID length is ", id.size(), "; must be in [1, ",
                     kSm2MaxIdBytes, "]"));
  }
  absl::StatusOr<EvpPkeyPtr> key = Sm2PublicKeyFromRef(ref);
  if (!key.ok()) return key.status();
  return hsmd::Sm2Z(key->get(), id);
}

}  // namespace hsmd::softsdf
