// hsmd.v1.AdminService: key lifecycle (GenerateKey, DeleteKey) and
// diagnostics (GetStatus, GetStats).
#ifndef HSMD_DAEMON_SERVICE_ADMIN_SERVICE_H_
#define HSMD_DAEMON_SERVICE_ADMIN_SERVICE_H_

#include <sys/types.h>

#include "absl/time/time.h"
#include "daemon/service/request_scope.h"
#include "hsmd/v1/hsmd.grpc.pb.h"

namespace hsmd::service {

class AdminService final : public v1::AdminService::Service {
 public:
  // `config_summary` is reported as is by GetStatus (it must hold no
  // secrets); `start_time` is when the daemon started. `env` must outlive
  // the service.
  AdminService(const ServiceEnv& env, v1::ConfigSummary config_summary,
               absl::Time start_time);

  grpc::Status GenerateKey(grpc::ServerContext* context, const v1::GenerateKeyRequest* request,
                v1::GenerateKeyResponse* response) override {
    return GenerateKey(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status GenerateKey(const CallInfo& call, const v1::GenerateKeyRequest* request,
                v1::GenerateKeyResponse* response);
  grpc::Status DeleteKey(grpc::ServerContext* context, const v1::DeleteKeyRequest* request,
                v1::DeleteKeyResponse* response) override {
    return DeleteKey(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status DeleteKey(const CallInfo& call, const v1::DeleteKeyRequest* request,
                v1::DeleteKeyResponse* response);
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                v1::GetStatusResponse* response) override {
    return GetStatus(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status GetStatus(const CallInfo& call, const v1::GetStatusRequest* request,
                v1::GetStatusResponse* response);
  grpc::Status GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* request,
                v1::GetStatsResponse* response) override {
    return GetStats(CallInfo::FromGrpc(env_, context), request, response);
  }
  grpc::Status GetStats(const CallInfo& call, const v1::GetStatsRequest* request,
                v1::GetStatsResponse* response);

 private:
  const ServiceEnv& env_;
  const v1::ConfigSummary config_summary_;
  const absl::Time start_time_;
  const pid_t pid_;
};

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_ADMIN_SERVICE_H_
