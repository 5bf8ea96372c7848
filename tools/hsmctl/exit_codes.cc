#include "tools/hsmctl/exit_codes.h"

#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/error_detail.h"

namespace hsmd::hsmctl {
namespace {

// Payload marking a status created by hsmctl itself; its value is the exit
// code. Never sent anywhere.
constexpr absl::string_view kLocalExitCodeUrl = "hsmctl/exit-code";

absl::Status WithExitCode(absl::Status status, ExitCode code) {
  status.SetPayload(kLocalExitCodeUrl, absl::Cord(absl::StrCat(code)));
  return status;
}

}  // namespace

absl::Status UsageError(absl::string_view message) {
  return WithExitCode(absl::InvalidArgumentError(message), kExitUsage);
}

absl::Status LocalIoError(absl::string_view message) {
  return WithExitCode(absl::DataLossError(message), kExitLocalIo);
}

absl::Status AsUsageError(const absl::Status& status) {
  if (status.ok()) return status;
  return WithExitCode(status, kExitUsage);
}

ExitCode ExitCodeFor(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (auto local = status.GetPayload(kLocalExitCodeUrl); local.has_value()) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*local), &code)) {
      return static_cast<ExitCode>(code);
    }
  }
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    default:
      return kExitServerError;
  }
}

std::string FormatError(absl::string_view command, const absl::Status& status) {
  // An empty message would leave the user with nothing: name the code.
  std::string message = status.message().empty()
                            ? absl::StatusCodeToString(status.code())
                            : std::string(status.message());
  std::string text = command.empty()
                         ? absl::StrCat("hsmctl: ", message)
                         : absl::StrCat("hsmctl: ", command, ": ", message);
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  if (detail.has_value() && !detail->backend_code_name().empty()) {
    absl::StrAppendFormat(&text, " (%s 0x%x)", detail->backend_code_name(),
                          detail->backend_code());
  }
  return text;
}

}  // namespace hsmd::hsmctl
