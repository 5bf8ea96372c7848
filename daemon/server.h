// The hsmd server: owns the backends, the listening Unix socket and the
// acceptor that identifies every caller (acceptor.h), the gRPC server, the
// services, the access policy, the audit trail, the health status and the
// stats.
//
//   auto server = Server::New(std::move(options), std::move(backends));
//   RETURN_IF_ERROR((*server)->Start());   // listening, "hsmd ready" logged
//   ... another thread: (*server)->Shutdown(grace);
//   (*server)->Wait();                     // returns when shut down
//
// Health (grpc.health.v1): the overall status ("") and the per-service
// statuses of hsmd.v1.KeyService and hsmd.v1.AdminService are SERVING only
// while every backend IsServing(); a thread polls the backends (every
// ServerOptions::health_poll_interval) and logs each change. Each backend
// also has its own health service name, "backend/NAME" (BackendHealthService),
// SERVING while that backend IsServing(), so a monitor sees which HSM is
// down. Server reflection is enabled (grpcurl list / describe work).
//
// systemd (ServerOptions::notify): READY=1 once every backend serves (not
// before), STATUS= on each health change, WATCHDOG=1 every
// watchdog_interval from the health thread (so a wedged backend poll stops
// the pings), STOPPING=1 when shutdown begins.
//
// Shutdown(grace): health goes NOT_SERVING, the acceptor stops,
// in-flight requests get up to `grace` to finish (then they are cancelled),
// the backends are shut down (sessions closed, logout, finalize), and the
// socket file is removed.
#ifndef HSMD_DAEMON_SERVER_H_
#define HSMD_DAEMON_SERVER_H_

#include <grpcpp/server.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/acceptor.h"
#include "daemon/audit.h"
#include "daemon/backend/backend.h"
#include "daemon/config/config.pb.h"
#include "daemon/connection_registry.h"
#include "daemon/fast_path/fast_path_server.h"
#include "daemon/in_flight_calls.h"
#include "daemon/policy/policy.h"
#include "daemon/service/admin_service.h"
#include "daemon/service/backend_registry.h"
#include "daemon/service/key_service.h"
#include "daemon/service/request_scope.h"
#include "daemon/service/stats.h"
#include "daemon/unix_socket.h"

namespace hsmd {

// Counts the gRPC calls in progress (from arrival until their status has
// been sent), so shutdown knows when draining is done.
struct ServerOptions {
  // A validated config (config_loader). Its backends section only feeds the
  // status summary: the backends themselves are passed to New.
  config::Config config;
  // Reported by GetStatus.
  std::string config_path;
  // How often the health thread polls the backends.
  absl::Duration health_poll_interval = absl::Milliseconds(200);
  // A socket path already prepared (SocketPath::Prepare) by the caller, e.g.
  // to refuse to start before loading the HSM module; when null (and there
  // is no listen_fd), New prepares config.listen().socket_path() itself.
  std::unique_ptr<SocketPath> socket;
  // A listening socket from socket activation (systemd.h), owned by the
  // server from now on; the socket file is then systemd's: never created,
  // chmod'ed or removed by hsmd.
  std::optional<int> listen_fd;
  // Receives sd_notify-style states ("READY=1"); null for none.
  std::function<void(const std::string&)> notify;
  // WATCHDOG=1 interval (half of WatchdogSec=); zero for none.
  absl::Duration watchdog_interval = absl::ZeroDuration();
  // Audit output; nullopt: from config.audit (AuditLog::OutputFor).
  std::optional<AuditLog::Output> audit_output;
};

class Server {
 public:
  // Extra request bytes allowed beyond limits.max_message_bytes for the rest
  // of a request (key URI, parameters, framing).
  static constexpr int kEnvelopeBytes = 8192;

  // FAILED_PRECONDITION for socket problems (another daemon running, ...).
  static absl::StatusOr<std::unique_ptr<Server>> New(
      ServerOptions options,
      std::vector<std::unique_ptr<backend::Backend>> backends);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Shuts down (without grace) if still running.
  ~Server();

  // Binds the socket (unless socket-activated), sets its mode and group,
  // starts serving, accepting and the health thread. Call once.
  absl::Status Start();

  // Blocks until Shutdown has completed.
  void Wait();

  // Thread-safe and idempotent; returns when shutdown is complete. Requests
  // still running after `grace` are cancelled; if some stay blocked in a
  // backend call even then, Shutdown gives up on them after a short wait
  // (see left_requests_running()).
  void Shutdown(absl::Duration grace);

  // True if Shutdown ended with request threads still blocked in a backend
  // call. The process must then exit without destroying the Server (those
  // threads still use it): hsmd_main does so with _exit.
  bool left_requests_running() const { return left_requests_running_.load(); }

  const std::string& socket_path() const { return socket_path_; }
  // The last health state published (true = SERVING).
  bool serving() const;
  service::Stats& stats() { return stats_; }
  ConnectionRegistry& connections() { return connections_; }

 private:
  Server(ServerOptions options,
         std::unique_ptr<service::BackendRegistry> registry,
         std::unique_ptr<policy::Policy> policy);

  void Notify(const std::string& state) const;
  void HealthLoop();
  // Publishes the backends' readiness; logs changes.
  void UpdateHealth(bool force) ABSL_LOCKS_EXCLUDED(health_mu_);

  ServerOptions options_;
  std::unique_ptr<SocketPath> socket_;
  const std::string socket_path_;
  std::unique_ptr<service::BackendRegistry> registry_;
  std::unique_ptr<policy::Policy> policy_;
  AuditLog audit_;
  ConnectionRegistry connections_;
  std::unique_ptr<Acceptor> acceptor_;
  service::Stats stats_;
  service::ServiceEnv env_;
  InFlightCalls in_flight_;
  // Read by the services (ServiceEnv::draining).
  std::atomic<bool> draining_{false};
  const absl::Time start_time_;
  std::unique_ptr<service::KeyService> key_service_;
  std::unique_ptr<service::AdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  // Null with listen.fast_path off.
  std::unique_ptr<fast_path::FastPathServer> fast_path_;
  std::atomic<bool> left_requests_running_{false};

  mutable std::mutex health_mu_;
  std::condition_variable health_cv_;
  bool health_stop_ ABSL_GUARDED_BY(health_mu_) = false;
  bool serving_ ABSL_GUARDED_BY(health_mu_) = false;
  std::vector<bool> backend_serving_ ABSL_GUARDED_BY(health_mu_);
  bool ready_notified_ ABSL_GUARDED_BY(health_mu_) = false;
  absl::Time next_watchdog_ping_ ABSL_GUARDED_BY(health_mu_);
  std::thread health_thread_;

  std::mutex state_mu_;
  std::condition_variable state_cv_;
  bool started_ ABSL_GUARDED_BY(state_mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(state_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(state_mu_) = false;
};

// The GetStatus config summary for `config` (no secrets).
// The grpc.health.v1 service name of one backend: "backend/NAME".
std::string BackendHealthService(absl::string_view backend_name);

v1::ConfigSummary SummarizeConfig(const config::Config& config,
                                  const std::string& config_path);

}  // namespace hsmd

#endif  // HSMD_DAEMON_SERVER_H_
