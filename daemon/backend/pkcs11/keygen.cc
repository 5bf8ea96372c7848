#include "daemon/backend/pkcs11/keygen.h"

#include "absl/strings/str_cat.h"
#include "daemon/backend/pkcs11/ck_rv.h"
#include "daemon/backend/pkcs11/objects.h"
#include "daemon/backend/pkcs11/spki.h"

namespace hsmd::backend::pkcs11 {

bool AllowsOperation(const v1::GenerateKeyRequest& request,
                     v1::Operation operation) {
  if (request.allowed_operations().empty()) {
    // EC keys also derive by default, so ECDH works with demo keys.
    return operation == v1::OPERATION_SIGN ||
           (operation == v1::OPERATION_DECRYPT &&
            request.key_type() == v1::KEY_TYPE_RSA) ||
           (operation == v1::OPERATION_DERIVE &&
            request.key_type() == v1::KEY_TYPE_EC);
  }
  for (int op : request.allowed_operations()) {
    if (op == operation) return true;
  }
  return false;
}

absl::Status ValidateGenerateKeyRequest(const v1::GenerateKeyRequest& request) {
  if (request.label().empty()) {
    return absl::InvalidArgumentError("label is missing");
  }
  if (request.label().size() > kMaxLabelLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("label is ", request.label().size(),
                     " bytes long; the limit is ", kMaxLabelLength));
  }
  if (request.id().size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("id is ", request.id().size(),
                     " bytes long; the limit is ", kMaxIdLength));
  }
  switch (request.key_type()) {
    case v1::KEY_TYPE_RSA:
      if (request.rsa_bits() != 2048 && request.rsa_bits() != 3072 &&
          request.rsa_bits() != 4096) {
        return absl::InvalidArgumentError(
            absl::StrCat("rsa_bits ", request.rsa_bits(),
                         " is not supported (2048, 3072 or 4096)"));
      }
      break;
    case v1::KEY_TYPE_EC:
      if (request.curve() != v1::CURVE_P256 &&
          request.curve() != v1::CURVE_P384 &&
          request.curve() != v1::CURVE_P521) {
        return absl::InvalidArgumentError(
            absl::StrCat("curve ", CurveName(request.curve()),
                         " is not supported for EC keys (P-256, P-384, "
                         "P-521)"));
      }
      break;
    case v1::KEY_TYPE_ED25519:
      if (request.curve() != v1::CURVE_UNSPECIFIED &&
          request.curve() != v1::CURVE_ED25519) {
        return absl::InvalidArgumentError(
            absl::StrCat("curve ", CurveName(request.curve()),
                         " does not fit key type ED25519"));
      }
      break;
    case v1::KEY_TYPE_UNSPECIFIED:
      return absl::InvalidArgumentError(
          "key_type is missing (RSA, EC or ED25519)");
    default:
      return absl::InvalidArgumentError(
          "key_type is not supported by the PKCS#11 backend (RSA, EC or "
          "ED25519)");
  }
  for (int op : request.allowed_operations()) {
    if (op == v1::OPERATION_SIGN) continue;
    if (op == v1::OPERATION_DECRYPT) {
      if (request.key_type() != v1::KEY_TYPE_RSA) {
        return absl::InvalidArgumentError(
            "operation DECRYPT is only possible with RSA keys");
      }
      continue;
    }
    if (op == v1::OPERATION_DERIVE) {
      if (request.key_type() != v1::KEY_TYPE_EC) {
        return absl::InvalidArgumentError(
            "operation DERIVE is only possible with EC keys");
      }
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "allowed_operations holds an unknown operation (", op, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyPairHandles> GenerateKeyPair(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session,
    const v1::GenerateKeyRequest& request, absl::string_view id) {
  const bool sign = AllowsOperation(request, v1::OPERATION_SIGN);
  const bool decrypt = AllowsOperation(request, v1::OPERATION_DECRYPT);
  const bool derive = AllowsOperation(request, v1::OPERATION_DERIVE);
  AttributeTemplate public_template;
  AttributeTemplate private_template;
  public_template.AddBool(CKA_TOKEN, true)
      .AddBool(CKA_PRIVATE, false)
      .AddBool(CKA_VERIFY, sign)
      .AddBytes(CKA_LABEL, request.label())
      .AddBytes(CKA_ID, id);
  private_template.AddBool(CKA_TOKEN, true)
      .AddBool(CKA_PRIVATE, true)
      .AddBool(CKA_SENSITIVE, true)
      .AddBool(CKA_EXTRACTABLE, false)
      .AddBool(CKA_SIGN, sign)
      .AddBytes(CKA_LABEL, request.label())
      .AddBytes(CKA_ID, id);
  CK_MECHANISM mechanism{0, nullptr, 0};
  switch (request.key_type()) {
    case v1::KEY_TYPE_RSA: {
      mechanism.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
      static constexpr char kF4[] = "\x01\x00\x01";
      public_template.AddUlong(CKA_MODULUS_BITS, request.rsa_bits())
          .AddBytes(CKA_PUBLIC_EXPONENT, absl::string_view(kF4, 3))
          .AddBool(CKA_ENCRYPT, decrypt);
      private_template.AddBool(CKA_DECRYPT, decrypt);
      break;
    }
    case v1::KEY_TYPE_EC:
      mechanism.mechanism = CKM_EC_KEY_PAIR_GEN;
      public_template.AddBytes(CKA_EC_PARAMS,
                               EcParamsForCurve(request.curve()));
      private_template.AddBool(CKA_DERIVE, derive);
      break;
    case v1::KEY_TYPE_ED25519:
      mechanism.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
      public_template.AddBytes(CKA_EC_PARAMS,
                               EcParamsForCurve(v1::CURVE_ED25519));
      break;
    default:
      return absl::InvalidArgumentError("key_type is not supported");
  }
  KeyPairHandles handles;
  CK_RV rv = fns->C_GenerateKeyPair(
      session, &mechanism, public_template.data(), public_template.size(),
      private_template.data(), private_template.size(), &handles.public_key,
      &handles.private_key);
  if (rv != CKR_OK) {
    return Pkcs11Error(
        rv, "C_GenerateKeyPair",
        absl::StrCat("generating key \"", request.label(), "\""));
  }
  return handles;
}

}  // namespace hsmd::backend::pkcs11
