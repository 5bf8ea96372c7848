#include "daemon/service/request_scope.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "common/status_macros.h"
#include "daemon/logging.h"
#include "daemon/service/status_mapping.h"

namespace hsmd::service {
namespace {

// Client mistakes are routine (info); denials, capacity and availability
// problems deserve attention (warning); HSM or daemon faults are errors.
log::Level LevelFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kCancelled:
      return log::Level::kInfo;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      return log::Level::kWarning;
    default:
      return log::Level::kError;
  }
}

std::string Who(const PeerIdentity* peer) {
  if (peer == nullptr) return "unidentified peer";
  return absl::StrCat("uid ", peer->uid);
}

}  // namespace

policy::KeyAttributes AttributesOf(const v1::Key& key) {
  policy::KeyAttributes attrs;
  attrs.backend = key.backend();
  attrs.token_label = key.token_label();
  attrs.label = key.label();
  attrs.id = key.id();
  attrs.key_id = key.key_id();
  attrs.uri = key.uri();
  return attrs;
}

policy::KeyAttributes AttributesOf(const BackendRegistry::Route& route) {
  policy::KeyAttributes attrs;
  attrs.backend = route.backend == nullptr ? "" : route.backend->name();
  attrs.token_label = route.token_label;
  attrs.label = route.key_label;
  attrs.id = route.id;
  attrs.key_id = route.key_id;
  attrs.uri = route.uri;
  return attrs;
}

CallInfo CallInfo::FromGrpc(const ServiceEnv& env,
                           grpc::ServerContext* context) {
  CallInfo call;
  if (context == nullptr) return call;
  // The identity is that of the connection the call arrived on, whatever
  // happens to the connection afterwards.
  if (env.connections != nullptr) {
    call.peer = env.connections->Lookup(context->peer());
  }
  auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    call.deadline = absl::FromChrono(deadline);
  }
  return call;
}

RequestScope::RequestScope(const ServiceEnv& env, const CallInfo& call,
                           absl::string_view method)
    : env_(env), method_(method), peer_(call.peer), start_(absl::Now()) {
  ctx_.deadline = start_ + env.default_deadline;
  if (call.deadline.has_value()) {
    ctx_.deadline = *call.deadline;
    // The client times the call out by itself (client_lib and gRPC clients
    // give up at their deadline, and gRPC's server ends the call then too),
    // so the backend may make its device call on this thread rather than on
    // a worker.
    ctx_.caller_enforces_deadline = true;
  }
}

void RequestScope::SetKeyRef(const v1::KeyRef& ref) {
  key_ref_ = DescribeKeyRef(ref);
}

void RequestScope::SetKey(absl::string_view key_id, absl::string_view label) {
  key_id_ = std::string(key_id);
  key_label_ = std::string(label);
}

void RequestScope::SetResolvedKey(const BackendRegistry::Route& route) {
  SetKey(route.key_id, route.key_label);
  key_uri_ = route.uri;
  backend_ = route.backend == nullptr ? "" : route.backend->name();
}

void RequestScope::SetResolvedKey(const v1::Key& key) {
  SetKey(key.key_id(), key.label());
  key_uri_ = key.uri();
  backend_ = key.backend();
}

bool RequestScope::Allowed(policy::Op op,
                           const policy::KeyAttributes& key) const {
  return env_.policy == nullptr || env_.policy->Allows(peer(), op, &key);
}

absl::Status RequestScope::Deny(policy::Op op, absl::string_view action) {
  denied_ = true;
  operation_ = std::string(policy::OpName(op));
  rule_.clear();
  return absl::PermissionDeniedError(
      absl::StrCat("permission denied: ", Who(peer()), " may not ", action));
}

absl::Status RequestScope::Admit() {
  if (admitted_) return absl::OkStatus();
  if (env_.draining != nullptr && env_.draining->load()) {
    return absl::UnavailableError(
        "hsmd is shutting down: requests already running finish, new ones "
        "are refused");
  }
  admitted_ = true;
  return absl::OkStatus();
}

absl::Status RequestScope::Authorize(policy::Op op,
                                     const policy::KeyAttributes* key,
                                     absl::string_view action) {
  operation_ = std::string(policy::OpName(op));
  RETURN_IF_ERROR(Admit());
  if (env_.policy == nullptr) return absl::OkStatus();
  if (!env_.policy->Allows(peer(), op, key, &rule_)) return Deny(op, action);
  return absl::OkStatus();
}

absl::Status RequestScope::AuthorizeSomeKey(policy::Op op,
                                            absl::string_view action) {
  operation_ = std::string(policy::OpName(op));
  RETURN_IF_ERROR(Admit());
  if (env_.policy == nullptr) return absl::OkStatus();
  if (!env_.policy->AllowsSomeKey(peer(), op)) return Deny(op, action);
  return absl::OkStatus();
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
  const std::string backend_code =
      status.ok() ? std::string() : DescribeBackendCode(status);
  if (env_.audit != nullptr) {
    AuditRecord record;
    record.peer = peer_;
    record.method = method_;
    record.operation = operation_;
    record.denied = denied_;
    record.rule = rule_;
    record.key_ref = key_ref_;
    record.key_uri = key_uri_;
    record.key_id = key_id_;
    record.backend = backend_;
    record.mechanism = mechanism_;
    record.code = status.code();
    record.backend_code = backend_code;
    if (!status.ok()) record.error = status.message();
    record.latency = latency;
    env_.audit->Record(record);
  }
  // With an audit trail, a successful request's line would repeat its audit
  // record (which has every field of it and more), and writing it costs a
  // write(2) per request: it goes to debug then. Failures keep their level.
  const log::Level level = status.ok() && env_.audit != nullptr
                               ? log::Level::kDebug
                               : LevelFor(status.code());
  if (log::IsEnabled(level)) {
    const int64_t latency_us = absl::ToInt64Microseconds(latency);
    const int64_t uid = peer_ == nullptr ? -1 : peer_->uid;
    const int64_t pid = peer_ == nullptr ? 0 : peer_->pid;
    if (status.ok()) {
      log::Log(level, "request",
               {{"uid", uid},
                {"pid", pid},
                {"method", method_},
                {"key", key_ref_},
                {"key_id", key_id_},
                {"status", "OK"},
                {"latency_us", latency_us}});
    } else {
      log::Log(level, "request",
               {{"uid", uid},
                {"pid", pid},
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
