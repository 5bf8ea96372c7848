#include "daemon/backend/pkcs11/spki.h"

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace hsmd::backend::pkcs11 {
namespace {

using ParamBldPtr = OpenSslPtr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using ParamPtr = OpenSslPtr<OSSL_PARAM, OSSL_PARAM_free>;
using Asn1ObjectPtr = OpenSslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;
using Asn1OctetStringPtr =
    OpenSslPtr<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;

// DER OIDs.
constexpr char kP256Oid[] = "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";
constexpr char kP384Oid[] = "\x06\x05\x2b\x81\x04\x00\x22";
constexpr char kP521Oid[] = "\x06\x05\x2b\x81\x04\x00\x23";
constexpr char kEd25519Oid[] = "\x06\x03\x2b\x65\x70";
// PrintableString "edwards25519" (PKCS#11 3.0's alternative form).
constexpr char kEd25519Name[] =
    "\x13\x0c"
    "edwards25519";

std::string OpenSslError(absl::string_view what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return std::string(what);
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return absl::StrCat(what, ": ", buffer);
}

absl::StatusOr<std::string> FromData(const char* type, OSSL_PARAM* params) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
    return absl::InvalidArgumentError(
        OpenSslError(absl::StrCat("invalid ", type, " public key")));
  }
  EvpPkeyPtr pkey(raw);
  return EncodeSpki(pkey.get());
}

}  // namespace

absl::StatusOr<v1::Curve> CurveFromEcParams(absl::string_view ec_params) {
  if (ec_params == absl::string_view(kP256Oid, sizeof(kP256Oid) - 1)) {
    return v1::CURVE_P256;
  }
  if (ec_params == absl::string_view(kP384Oid, sizeof(kP384Oid) - 1)) {
    return v1::CURVE_P384;
  }
  if (ec_params == absl::string_view(kP521Oid, sizeof(kP521Oid) - 1)) {
    return v1::CURVE_P521;
  }
  // Name the curve for the message when it is an OID OpenSSL knows.
  const unsigned char* p =
      reinterpret_cast<const unsigned char*>(ec_params.data());
  Asn1ObjectPtr oid(d2i_ASN1_OBJECT(nullptr, &p, ec_params.size()));
  ERR_clear_error();
  if (oid != nullptr) {
    char text[128];
    OBJ_obj2txt(text, sizeof(text), oid.get(), 0);
    return absl::InvalidArgumentError(absl::StrCat(
        "EC curve ", text, " is not supported (P-256, P-384, P-521)"));
  }
  return absl::InvalidArgumentError(
      "EC key with explicit curve parameters or unknown CKA_EC_PARAMS is not "
      "supported (named curves P-256, P-384, P-521 only)");
}

bool IsEd25519Params(absl::string_view ec_params) {
  return ec_params == absl::string_view(kEd25519Oid, sizeof(kEd25519Oid) - 1) ||
         ec_params == absl::string_view(kEd25519Name, sizeof(kEd25519Name) - 1);
}

std::string EcParamsForCurve(v1::Curve curve) {
  switch (curve) {
    case v1::CURVE_P256:
      return std::string(kP256Oid, sizeof(kP256Oid) - 1);
    case v1::CURVE_P384:
      return std::string(kP384Oid, sizeof(kP384Oid) - 1);
    case v1::CURVE_P521:
      return std::string(kP521Oid, sizeof(kP521Oid) - 1);
    case v1::CURVE_ED25519:
      return std::string(kEd25519Oid, sizeof(kEd25519Oid) - 1);
    default:
      return "";
  }
}

uint32_t CurveBits(v1::Curve curve) {
  switch (curve) {
    case v1::CURVE_P256:
      return 256;
    case v1::CURVE_P384:
      return 384;
    case v1::CURVE_P521:
      return 521;
    case v1::CURVE_ED25519:
      return 255;
    case v1::CURVE_SM2:
      return 256;
    default:
      return 0;
  }
}

std::string CurveName(v1::Curve curve) {
  switch (curve) {
    case v1::CURVE_P256:
      return "P-256";
    case v1::CURVE_P384:
      return "P-384";
    case v1::CURVE_P521:
      return "P-521";
    case v1::CURVE_ED25519:
      return "Ed25519";
    case v1::CURVE_SM2:
      return "SM2";
    default:
      return "unspecified";
  }
}

std::string UnwrapEcPoint(absl::string_view value,
                          std::initializer_list<size_t> point_lengths) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(value.data());
  Asn1OctetStringPtr octets(
      d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(value.size())));
  ERR_clear_error();
  if (octets != nullptr &&
      p ==
          reinterpret_cast<const unsigned char*>(value.data()) + value.size()) {
    size_t inner = static_cast<size_t>(ASN1_STRING_length(octets.get()));
    for (size_t length : point_lengths) {
      if (inner == length) {
        return std::string(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(octets.get())),
            inner);
      }
    }
  }
  return std::string(value);
}

absl::StatusOr<std::string> RsaSpki(absl::string_view modulus,
                                    absl::string_view public_exponent) {
  if (modulus.empty() || public_exponent.empty()) {
    return absl::InvalidArgumentError("RSA key without modulus or exponent");
  }
  BignumPtr n(BN_bin2bn(reinterpret_cast<const unsigned char*>(modulus.data()),
                        static_cast<int>(modulus.size()), nullptr));
  BignumPtr e(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(public_exponent.data()),
                static_cast<int>(public_exponent.size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (n == nullptr || e == nullptr || bld == nullptr ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get())) {
    return absl::InternalError(OpenSslError("building RSA parameters"));
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (params == nullptr) {
    return absl::InternalError(OpenSslError("building RSA parameters"));
  }
  return FromData("RSA", params.get());
}

absl::StatusOr<std::string> EcSpki(v1::Curve curve,
                                   absl::string_view ec_point) {
  const char* group = nullptr;
  switch (curve) {
    case v1::CURVE_P256:
      group = SN_X9_62_prime256v1;
      break;
    case v1::CURVE_P384:
      group = SN_secp384r1;
      break;
    case v1::CURVE_P521:
      group = SN_secp521r1;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("curve ", CurveName(curve), " is not an ECDSA curve"));
  }
  size_t field = (CurveBits(curve) + 7) / 8;
  std::string point = UnwrapEcPoint(ec_point, {2 * field + 1, field + 1});
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                       group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                        point.data(), point.size())) {
    return absl::InternalError(OpenSslError("building EC parameters"));
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (params == nullptr) {
    return absl::InternalError(OpenSslError("building EC parameters"));
  }
  return FromData("EC", params.get());
}

absl::StatusOr<std::string> Ed25519Spki(absl::string_view ec_point) {
  std::string point = UnwrapEcPoint(ec_point, {32});
  if (point.size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Ed25519 public key is ", point.size(), " bytes; expected 32"));
  }
  EvpPkeyPtr pkey(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr,
      reinterpret_cast<const unsigned char*>(point.data()), point.size()));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        OpenSslError("invalid Ed25519 public key"));
  }
  return EncodeSpki(pkey.get());
}

std::string KeyIdFromSpki(absl::string_view spki_der) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(spki_der.data()),
         spki_der.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 16));
}

bool IsWellFormedKeyId(absl::string_view key_id) {
  if (key_id.size() != 32) return false;
  for (char c : key_id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<EvpPkeyPtr> ParseSpki(absl::string_view spki_der) {
  const unsigned char* p =
      reinterpret_cast<const unsigned char*>(spki_der.data());
  EvpPkeyPtr pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        OpenSslError("not a DER SubjectPublicKeyInfo"));
  }
  return pkey;
}

absl::StatusOr<std::string> EncodeSpki(EVP_PKEY* pkey) {
  int length = i2d_PUBKEY(pkey, nullptr);
  if (length <= 0) {
    return absl::InternalError(OpenSslError("encoding the public key"));
  }
  std::string der(static_cast<size_t>(length), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(pkey, &p) != length) {
    return absl::InternalError(OpenSslError("encoding the public key"));
  }
  return der;
}

}  // namespace hsmd::backend::pkcs11
