#include "daemon/service/key_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace hsmd::service {
namespace {

using policy::Op;

// Resolves the route and labels the scope with the key.
absl::StatusOr<BackendRegistry::Route> Route(const ServiceEnv& env,
                                             RequestScope& scope,
                                             const v1::KeyRef& ref) {
  ASSIGN_OR_RETURN(BackendRegistry::Route route,
                   env.registry->Resolve(ref, scope.ctx()));
  scope.SetResolvedKey(route);
  return route;
}

// Resolves the key and checks the policy on what it resolved to.
absl::StatusOr<BackendRegistry::Route> RouteAuthorized(
    const ServiceEnv& env, RequestScope& scope, const v1::KeyRef& ref, Op op,
    absl::string_view action) {
  // Callers with no grant at all learn nothing about which keys exist.
  RETURN_IF_ERROR(scope.AuthorizeSomeKey(op, action));
  ASSIGN_OR_RETURN(BackendRegistry::Route route, Route(env, scope, ref));
  const policy::KeyAttributes attrs = AttributesOf(route);
  RETURN_IF_ERROR(scope.Authorize(op, &attrs, action));
  return route;
}

// The backend answered with another key than the one the policy approved
// (the reference was re-pointed, e.g. a key deleted and re-created between
// lookup and use): approve that key too before anything leaves the daemon.
absl::Status AuthorizeActualKey(const ServiceEnv& env, RequestScope& scope,
                                backend::Backend* backend,
                                const std::string& key_id, Op op,
                                absl::string_view action) {
  if (env.policy == nullptr || !env.policy->enforced()) return absl::OkStatus();
  v1::KeyRef ref;
  ref.set_key_id(key_id);
  absl::StatusOr<v1::Key> key = backend->GetKey(ref, scope.ctx());
  if (!key.ok()) return scope.Authorize(op, nullptr, action);
  const policy::KeyAttributes attrs = AttributesOf(*key);
  return scope.Authorize(op, &attrs, action);
}

}  // namespace

grpc::Status KeyService::ListKeys(const CallInfo& call,
                                  const v1::ListKeysRequest* request,
                                  v1::ListKeysResponse* response) {
  RequestScope scope(env_, call, "ListKeys");
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateListKeys(*request));
    RETURN_IF_ERROR(scope.AuthorizeSomeKey(Op::kList, "list keys"));
    ASSIGN_OR_RETURN(std::vector<v1::Key> keys,
                     env_.registry->ListKeys(*request, scope.ctx()));
    // Only the keys the caller may see.
    for (v1::Key& key : keys) {
      if (scope.Allowed(Op::kList, AttributesOf(key))) {
        *response->add_keys() = std::move(key);
      }
    }
    // All or nothing: a truncated list would look complete to most callers.
    if (static_cast<uint64_t>(response->keys_size()) >
        env_.limits.max_list_results) {
      const int matched = response->keys_size();
      response->Clear();
      return absl::ResourceExhaustedError(absl::StrCat(
          "ListKeys matched ", matched, " keys, more than ",
          "limits.max_list_results (", env_.limits.max_list_results,
          "); narrow the search with uri_filter or label"));
    }
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::GetKey(const CallInfo& call,
                                const v1::GetKeyRequest* request,
                                v1::GetKeyResponse* response) {
  RequestScope scope(env_, call, "GetKey");
  scope.SetKeyRef(request->key());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateGetKey(*request));
    const std::string action = absl::StrCat("read ", scope.key_ref());
    ASSIGN_OR_RETURN(
        BackendRegistry::Route route,
        RouteAuthorized(env_, scope, request->key(), Op::kList, action));
    absl::StatusOr<v1::Key> key =
        route.backend->GetKey(request->key(), scope.ctx());
    env_.registry->Observe(request->key(), key.status(),
                           key.ok() ? key->key_id() : "");
    if (!key.ok()) return key.status();
    if (key->key_id() != route.key_id) {
      const policy::KeyAttributes attrs = AttributesOf(*key);
      RETURN_IF_ERROR(scope.Authorize(Op::kList, &attrs, action));
    }
    scope.SetResolvedKey(*key);
    *response->mutable_key() = *std::move(key);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::Sign(const CallInfo& call,
                              const v1::SignRequest* request,
                              v1::SignResponse* response) {
  RequestScope scope(env_, call, "Sign");
  scope.SetKeyRef(request->key());
  scope.SetMechanism(DescribeMechanism(*request));
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateSign(*request, env_.limits));
    const std::string action = absl::StrCat("sign with ", scope.key_ref());
    ASSIGN_OR_RETURN(
        BackendRegistry::Route route,
        RouteAuthorized(env_, scope, request->key(), Op::kSign, action));
    absl::StatusOr<v1::SignResponse> result =
        route.backend->Sign(*request, scope.ctx());
    env_.registry->Observe(request->key(), result.status(),
                           result.ok() ? result->key_id() : "");
    if (!result.ok()) return result.status();
    if (result->key_id() != route.key_id) {
      RETURN_IF_ERROR(AuthorizeActualKey(env_, scope, route.backend,
                                         result->key_id(), Op::kSign, action));
      scope.SetKey(result->key_id(), "");
    }
    *response = *std::move(result);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::Decrypt(const CallInfo& call,
                                 const v1::DecryptRequest* request,
                                 v1::DecryptResponse* response) {
  RequestScope scope(env_, call, "Decrypt");
  scope.SetKeyRef(request->key());
  scope.SetMechanism(DescribeMechanism(*request));
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateDecrypt(*request, env_.limits));
    const std::string action = absl::StrCat("decrypt with ", scope.key_ref());
    ASSIGN_OR_RETURN(
        BackendRegistry::Route route,
        RouteAuthorized(env_, scope, request->key(), Op::kDecrypt, action));
    absl::StatusOr<v1::DecryptResponse> result =
        route.backend->Decrypt(*request, scope.ctx());
    env_.registry->Observe(request->key(), result.status(),
                           result.ok() ? result->key_id() : "");
    if (!result.ok()) return result.status();
    if (result->key_id() != route.key_id) {
      RETURN_IF_ERROR(AuthorizeActualKey(
          env_, scope, route.backend, result->key_id(), Op::kDecrypt, action));
      scope.SetKey(result->key_id(), "");
    }
    *response = *std::move(result);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::Encrypt(const CallInfo& call,
                                 const v1::EncryptRequest* request,
                                 v1::EncryptResponse* response) {
  RequestScope scope(env_, call, "Encrypt");
  scope.SetKeyRef(request->key());
  scope.SetMechanism(DescribeMechanism(*request));
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateEncrypt(*request, env_.limits));
    const std::string action = absl::StrCat("encrypt with ", scope.key_ref());
    ASSIGN_OR_RETURN(
        BackendRegistry::Route route,
        RouteAuthorized(env_, scope, request->key(), Op::kEncrypt, action));
    absl::StatusOr<v1::EncryptResponse> result =
        route.backend->Encrypt(*request, scope.ctx());
    env_.registry->Observe(request->key(), result.status(),
                           result.ok() ? result->key_id() : "");
    if (!result.ok()) return result.status();
    if (result->key_id() != route.key_id) {
      RETURN_IF_ERROR(AuthorizeActualKey(
          env_, scope, route.backend, result->key_id(), Op::kEncrypt, action));
      scope.SetKey(result->key_id(), "");
    }
    *response = *std::move(result);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::Derive(const CallInfo& call,
                                const v1::DeriveRequest* request,
                                v1::DeriveResponse* response) {
  RequestScope scope(env_, call, "Derive");
  scope.SetKeyRef(request->key());
  scope.SetMechanism(DescribeMechanism(*request));
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateDerive(*request));
    const std::string action = absl::StrCat("derive with ", scope.key_ref());
    ASSIGN_OR_RETURN(
        BackendRegistry::Route route,
        RouteAuthorized(env_, scope, request->key(), Op::kDerive, action));
    absl::StatusOr<v1::DeriveResponse> result =
        route.backend->Derive(*request, scope.ctx());
    env_.registry->Observe(request->key(), result.status(),
                           result.ok() ? result->key_id() : "");
    if (!result.ok()) return result.status();
    if (result->key_id() != route.key_id) {
      RETURN_IF_ERROR(AuthorizeActualKey(
          env_, scope, route.backend, result->key_id(), Op::kDerive, action));
      scope.SetKey(result->key_id(), "");
    }
    *response = *std::move(result);
    return absl::OkStatus();
  }();
  return scope.Finish(std::move(status));
}

grpc::Status KeyService::GenerateRandom(
    const CallInfo& call, const v1::GenerateRandomRequest* request,
    v1::GenerateRandomResponse* response) {
  RequestScope scope(env_, call, "GenerateRandom");
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidateGenerateRandom(*request, env_.limits));
    RETURN_IF_ERROR(
        scope.Authorize(Op::kRandom, nullptr, "generate random bytes"));
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
