#include "daemon/service/request_scope.h"

#include <chrono>

#include "common/error_detail.h"
#include "daemon/logging.h"
#include "daemon/service/status_mapping.h"

namespace hsmd::service {
namespace {

// Client mistakes are routine (info); capacity and availability problems
// deserve attention (warning); HSM or daemon faults are errors.
log::Level LevelFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kCancelled:
      return log::Level::kInfo;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      return log::Level::kWarning;
    default:
      return log::Level::kError;
  }
}

}  // namespace

RequestScope::RequestScope(const ServiceEnv& env, grpc::ServerContext* context,
                           absl::string_view method)
    : env_(env), method_(method), start_(absl::Now()) {
  ctx_.deadline = start_ + env.default_deadline;
  if (context != nullptr) {
    peer_ = context->peer();
    auto deadline = context->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      ctx_.deadline = absl::FromChrono(deadline);
    }
  }
}

void RequestScope::SetKeyRef(const v1::KeyRef& ref) {
  key_ref_ = DescribeKeyRef(ref);
}

void RequestScope::SetKey(absl::string_view key_id, absl::string_view label) {
  key_id_ = std::string(key_id);
  key_label_ = std::string(label);
}

grpc::Status RequestScope::Finish(absl::Status status) {
  const absl::Duration latency = absl::Now() - start_;
  if (!status.ok() && !key_ref_.empty()) {
    std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
    if (detail.has_value() && detail->key().empty()) {
      detail->set_key(key_ref_);
      SetErrorDetail(status, *detail);
    }
  }
  if (env_.stats != nullptr) {
    env_.stats->Record(method_, key_id_, key_label_, status, latency);
  }
  const log::Level level = LevelFor(status.code());
  if (log::IsEnabled(level)) {
    const std::string backend_code = DescribeBackendCode(status);
    const int64_t latency_us = absl::ToInt64Microseconds(latency);
    if (status.ok()) {
      log::Log(level, "request",
               {{"peer", peer_},
                {"method", method_},
                {"key", key_ref_},
                {"key_id", key_id_},
                {"status", "OK"},
                {"latency_us", latency_us}});
    } else {
      log::Log(level, "request",
               {{"peer", peer_},
                {"method", method_},
                {"key", key_ref_},
                {"key_id", key_id_},
                {"status", GrpcCodeName(status.code())},
                {"backend_code", backend_code},
                {"latency_us", latency_us},
                {"error", status.message()}});
    }
  }
  return ToGrpcStatus(status);
}

}  // namespace hsmd::service
