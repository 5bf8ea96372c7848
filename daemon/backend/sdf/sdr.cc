#include "daemon/backend/sdf/sdr.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/error_detail.h"
#include "daemon/backend/sdf/gmt0018.h"
#include "daemon/backend/sdf/sdr_names.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::sdf {
namespace {

// What the common codes mean for an operator reading a log line.
absl::string_view Hint(int code) {
  switch (code) {
    case SDR_PRKRERR:
      return "the device rejected the key's access password";
    case SDR_PARDENY:
      return "the session does not hold the key's access right";
    case SDR_KEYNOTEXIST:
      return "the device holds no such key at this index";
    case SDR_COMMFAIL:
      return "communication with the device failed";
    case SDR_HARDFAIL:
      return "the device reports a hardware failure";
    case SDR_OPENDEVICE:
      return "the device could not be opened or its handle is invalid";
    case SDR_OPENSESSION:
      return "the session could not be opened or its handle is invalid";
    case SDR_INARGERR:
      return "the device rejected an input (length or value)";
    case SDR_ALGNOTSUPPORT:
    case SDR_ALGMODNOTSUPPORT:
      return "the device does not support this algorithm identifier (see "
             "the algorithm id options)";
    case SDR_ENCDATAERR:
      return "the ciphertext does not decrypt with this key";
    case SDR_NOTSUPPORT:
      return "the device does not support this function";
    default:
      return "";
  }
}

}  // namespace

std::string SdrName(int code) {
  if (const char* name = SdrCodeName(code)) return name;
  const unsigned int u = static_cast<unsigned int>(code);
  if (u > SDR_BASE && u < SDR_BASE + 0x10000) {
    return absl::StrFormat("SDR_BASE+0x%x", u - SDR_BASE);
  }
  return absl::StrFormat("SDR_0x%08x", u);
}

absl::StatusCode SdrToStatusCode(int code) {
  switch (code) {
    case SDR_OK:
      return absl::StatusCode::kOk;
    case SDR_KEYNOTEXIST:
      return absl::StatusCode::kNotFound;
    case SDR_INARGERR:
    case SDR_ENCDATAERR:
    case SDR_ALGNOTSUPPORT:
    case SDR_ALGMODNOTSUPPORT:
    case SDR_KEYTYPEERR:
    case SDR_KEYERR:
    case SDR_VERIFYERR:
      return absl::StatusCode::kInvalidArgument;
    case SDR_PRKRERR:
      return absl::StatusCode::kPermissionDenied;
    case SDR_PARDENY:
    case SDR_STEPERR:
      return absl::StatusCode::kFailedPrecondition;
    case SDR_COMMFAIL:
    case SDR_HARDFAIL:
    case SDR_OPENDEVICE:
    case SDR_OPENSESSION:
      return absl::StatusCode::kUnavailable;
    case SDR_NOBUFFER:
      return absl::StatusCode::kResourceExhausted;
    case SDR_NOTSUPPORT:
      return absl::StatusCode::kUnimplemented;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status SdfError(int code, absl::string_view function,
                      absl::string_view context) {
  std::string message;
  if (!context.empty()) absl::StrAppend(&message, context, ": ");
  absl::StrAppend(&message, function, " failed: ", SdrName(code),
                  absl::StrFormat(" (0x%x)", static_cast<unsigned int>(code)));
  absl::string_view hint = Hint(code);
  if (!hint.empty()) absl::StrAppend(&message, ": ", hint);
  absl::StatusCode status_code = SdrToStatusCode(code);
  // SDR_OK is not an error; report the caller's bug rather than OK.
  if (status_code == absl::StatusCode::kOk) {
    status_code = absl::StatusCode::kInternal;
  }
  absl::Status status(status_code, message);
  v1::ErrorDetail detail;
  detail.set_backend_kind(std::string(kBackendKind));
  detail.set_backend_code_name(SdrName(code));
  detail.set_backend_code(static_cast<unsigned int>(code));
  detail.set_backend_function(std::string(function));
  SetErrorDetail(status, detail);
  return status;
}

std::optional<int> GetSdrCode(const absl::Status& status) {
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  if (!detail.has_value() || detail->backend_kind() != kBackendKind) {
    return std::nullopt;
  }
  return static_cast<int>(static_cast<unsigned int>(detail->backend_code()));
}

void SetErrorKey(absl::Status& status, absl::string_view key) {
  if (status.ok()) return;
  v1::ErrorDetail detail = GetErrorDetail(status).value_or(v1::ErrorDetail());
  detail.set_key(std::string(key));
  SetErrorDetail(status, detail);
}

bool IsDeviceFault(int code) {
  return code == SDR_COMMFAIL || code == SDR_HARDFAIL || code == SDR_OPENDEVICE;
}

bool IsBrokenSession(int code) { return code == SDR_OPENSESSION; }

bool IsPasswordRejection(int code) {
  return code == SDR_PRKRERR || code == SDR_PARDENY;
}

}  // namespace hsmd::backend::sdf
