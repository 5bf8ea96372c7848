#include "daemon/backend/pkcs11/pkcs11_backend.h"

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "common/status_macros.h"
#include "daemon/backend/backend_state.h"
#include "daemon/backend/call_on_worker.h"
#include "daemon/backend/pkcs11/ck_rv.h"
#include "daemon/backend/pkcs11/derive.h"
#include "daemon/backend/pkcs11/key_store.h"
#include "daemon/backend/pkcs11/keygen.h"
#include "daemon/backend/pkcs11/module.h"
#include "daemon/backend/pkcs11/objects.h"
#include "daemon/backend/pkcs11/session_pool.h"
#include "daemon/backend/pkcs11/signing.h"
#include "daemon/backend/pkcs11/spki.h"
#include "daemon/backend/pkcs11/token.h"
#include "daemon/backend/pkcs11/uri.h"
#include "daemon/backend/session_loop.h"
#include "daemon/backend/worker_pool.h"
#include "daemon/logging.h"

namespace hsmd::backend {
namespace {

using pkcs11::GetCkRv;
using pkcs11::KeyPtr;
using pkcs11::Module;
using pkcs11::SessionPool;
using pkcs11::Token;

constexpr uint32_t kMaxRandomLength = 65536;
constexpr uint32_t kMaxPoolSize = 1024;
// How long Shutdown waits for in-flight calls to give back their sessions.
constexpr absl::Duration kShutdownGrace = absl::Seconds(10);
// CKR_GENERAL_ERROR this many times in a row, on as many different sessions
// (fewer if the pool is smaller), is taken for a device fault: one alone is
// just an error.
constexpr int kGeneralErrorsForReinit = 3;
// Upper bound of the duration options (waits beyond it are mistakes, and
// std::chrono arithmetic overflows near infinity).
constexpr absl::Duration kMaxOptionDuration = absl::Hours(24);

bool FailedIn(const absl::Status& status, absl::string_view function) {
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  return detail.has_value() && detail->backend_function() == function;
}

absl::Status WithKey(absl::Status status, const v1::KeyRef& ref) {
  pkcs11::SetErrorKey(status, pkcs11::DescribeRef(ref));
  return status;
}

// Faults after which only re-initialising the module helps.
bool NeedsReinit(CK_RV rv) {
  return pkcs11::IsDeviceFault(rv) || rv == CKR_SLOT_ID_INVALID;
}

// What a request does with one borrowed session. Runs at most twice per
// session (again after a re-login).
template <typename T>
using SessionFn = std::function<absl::StatusOr<T>(Token&, CK_SESSION_HANDLE)>;

// Static facts about the token, kept for GetStatus while no token is open.
struct TokenFacts {
  std::string library_description;
  std::string label;
  std::string serial;
  std::string manufacturer;
  std::string model;
  uint64_t slot_id = 0;
};

TokenFacts FactsOf(const Token& token) {
  const pkcs11::TokenIdentity& identity = token.identity();
  TokenFacts facts;
  facts.library_description = token.module().library_description();
  facts.label = identity.token_label;
  facts.serial = token.serial();
  facts.manufacturer =
      pkcs11::TrimPadded(identity.token_info.manufacturerID,
                         sizeof(identity.token_info.manufacturerID));
  facts.model = pkcs11::TrimPadded(identity.token_info.model,
                                   sizeof(identity.token_info.model));
  facts.slot_id = identity.slot_id;
  return facts;
}

// The backend's state machine and everything the request threads, the
// workers and the recovery thread share. Workers hold it by shared_ptr, so
// a call still stuck in the module after Shutdown never touches freed state.
//
//   READY ⇄ DEGRADED        sessions had to be replaced; READY again after
//                           options.degraded_hold without new trouble
//   READY/DEGRADED → REINITIALIZING   device-level fault; requests fail fast
//                           with UNAVAILABLE while the recovery thread
//                           re-initialises the module with backoff
//   REINITIALIZING → READY  recovered
//   any → FAILED            the PIN was rejected (never retried) or shut down
BackendStateOptions StateOptions(const Pkcs11BackendOptions& options) {
  BackendStateOptions out;
  out.name = options.name;
  out.error_subject = absl::StrCat("HSM backend \"", options.name, "\"");
  out.just_recovered = " has just re-opened its token; retry";
  out.recovering_prefix = "re-initialising after ";
  out.attempt_failed_message = "re-initialisation attempt failed";
  out.degraded_hold = options.degraded_hold;
  out.backoff_initial = options.reinit_backoff_initial;
  out.backoff_max = options.reinit_backoff_max;
  return out;
}

// Everything the request threads, the workers and the recovery thread
// share; the state machine itself is BackendState (see backend_state.h).
// Workers hold it by shared_ptr, so a call still stuck in the module after
// Shutdown never touches freed state. Extra here: the PIN (never retried
// after a rejection) and the CKR_GENERAL_ERROR streak.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(Pkcs11BackendOptions options, std::shared_ptr<Module> module)
      : options_(std::move(options)),
        calls_(options_.name, "HSM"),
        module_(std::move(module)),
        state_(
            StateOptions(options_),
            [this](std::shared_ptr<Token> old) {
              return ReinitializeOnce(std::move(old));
            },
            [this](const Token& token) {
              std::lock_guard<std::mutex> lock(facts_mu_);
              facts_ = FactsOf(token);
            }) {}

  const Pkcs11BackendOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }
  std::mutex& admin_mu() { return admin_mu_; }
  BackendState<Token>& state() { return state_; }
  const BackendState<Token>& state() const { return state_; }
  // Shares the Core's lifetime (workers may outlive the backend).
  std::shared_ptr<AbandonedCalls> calls() {
    return std::shared_ptr<AbandonedCalls>(shared_from_this(), &calls_);
  }

  // Logs in on `session` (the PIN read from options.pin_source and wiped
  // after), serialised with every other login. With `seen_epoch`, skipped if
  // another thread logged in since that epoch was read. After a PIN
  // rejection the backend is FAILED and C_Login is never called again.
  absl::Status LogIn(Token& token, CK_SESSION_HANDLE session,
                     std::optional<uint64_t> seen_epoch);
  uint64_t login_epoch() const { return login_epoch_.load(); }

  // Makes `token` current and the backend READY.
  void Start(std::shared_ptr<Token> token) {
    {
      std::lock_guard<std::mutex> lock(module_mu_);
      reopen_selector_ = token->Selector();
    }
    state_.Start(std::move(token));
  }

  // One attempt of a request on one borrowed session: opens the session if
  // needed, runs `fn` (again once after a re-login, for idempotent
  // operations), reacts to the outcome (replace the session, start a
  // re-initialisation, ...), and gives the session back. `retry` tells the
  // caller to try again on another session. `call` is set when the attempt
  // runs on a worker for a request that may abandon it.
  template <typename T>
  absl::StatusOr<T> RunAttempt(const std::shared_ptr<Token>& token,
                               SessionPool::Lease& lease, SessionFn<T>& fn,
                               bool idempotent, bool& retry,
                               const PendingCallBase* call);

  void ReleaseModule();

  v1::BackendStatus GetStatus() const;
  Pkcs11BackendCounters Counters() const;

 private:
  void Observe(const std::shared_ptr<Token>& token, SessionPool::Lease& lease,
               const absl::Status& status, bool idempotent, bool& retry);
  void NoteGeneralError(const std::shared_ptr<Token>& token,
                        CK_SESSION_HANDLE session, const absl::Status& status);
  void ClearGeneralErrors();
  void FailForPin(const absl::Status& cause);
  // The recovery: drops `old` and re-initialises the module.
  absl::StatusOr<std::shared_ptr<Token>> ReinitializeOnce(
      std::shared_ptr<Token> old);

  const Pkcs11BackendOptions options_;
  AbandonedCalls calls_;

  // Serialises GenerateKey / DeleteKey (label uniqueness checks).
  std::mutex admin_mu_;

  std::mutex login_mu_;
  std::atomic<uint64_t> login_epoch_{0};
  bool pin_rejected_ ABSL_GUARDED_BY(login_mu_) = false;
  std::atomic<uint64_t> relogins_{0};

  // CKR_GENERAL_ERROR streak: count and the sessions it hit, on `token`
  // (a streak on an older token is over).
  std::atomic<bool> general_errors_pending_{false};
  std::mutex general_mu_;
  std::weak_ptr<Token> general_error_token_ ABSL_GUARDED_BY(general_mu_);
  int general_errors_ ABSL_GUARDED_BY(general_mu_) = 0;
  std::vector<CK_SESSION_HANDLE> general_error_sessions_
      ABSL_GUARDED_BY(general_mu_);

  mutable std::mutex module_mu_;
  std::shared_ptr<Module> module_ ABSL_GUARDED_BY(module_mu_);
  // How to find the token again: by label and serial, never by slot id.
  pkcs11::TokenSelector reopen_selector_ ABSL_GUARDED_BY(module_mu_);
  // The module generation the recovery thread last saw (its own).
  std::optional<uint64_t> seen_generation_;

  // Kept for GetStatus while no token is open.
  mutable std::mutex facts_mu_;
  TokenFacts facts_ ABSL_GUARDED_BY(facts_mu_);

  // Last: its callbacks use the members above.
  BackendState<Token> state_;
};

absl::Status Core::LogIn(Token& token, CK_SESSION_HANDLE session,
                         std::optional<uint64_t> seen_epoch) {
  std::lock_guard<std::mutex> login(login_mu_);
  if (pin_rejected_) return state_.NotServingError();
  if (seen_epoch.has_value() && *seen_epoch != login_epoch_.load()) {
    return absl::OkStatus();  // Someone logged in meanwhile.
  }
  absl::Status status = token.LogIn(session, options_.pin_source);
  if (status.ok()) {
    login_epoch_.fetch_add(1);
    if (seen_epoch.has_value()) {
      relogins_.fetch_add(1);
      log::Info("HSM login restored",
                {{"backend", name()}, {"token", token.identity().token_label}});
    }
    return status;
  }
  std::optional<CK_RV> rv = GetCkRv(status);
  if (rv.has_value() && pkcs11::IsPinRejection(*rv)) {
    pin_rejected_ = true;
    FailForPin(status);
  }
  return status;
}

void Core::FailForPin(const absl::Status& cause) {
  // At start-up NewPkcs11Backend reports the error itself.
  state_.Fail(cause,
              absl::StrCat("the user PIN was rejected: ", cause.message(),
                           "; hsmd will not log in again: fix the PIN and "
                           "restart hsmd"));
}

void Core::ClearGeneralErrors() {
  if (!general_errors_pending_.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(general_mu_);
  general_errors_ = 0;
  general_error_sessions_.clear();
  general_errors_pending_.store(false, std::memory_order_relaxed);
}

void Core::NoteGeneralError(const std::shared_ptr<Token>& token,
                            CK_SESSION_HANDLE session,
                            const absl::Status& status) {
  if (!state_.IsCurrentAndServing(token)) return;
  {
    std::lock_guard<std::mutex> lock(general_mu_);
    if (general_error_token_.lock() != token) {
      general_error_token_ = token;
      general_errors_ = 0;
      general_error_sessions_.clear();
    }
    general_errors_pending_.store(true, std::memory_order_relaxed);
    ++general_errors_;
    if (std::find(general_error_sessions_.begin(),
                  general_error_sessions_.end(),
                  session) == general_error_sessions_.end()) {
      general_error_sessions_.push_back(session);
    }
    const size_t sessions_needed =
        std::min<size_t>(kGeneralErrorsForReinit, token->pool().size());
    if (general_errors_ < kGeneralErrorsForReinit ||
        general_error_sessions_.size() < sessions_needed) {
      return;
    }
    general_errors_ = 0;
    general_error_sessions_.clear();
  }
  // Refused requests name the code and carry the last one's detail.
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  std::string cause = "repeated CKR_GENERAL_ERROR";
  if (detail.has_value()) {
    absl::StrAppend(&cause, " in ", detail->backend_function());
  }
  state_.RequestReinit(
      token,
      absl::StrCat(kGeneralErrorsForReinit,
                   " CKR_GENERAL_ERROR in a row: ", status.message()),
      std::move(cause), std::move(detail));
}

void Core::Observe(const std::shared_ptr<Token>& token,
                   SessionPool::Lease& lease, const absl::Status& status,
                   bool idempotent, bool& retry) {
  if (status.ok()) {
    ClearGeneralErrors();
    return;
  }
  std::optional<CK_RV> rv = GetCkRv(status);
  if (!rv.has_value()) return;
  if (NeedsReinit(*rv)) {
    // Not replaced: the recovery drops the whole pool, and opening a
    // session on a failing device would only add calls into it.
    state_.RequestReinit(token, status);
    return;
  }
  if (pkcs11::IsBrokenSession(*rv)) {
    lease.Invalidate();
    state_.NoteTrouble(status);
    retry = idempotent;
    return;
  }
  // SoftHSM reports bad padding in C_Decrypt as CKR_GENERAL_ERROR: that is
  // the ciphertext's fault, not the device's.
  if (*rv == CKR_GENERAL_ERROR && !FailedIn(status, "C_Decrypt")) {
    NoteGeneralError(token, lease.handle(), status);
  }
}

template <typename T>
absl::StatusOr<T> Core::RunAttempt(const std::shared_ptr<Token>& token,
                                   SessionPool::Lease& lease, SessionFn<T>& fn,
                                   bool idempotent, bool& retry,
                                   const PendingCallBase* call) {
  retry = false;
  Module::Use use = token->module().Enter(token->generation());
  if (!use.active()) {
    // The module is being (or was) re-initialised under this token's
    // sessions, by our recovery or another backend on the same module. No
    // call now: the recovery drops the whole pool.
    lease.Release();
    state_.RequestReinit(
        token, absl::UnavailableError("the PKCS#11 module was re-initialised"));
    return state_.NotServingError();
  }
  absl::StatusOr<T> result = [&]() -> absl::StatusOr<T> {
    RETURN_IF_ERROR(lease.EnsureOpen());
    const uint64_t epoch = login_epoch();
    absl::StatusOr<T> first = fn(*token, lease.handle());
    if (first.ok() || GetCkRv(first.status()) != CKR_USER_NOT_LOGGED_IN ||
        !token->login_required()) {
      return first;
    }
    // The token forgot the login (all sessions were closed, or the HSM
    // restarted its session state): log in again, then retry once.
    absl::Status login = LogIn(*token, lease.handle(), epoch);
    if (!login.ok()) {
      std::optional<CK_RV> rv = GetCkRv(login);
      if (rv.has_value() && pkcs11::IsPinRejection(*rv)) {
        return state_.NotServingError();
      }
      return login;
    }
    if (!idempotent) return first;
    return fn(*token, lease.handle());
  }();
  Observe(token, lease, result.status(), idempotent, retry);
  // A call that outlived its request and then failed leaves its session in
  // an unknown state.
  if (!result.ok() && call != nullptr && call->abandoned()) lease.Invalidate();
  lease.Release();
  return result;
}

absl::StatusOr<std::shared_ptr<Token>> Core::ReinitializeOnce(
    std::shared_ptr<Token> old) {
  std::shared_ptr<Module> module;
  pkcs11::TokenSelector selector;
  {
    std::lock_guard<std::mutex> lock(module_mu_);
    module = module_;
    selector = reopen_selector_;
  }
  if (module == nullptr) return absl::UnavailableError("shut down");
  if (old != nullptr) {
    seen_generation_ = old->generation();
    // Requests still holding it finish on their own; its sessions are
    // closed only if the module will not be finalized (which ends them).
    old->Abandon(/*close_sessions=*/module->no_finalize());
    old.reset();
  }
  if (!seen_generation_.has_value()) seen_generation_ = module->generation();
  ASSIGN_OR_RETURN(
      seen_generation_,
      module->Reinitialize(*seen_generation_, options_.reinit_drain_timeout));
  ASSIGN_OR_RETURN(
      std::unique_ptr<Token> token,
      Token::Open(name(), module, selector, options_.session_pool_size));
  if (token->login_required()) {
    ASSIGN_OR_RETURN(SessionPool::Lease lease,
                     token->pool().Acquire(absl::InfiniteFuture()));
    Module::Use use = module->Enter(token->generation());
    if (!use.active()) {
      return absl::UnavailableError(
          "the PKCS#11 module was re-initialised again while logging in");
    }
    RETURN_IF_ERROR(lease.EnsureOpen());
    RETURN_IF_ERROR(LogIn(*token, lease.handle(), std::nullopt));
  }
  return std::shared_ptr<Token>(std::move(token));
}

void Core::ReleaseModule() {
  std::shared_ptr<Module> module;
  std::lock_guard<std::mutex> lock(module_mu_);
  module = std::move(module_);
}

v1::BackendStatus Core::GetStatus() const {
  BackendState<Token>::Snapshot now = state_.snapshot();
  v1::BackendStatus status;
  status.set_name(options_.name);
  status.set_kind(std::string(pkcs11::kBackendKind));
  status.set_module_path(options_.module_path);
  status.set_state(now.state);
  status.set_state_reason(now.reason);
  status.set_reinitializations(now.reinitializations);
  {
    std::lock_guard<std::mutex> lock(facts_mu_);
    status.set_library_description(facts_.library_description);
    status.set_token_label(facts_.label);
    status.set_token_serial(facts_.serial);
    status.set_token_manufacturer(facts_.manufacturer);
    status.set_token_model(facts_.model);
    status.set_slot_id(facts_.slot_id);
  }
  if (now.serving) {
    status.set_logged_in(now.current->logged_in());
    status.set_sessions_in_use(now.current->pool().in_use());
    status.set_sessions_total(now.current->pool().open());
  }
  return status;
}

Pkcs11BackendCounters Core::Counters() const {
  Pkcs11BackendCounters counters;
  counters.calls_abandoned = calls_.abandoned();
  counters.abandoned_calls_running = calls_.running();
  counters.relogins = relogins_.load();
  BackendState<Token>::Snapshot now = state_.snapshot();
  counters.reinit_attempts = now.reinit_attempts;
  if (now.current != nullptr) {
    counters.sessions_replaced = now.current->pool().replaced();
    counters.waiting_for_session = now.current->pool().waiting();
  }
  return counters;
}

class Pkcs11Backend final : public Backend {
 public:
  explicit Pkcs11Backend(std::shared_ptr<Core> core)
      : core_(std::move(core)),
        kind_(pkcs11::kBackendKind),
        // One worker per session, plus as many for calls that outlive their
        // request (each also holds a session of an older pool).
        workers_(2 * static_cast<size_t>(core_->options().session_pool_size) +
                 2) {
    recovery_ = std::thread([core = core_] { core->state().RecoveryLoop(); });
  }
  ~Pkcs11Backend() override { Shutdown(); }

  const std::string& name() const override { return core_->name(); }
  const std::string& kind() const override { return kind_; }

  absl::StatusOr<std::vector<v1::Key>> ListKeys(
      const v1::ListKeysRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GetKey(const v1::KeyRef& ref,
                                 const RequestContext& ctx) override;
  absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& request,
                                        const RequestContext& ctx) override;
  absl::StatusOr<v1::DecryptResponse> Decrypt(
      const v1::DecryptRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<v1::DeriveResponse> Derive(const v1::DeriveRequest& request,
                                            const RequestContext& ctx) override;
  absl::StatusOr<std::string> GenerateRandom(
      uint32_t length, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GenerateKey(const v1::GenerateKeyRequest& request,
                                      const RequestContext& ctx) override;
  absl::StatusOr<uint32_t> DeleteKey(const v1::KeyRef& ref,
                                     const RequestContext& ctx) override;
  v1::BackendStatus GetStatus() const override { return core_->GetStatus(); }
  bool IsServing() const override { return core_->state().IsServing(); }
  void Shutdown() override;

  Pkcs11BackendCounters Counters() const {
    Pkcs11BackendCounters counters = core_->Counters();
    counters.worker_threads = static_cast<uint32_t>(workers_.threads());
    return counters;
  }

  // For HoldSessionForTesting.
  absl::StatusOr<std::pair<std::shared_ptr<Token>, SessionPool::Lease>>
  HoldSession(absl::Time deadline);

 private:
  // Whether the request's HSM calls run on a worker (see
  // Pkcs11BackendOptions::calls_on_workers). Not when the caller enforces
  // the deadline itself: the calls are then made on the request's thread
  // (see InlineCall).
  bool OnWorker(const RequestContext& ctx) const {
    return core_->options().calls_on_workers && !ctx.caller_enforces_deadline &&
           ctx.deadline != absl::InfiniteFuture();
  }

  // Runs `fn` on a pooled session. A session that proves broken is
  // replaced; idempotent operations are then retried on another session.
  template <typename T>
  absl::StatusOr<T> WithSession(const RequestContext& ctx, bool idempotent,
                                SessionFn<T> fn);

  template <typename T>
  absl::StatusOr<T> RunOnWorker(const RequestContext& ctx,
                                std::shared_ptr<Token> token,
                                SessionPool::Lease lease,
                                std::shared_ptr<SessionFn<T>> fn,
                                bool idempotent, bool& retry);

  const std::shared_ptr<Core> core_;
  const std::string kind_;
  WorkerPool workers_;
  std::mutex shutdown_mu_;
  std::thread recovery_ ABSL_GUARDED_BY(shutdown_mu_);
};

template <typename T>
absl::StatusOr<T> Pkcs11Backend::WithSession(const RequestContext& ctx,
                                             bool idempotent, SessionFn<T> fn) {
  // After an invalidate-everything event each pooled session may fail once.
  const uint32_t max_attempts =
      idempotent ? core_->options().session_pool_size + 1 : 1;
  auto shared_fn = std::make_shared<SessionFn<T>>(std::move(fn));
  return RunWithPooledSession<T>(
      core_->state(), ctx.deadline, max_attempts, "HSM", "HSM session",
      [&](std::shared_ptr<Token> token, SessionPool::Lease lease,
          bool& retry) -> absl::StatusOr<T> {
        if (OnWorker(ctx)) {
          return RunOnWorker<T>(ctx, std::move(token), std::move(lease),
                                shared_fn, idempotent, retry);
        }
        if (!ctx.caller_enforces_deadline ||
            ctx.deadline == absl::InfiniteFuture()) {
          return core_->RunAttempt<T>(token, lease, *shared_fn, idempotent,
                                      retry, nullptr);
        }
        InlineCall call(*core_->calls(), ctx.deadline);
        absl::StatusOr<T> result = core_->RunAttempt<T>(
            token, lease, *shared_fn, idempotent, retry, &call);
        if (call.abandoned()) {
          // The caller has answered already; nobody wants this result.
          retry = false;
          return CallOutlivedDeadline(*core_->calls());
        }
        return result;
      });
}

template <typename T>
absl::StatusOr<T> Pkcs11Backend::RunOnWorker(const RequestContext& ctx,
                                             std::shared_ptr<Token> token,
                                             SessionPool::Lease lease,
                                             std::shared_ptr<SessionFn<T>> fn,
                                             bool idempotent, bool& retry) {
  return backend::RunOnWorker<T>(
      workers_, core_->calls(), ctx.deadline,
      [core = core_, token = std::move(token), lease = std::move(lease),
       fn = std::move(fn),
       idempotent](const PendingCallBase* call, bool& retry_later) mutable {
        return core->RunAttempt<T>(token, lease, *fn, idempotent, retry_later,
                                   call);
      },
      retry);
}

absl::StatusOr<std::vector<v1::Key>> Pkcs11Backend::ListKeys(
    const v1::ListKeysRequest& request, const RequestContext& ctx) {
  std::optional<pkcs11::Pkcs11Uri> filter;
  if (!request.uri_filter().empty()) {
    ASSIGN_OR_RETURN(filter, pkcs11::Pkcs11Uri::Parse(request.uri_filter()));
  }
  const bool copy = OnWorker(ctx);
  auto kept_filter = Keep(filter, copy);
  auto label = Keep(request.label(), copy);
  return WithSession<std::vector<v1::Key>>(
      ctx, true,
      [kept_filter, label](Token& token, CK_SESSION_HANDLE session)
          -> absl::StatusOr<std::vector<v1::Key>> {
        ASSIGN_OR_RETURN(
            std::vector<KeyPtr> keys,
            token.keys().ListKeys(
                session, kept_filter->has_value() ? &**kept_filter : nullptr));
        std::vector<v1::Key> result;
        for (const KeyPtr& key : keys) {
          if (!label->empty() && key->key.label() != *label) continue;
          result.push_back(key->key);
        }
        // Token object order is arbitrary; a stable order makes listings
        // comparable between runs.
        std::sort(result.begin(), result.end(),
                  [](const v1::Key& a, const v1::Key& b) {
                    return std::tie(a.label(), a.key_id()) <
                           std::tie(b.label(), b.key_id());
                  });
        return result;
      });
}

absl::StatusOr<v1::Key> Pkcs11Backend::GetKey(const v1::KeyRef& ref,
                                              const RequestContext& ctx) {
  auto kept_ref = Keep(ref, OnWorker(ctx));
  absl::StatusOr<v1::Key> key = WithSession<v1::Key>(
      ctx, true,
      [kept_ref](Token& token,
                 CK_SESSION_HANDLE session) -> absl::StatusOr<v1::Key> {
        // Always from the token: GetKey must show a re-created key.
        ASSIGN_OR_RETURN(KeyPtr resolved,
                         token.keys().Resolve(session, *kept_ref, false));
        return resolved->key;
      });
  if (!key.ok()) return WithKey(key.status(), ref);
  return key;
}

absl::StatusOr<v1::SignResponse> Pkcs11Backend::Sign(
    const v1::SignRequest& request, const RequestContext& ctx) {
  auto kept = Keep(request, OnWorker(ctx));
  absl::StatusOr<v1::SignResponse> response = WithSession<v1::SignResponse>(
      ctx, true,
      [kept](Token& token,
             CK_SESSION_HANDLE session) -> absl::StatusOr<v1::SignResponse> {
        const v1::SignRequest& request = *kept;
        ASSIGN_OR_RETURN(KeyPtr key,
                         token.keys().Resolve(session, request.key(), true));
        for (int stale_retry = 0;; ++stale_retry) {
          ASSIGN_OR_RETURN(
              pkcs11::SignPlan plan,
              pkcs11::PlanSign(key->key, request, token.module().quirks()));
          absl::StatusOr<std::string> signature =
              pkcs11::RunSign(token.fns(), session, key->handle, plan);
          std::optional<CK_RV> rv = GetCkRv(signature.status());
          if (!signature.ok() && plan.software_fallback_possible &&
              rv.has_value() && pkcs11::IsParameterRejection(*rv) &&
              FailedIn(signature.status(), "C_SignInit")) {
            // The module does not take these PSS parameters: pad here.
            ASSIGN_OR_RETURN(plan, pkcs11::PlanSign(key->key, request,
                                                    token.module().quirks(),
                                                    /*software_pss=*/true));
            signature =
                pkcs11::RunSign(token.fns(), session, key->handle, plan);
            rv = GetCkRv(signature.status());
          }
          if (!signature.ok() && rv.has_value() && pkcs11::IsStaleHandle(*rv) &&
              stale_retry == 0) {
            // The key object was deleted or re-created: find it again.
            token.keys().Forget(request.key());
            ASSIGN_OR_RETURN(
                key, token.keys().Resolve(session, request.key(), false));
            continue;
          }
          if (!signature.ok()) return signature.status();
          v1::SignResponse out;
          out.set_signature(*std::move(signature));
          out.set_key_id(key->key.key_id());
          return out;
        }
      });
  if (!response.ok()) return WithKey(response.status(), request.key());
  return response;
}

absl::StatusOr<v1::DecryptResponse> Pkcs11Backend::Decrypt(
    const v1::DecryptRequest& request, const RequestContext& ctx) {
  auto kept = Keep(request, OnWorker(ctx));
  absl::StatusOr<v1::DecryptResponse> response =
      WithSession<v1::DecryptResponse>(
          ctx, true,
          [kept](Token& token, CK_SESSION_HANDLE session)
              -> absl::StatusOr<v1::DecryptResponse> {
            const v1::DecryptRequest& request = *kept;
            ASSIGN_OR_RETURN(
                KeyPtr key, token.keys().Resolve(session, request.key(), true));
            for (int stale_retry = 0;; ++stale_retry) {
              ASSIGN_OR_RETURN(pkcs11::DecryptPlan plan,
                               pkcs11::PlanDecrypt(key->key, request,
                                                   token.module().quirks()));
              absl::StatusOr<std::string> plaintext =
                  pkcs11::RunDecrypt(token.fns(), session, key->handle, plan);
              std::optional<CK_RV> rv = GetCkRv(plaintext.status());
              if (!plaintext.ok() && plan.software_fallback_possible &&
                  rv.has_value() && pkcs11::IsParameterRejection(*rv) &&
                  FailedIn(plaintext.status(), "C_DecryptInit")) {
                ASSIGN_OR_RETURN(plan,
                                 pkcs11::PlanDecrypt(key->key, request,
                                                     token.module().quirks(),
                                                     /*software_oaep=*/true));
                plaintext =
                    pkcs11::RunDecrypt(token.fns(), session, key->handle, plan);
                rv = GetCkRv(plaintext.status());
              }
              if (!plaintext.ok() && rv.has_value() &&
                  pkcs11::IsStaleHandle(*rv) && stale_retry == 0) {
                token.keys().Forget(request.key());
                ASSIGN_OR_RETURN(
                    key, token.keys().Resolve(session, request.key(), false));
                continue;
              }
              if (!plaintext.ok()) return plaintext.status();
              v1::DecryptResponse out;
              out.set_plaintext(*std::move(plaintext));
              out.set_key_id(key->key.key_id());
              return out;
            }
          });
  if (!response.ok()) return WithKey(response.status(), request.key());
  return response;
}

// Idempotent like Sign: a broken session is replaced and the derivation
// retried; a stale key handle is resolved again once.
absl::StatusOr<v1::DeriveResponse> Pkcs11Backend::Derive(
    const v1::DeriveRequest& request, const RequestContext& ctx) {
  auto kept = Keep(request, OnWorker(ctx));
  absl::StatusOr<v1::DeriveResponse> response = WithSession<v1::DeriveResponse>(
      ctx, true,
      [kept](Token& token,
             CK_SESSION_HANDLE session) -> absl::StatusOr<v1::DeriveResponse> {
        const v1::DeriveRequest& request = *kept;
        ASSIGN_OR_RETURN(KeyPtr key,
                         token.keys().Resolve(session, request.key(), true));
        for (int stale_retry = 0;; ++stale_retry) {
          ASSIGN_OR_RETURN(pkcs11::DerivePlan plan,
                           pkcs11::PlanDerive(key->key, request));
          absl::StatusOr<std::string> secret =
              pkcs11::RunDerive(token.fns(), session, key->handle, plan);
          std::optional<CK_RV> rv = GetCkRv(secret.status());
          if (!secret.ok() && rv.has_value() && pkcs11::IsStaleHandle(*rv) &&
              stale_retry == 0) {
            token.keys().Forget(request.key());
            ASSIGN_OR_RETURN(
                key, token.keys().Resolve(session, request.key(), false));
            continue;
          }
          if (!secret.ok()) return secret.status();
          v1::DeriveResponse out;
          out.set_shared_secret(*std::move(secret));
          out.set_key_id(key->key.key_id());
          return out;
        }
      });
  if (!response.ok()) return WithKey(response.status(), request.key());
  return response;
}

absl::StatusOr<std::string> Pkcs11Backend::GenerateRandom(
    uint32_t length, const RequestContext& ctx) {
  if (length == 0 || length > kMaxRandomLength) {
    return absl::InvalidArgumentError(absl::StrCat("random length ", length,
                                                   " is out of range (1..",
                                                   kMaxRandomLength, ")"));
  }
  return WithSession<std::string>(
      ctx, true,
      [length](Token& token,
               CK_SESSION_HANDLE session) -> absl::StatusOr<std::string> {
        std::string data(length, '\0');
        CK_RV rv = token.fns()->C_GenerateRandom(
            session, reinterpret_cast<CK_BYTE*>(data.data()), length);
        if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_GenerateRandom");
        return data;
      });
}

absl::StatusOr<v1::Key> Pkcs11Backend::GenerateKey(
    const v1::GenerateKeyRequest& request, const RequestContext& ctx) {
  RETURN_IF_ERROR(pkcs11::ValidateGenerateKeyRequest(request));
  if (!request.backend().empty() && request.backend() != name()) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend \"", request.backend(),
                     "\" is not this backend (\"", name(), "\")"));
  }
  auto kept = Keep(request, OnWorker(ctx));
  return WithSession<v1::Key>(
      ctx, false,
      [kept, core = core_](
          Token& token, CK_SESSION_HANDLE session) -> absl::StatusOr<v1::Key> {
        const v1::GenerateKeyRequest& request = *kept;
        // Held where the calls are made, so a call that outlives its
        // request still excludes the next GenerateKey / DeleteKey.
        std::lock_guard<std::mutex> admin(core->admin_mu());
        CK_FUNCTION_LIST* fns = token.fns();
        pkcs11::AttributeTemplate by_label;
        by_label.AddBytes(CKA_LABEL, request.label());
        ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> same_label,
                         pkcs11::FindObjects(fns, session, by_label,
                                             pkcs11::kMaxSearchResults));
        if (!same_label.empty()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "label \"", request.label(), "\" is already in use on token \"",
              token.identity().token_label, "\""));
        }
        if (!request.id().empty()) {
          pkcs11::AttributeTemplate by_id;
          by_id.AddBytes(CKA_ID, request.id());
          ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> same_id,
                           pkcs11::FindObjects(fns, session, by_id,
                                               pkcs11::kMaxSearchResults));
          if (!same_id.empty()) {
            return absl::AlreadyExistsError(
                absl::StrCat("id ", pkcs11::PercentEncode(request.id()),
                             " is already in use on token \"",
                             token.identity().token_label, "\""));
          }
        }
        // Without a requested id, generate under a random one, then switch
        // to one derived from the public key (unknown until now).
        std::string id = request.id();
        if (id.empty()) {
          id.resize(16);
          if (RAND_bytes(reinterpret_cast<unsigned char*>(id.data()), 16) !=
              1) {
            return absl::InternalError("RAND_bytes failed");
          }
        }
        ASSIGN_OR_RETURN(pkcs11::KeyPairHandles handles,
                         pkcs11::GenerateKeyPair(fns, session, request, id));
        auto destroy_pair = [&]() {
          fns->C_DestroyObject(session, handles.private_key);
          fns->C_DestroyObject(session, handles.public_key);
        };
        absl::StatusOr<KeyPtr> key =
            token.keys().ReadKey(session, handles.private_key);
        if (!key.ok()) {
          destroy_pair();
          return key.status();
        }
        if (request.id().empty()) {
          // First 8 bytes of the key id (itself a SHA-256 prefix of the
          // SPKI), unless another object holds it already.
          const std::string derived =
              absl::HexStringToBytes((*key)->key.key_id().substr(0, 16));
          pkcs11::AttributeTemplate by_id;
          by_id.AddBytes(CKA_ID, derived);
          absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> taken =
              pkcs11::FindObjects(fns, session, by_id,
                                  pkcs11::kMaxSearchResults);
          if (taken.ok() && taken->empty()) {
            pkcs11::AttributeTemplate set_id;
            set_id.AddBytes(CKA_ID, derived);
            CK_RV rv = fns->C_SetAttributeValue(session, handles.private_key,
                                                set_id.data(), set_id.size());
            if (rv == CKR_OK) {
              rv = fns->C_SetAttributeValue(session, handles.public_key,
                                            set_id.data(), set_id.size());
              if (rv != CKR_OK) {
                // Keep the pair consistent: back to the random id.
                pkcs11::AttributeTemplate old_id;
                old_id.AddBytes(CKA_ID, id);
                fns->C_SetAttributeValue(session, handles.private_key,
                                         old_id.data(), old_id.size());
              }
            }
          }
          key = token.keys().ReadKey(session, handles.private_key);
          if (!key.ok()) {
            destroy_pair();
            return key.status();
          }
        }
        // Cached URI resolutions may now be ambiguous.
        token.keys().ClearCache();
        return (*key)->key;
      });
}

absl::StatusOr<uint32_t> Pkcs11Backend::DeleteKey(const v1::KeyRef& ref,
                                                  const RequestContext& ctx) {
  auto kept_ref = Keep(ref, OnWorker(ctx));
  absl::StatusOr<uint32_t> deleted = WithSession<uint32_t>(
      ctx, false,
      [kept_ref, core = core_](
          Token& token, CK_SESSION_HANDLE session) -> absl::StatusOr<uint32_t> {
        std::lock_guard<std::mutex> admin(core->admin_mu());
        CK_FUNCTION_LIST* fns = token.fns();
        ASSIGN_OR_RETURN(KeyPtr key,
                         token.keys().Resolve(session, *kept_ref, false));
        ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> objects,
                         token.keys().FindCompanionObjects(session, *key));
        objects.push_back(key->handle);
        uint32_t count = 0;
        absl::Status first_error;
        for (CK_OBJECT_HANDLE object : objects) {
          CK_RV rv = fns->C_DestroyObject(session, object);
          if (rv == CKR_OK) {
            ++count;
          } else if (first_error.ok()) {
            first_error = pkcs11::Pkcs11Error(rv, "C_DestroyObject");
          }
        }
        token.keys().ClearCache();
        if (!first_error.ok()) return first_error;
        return count;
      });
  if (!deleted.ok()) return WithKey(deleted.status(), ref);
  return deleted;
}

void Pkcs11Backend::Shutdown() {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  bool first = false;
  std::shared_ptr<Token> token = core_->state().BeginShutdown(first);
  if (!first) return;
  if (recovery_.joinable()) recovery_.join();
  // C_Logout and the session closes happen here; C_Finalize when the last
  // reference to the module goes (requests still holding the token keep it
  // alive until they finish).
  const absl::Time grace_end = absl::Now() + kShutdownGrace;
  if (token != nullptr) token->Close(kShutdownGrace);
  token.reset();
  // A call stuck in the module past the grace keeps its worker (detached)
  // and the shared state alive until it returns.
  workers_.Shutdown(std::max(grace_end - absl::Now(), absl::ZeroDuration()));
  core_->ReleaseModule();
}

absl::StatusOr<std::pair<std::shared_ptr<Token>, SessionPool::Lease>>
Pkcs11Backend::HoldSession(absl::Time deadline) {
  ASSIGN_OR_RETURN(std::shared_ptr<Token> token, core_->state().Serving());
  ASSIGN_OR_RETURN(SessionPool::Lease lease, token->pool().Acquire(deadline));
  RETURN_IF_ERROR(lease.EnsureOpen());
  return std::make_pair(std::move(token), std::move(lease));
}

class HeldSession final : public HeldSessionForTesting {
 public:
  HeldSession(std::shared_ptr<Token> token, SessionPool::Lease lease)
      : token_(std::move(token)), lease_(std::move(lease)) {}
  ~HeldSession() override {
    // The lease must go back before the token can go.
    lease_ = SessionPool::Lease();
  }

 private:
  std::shared_ptr<Token> token_;
  SessionPool::Lease lease_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewPkcs11Backend(
    Pkcs11BackendOptions options) {
  if (options.module_path.empty()) {
    return absl::InvalidArgumentError("PKCS#11 module path is empty");
  }
  if (options.session_pool_size == 0 ||
      options.session_pool_size > kMaxPoolSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("session pool size ", options.session_pool_size,
                     " is out of range (1..", kMaxPoolSize, ")"));
  }
  for (const auto& [field, value] :
       {std::make_pair("reinit_backoff_initial",
                       options.reinit_backoff_initial),
        std::make_pair("reinit_backoff_max", options.reinit_backoff_max),
        std::make_pair("reinit_drain_timeout", options.reinit_drain_timeout),
        std::make_pair("degraded_hold", options.degraded_hold)}) {
    if (value < absl::ZeroDuration() || value > kMaxOptionDuration) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " ", absl::FormatDuration(value), " is out of range (0..",
          absl::FormatDuration(kMaxOptionDuration), ")"));
    }
  }
  if (options.reinit_backoff_initial == absl::ZeroDuration() ||
      options.reinit_backoff_max < options.reinit_backoff_initial) {
    return absl::InvalidArgumentError(absl::StrCat(
        "re-initialisation backoff must be positive and its maximum (",
        absl::FormatDuration(options.reinit_backoff_max),
        ") at least its start (",
        absl::FormatDuration(options.reinit_backoff_initial), ")"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Module> module,
                   Module::Load(options.module_path, options.no_finalize));
  pkcs11::TokenSelector selector;
  selector.label = options.token_label;
  selector.serial = options.token_serial;
  if (options.slot_id.has_value()) selector.slot_id = *options.slot_id;
  ASSIGN_OR_RETURN(
      std::unique_ptr<Token> opened,
      Token::Open(options.name, module, selector, options.session_pool_size));
  std::shared_ptr<Token> token = std::move(opened);
  auto core = std::make_shared<Core>(std::move(options), module);
  if (token->login_required()) {
    ASSIGN_OR_RETURN(SessionPool::Lease lease,
                     token->pool().Acquire(absl::InfiniteFuture()));
    RETURN_IF_ERROR(lease.EnsureOpen());
    RETURN_IF_ERROR(core->LogIn(*token, lease.handle(), std::nullopt));
  }
  core->Start(std::move(token));
  return std::unique_ptr<Backend>(new Pkcs11Backend(std::move(core)));
}

absl::StatusOr<std::unique_ptr<HeldSessionForTesting>> HoldSessionForTesting(
    Backend& backend, absl::Time deadline) {
  auto* pkcs11_backend = dynamic_cast<Pkcs11Backend*>(&backend);
  if (pkcs11_backend == nullptr) {
    return absl::InvalidArgumentError("not a PKCS#11 backend");
  }
  ASSIGN_OR_RETURN(auto held, pkcs11_backend->HoldSession(deadline));
  return std::unique_ptr<HeldSessionForTesting>(
      new HeldSession(std::move(held.first), std::move(held.second)));
}

absl::StatusOr<Pkcs11BackendCounters> GetPkcs11BackendCounters(
    const Backend& backend) {
  const auto* pkcs11_backend = dynamic_cast<const Pkcs11Backend*>(&backend);
  if (pkcs11_backend == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backend \"", backend.name(), "\" is not a PKCS#11 backend"));
  }
  return pkcs11_backend->Counters();
}

absl::StatusOr<uint64_t> InitializeToken(const std::string& module_path,
                                         const std::string& label,
                                         absl::string_view so_pin,
                                         absl::string_view user_pin) {
  if (label.empty() || label.size() > 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token label must be 1..32 bytes; \"", label, "\" is ", label.size()));
  }
  if (so_pin.empty() || user_pin.empty()) {
    return absl::InvalidArgumentError("the SO PIN and user PIN must be set");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<pkcs11::Module> module,
                   pkcs11::Module::Load(module_path));
  CK_FUNCTION_LIST* fns = module->fns();
  if (absl::StatusOr<CK_SLOT_ID> existing =
          pkcs11::FindTokenSlot(*module, label, "", std::nullopt);
      existing.ok()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "a token labelled \"", label, "\" already exists in slot ", *existing));
  }
  CK_ULONG count = 0;
  CK_RV rv = fns->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  if (count > 0) {
    rv = fns->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_GetSlotList");
    slots.resize(count);
  }
  std::optional<CK_SLOT_ID> free_slot;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (fns->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) {
      free_slot = slot;
      break;
    }
  }
  if (!free_slot.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "module ", module_path, " has no slot with an uninitialised token"));
  }
  unsigned char padded[32];
  pkcs11::PadTo(label, padded, sizeof(padded));
  const std::string context =
      absl::StrCat("initialising token \"", label, "\" in slot ", *free_slot);
  rv = fns->C_InitToken(
      *free_slot,
      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(so_pin.data())),
      so_pin.size(), padded);
  if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_InitToken", context);

  // SoftHSM moves an initialised token to a slot id derived from its
  // serial: find it again by label.
  ASSIGN_OR_RETURN(CK_SLOT_ID slot,
                   pkcs11::FindTokenSlot(*module, label, "", std::nullopt));
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  rv = fns->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                          nullptr, &session);
  if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_OpenSession", context);
  absl::Status status;
  rv = fns->C_Login(
      session, CKU_SO,
      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(so_pin.data())),
      so_pin.size());
  if (rv != CKR_OK) {
    status = pkcs11::Pkcs11Error(rv, "C_Login (SO)", context);
  } else {
    rv = fns->C_InitPIN(
        session,
        reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(user_pin.data())),
        user_pin.size());
    if (rv != CKR_OK) status = pkcs11::Pkcs11Error(rv, "C_InitPIN", context);
    fns->C_Logout(session);
  }
  fns->C_CloseSession(session);
  if (!status.ok()) return status;
  return static_cast<uint64_t>(slot);
}

}  // namespace hsmd::backend
