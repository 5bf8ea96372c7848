// The state machine shared by the hardware backends (PKCS#11 and SDF), with
// its recovery thread and backoff:
//
//   READY ⇄ DEGRADED        sessions had to be replaced; READY again after
//                           `degraded_hold` without new trouble
//   READY/DEGRADED → REINITIALIZING   device-level fault; requests fail fast
//                           with UNAVAILABLE while the recovery thread
//                           reopens the resource with backoff
//   REINITIALIZING → READY  recovered
//   any → FAILED            a credential was rejected (never retried) or
//                           shut down
//
// `R` is what a backend serves requests from (a PKCS#11 token, an SDF
// device); it is swapped atomically with the state, and reopened through a
// callback.
#ifndef HSMD_DAEMON_BACKEND_BACKEND_STATE_H_
#define HSMD_DAEMON_BACKEND_BACKEND_STATE_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/error_detail.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend {

// "READY", "DEGRADED", ... for logs.
absl::string_view BackendStateName(v1::BackendState state);

// What a fault is called in messages: "CODE_NAME in function" from its
// error detail, else its message.
std::string FaultCauseName(const absl::Status& cause,
                           const std::optional<v1::ErrorDetail>& detail);

// Logs a change of state (no line when `from == to`).
void LogStateChange(absl::string_view backend, absl::string_view kind,
                    v1::BackendState from, v1::BackendState to,
                    absl::string_view reason, bool shut_down);

// The wording and timing that differ between backends.
struct BackendStateOptions {
  std::string name;
  // Logged with each change of state when not empty.
  std::string log_kind;
  // Starts every not-serving error, e.g. `HSM backend "x"`.
  std::string error_subject;
  // Follows error_subject when a request raced with a finished recovery.
  std::string just_recovered;
  // Starts the state reason while recovering, e.g. "re-initialising after ".
  std::string recovering_prefix;
  // Logged when a recovery attempt fails.
  std::string attempt_failed_message;
  absl::Duration degraded_hold;
  absl::Duration backoff_initial;
  absl::Duration backoff_max;
};

template <typename R>
class BackendState {
 public:
  // Called on the recovery thread, outside the lock: drops `old` (null after
  // a failed attempt) and opens a replacement.
  using ReopenFn = std::function<absl::StatusOr<std::shared_ptr<R>>(
      std::shared_ptr<R> old)>;
  // Called under the lock whenever a resource becomes current.
  using CurrentFn = std::function<void(const R&)>;

  BackendState(BackendStateOptions options, ReopenFn reopen,
               CurrentFn on_current)
      : options_(std::move(options)),
        reopen_(std::move(reopen)),
        on_current_(std::move(on_current)) {}

  const std::string& name() const { return options_.name; }

  // Makes `resource` current and the backend READY.
  void Start(std::shared_ptr<R> resource) {
    std::lock_guard<std::mutex> lock(mu_);
    on_current_(*resource);
    current_ = std::move(resource);
    SetStateLocked(v1::BACKEND_STATE_READY, "");
  }

  // The current resource if requests may be served, else the UNAVAILABLE
  // error explaining why.
  absl::StatusOr<std::shared_ptr<R>> Serving() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (ServingLocked()) return current_;
    return NotServingErrorLocked();
  }
  absl::Status NotServingError() const {
    std::lock_guard<std::mutex> lock(mu_);
    return NotServingErrorLocked();
  }
  bool IsServing() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ServingLocked();
  }
  bool IsCurrentAndServing(const std::shared_ptr<R>& resource) const {
    std::lock_guard<std::mutex> lock(mu_);
    return resource == current_ && ServingLocked();
  }

  // Sessions had to be replaced: DEGRADED for a while.
  void NoteTrouble(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ServingLocked()) return;
    degraded_until_ = absl::Now() + options_.degraded_hold;
    SetStateLocked(v1::BACKEND_STATE_DEGRADED, std::string(status.message()));
  }

  // Starts a recovery if `resource` is still the current one and serving;
  // refused requests name `cause` and carry its error detail.
  void RequestReinit(const std::shared_ptr<R>& resource,
                     const absl::Status& cause) {
    std::optional<v1::ErrorDetail> detail = GetErrorDetail(cause);
    std::string cause_name = FaultCauseName(cause, detail);
    RequestReinit(resource, cause.message(), std::move(cause_name),
                  std::move(detail));
  }
  // The same with the cause's name and detail given apart from the reason.
  void RequestReinit(const std::shared_ptr<R>& resource,
                     absl::string_view reason, std::string cause_name,
                     std::optional<v1::ErrorDetail> detail) {
    std::lock_guard<std::mutex> lock(mu_);
    if (resource != current_ || !ServingLocked()) return;
    reinit_cause_ = std::move(cause_name);
    reinit_detail_ = std::move(detail);
    reinit_attempt_ = 0;
    reinit_started_ = absl::Now();
    SetStateLocked(v1::BACKEND_STATE_REINITIALIZING,
                   absl::StrCat(options_.recovering_prefix, reason));
  }

  // FAILED for good: requests get `failure` (its message and detail) with
  // `reason`. At start-up (still STARTING) only records it, for the factory
  // to report.
  void Fail(absl::Status failure, std::string reason) {
    std::lock_guard<std::mutex> lock(mu_);
    failure_ = std::move(failure);
    if (shut_down_ || state_ == v1::BACKEND_STATE_STARTING) return;
    SetStateLocked(v1::BACKEND_STATE_FAILED, std::move(reason));
  }
  absl::Status failure() const {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_;
  }

  // The recovery thread: recoveries and the DEGRADED → READY timer. Returns
  // after BeginShutdown.
  void RecoveryLoop() {
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

  // Stops the recovery loop, marks the backend FAILED "shut down" and
  // returns the resource to close (null if already shut down).
  std::shared_ptr<R> BeginShutdown(bool& first) {
    std::lock_guard<std::mutex> lock(mu_);
    first = !shut_down_;
    if (shut_down_) return nullptr;
    shut_down_ = true;
    stop_ = true;
    SetStateLocked(v1::BACKEND_STATE_FAILED, "shut down");
    return std::move(current_);
  }

  // One consistent view for status reports and counters.
  struct Snapshot {
    v1::BackendState state = v1::BACKEND_STATE_STARTING;
    std::string reason;
    uint64_t reinitializations = 0;
    uint64_t reinit_attempts = 0;
    // The current resource, serving or not (null while none is open).
    std::shared_ptr<R> current;
    bool serving = false;
  };
  Snapshot snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    Snapshot s;
    s.state = state_;
    s.reason = state_reason_;
    s.reinitializations = reinitializations_;
    s.reinit_attempts = reinit_attempts_;
    s.current = current_;
    s.serving = ServingLocked();
    return s;
  }

 private:
  bool ServingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return current_ != nullptr && (state_ == v1::BACKEND_STATE_READY ||
                                   state_ == v1::BACKEND_STATE_DEGRADED);
  }

  void SetStateLocked(v1::BackendState state, std::string reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::BackendState old = state_;
    state_ = state;
    state_reason_ = std::move(reason);
    cv_.notify_all();
    LogStateChange(options_.name, options_.log_kind, old, state, state_reason_,
                   shut_down_);
  }

  absl::Status NotServingErrorLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string& subject = options_.error_subject;
    absl::Status status;
    std::optional<v1::ErrorDetail> detail;
    if (state_ == v1::BACKEND_STATE_REINITIALIZING) {
      status = absl::UnavailableError(
          absl::StrCat(subject, " is re-initialising after ", reinit_cause_,
                       " (attempt ", std::max(reinit_attempt_, 1), ")"));
      detail = reinit_detail_;
    } else if (state_ == v1::BACKEND_STATE_FAILED && !failure_.ok()) {
      status = absl::UnavailableError(
          absl::StrCat(subject, " failed: ", state_reason_));
      detail = GetErrorDetail(failure_);
    } else if (ServingLocked()) {
      // Raced with a recovery that has just finished: try again.
      status = absl::UnavailableError(
          absl::StrCat(subject, options_.just_recovered));
    } else {
      status = absl::UnavailableError(
          absl::StrCat(subject, " is not serving",
                       state_reason_.empty() ? "" : ": ", state_reason_));
    }
    if (detail.has_value()) SetErrorDetail(status, *detail);
    return status;
  }

  // Reopens with exponential backoff until it works, the state moves on
  // (e.g. FAILED by a rejected credential) or the backend shuts down.
  void Recover();

  const BackendStateOptions options_;
  const ReopenFn reopen_;
  const CurrentFn on_current_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // Wakes the recovery thread.
  std::shared_ptr<R> current_ ABSL_GUARDED_BY(mu_);
  v1::BackendState state_ ABSL_GUARDED_BY(mu_) = v1::BACKEND_STATE_STARTING;
  std::string state_reason_ ABSL_GUARDED_BY(mu_);
  absl::Time degraded_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // What started the current recovery, e.g. "CKR_DEVICE_REMOVED in C_Sign",
  // and its error detail for the requests refused meanwhile.
  std::string reinit_cause_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::ErrorDetail> reinit_detail_ ABSL_GUARDED_BY(mu_);
  int reinit_attempt_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time reinit_started_ ABSL_GUARDED_BY(mu_);
  uint64_t reinit_attempts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reinitializations_ ABSL_GUARDED_BY(mu_) = 0;
  // Why the backend FAILED (a rejected credential), with its error detail.
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

// Logs a finished recovery / a failed attempt (kept out of the template).
void LogRecovered(absl::string_view backend, absl::string_view cause,
                  int attempts, absl::Duration took);
void LogAttemptFailed(absl::string_view message, absl::string_view backend,
                      int attempt, const absl::Status& error,
                      absl::Duration retry_in);

template <typename R>
void BackendState<R>::Recover() {
  absl::Duration backoff = options_.backoff_initial;
  std::string last_error;
  for (int attempt = 1;; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ || state_ != v1::BACKEND_STATE_REINITIALIZING) return;
      reinit_attempt_ = attempt;
      ++reinit_attempts_;
      std::string reason = absl::StrCat(options_.recovering_prefix,
                                        reinit_cause_, " (attempt ", attempt);
      if (!last_error.empty()) absl::StrAppend(&reason, "; ", last_error);
      SetStateLocked(v1::BACKEND_STATE_REINITIALIZING,
                     absl::StrCat(reason, ")"));
    }
    std::shared_ptr<R> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old = std::move(current_);
    }
    absl::StatusOr<std::shared_ptr<R>> reopened = reopen_(std::move(old));
    std::shared_ptr<R> unused;  // Closed outside the lock.
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_ || state_ != v1::BACKEND_STATE_REINITIALIZING) {
      if (reopened.ok()) unused = *std::move(reopened);
      lock.unlock();
      return;
    }
    if (reopened.ok()) {
      current_ = *std::move(reopened);
      on_current_(*current_);
      ++reinitializations_;
      const absl::Duration took = absl::Now() - reinit_started_;
      SetStateLocked(v1::BACKEND_STATE_READY, "");
      LogRecovered(options_.name, reinit_cause_, attempt, took);
      return;
    }
    last_error = absl::StrCat("attempt ", attempt,
                              " failed: ", reopened.status().message());
    LogAttemptFailed(options_.attempt_failed_message, options_.name, attempt,
                     reopened.status(), backoff);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(backoff),
                 [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; });
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_BACKEND_STATE_H_
