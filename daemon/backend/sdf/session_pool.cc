#include "daemon/backend/sdf/session_pool.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hsmd::backend::sdf {

SessionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      session_(std::move(other.session_)),
      broken_(std::exchange(other.broken_, false)),
      since_(other.since_) {}

SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    session_ = std::move(other.session_);
    broken_ = std::exchange(other.broken_, false);
    since_ = other.since_;
  }
  return *this;
}

SessionPool::Lease::~Lease() { Release(); }

absl::Status SessionPool::Lease::EnsureOpen() {
  if (pool_ == nullptr) {
    return absl::FailedPreconditionError("the session lease was returned");
  }
  if (session_ != nullptr) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<SdfSession>> session = pool_->open_fn_();
  if (!session.ok()) return session.status();
  session_ = *std::move(session);
  return absl::OkStatus();
}

void SessionPool::Lease::Release() {
  if (pool_ == nullptr) return;
  SessionPool* pool = std::exchange(pool_, nullptr);
  pool->Return(std::move(session_), std::exchange(broken_, false), since_);
}

absl::StatusOr<std::unique_ptr<SessionPool>> SessionPool::New(
    std::vector<std::unique_ptr<SdfSession>> sessions, OpenFn open,
    CloseFn close) {
  if (sessions.empty()) {
    return absl::InvalidArgumentError("session pool size must be at least 1");
  }
  std::unique_ptr<SessionPool> pool(
      new SessionPool(static_cast<uint32_t>(sessions.size()), std::move(open),
                      std::move(close)));
  std::lock_guard<std::mutex> lock(pool->mu_);
  for (auto& session : sessions) {
    pool->free_.push_back(std::move(session));
    ++pool->open_;
  }
  return pool;
}

SessionPool::~SessionPool() {
  bool closed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed = closed_;
  }
  if (!closed) Close(absl::ZeroDuration(), true);
}

void SessionPool::GiveLocked(std::unique_ptr<SdfSession> session) {
  const absl::Time now = waiters_.empty() ? absl::InfinitePast() : absl::Now();
  while (!waiters_.empty()) {
    Waiter* waiter = waiters_.front();
    waiters_.pop_front();
    // Under the lock: the waiter cannot leave (and its Waiter die) before.
    if (waiter->deadline - now < typical_hold_) {
      waiter->too_late = true;
      waiter->cv.notify_one();
      continue;
    }
    waiter->granted = true;
    waiter->session = std::move(session);
    ++in_use_;
    waiter->cv.notify_one();
    return;
  }
  if (session != nullptr) {
    free_.push_back(std::move(session));
  } else {
    --open_;  // Opened by the next Acquire instead.
  }
}

absl::StatusOr<SessionPool::Lease> SessionPool::Acquire(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return absl::UnavailableError("the SDF session pool is closed");
  // Nobody may pass the threads already in line.
  if (waiters_.empty()) {
    if (!free_.empty()) {
      // Oldest free first: sessions take turns, so a fault that sticks to
      // one session shows up as such.
      std::unique_ptr<SdfSession> session = std::move(free_.front());
      free_.pop_front();
      ++in_use_;
      return Lease(this, std::move(session));
    }
    if (open_ < size_) {
      // A broken session could not be replaced earlier: the caller opens one.
      ++open_;
      ++in_use_;
      return Lease(this, nullptr);
    }
  }
  Waiter waiter;
  waiter.deadline = deadline;
  auto position = waiters_.insert(waiters_.end(), &waiter);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return waiter.granted || waiter.too_late || closed_;
  };
  if (deadline == absl::InfiniteFuture()) {
    waiter.cv.wait(lock, done);
  } else {
    waiter.cv.wait_until(lock, absl::ToChronoTime(deadline), done);
  }
  if (waiter.granted) return Lease(this, std::move(waiter.session));
  if (waiter.too_late) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no SDF session became free early enough to finish before the "
        "deadline (pool size ",
        size_, "; sessions are held about ",
        absl::FormatDuration(absl::Trunc(typical_hold_, absl::Microseconds(1))),
        " per call)"));
  }
  waiters_.erase(position);
  if (closed_) return absl::UnavailableError("the SDF session pool is closed");
  return absl::ResourceExhaustedError(
      absl::StrCat("no SDF session became free before the deadline (pool size ",
                   size_, ")"));
}

void SessionPool::Return(std::unique_ptr<SdfSession> session, bool broken,
                         absl::Time since) {
  const absl::Duration held = absl::Now() - since;
  std::unique_lock<std::mutex> lock(mu_);
  --in_use_;
  if (!broken && session != nullptr) {
    // A hung call coming back must not make every waiter look too late:
    // one sample moves the average at most to a few times its value.
    const absl::Duration sample =
        std::min(held, 4 * typical_hold_ + absl::Milliseconds(1));
    typical_hold_ += (sample - typical_hold_) / 8;
  }
  if (closed_) {
    --open_;
    const bool close = close_late_;
    if (in_use_ == 0) drained_cv_.notify_all();
    lock.unlock();
    if (close && session != nullptr) close_fn_(*session);
    return;
  }
  if (session == nullptr) {
    // The holder never got a session open: pass the right on.
    GiveLocked(nullptr);
    return;
  }
  if (!broken) {
    GiveLocked(std::move(session));
    return;
  }
  ++replaced_;
  lock.unlock();
  // Outside the lock: a slow device must not hold up Acquire's deadlines.
  close_fn_(*session);
  session.reset();
  absl::StatusOr<std::unique_ptr<SdfSession>> fresh = open_fn_();
  lock.lock();
  if (closed_) {
    --open_;
    const bool close = close_late_;
    if (in_use_ == 0) drained_cv_.notify_all();
    lock.unlock();
    if (fresh.ok() && close) close_fn_(**fresh);
    return;
  }
  // Without a replacement the slot goes to a waiter, who opens one, or to
  // the next Acquire.
  GiveLocked(fresh.ok() ? *std::move(fresh) : nullptr);
}

bool SessionPool::Close(absl::Duration grace, bool close_sessions) {
  std::deque<std::unique_ptr<SdfSession>> to_close;
  bool all_back;
  {
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    for (Waiter* waiter : waiters_) waiter->cv.notify_one();
    all_back = drained_cv_.wait_for(
        lock, absl::ToChronoNanoseconds(grace),
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_use_ == 0; });
    to_close.swap(free_);
    open_ -= static_cast<uint32_t>(to_close.size());
    // The caller closes the device next: later returns make no calls.
    close_late_ = false;
  }
  if (close_sessions) {
    for (auto& session : to_close) close_fn_(*session);
  }
  return all_back;
}

uint32_t SessionPool::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

uint32_t SessionPool::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

uint64_t SessionPool::replaced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return replaced_;
}

uint32_t SessionPool::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<uint32_t>(waiters_.size());
}

}  // namespace hsmd::backend::sdf
