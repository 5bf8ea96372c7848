#include "daemon/backend/pkcs11/derive.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "daemon/backend/ec_peer_key.h"
#include "daemon/backend/pkcs11/ck_rv.h"
#include "daemon/backend/pkcs11/objects.h"

namespace hsmd::backend::pkcs11 {
namespace {

std::string DescribeKey(const v1::Key& key) {
  return key.label().empty() ? absl::StrCat("key ", key.key_id())
                             : absl::StrCat("key \"", key.label(), "\"");
}

bool AllowsDerive(const v1::Key& key) {
  for (int op : key.allowed_operations()) {
    if (op == v1::OPERATION_DERIVE) return true;
  }
  return false;
}

// DER OCTET STRING around `data` (short or long length form).
std::string WrapOctetString(const std::string& data) {
  std::string out(1, '\x04');
  const size_t n = data.size();
  if (n < 0x80) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xff) {
    out.push_back('\x81');
    out.push_back(static_cast<char>(n));
  } else {
    out.push_back('\x82');
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  }
  return out + data;
}

// One C_DeriveKey with `public_data`; the secret object is destroyed when
// this returns.
absl::StatusOr<std::string> DeriveOnce(CK_FUNCTION_LIST* fns,
                                       CK_SESSION_HANDLE session,
                                       CK_OBJECT_HANDLE key_handle,
                                       std::string public_data,
                                       size_t secret_length) {
  CK_ECDH1_DERIVE_PARAMS params{};
  params.kdf = CKD_NULL;
  params.ulSharedDataLen = 0;
  params.pSharedData = nullptr;
  params.ulPublicDataLen = public_data.size();
  params.pPublicData = reinterpret_cast<CK_BYTE*>(public_data.data());
  CK_MECHANISM mechanism{CKM_ECDH1_DERIVE, &params, sizeof(params)};
  AttributeTemplate tmpl;
  tmpl.AddUlong(CKA_CLASS, CKO_SECRET_KEY)
      .AddUlong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
      .AddBool(CKA_TOKEN, false)
      .AddBool(CKA_SENSITIVE, false)
      .AddBool(CKA_EXTRACTABLE, true)
      .AddUlong(CKA_VALUE_LEN, secret_length);
  CK_OBJECT_HANDLE secret = CK_INVALID_HANDLE;
  CK_RV rv = fns->C_DeriveKey(session, &mechanism, key_handle, tmpl.data(),
                              tmpl.size(), &secret);
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_DeriveKey", "ECDH");
  // The session object holds the secret in the clear: never leave it behind.
  absl::Cleanup destroy = [fns, session, secret] {
    fns->C_DestroyObject(session, secret);
  };
  absl::StatusOr<std::optional<std::string>> value =
      GetBytesAttribute(fns, session, secret, CKA_VALUE);
  if (!value.ok()) return value.status();
  if (!value->has_value()) {
    return absl::InternalError(
        "the HSM did not reveal the derived ECDH secret (CKA_VALUE is "
        "unreadable although CKA_SENSITIVE is false)");
  }
  std::string out = **std::move(value);
  if (out.size() != secret_length) {
    const size_t got = out.size();
    OPENSSL_cleanse(out.data(), out.size());
    return absl::InternalError(absl::StrCat("the HSM derived a ", got,
                                            "-byte ECDH secret; expected ",
                                            secret_length));
  }
  return out;
}

}  // namespace

absl::StatusOr<DerivePlan> PlanDerive(const v1::Key& key,
                                      const v1::DeriveRequest& request) {
  if (request.algorithm_case() != v1::DeriveRequest::kEcdh) {
    return absl::InvalidArgumentError("algorithm is required (ecdh)");
  }
  if (key.key_type() != v1::KEY_TYPE_EC) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm ecdh does not fit key type ",
                     v1::KeyType_Name(key.key_type()), " of ", DescribeKey(key),
                     " (ECDH needs an EC key)"));
  }
  if (!AllowsDerive(key)) {
    return absl::FailedPreconditionError(
        absl::StrCat(DescribeKey(key),
                     " does not allow key derivation (CKA_DERIVE is false)"));
  }
  DerivePlan plan;
  absl::StatusOr<std::string> point = EcdhPeerPoint(
      request.ecdh().peer_public_key(), key.curve(), DescribeKey(key));
  if (!point.ok()) return point.status();
  plan.peer_point = *std::move(point);
  plan.secret_length = EcFieldBytes(key.curve());
  return plan;
}

absl::StatusOr<std::string> RunDerive(CK_FUNCTION_LIST* fns,
                                      CK_SESSION_HANDLE session,
                                      CK_OBJECT_HANDLE key_handle,
                                      const DerivePlan& plan) {
  absl::StatusOr<std::string> secret =
      DeriveOnce(fns, session, key_handle, plan.peer_point, plan.secret_length);
  std::optional<CK_RV> rv = GetCkRv(secret.status());
  if (!secret.ok() && rv.has_value() &&
      (*rv == CKR_MECHANISM_PARAM_INVALID || *rv == CKR_ARGUMENTS_BAD ||
       *rv == CKR_DOMAIN_PARAMS_INVALID)) {
    // PKCS#11 2.x modules differ on the public data's form: try the point
    // as a DER OCTET STRING (the CKA_EC_POINT encoding).
    absl::StatusOr<std::string> wrapped =
        DeriveOnce(fns, session, key_handle, WrapOctetString(plan.peer_point),
                   plan.secret_length);
    if (wrapped.ok()) return wrapped;
  }
  return secret;
}

}  // namespace hsmd::backend::pkcs11
