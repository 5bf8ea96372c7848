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

  grpc::Status ListKeys(grpc::ServerContext* context,
                        const v1::ListKeysRequest* request,
                        v1::ListKeysResponse* response) override;
  grpc::Status GetKey(grpc::ServerContext* context,
                      const v1::GetKeyRequest* request,
                      v1::GetKeyResponse* response) override;
  grpc::Status Sign(grpc::ServerContext* context,
                    const v1::SignRequest* request,
                    v1::SignResponse* response) override;
  grpc::Status Decrypt(grpc::ServerContext* context,
                       const v1::DecryptRequest* request,
                       v1::DecryptResponse* response) override;
  grpc::Status Encrypt(grpc::ServerContext* context,
                       const v1::EncryptRequest* request,
                       v1::EncryptResponse* response) override;
  grpc::Status Derive(grpc::ServerContext* context,
                      const v1::DeriveRequest* request,
                      v1::DeriveResponse* response) override;
  grpc::Status GenerateRandom(grpc::ServerContext* context,
                              const v1::GenerateRandomRequest* request,
                              v1::GenerateRandomResponse* response) override;

 private:
  const ServiceEnv& env_;
};

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_KEY_SERVICE_H_
