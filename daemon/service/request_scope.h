// Per-RPC bookkeeping shared by the services: the caller's identity (from
// the connection, see daemon/connection_registry.h), policy checks, the
// backend RequestContext (deadline from the client, else
// limits.default_deadline_ms), latency, one log line and one audit record
// per request outcome, stats, and the single absl -> gRPC status mapping.
#ifndef HSMD_DAEMON_SERVICE_REQUEST_SCOPE_H_
#define HSMD_DAEMON_SERVICE_REQUEST_SCOPE_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/audit.h"
#include "daemon/backend/backend.h"
#include "daemon/connection_registry.h"
#include "daemon/peer_credentials.h"
#include "daemon/policy/policy.h"
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
  // Caller identities by connection; null: every caller is unidentified.
  ConnectionRegistry* connections = nullptr;
  // Null: everything is allowed.
  const policy::Policy* policy = nullptr;
  // Null: no audit records.
  const AuditLog* audit = nullptr;
  // Connections accepted so far by transport, for GetStatus; null: none
  // reported.
  std::function<v1::ConnectionCounts()> connection_counts;
  // Set (by Server::Shutdown) while hsmd drains: requests not yet admitted
  // are refused with UNAVAILABLE. Null: never draining.
  const std::atomic<bool>* draining = nullptr;
};

// The policy attributes of a resolved key.
policy::KeyAttributes AttributesOf(const v1::Key& key);
policy::KeyAttributes AttributesOf(const BackendRegistry::Route& route);

// Who is calling and until when, whatever transport carried the call (gRPC's
// server, or hsmd's own fast path for client_lib connections).
struct CallInfo {
  // The caller, or null when it could not be identified.
  std::shared_ptr<const PeerIdentity> peer;
  // The client's deadline; nullopt: the client set none, and
  // env.default_deadline applies.
  std::optional<absl::Time> deadline;

  // From a gRPC call: the caller of the connection it arrived on (looked up
  // once, at the start) and its deadline. `context` may be null (tests).
  static CallInfo FromGrpc(const ServiceEnv& env,
                           grpc::ServerContext* context);
};

class RequestScope {
 public:
  // `method` is the RPC name ("Sign").
  RequestScope(const ServiceEnv& env, const CallInfo& call,
               absl::string_view method);
  // `context` may be null in tests.
  RequestScope(const ServiceEnv& env, grpc::ServerContext* context,
               absl::string_view method)
      : RequestScope(env, CallInfo::FromGrpc(env, context), method) {}
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

  const backend::RequestContext& ctx() const { return ctx_; }
  // The caller, or null when it could not be identified.
  const PeerIdentity* peer() const { return peer_.get(); }
  // The key as the request named it ("" before SetKeyRef).
  const std::string& key_ref() const { return key_ref_; }

  // The key the request names (for the log line and ErrorDetail.key).
  void SetKeyRef(const v1::KeyRef& ref);
  // The key the request resolved to (for stats, the log and the audit).
  void SetKey(absl::string_view key_id, absl::string_view label);
  void SetResolvedKey(const BackendRegistry::Route& route);
  void SetResolvedKey(const v1::Key& key);
  // The mechanism, for the audit record ("ecdsa-sha256").
  void SetMechanism(std::string mechanism) {
    mechanism_ = std::move(mechanism);
  }

  // OK when the policy lets the caller do `op` on `key` (null for keyless
  // operations); otherwise PERMISSION_DENIED "permission denied: uid N may
  // not <action>", and the request is recorded as a denial. Every handler
  // authorizes before touching a backend, so both Authorize calls also
  // admit the request: UNAVAILABLE "hsmd is shutting down ..." if the first
  // one comes while hsmd drains (a request admitted once stays admitted).
  absl::Status Authorize(policy::Op op, const policy::KeyAttributes* key,
                         absl::string_view action);
  // The same before the key is known: denied unless some rule grants `op`
  // to the caller on some key.
  absl::Status AuthorizeSomeKey(policy::Op op, absl::string_view action);
  // Whether the policy lets the caller do `op` on `key` (no denial
  // recorded; for filtering lists).
  bool Allowed(policy::Op op, const policy::KeyAttributes& key) const;

  // Logs the outcome, writes the audit record, records stats, and maps the
  // status. Adds the key to an attached ErrorDetail that lacks one. Call
  // exactly once.
  grpc::Status Finish(absl::Status status);

 private:
  absl::Status Deny(policy::Op op, absl::string_view action);
  absl::Status Admit();

  const ServiceEnv& env_;
  const std::string method_;
  std::shared_ptr<const PeerIdentity> peer_;
  const absl::Time start_;
  backend::RequestContext ctx_;
  std::string key_ref_;
  std::string key_id_;
  std::string key_label_;
  std::string key_uri_;
  std::string backend_;
  std::string mechanism_;
  std::string operation_;
  std::string rule_;
  bool denied_ = false;
  bool admitted_ = false;
};

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_REQUEST_SCOPE_H_
