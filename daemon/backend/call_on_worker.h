// Hands a request's device call to a WorkerPool thread so the request can
// end at its deadline while a hung call goes on: the call is then
// "abandoned" and finishes in the background. Shared by the PKCS#11 and SDF
// backends.
#ifndef HSMD_DAEMON_BACKEND_CALL_ON_WORKER_H_
#define HSMD_DAEMON_BACKEND_CALL_ON_WORKER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/backend/worker_pool.h"

namespace hsmd::backend {

// `value` for a call that may outlive the caller's frame (it runs on a
// worker when the request has a deadline): a copy then, else a borrowed
// pointer.
template <typename T>
std::shared_ptr<const T> Keep(const T& value, bool copy) {
  if (copy) return std::make_shared<const T>(value);
  return std::shared_ptr<const T>(std::shared_ptr<const T>(), &value);
}

// A request's attempt handed to a worker. The request waits until its
// deadline; if it gives up first, the call is abandoned: it goes on, and the
// worker returns (or, if it failed, replaces) the session when it ends.
class PendingCallBase {
 public:
  virtual ~PendingCallBase() = default;
  virtual bool abandoned() const {
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

class InlineCall;

// A backend's abandoned calls: counters, and a log line for the ones that
// return long after their request gave up. Calls made on the request's own
// thread (InlineCall) count as abandoned, and running, from the moment they
// pass their deadline until they return.
class AbandonedCalls {
 public:
  // `device` names the callee in messages: "HSM", "SDF".
  AbandonedCalls(std::string backend, std::string device)
      : backend_(std::move(backend)), device_(std::move(device)) {}

  const std::string& device() const { return device_; }
  // Abandoned so far / still running. The running count goes up in
  // PendingCall::Wait.
  uint64_t abandoned() const { return abandoned_.load() + InlineLate(); }
  uint64_t running() const { return running_.load() + InlineLate(); }
  std::atomic<uint64_t>& running_counter() { return running_; }

  void Abandoned() { abandoned_.fetch_add(1); }
  // `late`: how long after the request's deadline the call returned.
  void Ended(absl::Duration late);

 private:
  friend class InlineCall;
  // Inline calls now past their deadline.
  uint64_t InlineLate() const;
  void InlineEnded(absl::Duration late);
  void LogLate(absl::Duration late);

  const std::string backend_;
  const std::string device_;
  std::atomic<uint64_t> abandoned_{0};
  std::atomic<uint64_t> running_{0};
  // The inline calls running now (an intrusive list of stack objects).
  mutable std::mutex inline_mu_;
  InlineCall* inline_head_ ABSL_GUARDED_BY(inline_mu_) = nullptr;
};

// A device call made on the request's own thread, for a request whose caller
// ends it at its deadline by itself (RequestContext::caller_enforces_deadline:
// gRPC does so for a client's deadline). That saves the hand-off to a worker
// (two thread wake-ups per request). A call that hangs holds the request's
// thread and its session until it returns; past the deadline it counts as
// abandoned (so a failure then invalidates its session), and its result is
// replaced by DEADLINE_EXCEEDED.
class InlineCall final : public PendingCallBase {
 public:
  InlineCall(AbandonedCalls& calls, absl::Time deadline);
  ~InlineCall() override;
  InlineCall(const InlineCall&) = delete;
  InlineCall& operator=(const InlineCall&) = delete;

  bool abandoned() const override { return absl::Now() > deadline_; }
  absl::Time deadline() const { return deadline_; }

 private:
  friend class AbandonedCalls;
  AbandonedCalls& calls_;
  const absl::Time deadline_;
  InlineCall* prev_ = nullptr;
  InlineCall* next_ = nullptr;
};

// The error of a request whose device call outlived its deadline.
inline absl::Status CallOutlivedDeadline(const AbandonedCalls& calls) {
  return absl::DeadlineExceededError(absl::StrCat(
      "the ", calls.device(),
      " call did not finish before the request's deadline (the session "
      "stays out of the pool until the call returns)"));
}

// What runs on the worker: one attempt, told the PendingCall (to see whether
// it was abandoned); sets `retry` to ask the caller for another attempt.
template <typename T>
using WorkerAttempt =
    absl::AnyInvocable<absl::StatusOr<T>(const PendingCallBase*, bool&)>;

// Runs `attempt` on `workers` and waits for it until `deadline`. Its
// captures (the request's hold on the device) are dropped before the result
// is handed back. `calls` stays alive until an abandoned call ends.
template <typename T>
absl::StatusOr<T> RunOnWorker(WorkerPool& workers,
                              std::shared_ptr<AbandonedCalls> calls,
                              absl::Time deadline, WorkerAttempt<T> attempt,
                              bool& retry) {
  auto call = std::make_shared<PendingCall<T>>();
  workers.Submit([calls, attempt = std::move(attempt), call,
                  deadline]() mutable {
    bool retry_later = false;
    absl::StatusOr<T> result = attempt(call.get(), retry_later);
    attempt = nullptr;
    if (call->Finish(std::move(result), retry_later)) {
      calls->Ended(absl::Now() - deadline);
    }
  });
  if (!call->Wait(deadline, calls->running_counter())) {
    calls->Abandoned();
    return CallOutlivedDeadline(*calls);
  }
  return call->TakeResult(retry);
}

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_CALL_ON_WORKER_H_
