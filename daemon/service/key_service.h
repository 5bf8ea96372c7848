// hsmd.v1.KeyService: validate what needs no key knowledge, route to the
// backend holding the key, call it, and report through RequestScope.
#ifndef HSMD_DAEMON_SERVICE_KEY_SERVICE_H_
#define HSMD_DAEMON_SERVICE_KEY_SERVICE_H_

#include "daemon/service/request_scope.h"
#include "hsmd/v1/hsmd.grpc.pb.h"

namespace hsmd::service {

class KeyService final : public v1::KeyService::Service {
 public:
  // `env` must outlive the service.
  explicit KeyService(const ServiceEnv& env) : env_(env) {}

  grpc::Status ListKeys(grpc::ServerContext* context, const v1::ListKeysRequest* request,
                v1::ListKeysResponse* response) override {
    return ListKeys(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status ListKeys(const CallInfo& call, const v1::ListKeysRequest* request,
                v1::ListKeysResponse* response);
  grpc::Status GetKey(grpc::ServerContext* context, const v1::GetKeyRequest* request,
                v1::GetKeyResponse* response) override {
    return GetKey(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status GetKey(const CallInfo& call, const v1::GetKeyRequest* request,
                v1::GetKeyResponse* response);
  grpc::Status Sign(grpc::ServerContext* context, const v1::SignRequest* request,
                v1::SignResponse* response) override {
    return Sign(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status Sign(const CallInfo& call, const v1::SignRequest* request,
                v1::SignResponse* response);
  grpc::Status Decrypt(grpc::ServerContext* context, const v1::DecryptRequest* request,
                v1::DecryptResponse* response) override {
    return Decrypt(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status Decrypt(const CallInfo& call, const v1::DecryptRequest* request,
                v1::DecryptResponse* response);
  grpc::Status Encrypt(grpc::ServerContext* context, const v1::EncryptRequest* request,
                v1::EncryptResponse* response) override {
    return Encrypt(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status Encrypt(const CallInfo& call, const v1::EncryptRequest* request,
                v1::EncryptResponse* response);
  grpc::Status Derive(grpc::ServerContext* context, const v1::DeriveRequest* request,
                v1::DeriveResponse* response) override {
    return Derive(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status Derive(const CallInfo& call, const v1::DeriveRequest* request,
                v1::DeriveResponse* response);
  grpc::Status GenerateRandom(grpc::ServerContext* context, const v1::GenerateRandomRequest* request,
                v1::GenerateRandomResponse* response) override {
    return GenerateRandom(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status GenerateRandom(const CallInfo& call, const v1::GenerateRandomRequest* request,
                v1::GenerateRandomResponse* response);

 private:
  const ServiceEnv& env_;
};

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_KEY_SERVICE_H_
