#include "daemon/backend/pkcs11/session_pool.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/backend/pkcs11/ck_rv.h"

namespace hsmd::backend::pkcs11 {

SessionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      broken_(std::exchange(other.broken_, false)),
      since_(other.since_) {}

SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
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
  if (handle_ != CK_INVALID_HANDLE) return absl::OkStatus();
  absl::StatusOr<CK_SESSION_HANDLE> handle = pool_->OpenSession();
  if (!handle.ok()) return handle.status();
  handle_ = *handle;
  return absl::OkStatus();
}

void SessionPool::Lease::Release() {
  if (pool_ == nullptr) return;
  SessionPool* pool = std::exchange(pool_, nullptr);
  pool->Return(std::exchange(handle_, CK_INVALID_HANDLE),
               std::exchange(broken_, false), since_);
}

SessionPool::SessionPool(std::shared_ptr<Module> module, CK_SLOT_ID slot,
                         uint32_t size)
    : module_(std::move(module)),
      fns_(module_->fns()),
      slot_(slot),
      size_(size),
      generation_(module_->generation()) {}

absl::StatusOr<std::unique_ptr<SessionPool>> SessionPool::New(
    std::shared_ptr<Module> module, CK_SLOT_ID slot, uint32_t size) {
  if (size == 0) {
    return absl::InvalidArgumentError("session pool size must be at least 1");
  }
  std::unique_ptr<SessionPool> pool(
      new SessionPool(std::move(module), slot, size));
  for (uint32_t i = 0; i < size; ++i) {
    absl::StatusOr<CK_SESSION_HANDLE> session = pool->OpenSession();
    if (!session.ok()) return session.status();
    std::lock_guard<std::mutex> lock(pool->mu_);
    pool->free_.push_back(*session);
    ++pool->open_;
  }
  return pool;
}

SessionPool::~SessionPool() {
  std::deque<CK_SESSION_HANDLE> to_close;
  bool close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    to_close.swap(free_);
    close = close_sessions_;
  }
  if (close) {
    for (CK_SESSION_HANDLE handle : to_close) CloseSession(handle);
  }
}

absl::StatusOr<CK_SESSION_HANDLE> SessionPool::OpenSession() {
  if (Stale()) {
    return absl::UnavailableError(
        "the PKCS#11 module was re-initialised since this session pool was "
        "opened");
  }
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  CK_RV rv = fns_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                 nullptr, nullptr, &handle);
  if (rv != CKR_OK) {
    return Pkcs11Error(rv, "C_OpenSession", absl::StrCat("slot ", slot_));
  }
  return handle;
}

void SessionPool::CloseSession(CK_SESSION_HANDLE handle) {
  // A handle of an older generation is dead, and its number may belong to a
  // new session now: never close it.
  if (handle == CK_INVALID_HANDLE || Stale()) return;
  // Nothing to do about a failure: the handle is dropped either way.
  fns_->C_CloseSession(handle);
}

void SessionPool::GiveLocked(CK_SESSION_HANDLE handle) {
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
    waiter->handle = handle;
    ++in_use_;
    waiter->cv.notify_one();
    return;
  }
  if (handle != CK_INVALID_HANDLE) {
    free_.push_back(handle);
  } else {
    --open_;  // Opened by the next Acquire instead.
  }
}

absl::StatusOr<SessionPool::Lease> SessionPool::Acquire(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return absl::UnavailableError("the HSM session pool is closed");
  // Nobody may pass the threads already in line.
  if (waiters_.empty()) {
    if (!free_.empty()) {
      // Oldest free first: sessions take turns, so a fault that sticks to
      // one session shows up as such.
      CK_SESSION_HANDLE handle = free_.front();
      free_.pop_front();
      ++in_use_;
      return Lease(this, handle);
    }
    if (open_ < size_) {
      // A broken session could not be replaced earlier: the caller opens one.
      ++open_;
      ++in_use_;
      return Lease(this, CK_INVALID_HANDLE);
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
  if (waiter.granted) return Lease(this, waiter.handle);
  if (waiter.too_late) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no HSM session became free early enough to finish before the "
        "deadline (pool size ",
        size_, "; sessions are held about ",
        absl::FormatDuration(absl::Trunc(typical_hold_, absl::Microseconds(1))),
        " per call)"));
  }
  waiters_.erase(position);
  if (closed_) return absl::UnavailableError("the HSM session pool is closed");
  return absl::ResourceExhaustedError(
      absl::StrCat("no HSM session became free before the deadline (pool size ",
                   size_, ")"));
}

void SessionPool::Return(CK_SESSION_HANDLE handle, bool broken,
                         absl::Time since) {
  const absl::Duration held = absl::Now() - since;
  std::unique_lock<std::mutex> lock(mu_);
  --in_use_;
  if (!broken && handle != CK_INVALID_HANDLE) {
    // A hung call coming back must not make every waiter look too late:
    // one sample moves the average at most to a few times its value.
    const absl::Duration sample =
        std::min(held, 4 * typical_hold_ + absl::Milliseconds(1));
    typical_hold_ += (sample - typical_hold_) / 8;
  }
  if (closed_) {
    --open_;
    const bool close = close_sessions_;
    if (in_use_ == 0) drained_cv_.notify_all();
    lock.unlock();
    if (close) CloseSession(handle);
    return;
  }
  if (handle == CK_INVALID_HANDLE) {
    // The holder never got a session open: pass the right on.
    GiveLocked(CK_INVALID_HANDLE);
    return;
  }
  if (!broken) {
    GiveLocked(handle);
    return;
  }
  ++replaced_;
  lock.unlock();
  // Opening the replacement first keeps one session open on the token, so
  // the login state survives when the pool has a single session. Outside
  // the lock: a slow module must not hold up Acquire's deadlines.
  absl::StatusOr<CK_SESSION_HANDLE> fresh = OpenSession();
  CloseSession(handle);
  lock.lock();
  if (closed_) {
    --open_;
    const bool close = close_sessions_;
    lock.unlock();
    if (fresh.ok() && close) CloseSession(*fresh);
    return;
  }
  // Without a replacement the slot goes to a waiter, who opens one, or to
  // the next Acquire.
  GiveLocked(fresh.ok() ? *fresh : CK_INVALID_HANDLE);
}

bool SessionPool::Close(
    absl::Duration grace,
    const std::function<void(CK_SESSION_HANDLE)>& before_close,
    bool close_sessions) {
  std::deque<CK_SESSION_HANDLE> to_close;
  bool all_back;
  bool close;
  {
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    if (!close_sessions) close_sessions_ = false;
    close = close_sessions_;
    for (Waiter* waiter : waiters_) waiter->cv.notify_one();
    all_back = drained_cv_.wait_for(
        lock, absl::ToChronoNanoseconds(grace),
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_use_ == 0; });
    to_close.swap(free_);
    open_ -= static_cast<uint32_t>(to_close.size());
  }
  if (!close) return all_back;
  if (all_back && before_close != nullptr && !to_close.empty() && !Stale()) {
    before_close(to_close.front());
  }
  for (CK_SESSION_HANDLE handle : to_close) CloseSession(handle);
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

}  // namespace hsmd::backend::pkcs11
