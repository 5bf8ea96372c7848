#include "daemon/backend/pkcs11/ck_rv.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/error_detail.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::pkcs11 {
namespace {

const char* KnownName(CK_RV rv) {
  switch (rv) {
#define HSMD_CKR(name) \
  case name:           \
    return #name;
    HSMD_CKR(CKR_OK)
    HSMD_CKR(CKR_CANCEL)
    HSMD_CKR(CKR_HOST_MEMORY)
    HSMD_CKR(CKR_SLOT_ID_INVALID)
    HSMD_CKR(CKR_GENERAL_ERROR)
    HSMD_CKR(CKR_FUNCTION_FAILED)
    HSMD_CKR(CKR_ARGUMENTS_BAD)
    HSMD_CKR(CKR_NO_EVENT)
    HSMD_CKR(CKR_NEED_TO_CREATE_THREADS)
    HSMD_CKR(CKR_CANT_LOCK)
    HSMD_CKR(CKR_ATTRIBUTE_READ_ONLY)
    HSMD_CKR(CKR_ATTRIBUTE_SENSITIVE)
    HSMD_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    HSMD_CKR(CKR_ATTRIBUTE_VALUE_INVALID)
    HSMD_CKR(CKR_ACTION_PROHIBITED)
    HSMD_CKR(CKR_DATA_INVALID)
    HSMD_CKR(CKR_DATA_LEN_RANGE)
    HSMD_CKR(CKR_DEVICE_ERROR)
    HSMD_CKR(CKR_DEVICE_MEMORY)
    HSMD_CKR(CKR_DEVICE_REMOVED)
    HSMD_CKR(CKR_ENCRYPTED_DATA_INVALID)
    HSMD_CKR(CKR_ENCRYPTED_DATA_LEN_RANGE)
    HSMD_CKR(CKR_FUNCTION_CANCELED)
    HSMD_CKR(CKR_FUNCTION_NOT_PARALLEL)
    HSMD_CKR(CKR_FUNCTION_NOT_SUPPORTED)
    HSMD_CKR(CKR_KEY_HANDLE_INVALID)
    HSMD_CKR(CKR_KEY_SIZE_RANGE)
    HSMD_CKR(CKR_KEY_TYPE_INCONSISTENT)
    HSMD_CKR(CKR_KEY_NOT_NEEDED)
    HSMD_CKR(CKR_KEY_CHANGED)
    HSMD_CKR(CKR_KEY_NEEDED)
    HSMD_CKR(CKR_KEY_INDIGESTIBLE)
    HSMD_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    HSMD_CKR(CKR_KEY_NOT_WRAPPABLE)
    HSMD_CKR(CKR_KEY_UNEXTRACTABLE)
    HSMD_CKR(CKR_MECHANISM_INVALID)
    HSMD_CKR(CKR_MECHANISM_PARAM_INVALID)
    HSMD_CKR(CKR_OBJECT_HANDLE_INVALID)
    HSMD_CKR(CKR_OPERATION_ACTIVE)
    HSMD_CKR(CKR_OPERATION_NOT_INITIALIZED)
    HSMD_CKR(CKR_PIN_INCORRECT)
    HSMD_CKR(CKR_PIN_INVALID)
    HSMD_CKR(CKR_PIN_LEN_RANGE)
    HSMD_CKR(CKR_PIN_EXPIRED)
    HSMD_CKR(CKR_PIN_LOCKED)
    HSMD_CKR(CKR_SESSION_CLOSED)
    HSMD_CKR(CKR_SESSION_COUNT)
    HSMD_CKR(CKR_SESSION_HANDLE_INVALID)
    HSMD_CKR(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    HSMD_CKR(CKR_SESSION_READ_ONLY)
    HSMD_CKR(CKR_SESSION_EXISTS)
    HSMD_CKR(CKR_SESSION_READ_ONLY_EXISTS)
    HSMD_CKR(CKR_SESSION_READ_WRITE_SO_EXISTS)
    HSMD_CKR(CKR_SIGNATURE_INVALID)
    HSMD_CKR(CKR_SIGNATURE_LEN_RANGE)
    HSMD_CKR(CKR_TEMPLATE_INCOMPLETE)
    HSMD_CKR(CKR_TEMPLATE_INCONSISTENT)
    HSMD_CKR(CKR_TOKEN_NOT_PRESENT)
    HSMD_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    HSMD_CKR(CKR_TOKEN_WRITE_PROTECTED)
    HSMD_CKR(CKR_UNWRAPPING_KEY_SIZE_RANGE)
    HSMD_CKR(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT)
    HSMD_CKR(CKR_USER_ALREADY_LOGGED_IN)
    HSMD_CKR(CKR_USER_NOT_LOGGED_IN)
    HSMD_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    HSMD_CKR(CKR_USER_TYPE_INVALID)
    HSMD_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
    HSMD_CKR(CKR_USER_TOO_MANY_TYPES)
    HSMD_CKR(CKR_WRAPPED_KEY_INVALID)
    HSMD_CKR(CKR_WRAPPED_KEY_LEN_RANGE)
    HSMD_CKR(CKR_WRAPPING_KEY_HANDLE_INVALID)
    HSMD_CKR(CKR_WRAPPING_KEY_SIZE_RANGE)
    HSMD_CKR(CKR_WRAPPING_KEY_TYPE_INCONSISTENT)
    HSMD_CKR(CKR_RANDOM_SEED_NOT_SUPPORTED)
    HSMD_CKR(CKR_RANDOM_NO_RNG)
    HSMD_CKR(CKR_DOMAIN_PARAMS_INVALID)
    HSMD_CKR(CKR_CURVE_NOT_SUPPORTED)
    HSMD_CKR(CKR_BUFFER_TOO_SMALL)
    HSMD_CKR(CKR_SAVED_STATE_INVALID)
    HSMD_CKR(CKR_INFORMATION_SENSITIVE)
    HSMD_CKR(CKR_STATE_UNSAVEABLE)
    HSMD_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    HSMD_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    HSMD_CKR(CKR_MUTEX_BAD)
    HSMD_CKR(CKR_MUTEX_NOT_LOCKED)
    HSMD_CKR(CKR_NEW_PIN_MODE)
    HSMD_CKR(CKR_NEXT_OTP)
    HSMD_CKR(CKR_EXCEEDED_MAX_ITERATIONS)
    HSMD_CKR(CKR_FIPS_SELF_TEST_FAILED)
    HSMD_CKR(CKR_LIBRARY_LOAD_FAILED)
    HSMD_CKR(CKR_PIN_TOO_WEAK)
    HSMD_CKR(CKR_PUBLIC_KEY_INVALID)
    HSMD_CKR(CKR_FUNCTION_REJECTED)
#undef HSMD_CKR
    default:
      return nullptr;
  }
}

// A sentence telling an operator what the common codes mean.
absl::string_view Hint(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
      return "the token rejected the user PIN; check the PIN file (hsmd does "
             "not retry, so the token is not locked by repeated attempts)";
    case CKR_PIN_LOCKED:
      return "the user PIN is locked; the security officer must unlock it";
    case CKR_PIN_EXPIRED:
      return "the user PIN has expired and must be changed";
    case CKR_USER_PIN_NOT_INITIALIZED:
      return "the token's user PIN was never initialised (C_InitPIN)";
    case CKR_USER_NOT_LOGGED_IN:
      return "the session is not logged in";
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
      return "the HSM is not available";
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return "the PKCS#11 module is not initialised";
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
      return "the HSM session was closed";
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
      return "the key object no longer exists";
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
      return "the key's attributes do not allow this operation";
    case CKR_KEY_TYPE_INCONSISTENT:
      return "the mechanism does not fit the key type";
    case CKR_MECHANISM_INVALID:
      return "the HSM does not support this mechanism for this key";
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_ARGUMENTS_BAD:
      return "the HSM rejected the mechanism parameters";
    case CKR_DATA_LEN_RANGE:
      return "the input length is out of range for this key";
    default:
      return "";
  }
}

}  // namespace

std::string CkRvName(CK_RV rv) {
  if (const char* name = KnownName(rv)) return name;
  if (rv >= CKR_VENDOR_DEFINED) {
    return absl::StrFormat("CKR_VENDOR_DEFINED+0x%x", rv - CKR_VENDOR_DEFINED);
  }
  return absl::StrFormat("CKR_0x%08x", rv);
}

absl::StatusCode CkRvToStatusCode(CK_RV rv) {
  switch (rv) {
    case CKR_OK:
      return absl::StatusCode::kOk;
    // Handles are re-resolved by the backend before this is reported; what
    // is left is a key that is gone.
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
      return absl::StatusCode::kNotFound;
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_ARGUMENTS_BAD:
    case CKR_ATTRIBUTE_VALUE_INVALID:
    case CKR_TEMPLATE_INCONSISTENT:
    case CKR_TEMPLATE_INCOMPLETE:
    case CKR_KEY_SIZE_RANGE:
    case CKR_CURVE_NOT_SUPPORTED:
    case CKR_DOMAIN_PARAMS_INVALID:
      return absl::StatusCode::kInvalidArgument;
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_TOKEN_WRITE_PROTECTED:
    case CKR_ACTION_PROHIBITED:
      return absl::StatusCode::kFailedPrecondition;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
      return absl::StatusCode::kPermissionDenied;
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_MEMORY:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_COUNT:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_SLOT_ID_INVALID:
    // The login state was lost (all sessions closed); recovery logs in again.
    case CKR_USER_NOT_LOGGED_IN:
      return absl::StatusCode::kUnavailable;
    case CKR_FUNCTION_CANCELED:
      return absl::StatusCode::kCancelled;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status Pkcs11Error(CK_RV rv, absl::string_view function,
                         absl::string_view context) {
  std::string message;
  if (!context.empty()) absl::StrAppend(&message, context, ": ");
  absl::StrAppend(&message, function, " failed: ", CkRvName(rv),
                  absl::StrFormat(" (0x%x)", rv));
  absl::string_view hint = Hint(rv);
  if (!hint.empty()) absl::StrAppend(&message, ": ", hint);
  absl::StatusCode code = CkRvToStatusCode(rv);
  // CKR_OK is not an error; report the caller's bug rather than OK.
  if (code == absl::StatusCode::kOk) code = absl::StatusCode::kInternal;
  absl::Status status(code, message);
  v1::ErrorDetail detail;
  detail.set_backend_kind(std::string(kBackendKind));
  detail.set_backend_code_name(CkRvName(rv));
  detail.set_backend_code(rv);
  detail.set_backend_function(std::string(function));
  SetErrorDetail(status, detail);
  return status;
}

std::optional<CK_RV> GetCkRv(const absl::Status& status) {
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  if (!detail.has_value() || detail->backend_kind() != kBackendKind) {
    return std::nullopt;
  }
  return static_cast<CK_RV>(detail->backend_code());
}

void SetErrorKey(absl::Status& status, absl::string_view key) {
  if (status.ok()) return;
  v1::ErrorDetail detail = GetErrorDetail(status).value_or(v1::ErrorDetail());
  detail.set_key(std::string(key));
  SetErrorDetail(status, detail);
}

bool IsStaleHandle(CK_RV rv) {
  return rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID;
}

bool IsBrokenSession(CK_RV rv) {
  return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
         rv == CKR_OPERATION_ACTIVE || IsDeviceFault(rv);
}

bool IsDeviceFault(CK_RV rv) {
  return rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED ||
         rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED ||
         rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

}  // namespace hsmd::backend::pkcs11
