#include "daemon/server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_posix.h>
#include <grpcpp/support/server_interceptor.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "daemon/config/config_loader.h"
#include "daemon/config/pin_source.h"
#include "daemon/fast_path/fast_path_server.h"
#include "daemon/logging.h"
#include "daemon/version.h"

namespace hsmd {
namespace {

// After the shutdown grace: how long cancelled requests get to return
// before the process stops waiting for them.
constexpr absl::Duration kStuckRequestWait = absl::Seconds(1);

// Streams a fast-path connection may have open at once (at most).
constexpr uint32_t kFastPathMaxStreams = 4;

constexpr const char* kServiceNames[] = {"hsmd.v1.KeyService",
                                         "hsmd.v1.AdminService"};

// Lives exactly as long as one call (gRPC destroys a call's interceptors
// with the call, after its status has been sent).
class CallCountingInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit CallCountingInterceptor(InFlightCalls* calls) {
    calls->Add();
    calls_.store(calls, std::memory_order_release);
  }
  // gRPC may destroy the interceptor on another thread than the one that
  // created it, handing it over through its own synchronization (invisible
  // to TSan in Debian's build); the release/acquire pair makes the
  // hand-over explicit.
  ~CallCountingInterceptor() override {
    calls_.load(std::memory_order_acquire)->Done();
  }
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  std::atomic<InFlightCalls*> calls_{nullptr};
};

class CallCountingFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallCountingFactory(InFlightCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // A health Watch stream lasts as long as its client wants: it is not a
    // request to drain.
    const char* method = info->method();
    if (method != nullptr &&
        absl::StartsWith(method, "/grpc.health.v1.Health/Watch")) {
      return nullptr;
    }
    return new CallCountingInterceptor(calls_);
  }

 private:
  InFlightCalls* const calls_;
};

}  // namespace

std::string BackendHealthService(absl::string_view backend_name) {
  return absl::StrCat("backend/", backend_name);
}

v1::ConfigSummary SummarizeConfig(const config::Config& config,
                                  const std::string& config_path) {
  v1::ConfigSummary summary;
  summary.set_config_path(config_path);
  summary.set_socket_path(config.listen().socket_path());
  summary.set_max_message_bytes(config.limits().max_message_bytes());
  summary.set_default_deadline_ms(config.limits().default_deadline_ms());
  bool pool_set = false;
  for (const config::Backend& b : config.backends()) {
    for (const config::SdfKey& key : b.sdf().keys()) {
      if (key.has_password()) {
        summary.add_pin_sources(config::DescribePinSource(key.password()));
      }
    }
    if (!b.has_pkcs11()) continue;
    summary.add_pin_sources(config::DescribePinSource(b.pkcs11().pin()));
    if (!pool_set) {
      summary.set_session_pool_size(b.pkcs11().session_pool_size());
      pool_set = true;
    }
  }
  return summary;
}

Server::Server(ServerOptions options,
               std::unique_ptr<service::BackendRegistry> registry,
               std::unique_ptr<policy::Policy> policy)
    : options_(std::move(options)),
      socket_(std::move(options_.socket)),
      socket_path_(options_.config.listen().socket_path()),
      registry_(std::move(registry)),
      policy_(std::move(policy)),
      audit_(
          options_.audit_output.value_or(AuditLog::OutputFor(options_.config))),
      start_time_(absl::Now()) {
  const config::Limits& limits = options_.config.limits();
  env_.registry = registry_.get();
  env_.stats = &stats_;
  env_.connections = &connections_;
  env_.policy = policy_.get();
  env_.audit = audit_.output() == AuditLog::Output::kOff ? nullptr : &audit_;
  env_.draining = &draining_;
  env_.limits.max_message_bytes = limits.max_message_bytes();
  env_.limits.max_random_bytes = limits.max_random_bytes();
  env_.limits.max_list_results = limits.max_list_results();
  env_.default_deadline = absl::Milliseconds(limits.default_deadline_ms());
  key_service_ = std::make_unique<service::KeyService>(env_);
  admin_service_ = std::make_unique<service::AdminService>(
      env_, SummarizeConfig(options_.config, options_.config_path),
      start_time_);
}

absl::StatusOr<std::unique_ptr<Server>> Server::New(
    ServerOptions options,
    std::vector<std::unique_ptr<backend::Backend>> backends) {
  // An activated socket is ours from the start: close it on every error.
  auto fail = [&options](absl::Status status) {
    if (options.listen_fd.has_value()) close(*options.listen_fd);
    options.listen_fd.reset();
    return status;
  };
  if (absl::Status s =
          config::ValidateConfig(options.config, options.config_path);
      !s.ok()) {
    return fail(s);
  }
  const config::Listen& listen = options.config.listen();
  if (options.listen_fd.has_value()) {
    if (options.socket != nullptr) {
      return fail(absl::InvalidArgumentError(
          "give either a prepared socket path or an activated socket"));
    }
  } else if (options.socket == nullptr) {
    std::optional<gid_t> group;
    if (listen.has_socket_group()) {
      absl::StatusOr<gid_t> gid = policy::ResolveGroup(listen.socket_group());
      if (!gid.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("listen.socket_group: ", gid.status().message()));
      }
      group = *gid;
    }
    ASSIGN_OR_RETURN(options.socket,
                     SocketPath::Prepare(listen.socket_path(), group));
  } else if (options.socket->path() != listen.socket_path()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepared socket ", options.socket->path(),
                     " is not the configured ", listen.socket_path()));
  }
  absl::StatusOr<std::unique_ptr<policy::Policy>> policy =
      policy::Policy::New(options.config);
  if (!policy.ok()) return fail(policy.status());
  absl::StatusOr<std::unique_ptr<service::BackendRegistry>> registry =
      service::BackendRegistry::New(std::move(backends));
  if (!registry.ok()) return fail(registry.status());
  return std::unique_ptr<Server>(
      new Server(std::move(options), *std::move(registry), *std::move(policy)));
}

void Server::Notify(const std::string& state) const {
  if (options_.notify) options_.notify(state);
}

absl::Status Server::Start() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (started_) return absl::FailedPreconditionError("already started");
    started_ = true;
  }
  const config::Config& config = options_.config;
  const config::Limits& limits = config.limits();
  ASSIGN_OR_RETURN(uint32_t mode,
                   config::ParseSocketMode(config.listen().socket_mode()));
  std::optional<gid_t> gid;
  if (config.listen().has_socket_group()) {
    absl::StatusOr<gid_t> resolved =
        policy::ResolveGroup(config.listen().socket_group());
    if (!resolved.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("listen.socket_group: ", resolved.status().message()));
    }
    gid = *resolved;
  }

  // Both are process-wide switches that must be set before the builder
  // exists. Calling the reflection initialiser also keeps the linker from
  // dropping libgrpc++_reflection (its plugin registers from a static
  // initialiser otherwise).
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  // No listening port: the acceptor accepts connections itself, to learn
  // who is calling, and hands each one to the server.
  grpc::ServerBuilder builder;
  builder.RegisterService(key_service_.get());
  builder.RegisterService(admin_service_.get());
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(limits.max_message_bytes()) + kEnvelopeBytes);
  builder.SetMaxSendMessageSize(std::max<int>(
      static_cast<int>(limits.max_message_bytes()) + kEnvelopeBytes, 4 << 20));
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONCURRENT_STREAMS,
      static_cast<int>(limits.max_streams_per_connection()));
  // Sync server: one thread per in-flight request (PKCS#11 calls block).
  // One completion queue and one poller at least suit 2 cores. A thread that
  // finishes a request goes back to polling only while fewer than
  // MAX_POLLERS poll, and exits otherwise; with MAX_POLLERS 2, two clients
  // made gRPC create and destroy a thread every ~6 requests, so idle threads
  // are kept up to kMaxPollers (they sleep on one epoll set: no extra
  // wake-ups). The thread cap bounds memory under many clients, and beyond
  // it gRPC answers RESOURCE_EXHAUSTED instead of queueing without limit.
  constexpr int kMaxPollers = 8;
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS,
                              1);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kMaxPollers);
  // Bandwidth-delay probing sizes flow-control windows for long network
  // paths; on a Unix socket it only adds a PING (and its ACK) to a new
  // connection's first call, e.g. a forked child's first signature.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<CallCountingFactory>(&in_flight_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  grpc::ResourceQuota quota("hsmd");
  quota.SetMaxThreads(static_cast<int>(limits.max_concurrent_requests()) + 2);
  builder.SetResourceQuota(quota);

  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr) {
    return absl::FailedPreconditionError(
        "the gRPC server could not start (see the gRPC error above)");
  }
  auto stop_grpc = [this] {
    grpc_server_->Shutdown(std::chrono::system_clock::now());
    grpc_server_->Wait();
    grpc_server_.reset();
  };
  int listen_fd = -1;
  if (options_.listen_fd.has_value()) {
    listen_fd = *options_.listen_fd;
    options_.listen_fd.reset();
  } else {
    absl::StatusOr<int> fd = socket_->Listen(SOMAXCONN);
    if (!fd.ok()) {
      stop_grpc();
      return fd.status();
    }
    if (absl::Status s = socket_->SetPermissions(mode, gid); !s.ok()) {
      close(*fd);
      stop_grpc();
      socket_->RemoveSocket();
      return s;
    }
    listen_fd = *fd;
  }
  grpc::Server* grpc_server = grpc_server_.get();
  auto to_grpc = [grpc_server](int fd) {
    grpc::AddInsecureChannelFromFd(grpc_server, fd);
  };
  Acceptor::HandOff hand_off =
      [to_grpc](int fd, std::shared_ptr<const PeerIdentity> /*peer*/) {
        to_grpc(fd);
      };
  if (config.listen().fast_path()) {
    fast_path::ServerOptions fast;
    fast.connection.max_request_bytes =
        limits.max_message_bytes() + kEnvelopeBytes;
    // client_lib makes one call at a time per connection: a few streams
    // suffice, and they bound what one connection can make hsmd buffer
    // (a request body each).
    fast.connection.max_concurrent_streams =
        std::min<uint32_t>(limits.max_streams_per_connection(),
                           kFastPathMaxStreams);
    fast.max_connections = limits.max_concurrent_requests();
    fast_path_ = std::make_unique<fast_path::FastPathServer>(
        fast_path::MethodTable::ForServices(key_service_.get(),
                                            admin_service_.get()),
        &in_flight_, to_grpc, fast);
    fast_path::FastPathServer* server = fast_path_.get();
    hand_off = [server](int fd, std::shared_ptr<const PeerIdentity> peer) {
      server->Adopt(fd, std::move(peer));
    };
  }
  absl::StatusOr<std::unique_ptr<Acceptor>> acceptor =
      Acceptor::New(listen_fd, &connections_, std::move(hand_off));
  if (!acceptor.ok()) {
    stop_grpc();
    if (socket_ != nullptr) socket_->RemoveSocket();
    return acceptor.status();
  }
  acceptor_ = *std::move(acceptor);
  env_.connection_counts = [this] {
    v1::ConnectionCounts counts;
    const uint64_t accepted = acceptor_->accepted();
    if (fast_path_ == nullptr) {
      counts.set_grpc(accepted);
      return counts;
    }
    // Connections still being classified count as neither yet.
    counts.set_fast_path(fast_path_->fast_path_connections());
    counts.set_grpc(fast_path_->grpc_connections());
    return counts;
  };

  {
    std::lock_guard<std::mutex> lock(health_mu_);
    backend_serving_.assign(registry_->backends().size(), false);
  }
  UpdateHealth(/*force=*/true);
  health_thread_ = std::thread([this] { HealthLoop(); });

  std::vector<std::string> names;
  for (const auto& b : registry_->backends()) {
    names.push_back(absl::StrCat(b->name(), "(", b->kind(), ")"));
  }
  const char* audit = "off";
  if (audit_.output() == AuditLog::Output::kJournal) audit = "journal";
  if (audit_.output() == AuditLog::Output::kStderr) audit = "stderr";
  log::Info("hsmd ready",
            {{"version", kVersion},
             {"socket", socket_path_},
             {"socket_activated", socket_ == nullptr},
             {"backends", absl::StrJoin(names, ",")},
             {"policy", policy_->enforced() ? "enforced" : "none (allow all)"},
             {"audit", audit},
             {"serving", serving()}});
  // Last: the first answer comes after "hsmd ready" in the log (clients that
  // connected earlier wait in the listen backlog until now).
  acceptor_->Start();
  return absl::OkStatus();
}

bool Server::serving() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  return serving_;
}

void Server::UpdateHealth(bool force) {
  const auto& backends = registry_->backends();
  std::vector<bool> now(backends.size());
  bool all = true;
  for (size_t i = 0; i < backends.size(); ++i) {
    now[i] = backends[i]->IsServing();
    all = all && now[i];
  }
  std::lock_guard<std::mutex> lock(health_mu_);
  if (health_stop_) return;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (!force && now[i] == backend_serving_[i]) continue;
    v1::BackendStatus status = backends[i]->GetStatus();
    log::Log(now[i] ? log::Level::kInfo : log::Level::kWarning, "backend state",
             {{"backend", backends[i]->name()},
              {"state", v1::BackendState_Name(status.state())},
              {"reason", status.state_reason()},
              {"serving", static_cast<bool>(now[i])}});
  }
  // Per backend too ("backend/NAME"), so a monitor can tell which HSM is
  // down when the whole daemon reports NOT_SERVING.
  if (grpc::HealthCheckServiceInterface* health =
          grpc_server_->GetHealthCheckService()) {
    for (size_t i = 0; i < backends.size(); ++i) {
      if (!force && now[i] == backend_serving_[i]) continue;
      health->SetServingStatus(BackendHealthService(backends[i]->name()),
                               now[i]);
    }
  }
  backend_serving_ = now;
  // Ready for systemd means every backend serves: units ordered after hsmd
  // start only then.
  bool just_ready = false;
  if (all && !ready_notified_) {
    ready_notified_ = true;
    just_ready = true;
    Notify("READY=1\nSTATUS=serving");
  }
  if (!force && all == serving_) return;
  serving_ = all;
  if (!just_ready) {
    Notify(all ? "STATUS=serving"
               : "STATUS=not serving: a backend is not ready");
  }
  grpc::HealthCheckServiceInterface* health =
      grpc_server_->GetHealthCheckService();
  if (health == nullptr) return;
  // Not the one-argument overload: it would also overwrite the per-backend
  // statuses.
  health->SetServingStatus("", all);
  for (const char* name : kServiceNames) health->SetServingStatus(name, all);
  log::Info("health", {{"status", all ? "SERVING" : "NOT_SERVING"}});
}

void Server::HealthLoop() {
  const absl::Duration watchdog = options_.watchdog_interval;
  std::unique_lock<std::mutex> lock(health_mu_);
  next_watchdog_ping_ = absl::Now();
  while (!health_stop_) {
    absl::Duration wait = options_.health_poll_interval;
    if (watchdog > absl::ZeroDuration()) {
      wait = std::min(wait, std::max(absl::ZeroDuration(),
                                     next_watchdog_ping_ - absl::Now()));
    }
    health_cv_.wait_for(lock, absl::ToChronoNanoseconds(wait),
                        [this] { return health_stop_; });
    if (health_stop_) break;
    lock.unlock();
    UpdateHealth(/*force=*/false);
    lock.lock();
    // Pinged from this loop, after polling the backends: a poll that hangs
    // stops the pings and systemd restarts hsmd.
    if (watchdog > absl::ZeroDuration() && absl::Now() >= next_watchdog_ping_) {
      Notify("WATCHDOG=1");
      next_watchdog_ping_ = absl::Now() + watchdog;
    }
  }
}

void Server::Shutdown(absl::Duration grace) {
  {
    std::unique_lock<std::mutex> lock(state_mu_);
    if (shutting_down_) {
      state_cv_.wait(lock, [this] { return shut_down_; });
      return;
    }
    shutting_down_ = true;
  }
  bool started;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    started = started_ && grpc_server_ != nullptr;
  }
  if (started) {
    // From here new requests are refused, also on connections gRPC has not
    // yet told to go away.
    draining_ = true;
    log::Info("shutting down",
              {{"grace_ms", absl::ToInt64Milliseconds(grace)}});
    Notify("STOPPING=1\nSTATUS=shutting down");
    // No new connections from here on.
    if (acceptor_ != nullptr) acceptor_->Stop();
    {
      std::lock_guard<std::mutex> lock(health_mu_);
      health_stop_ = true;
      serving_ = false;
    }
    health_cv_.notify_all();
    if (health_thread_.joinable()) health_thread_.join();
    if (auto* health = grpc_server_->GetHealthCheckService()) {
      health->SetServingStatus(false);
    }
    // First drain: the calls in flight finish while new ones (also on
    // connections opened before) are refused by the services with
    // UNAVAILABLE "hsmd is shutting down" (draining_). gRPC's own shutdown
    // starts only then: a call that races its GOAWAY gets a bare CANCELLED,
    // and it would also wait for every idle client connection to close
    // (client_lib keeps connections open between calls; they only notice
    // the GOAWAY when they next call). So: wait for the calls themselves,
    // then drop the remaining connections.
    const absl::Time deadline = absl::Now() + grace;
    if (!in_flight_.WaitForZero(deadline)) {
      log::Warning("shutdown grace period over; cancelling requests",
                   {{"in_flight", in_flight_.count()}});
    }
    // The fast path's connections close now (its calls have drained, or
    // are past the grace); its threads get the same short wait as gRPC's.
    bool fast_path_stopped = true;
    if (fast_path_ != nullptr) {
      fast_path_stopped = fast_path_->Close(absl::Now() + kStuckRequestWait);
    }
    // Shared: the stopper may outlive this frame (see below).
    auto stopped = std::make_shared<absl::Notification>();
    grpc::Server* grpc_server = grpc_server_.get();
    std::thread stopper([grpc_server, stopped] {
      grpc_server->Shutdown(std::chrono::system_clock::now());
      stopped->Notify();
    });
    // Repeated because the stopper may not have begun the shutdown yet.
    // Cancelling ends the calls for their clients at once, but a request
    // thread blocked in a backend call (a hung HSM) only returns at its
    // deadline: past kStuckRequestWait the process goes without it.
    const absl::Time give_up = absl::Now() + kStuckRequestWait;
    do {
      grpc_server_cancel_all_calls(grpc_server_->c_server());
    } while (!stopped->WaitForNotificationWithTimeout(absl::Milliseconds(20)) &&
             absl::Now() < give_up);
    // gRPC is finished with whenever its own shutdown completed (its
    // threads are joined), whatever the fast path's threads still do.
    const bool grpc_stopped = stopped->HasBeenNotified();
    if (grpc_stopped) {
      stopper.join();
      grpc_server_->Wait();
      // Destroyed here, not with the Server: when fast-path threads stay
      // blocked the Server is never destroyed (the process _exits), and
      // gRPC's own threads must still be joined.
      grpc_server_.reset();
    } else {
      stopper.detach();
    }
    if (!grpc_stopped || !fast_path_stopped) {
      log::Error(
          "requests still blocked in a backend call after the shutdown grace "
          "period; exiting without waiting for them",
          {{"in_flight", in_flight_.count()}});
      left_requests_running_ = true;
      // The blocked request threads (and gRPC's stopper) keep using their
      // server and the backends until the process exits.
      if (!grpc_stopped) (void)grpc_server_.release();
      if (!fast_path_stopped) (void)fast_path_.release();
    }
  }
  if (!left_requests_running_.load()) {
    for (const auto& b : registry_->backends()) {
      b->Shutdown();
      log::Info("backend shut down", {{"backend", b->name()}});
    }
  }
  if (started && socket_ != nullptr) socket_->RemoveSocket();
  if (started) log::Info("hsmd stopped");
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    shut_down_ = true;
  }
  state_cv_.notify_all();
}

void Server::Wait() {
  std::unique_lock<std::mutex> lock(state_mu_);
  state_cv_.wait(lock, [this] { return shut_down_; });
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

}  // namespace hsmd
