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
#include "daemon/backend/pkcs11/ck_rv.h"
#include "daemon/backend/pkcs11/key_store.h"
#include "daemon/backend/pkcs11/keygen.h"
#include "daemon/backend/pkcs11/module.h"
#include "daemon/backend/pkcs11/objects.h"
#include "daemon/backend/pkcs11/session_pool.h"
#include "daemon/backend/pkcs11/signing.h"
#include "daemon/backend/pkcs11/spki.h"
#include "daemon/backend/pkcs11/token.h"
#include "daemon/backend/pkcs11/uri.h"
#include "daemon/backend/pkcs11/worker_pool.h"
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
// An abandoned call returning this long after its deadline is logged.
constexpr absl::Duration kLongAbandonedCall = absl::Seconds(1);

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

absl::string_view StateName(v1::BackendState state) {
  switch (state) {
    case v1::BACKEND_STATE_STARTING:
      return "STARTING";
    case v1::BACKEND_STATE_READY:
      return "READY";
    case v1::BACKEND_STATE_DEGRADED:
      return "DEGRADED";
    case v1::BACKEND_STATE_REINITIALIZING:
      return "REINITIALIZING";
    case v1::BACKEND_STATE_FAILED:
      return "FAILED";
    default:
      return "UNSPECIFIED";
  }
}

// `value` for a call that may outlive the caller's frame (it runs on a
// worker when the request has a deadline): a copy then, else a borrowed
// pointer.
template <typename T>
std::shared_ptr<const T> Keep(const T& value, bool copy) {
  if (copy) return std::make_shared<const T>(value);
  return std::shared_ptr<const T>(std::shared_ptr<const T>(), &value);
}

// What a request does with one borrowed session. Runs at most twice per
// session (again after a re-login).
template <typename T>
using SessionFn = std::function<absl::StatusOr<T>(Token&, CK_SESSION_HANDLE)>;

// A request's attempt handed to a worker. The request waits until its
// deadline; if it gives up first, the call is "abandoned": it goes on, and
// the worker returns (or, if it failed, replaces) the session when it ends.
class PendingCallBase {
 public:
  bool abandoned() const {
    std::lock_guard<std::mutex> lock(mu_);
    return abandoned_;
  }

 protected:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename T>
class PendingCall final : public PendingCallBase {
 public:
  // False when `deadline` passed first; the call is then abandoned and
  // counted in `abandoned_running` (under the lock, so that Finish's caller
  // never uncounts it first).
  bool Wait(absl::Time deadline, std::atomic<uint64_t>& abandoned_running) {
    std::unique_lock<std::mutex> lock(mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
    if (!cv_.wait_until(lock, absl::ToChronoTime(deadline), done)) {
      abandoned_ = true;
      abandoned_running.fetch_add(1);
      return false;
    }
    return true;
  }

  // Stores the outcome; true if the request had given up on it.
  bool Finish(absl::StatusOr<T> result, bool retry) {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = std::move(result);
    retry_ = retry;
    done_ = true;
    cv_.notify_all();
    return abandoned_;
  }

  absl::StatusOr<T> TakeResult(bool& retry) {
    std::lock_guard<std::mutex> lock(mu_);
    retry = retry_;
    return *std::move(result_);
  }

 private:
  std::optional<absl::StatusOr<T>> result_ ABSL_GUARDED_BY(mu_);
  bool retry_ ABSL_GUARDED_BY(mu_) = false;
};

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
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(Pkcs11BackendOptions options, std::shared_ptr<Module> module)
      : options_(std::move(options)), module_(std::move(module)) {}

  const Pkcs11BackendOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }
  std::mutex& admin_mu() { return admin_mu_; }

  // Logs in on `session` (the PIN read from options.pin_source and wiped
  // after), serialised with every other login. With `seen_epoch`, skipped if
  // another thread logged in since that epoch was read. After a PIN
  // rejection the backend is FAILED and C_Login is never called again.
  absl::Status LogIn(Token& token, CK_SESSION_HANDLE session,
                     std::optional<uint64_t> seen_epoch);
  uint64_t login_epoch() const { return login_epoch_.load(); }

  // Makes `token` current and the backend READY.
  void Start(std::shared_ptr<Token> token);

  // The current token if requests may be served, else the UNAVAILABLE error
  // explaining why.
  absl::StatusOr<std::shared_ptr<Token>> ServingToken() const;
  absl::Status NotServingError() const;

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

  // Abandoned calls: the running count goes up in PendingCall::Wait.
  std::atomic<uint64_t>& abandoned_running() { return abandoned_running_; }
  void CallAbandoned();
  // `late`: how long after the request's deadline the call returned.
  void AbandonedCallEnded(absl::Duration late);

  // The recovery thread: re-initialisations and the DEGRADED → READY timer.
  void RecoveryLoop();

  // Stops the recovery loop, marks the backend FAILED "shut down" and
  // returns the token to close (null if already shut down).
  std::shared_ptr<Token> BeginShutdown(bool& first);
  void ReleaseModule();

  v1::BackendStatus GetStatus() const;
  bool IsServing() const;
  Pkcs11BackendCounters Counters() const;

 private:
  bool ServingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return token_ != nullptr && (state_ == v1::BACKEND_STATE_READY ||
                                 state_ == v1::BACKEND_STATE_DEGRADED);
  }
  absl::Status NotServingErrorLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Changes state, logging every change of state.
  void SetStateLocked(v1::BackendState state, std::string reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Observe(const std::shared_ptr<Token>& token, SessionPool::Lease& lease,
               const absl::Status& status, bool idempotent, bool& retry);
  void NoteTrouble(const absl::Status& status);
  void NoteGeneralError(const std::shared_ptr<Token>& token,
                        CK_SESSION_HANDLE session, const absl::Status& status);
  void ClearGeneralErrors();
  // Starts a re-initialisation if `token` is still the current one.
  void RequestReinit(const std::shared_ptr<Token>& token,
                     const absl::Status& cause);
  void RequestReinitLocked(const absl::Status& cause)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailForPin(const absl::Status& cause);
  void Recover();
  absl::StatusOr<std::shared_ptr<Token>> ReinitializeOnce(
      uint64_t& seen_generation);

  const Pkcs11BackendOptions options_;

  // Serialises GenerateKey / DeleteKey (label uniqueness checks).
  std::mutex admin_mu_;

  std::mutex login_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::atomic<uint64_t> login_epoch_{0};
  bool pin_rejected_ ABSL_GUARDED_BY(login_mu_) = false;

  std::atomic<bool> general_errors_pending_{false};
  std::atomic<uint64_t> calls_abandoned_{0};
  std::atomic<uint64_t> abandoned_running_{0};
  std::atomic<uint64_t> relogins_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;  // Wakes the recovery thread.
  std::shared_ptr<Module> module_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Token> token_ ABSL_GUARDED_BY(mu_);
  // How to find the token again: by label and serial, never by slot id.
  pkcs11::TokenSelector reopen_selector_ ABSL_GUARDED_BY(mu_);
  TokenFacts facts_ ABSL_GUARDED_BY(mu_);
  v1::BackendState state_ ABSL_GUARDED_BY(mu_) = v1::BACKEND_STATE_STARTING;
  std::string state_reason_ ABSL_GUARDED_BY(mu_);
  absl::Time degraded_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // What started the current re-initialisation, e.g. "CKR_DEVICE_REMOVED",
  // and its error detail for the requests refused meanwhile.
  std::string reinit_cause_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::ErrorDetail> reinit_detail_ ABSL_GUARDED_BY(mu_);
  int reinit_attempt_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time reinit_started_ ABSL_GUARDED_BY(mu_);
  uint64_t reinit_attempts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reinitializations_ ABSL_GUARDED_BY(mu_) = 0;
  // Why the backend FAILED (PIN rejection), with its error detail.
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  // CKR_GENERAL_ERROR streak: count and the sessions it hit.
  int general_errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<CK_SESSION_HANDLE> general_error_sessions_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Status Core::LogIn(Token& token, CK_SESSION_HANDLE session,
                         std::optional<uint64_t> seen_epoch) {
  std::lock_guard<std::mutex> login(login_mu_);
  if (pin_rejected_) return NotServingError();
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
  std::lock_guard<std::mutex> lock(mu_);
  failure_ = cause;
  // At start-up NewPkcs11Backend reports the error itself.
  if (shut_down_ || state_ == v1::BACKEND_STATE_STARTING) return;
  SetStateLocked(v1::BACKEND_STATE_FAILED,
                 absl::StrCat("the user PIN was rejected: ", cause.message(),
                              "; hsmd will not log in again: fix the PIN and "
                              "restart hsmd"));
}

void Core::Start(std::shared_ptr<Token> token) {
  std::lock_guard<std::mutex> lock(mu_);
  facts_ = FactsOf(*token);
  reopen_selector_ = token->Selector();
  token_ = std::move(token);
  SetStateLocked(v1::BACKEND_STATE_READY, "");
}

void Core::SetStateLocked(v1::BackendState state, std::string reason) {
  const v1::BackendState old = state_;
  state_ = state;
  state_reason_ = std::move(reason);
  cv_.notify_all();
  if (old == state) return;
  log::Level level = log::Level::kInfo;
  if (state == v1::BACKEND_STATE_DEGRADED ||
      state == v1::BACKEND_STATE_REINITIALIZING) {
    level = log::Level::kWarning;
  } else if (state == v1::BACKEND_STATE_FAILED && !shut_down_) {
    level = log::Level::kError;
  }
  log::Log(level, "backend state changed",
           {{"backend", name()},
            {"from", StateName(old)},
            {"to", StateName(state)},
            {"reason", state_reason_}});
}

absl::StatusOr<std::shared_ptr<Token>> Core::ServingToken() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (ServingLocked()) return token_;
  return NotServingErrorLocked();
}

absl::Status Core::NotServingError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return NotServingErrorLocked();
}

absl::Status Core::NotServingErrorLocked() const {
  const std::string backend = absl::StrCat("HSM backend \"", name(), "\"");
  absl::Status status;
  std::optional<v1::ErrorDetail> detail;
  if (state_ == v1::BACKEND_STATE_REINITIALIZING) {
    status = absl::UnavailableError(
        absl::StrCat(backend, " is re-initialising after ", reinit_cause_,
                     " (attempt ", std::max(reinit_attempt_, 1), ")"));
    detail = reinit_detail_;
  } else if (state_ == v1::BACKEND_STATE_FAILED && !failure_.ok()) {
    status = absl::UnavailableError(
        absl::StrCat(backend, " failed: ", state_reason_));
    detail = GetErrorDetail(failure_);
  } else if (ServingLocked()) {
    // Raced with a recovery that has just finished: try again.
    status = absl::UnavailableError(
        absl::StrCat(backend, " has just re-opened its token; retry"));
  } else {
    status = absl::UnavailableError(
        absl::StrCat(backend, " is not serving",
                     state_reason_.empty() ? "" : ": ", state_reason_));
  }
  if (detail.has_value()) SetErrorDetail(status, *detail);
  return status;
}

void Core::NoteTrouble(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ServingLocked()) return;
  degraded_until_ = absl::Now() + options_.degraded_hold;
  SetStateLocked(v1::BACKEND_STATE_DEGRADED, std::string(status.message()));
}

void Core::ClearGeneralErrors() {
  if (!general_errors_pending_.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(mu_);
  general_errors_ = 0;
  general_error_sessions_.clear();
  general_errors_pending_.store(false, std::memory_order_relaxed);
}

void Core::NoteGeneralError(const std::shared_ptr<Token>& token,
                            CK_SESSION_HANDLE session,
                            const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (token != token_ || !ServingLocked()) return;
  general_errors_pending_.store(true, std::memory_order_relaxed);
  ++general_errors_;
  if (std::find(general_error_sessions_.begin(), general_error_sessions_.end(),
                session) == general_error_sessions_.end()) {
    general_error_sessions_.push_back(session);
  }
  const size_t sessions_needed =
      std::min<size_t>(kGeneralErrorsForReinit, token->pool().size());
  if (general_errors_ >= kGeneralErrorsForReinit &&
      general_error_sessions_.size() >= sessions_needed) {
    RequestReinitLocked(absl::Status(
        status.code(),
        absl::StrCat(kGeneralErrorsForReinit,
                     " CKR_GENERAL_ERROR in a row: ", status.message())));
    // Refused requests name the code and carry the last one's detail.
    std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
    reinit_cause_ = absl::StrCat("repeated CKR_GENERAL_ERROR");
    if (detail.has_value()) {
      absl::StrAppend(&reinit_cause_, " in ", detail->backend_function());
    }
    reinit_detail_ = detail;
  }
}

void Core::RequestReinit(const std::shared_ptr<Token>& token,
                         const absl::Status& cause) {
  std::lock_guard<std::mutex> lock(mu_);
  if (token != token_) return;  // An older token: handled already.
  RequestReinitLocked(cause);
}

void Core::RequestReinitLocked(const absl::Status& cause) {
  if (!ServingLocked()) return;
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(cause);
  if (detail.has_value() && !detail->backend_code_name().empty()) {
    reinit_cause_ = detail->backend_code_name();
    if (!detail->backend_function().empty()) {
      absl::StrAppend(&reinit_cause_, " in ", detail->backend_function());
    }
  } else {
    reinit_cause_ = std::string(cause.message());
  }
  reinit_detail_ = detail;
  reinit_attempt_ = 0;
  reinit_started_ = absl::Now();
  general_errors_ = 0;
  general_error_sessions_.clear();
  SetStateLocked(v1::BACKEND_STATE_REINITIALIZING,
                 absl::StrCat("re-initialising after ", cause.message()));
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
    RequestReinit(token, status);
    return;
  }
  if (pkcs11::IsBrokenSession(*rv)) {
    lease.Invalidate();
    NoteTrouble(status);
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
    RequestReinit(
        token, absl::UnavailableError("the PKCS#11 module was re-initialised"));
    return NotServingError();
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
        return NotServingError();
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

void Core::CallAbandoned() { calls_abandoned_.fetch_add(1); }

void Core::AbandonedCallEnded(absl::Duration late) {
  abandoned_running_.fetch_sub(1);
  // Overload ends many calls a little late (the service logs those
  // requests); a call that hung is worth a line of its own.
  if (late >= kLongAbandonedCall) {
    log::Warning(
        "HSM call returned long after its request gave up",
        {{"backend", name()}, {"late_ms", absl::ToInt64Milliseconds(late)}});
  }
}

void Core::RecoveryLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (state_ == v1::BACKEND_STATE_REINITIALIZING) {
      lock.unlock();
      Recover();
      lock.lock();
      continue;
    }
    if (state_ == v1::BACKEND_STATE_DEGRADED) {
      if (absl::Now() >= degraded_until_) {
        SetStateLocked(v1::BACKEND_STATE_READY, "");
        continue;
      }
      cv_.wait_until(lock, absl::ToChronoTime(degraded_until_));
      continue;
    }
    cv_.wait(lock);
  }
}

void Core::Recover() {
  absl::Duration backoff = options_.reinit_backoff_initial;
  uint64_t seen_generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (module_ == nullptr) return;  // Shut down.
    seen_generation =
        token_ != nullptr ? token_->generation() : module_->generation();
  }
  std::string last_error;
  for (int attempt = 1;; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ || state_ != v1::BACKEND_STATE_REINITIALIZING) return;
      reinit_attempt_ = attempt;
      ++reinit_attempts_;
      std::string reason = absl::StrCat("re-initialising after ", reinit_cause_,
                                        " (attempt ", attempt);
      if (!last_error.empty()) absl::StrAppend(&reason, "; ", last_error);
      SetStateLocked(v1::BACKEND_STATE_REINITIALIZING,
                     absl::StrCat(reason, ")"));
    }
    absl::StatusOr<std::shared_ptr<Token>> token =
        ReinitializeOnce(seen_generation);
    std::shared_ptr<Token> unused;  // Closed outside the lock.
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_ || state_ != v1::BACKEND_STATE_REINITIALIZING) {
      if (token.ok()) unused = *std::move(token);
      lock.unlock();
      return;
    }
    if (token.ok()) {
      token_ = *std::move(token);
      facts_ = FactsOf(*token_);
      ++reinitializations_;
      general_errors_ = 0;
      general_error_sessions_.clear();
      const absl::Duration took = absl::Now() - reinit_started_;
      SetStateLocked(v1::BACKEND_STATE_READY, "");
      log::Info("backend recovered",
                {{"backend", name()},
                 {"after", reinit_cause_},
                 {"attempts", attempt},
                 {"took_ms", absl::ToInt64Milliseconds(took)}});
      return;
    }
    last_error = absl::StrCat("attempt ", attempt,
                              " failed: ", token.status().message());
    log::Warning("re-initialisation attempt failed",
                 {{"backend", name()},
                  {"attempt", attempt},
                  {"error", token.status().message()},
                  {"retry_in_ms", absl::ToInt64Milliseconds(backoff)}});
    cv_.wait_for(lock, absl::ToChronoNanoseconds(backoff),
                 [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; });
    backoff = std::min(backoff * 2, options_.reinit_backoff_max);
  }
}

absl::StatusOr<std::shared_ptr<Token>> Core::ReinitializeOnce(
    uint64_t& seen_generation) {
  std::shared_ptr<Token> old;
  std::shared_ptr<Module> module;
  pkcs11::TokenSelector selector;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::move(token_);
    module = module_;
    selector = reopen_selector_;
  }
  if (module == nullptr) return absl::UnavailableError("shut down");
  if (old != nullptr) {
    // Requests still holding it finish on their own; its sessions are
    // closed only if the module will not be finalized (which ends them).
    old->Abandon(/*close_sessions=*/module->no_finalize());
    old.reset();
  }
  ASSIGN_OR_RETURN(
      seen_generation,
      module->Reinitialize(seen_generation, options_.reinit_drain_timeout));
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

std::shared_ptr<Token> Core::BeginShutdown(bool& first) {
  std::lock_guard<std::mutex> lock(mu_);
  first = !shut_down_;
  if (shut_down_) return nullptr;
  shut_down_ = true;
  stop_ = true;
  SetStateLocked(v1::BACKEND_STATE_FAILED, "shut down");
  return std::move(token_);
}

void Core::ReleaseModule() {
  std::shared_ptr<Module> module;
  std::lock_guard<std::mutex> lock(mu_);
  module = std::move(module_);
}

v1::BackendStatus Core::GetStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  v1::BackendStatus status;
  status.set_name(options_.name);
  status.set_kind(std::string(pkcs11::kBackendKind));
  status.set_module_path(options_.module_path);
  status.set_state(state_);
  status.set_state_reason(state_reason_);
  status.set_reinitializations(reinitializations_);
  status.set_library_description(facts_.library_description);
  status.set_token_label(facts_.label);
  status.set_token_serial(facts_.serial);
  status.set_token_manufacturer(facts_.manufacturer);
  status.set_token_model(facts_.model);
  status.set_slot_id(facts_.slot_id);
  if (ServingLocked()) {
    status.set_logged_in(token_->logged_in());
    status.set_sessions_in_use(token_->pool().in_use());
    status.set_sessions_total(token_->pool().open());
  }
  return status;
}

bool Core::IsServing() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ServingLocked();
}

Pkcs11BackendCounters Core::Counters() const {
  Pkcs11BackendCounters counters;
  counters.calls_abandoned = calls_abandoned_.load();
  counters.abandoned_calls_running = abandoned_running_.load();
  counters.relogins = relogins_.load();
  std::lock_guard<std::mutex> lock(mu_);
  counters.reinit_attempts = reinit_attempts_;
  if (token_ != nullptr) {
    counters.sessions_replaced = token_->pool().replaced();
    counters.waiting_for_session = token_->pool().waiting();
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
    recovery_ = std::thread([core = core_] { core->RecoveryLoop(); });
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
  absl::StatusOr<std::string> GenerateRandom(
      uint32_t length, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GenerateKey(const v1::GenerateKeyRequest& request,
                                      const RequestContext& ctx) override;
  absl::StatusOr<uint32_t> DeleteKey(const v1::KeyRef& ref,
                                     const RequestContext& ctx) override;
  v1::BackendStatus GetStatus() const override { return core_->GetStatus(); }
  bool IsServing() const override { return core_->IsServing(); }
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
  // Pkcs11BackendOptions::calls_on_workers).
  bool OnWorker(const RequestContext& ctx) const {
    return core_->options().calls_on_workers &&
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
  pkcs11::WorkerPool workers_;
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
  for (uint32_t attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(std::shared_ptr<Token> token, core_->ServingToken());
    if (absl::Now() >= ctx.deadline) {
      return absl::DeadlineExceededError(
          "the request's deadline passed before the HSM was called");
    }
    absl::StatusOr<SessionPool::Lease> lease =
        token->pool().Acquire(ctx.deadline);
    if (lease.ok() && absl::Now() >= ctx.deadline) {
      // Our turn came too late: do not start a call nobody will wait for.
      return absl::ResourceExhaustedError(
          "no HSM session became free before the deadline");
    }
    if (!lease.ok()) {
      // The pool was closed under us: the token is being replaced.
      if (absl::IsUnavailable(lease.status())) {
        if (core_->IsServing() && attempt + 1 < max_attempts) continue;
        return core_->NotServingError();
      }
      return lease.status();
    }
    bool retry = false;
    absl::StatusOr<T> result =
        OnWorker(ctx) ? RunOnWorker<T>(ctx, std::move(token), *std::move(lease),
                                       shared_fn, idempotent, retry)
                      : core_->RunAttempt<T>(token, *lease, *shared_fn,
                                             idempotent, retry, nullptr);
    if (retry && attempt + 1 < max_attempts) continue;
    return result;
  }
}

template <typename T>
absl::StatusOr<T> Pkcs11Backend::RunOnWorker(const RequestContext& ctx,
                                             std::shared_ptr<Token> token,
                                             SessionPool::Lease lease,
                                             std::shared_ptr<SessionFn<T>> fn,
                                             bool idempotent, bool& retry) {
  auto call = std::make_shared<PendingCall<T>>();
  workers_.Submit([core = core_, token = std::move(token),
                   lease = std::move(lease), fn = std::move(fn), idempotent,
                   call, deadline = ctx.deadline]() mutable {
    bool retry_later = false;
    absl::StatusOr<T> result = core->RunAttempt<T>(
        token, lease, *fn, idempotent, retry_later, call.get());
    token.reset();
    if (call->Finish(std::move(result), retry_later)) {
      core->AbandonedCallEnded(absl::Now() - deadline);
    }
  });
  if (!call->Wait(ctx.deadline, core_->abandoned_running())) {
    core_->CallAbandoned();
    return absl::DeadlineExceededError(
        "the HSM call did not finish before the request's deadline (the "
        "session stays out of the pool until the call returns)");
  }
  return call->TakeResult(retry);
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
  std::shared_ptr<Token> token = core_->BeginShutdown(first);
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
  ASSIGN_OR_RETURN(std::shared_ptr<Token> token, core_->ServingToken());
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
