// Per-RPC bookkeeping shared by the services: the backend RequestContext
// (deadline from the client, else limits.default_deadline_ms), latency, one
// log line per request outcome, stats, and the single absl -> gRPC status
// mapping.
#ifndef HSMD_DAEMON_SERVICE_REQUEST_SCOPE_H_
#define HSMD_DAEMON_SERVICE_REQUEST_SCOPE_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/backend/backend.h"
#include "daemon/service/backend_registry.h"
#include "daemon/service/request_validation.h"
#include "daemon/service/stats.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::service {

// What the services share; owned by the server, outlives the services.
struct ServiceEnv {
  BackendRegistry* registry = nullptr;
  Stats* stats = nullptr;
  RequestLimits limits;
  // Deadline for requests without one.
  absl::Duration default_deadline = absl::Seconds(10);
};

class RequestScope {
 public:
  // `method` is the RPC name ("Sign"); `context` may be null in tests.
  RequestScope(const ServiceEnv& env, grpc::ServerContext* context,
               absl::string_view method);
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

  const backend::RequestContext& ctx() const { return ctx_; }

  // The key the request names (for the log line and ErrorDetail.key).
  void SetKeyRef(const v1::KeyRef& ref);
  // The key the request resolved to (for stats and the log line).
  void SetKey(absl::string_view key_id, absl::string_view label);

  // Logs the outcome, records stats, and maps the status. Adds the key to an
  // attached ErrorDetail that lacks one. Call exactly once.
  grpc::Status Finish(absl::Status status);

 private:
  const ServiceEnv& env_;
  const std::string method_;
  std::string peer_;
  const absl::Time start_;
  backend::RequestContext ctx_;
  std::string key_ref_;
  std::string key_id_;
  std::string key_label_;
};

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_REQUEST_SCOPE_H_
