#include "daemon/service/admin_service.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "daemon/version.h"

namespace hsmd::service {

using policy::Op;

AdminService::AdminService(const ServiceEnv& env,
                           v1::ConfigSummary config_summary,
                           absl::Time start_time)
    : env_(env),
      config_summary_(std::move(config_summary)),
      start_time_(start_time),
      pid_(getpid()) {}

grpc::Status AdminService::GenerateKey(const CallInfo& call,
                                       const v1::GenerateKeyRequest* request,
                                       v1::GenerateKeyResponse* response) {
  RequestScope scope(env_, call, "GenerateKey");
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateGenerateKey(*request));
    std::string action =
        absl::StrCat("generate key \"", request->label().substr(0, 128), "\"");
    RETURN_IF_ERROR(scope.AuthorizeSomeKey(Op::kAdmin, action));
    ASSIGN_OR_RETURN(backend::Backend * backend,
                     env_.registry->ForGenerateKey(request->backend()));
    // The key as it will be: the policy decides before it exists.
    policy::KeyAttributes attrs;
    attrs.backend = backend->name();
    attrs.token_label = backend->GetStatus().token_label();
    attrs.label = request->label();
    attrs.id = request->id();
    absl::StrAppend(&action, " on backend ", backend->name());
    RETURN_IF_ERROR(scope.Authorize(Op::kAdmin, &attrs, action));
    ASSIGN_OR_RETURN(v1::Key key, backend->GenerateKey(*request, scope.ctx()));
    // A new key can make a cached reference ambiguous.
    env_.registry->ForgetRoutes();
    scope.SetResolvedKey(key);
    *response->mutable_key() = std::move(key);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status AdminService::DeleteKey(const CallInfo& call,
                                     const v1::DeleteKeyRequest* request,
                                     v1::DeleteKeyResponse* response) {
  RequestScope scope(env_, call, "DeleteKey");
  scope.SetKeyRef(request->key());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateDeleteKey(*request));
    const std::string action = absl::StrCat("delete ", scope.key_ref());
    RETURN_IF_ERROR(scope.AuthorizeSomeKey(Op::kAdmin, action));
    ASSIGN_OR_RETURN(BackendRegistry::Route route,
                     env_.registry->Resolve(request->key(), scope.ctx()));
    scope.SetResolvedKey(route);
    const policy::KeyAttributes attrs = AttributesOf(route);
    RETURN_IF_ERROR(scope.Authorize(Op::kAdmin, &attrs, action));
    absl::StatusOr<uint32_t> deleted =
        route.backend->DeleteKey(request->key(), scope.ctx());
    env_.registry->ForgetRoutes();
    if (!deleted.ok()) return deleted.status();
    response->set_objects_deleted(*deleted);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status AdminService::GetStatus(const CallInfo& call,
                                     const v1::GetStatusRequest* /*request*/,
                                     v1::GetStatusResponse* response) {
  RequestScope scope(env_, call, "GetStatus");
  if (absl::Status s =
          scope.Authorize(Op::kStatus, nullptr, "read the daemon status");
      !s.ok()) {
    return scope.Finish(std::move(s));
  }
  response->set_version(std::string(kVersion));
  response->mutable_start_time()->set_seconds(absl::ToUnixSeconds(start_time_));
  response->mutable_start_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(
          start_time_ -
          absl::FromUnixSeconds(absl::ToUnixSeconds(start_time_)))));
  response->set_uptime_seconds(
      static_cast<uint64_t>(absl::ToInt64Seconds(absl::Now() - start_time_)));
  response->set_pid(static_cast<uint32_t>(pid_));
  for (const auto& backend : env_.registry->backends()) {
    *response->add_backends() = backend->GetStatus();
  }
  *response->mutable_config() = config_summary_;
  if (env_.connection_counts) {
    *response->mutable_connections() = env_.connection_counts();
  }
  return scope.Finish(absl::OkStatus());
}

grpc::Status AdminService::GetStats(const CallInfo& call,
                                    const v1::GetStatsRequest* /*request*/,
                                    v1::GetStatsResponse* response) {
  RequestScope scope(env_, call, "GetStats");
  if (absl::Status s = scope.Authorize(Op::kStatus, nullptr, "read statistics");
      !s.ok()) {
    return scope.Finish(std::move(s));
  }
  *response = env_.stats->Snapshot();
  return scope.Finish(absl::OkStatus());
}

}  // namespace hsmd::service
