#include "daemon/backend/pkcs11/session_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/backend/pkcs11/ck_rv.h"

namespace hsmd::backend::pkcs11 {

SessionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      broken_(std::exchange(other.broken_, false)) {}

SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
    broken_ = std::exchange(other.broken_, false);
  }
  return *this;
}

SessionPool::Lease::~Lease() { Release(); }

void SessionPool::Lease::Release() {
  if (pool_ == nullptr) return;
  pool_->Return(handle_, broken_);
  pool_ = nullptr;
  handle_ = CK_INVALID_HANDLE;
  broken_ = false;
}

absl::StatusOr<std::unique_ptr<SessionPool>> SessionPool::New(
    CK_FUNCTION_LIST* fns, CK_SLOT_ID slot, uint32_t size) {
  if (size == 0) {
    return absl::InvalidArgumentError("session pool size must be at least 1");
  }
  std::unique_ptr<SessionPool> pool(new SessionPool(fns, slot, size));
  for (uint32_t i = 0; i < size; ++i) {
    absl::StatusOr<CK_SESSION_HANDLE> session = pool->OpenSession();
    if (!session.ok()) return session.status();
    absl::MutexLock lock(&pool->mu_);
    pool->free_.push_back(*session);
    ++pool->open_;
  }
  return pool;
}

SessionPool::~SessionPool() {
  absl::MutexLock lock(&mu_);
  for (CK_SESSION_HANDLE handle : free_) CloseSession(handle);
  free_.clear();
}

absl::StatusOr<CK_SESSION_HANDLE> SessionPool::OpenSession() {
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  CK_RV rv = fns_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                 nullptr, nullptr, &handle);
  if (rv != CKR_OK) {
    return Pkcs11Error(rv, "C_OpenSession", absl::StrCat("slot ", slot_));
  }
  return handle;
}

void SessionPool::CloseSession(CK_SESSION_HANDLE handle) {
  // Nothing to do about a failure: the handle is dropped either way.
  fns_->C_CloseSession(handle);
}

absl::StatusOr<SessionPool::Lease> SessionPool::Acquire(absl::Time deadline) {
  mu_.Lock();
  while (true) {
    if (closed_) {
      mu_.Unlock();
      return absl::UnavailableError("the HSM session pool is closed");
    }
    if (!free_.empty()) {
      CK_SESSION_HANDLE handle = free_.back();
      free_.pop_back();
      ++in_use_;
      mu_.Unlock();
      return Lease(this, handle);
    }
    if (open_ < size_) {
      // A broken session was dropped earlier: open its replacement now,
      // outside the lock.
      ++open_;
      ++in_use_;
      mu_.Unlock();
      absl::StatusOr<CK_SESSION_HANDLE> handle = OpenSession();
      if (!handle.ok()) {
        absl::MutexLock lock(&mu_);
        --open_;
        --in_use_;
        return handle.status();
      }
      return Lease(this, *handle);
    }
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || !free_.empty() || open_ < size_;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline) && !ready()) {
      mu_.Unlock();
      return absl::ResourceExhaustedError(absl::StrCat(
          "no HSM session became free before the deadline (pool size ", size_,
          ")"));
    }
  }
}

void SessionPool::Return(CK_SESSION_HANDLE handle, bool broken) {
  CK_SESSION_HANDLE to_close = CK_INVALID_HANDLE;
  {
    absl::MutexLock lock(&mu_);
    --in_use_;
    if (closed_) {
      to_close = handle;
      --open_;
    } else if (broken) {
      to_close = handle;
      ++replaced_;
      // Opening the replacement first keeps one session open on the token,
      // so the login state survives when the pool has a single session.
      absl::StatusOr<CK_SESSION_HANDLE> fresh = OpenSession();
      if (fresh.ok()) {
        free_.push_back(*fresh);
      } else {
        --open_;  // Acquire retries the open later.
      }
    } else {
      free_.push_back(handle);
    }
  }
  if (to_close != CK_INVALID_HANDLE) CloseSession(to_close);
}

bool SessionPool::Close(
    absl::Duration grace,
    const std::function<void(CK_SESSION_HANDLE)>& before_close) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_use_ == 0;
  };
  bool all_back = mu_.AwaitWithTimeout(absl::Condition(&drained), grace);
  if (all_back && before_close != nullptr && !free_.empty()) {
    before_close(free_.front());
  }
  for (CK_SESSION_HANDLE handle : free_) CloseSession(handle);
  open_ -= static_cast<uint32_t>(free_.size());
  free_.clear();
  return all_back;
}

uint32_t SessionPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

uint32_t SessionPool::open() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

uint64_t SessionPool::replaced() const {
  absl::MutexLock lock(&mu_);
  return replaced_;
}

}  // namespace hsmd::backend::pkcs11
