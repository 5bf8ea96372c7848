#include "daemon/service/key_service.h"

#include <utility>

#include "common/status_macros.h"

namespace hsmd::service {
namespace {

// Resolves the route and labels the scope with the key.
absl::StatusOr<BackendRegistry::Route> Route(const ServiceEnv& env,
                                             RequestScope& scope,
                                             const v1::KeyRef& ref) {
  ASSIGN_OR_RETURN(BackendRegistry::Route route,
                   env.registry->Resolve(ref, scope.ctx()));
  scope.SetKey(route.key_id, route.key_label);
  return route;
}

}  // namespace

grpc::Status KeyService::ListKeys(grpc::ServerContext* context,
                                  const v1::ListKeysRequest* request,
                                  v1::ListKeysResponse* response) {
  RequestScope scope(env_, context, "ListKeys");
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateListKeys(*request));
    ASSIGN_OR_RETURN(std::vector<v1::Key> keys,
                     env_.registry->ListKeys(*request, scope.ctx()));
    for (v1::Key& key : keys) *response->add_keys() = std::move(key);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::GetKey(grpc::ServerContext* context,
                                const v1::GetKeyRequest* request,
                                v1::GetKeyResponse* response) {
  RequestScope scope(env_, context, "GetKey");
  scope.SetKeyRef(request->key());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateGetKey(*request));
    ASSIGN_OR_RETURN(BackendRegistry::Route route,
                     Route(env_, scope, request->key()));
    absl::StatusOr<v1::Key> key =
        route.backend->GetKey(request->key(), scope.ctx());
    env_.registry->Observe(request->key(), key.status(),
                           key.ok() ? key->key_id() : "");
    if (!key.ok()) return key.status();
    scope.SetKey(key->key_id(), key->label());
    *response->mutable_key() = *std::move(key);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::Sign(grpc::ServerContext* context,
                              const v1::SignRequest* request,
                              v1::SignResponse* response) {
  RequestScope scope(env_, context, "Sign");
  scope.SetKeyRef(request->key());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateSign(*request, env_.limits));
    ASSIGN_OR_RETURN(BackendRegistry::Route route,
                     Route(env_, scope, request->key()));
    absl::StatusOr<v1::SignResponse> result =
        route.backend->Sign(*request, scope.ctx());
    env_.registry->Observe(request->key(), result.status(),
                           result.ok() ? result->key_id() : "");
    if (!result.ok()) return result.status();
    if (result->key_id() != route.key_id) {
      scope.SetKey(result->key_id(), "");
    }
    *response = *std::move(result);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::Decrypt(grpc::ServerContext* context,
                                 const v1::DecryptRequest* request,
                                 v1::DecryptResponse* response) {
  RequestScope scope(env_, context, "Decrypt");
  scope.SetKeyRef(request->key());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateDecrypt(*request, env_.limits));
    ASSIGN_OR_RETURN(BackendRegistry::Route route,
                     Route(env_, scope, request->key()));
    absl::StatusOr<v1::DecryptResponse> result =
        route.backend->Decrypt(*request, scope.ctx());
    env_.registry->Observe(request->key(), result.status(),
                           result.ok() ? result->key_id() : "");
    if (!result.ok()) return result.status();
    if (result->key_id() != route.key_id) {
      scope.SetKey(result->key_id(), "");
    }
    *response = *std::move(result);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::GenerateRandom(
    grpc::ServerContext* context, const v1::GenerateRandomRequest* request,
    v1::GenerateRandomResponse* response) {
  RequestScope scope(env_, context, "GenerateRandom");
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateGenerateRandom(*request, env_.limits));
    ASSIGN_OR_RETURN(std::string data,
                     env_.registry->ForRandom()->GenerateRandom(
                         request->length(), scope.ctx()));
    if (data.size() != request->length()) {
      return absl::InternalError(
          "backend returned fewer random bytes than requested");
    }
    response->set_data(std::move(data));
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

}  // namespace hsmd::service
