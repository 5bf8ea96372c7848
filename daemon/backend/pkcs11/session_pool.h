// A fixed-size pool of read-write sessions on one token.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_SESSION_POOL_H_
#define HSMD_DAEMON_BACKEND_PKCS11_SESSION_POOL_H_

#include <p11-kit/pkcs11.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/backend/pkcs11/module.h"

namespace hsmd::backend::pkcs11 {

// Sessions are opened up front; requests borrow one through a Lease and wait
// (up to their deadline) when all are busy. Waiters are served strictly in
// arrival order: a returned session goes straight to the oldest waiter, so
// nobody is starved, and memory grows only with the number of waiting
// threads. The login state is token-wide, so sessions opened after C_Login
// are user sessions too. A session that proved broken
// (CKR_SESSION_HANDLE_INVALID, ...) is closed and replaced, never reused.
//
// Acquire never calls into the module: when a broken session could not be
// replaced at once, the lease comes without a session and its holder opens
// one (EnsureOpen) where it makes its other calls. The pool belongs to one
// generation of the module (Module::generation): once the module was
// re-initialised, its handles are dead and are dropped without any call.
class SessionPool {
 public:
  // Borrowed session; returns it to the pool when destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    CK_SESSION_HANDLE handle() const { return handle_; }
    bool valid() const { return pool_ != nullptr; }
    // Opens the session if the lease came without one.
    absl::Status EnsureOpen();
    // The session is broken: close and replace it on return.
    void Invalidate() { broken_ = true; }
    // Gives the session back now (may open a replacement).
    void Release();

   private:
    friend class SessionPool;
    Lease(SessionPool* pool, CK_SESSION_HANDLE handle)
        : pool_(pool), handle_(handle), since_(absl::Now()) {}

    SessionPool* pool_ = nullptr;
    CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
    bool broken_ = false;
    absl::Time since_;
  };

  // Opens `size` (>= 1) read-write sessions on `slot` of the module's
  // current generation.
  static absl::StatusOr<std::unique_ptr<SessionPool>> New(
      std::shared_ptr<Module> module, CK_SLOT_ID slot, uint32_t size);

  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;
  // Closes the sessions; every Lease must have been returned.
  ~SessionPool();

  // A session, waiting in line until `deadline` for one. RESOURCE_EXHAUSTED
  // when none became free in time, or when one became free too late to be
  // of use (less time left than a session is typically held: the session
  // goes to the next in line instead, so overload does not turn into calls
  // that all end past their deadlines); UNAVAILABLE once closed.
  absl::StatusOr<Lease> Acquire(absl::Time deadline);

  // Stops lending (waiters get UNAVAILABLE), waits up to `grace` for leases
  // to come back, and closes every session. When all came back,
  // `before_close` (if set) runs first with one of them (e.g. for C_Logout).
  // False if some leases were still out (their sessions are closed when they
  // return). With `close_sessions` false nothing is closed, now or later:
  // the caller is about to C_Finalize the module, which ends them all, and
  // calls on a dead device are best avoided.
  bool Close(
      absl::Duration grace,
      const std::function<void(CK_SESSION_HANDLE)>& before_close = nullptr,
      bool close_sessions = true);

  uint32_t size() const { return size_; }
  uint64_t generation() const { return generation_; }
  uint32_t in_use() const;
  // Sessions currently open (in use or free).
  uint32_t open() const;
  // Sessions closed and replaced because they broke.
  uint64_t replaced() const;
  // Threads waiting in Acquire.
  uint32_t waiting() const;

 private:
  struct Waiter {
    std::condition_variable cv;
    absl::Time deadline;
    bool granted = false;
    // Passed over: too little time left when its turn came.
    bool too_late = false;
    CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  };

  SessionPool(std::shared_ptr<Module> module, CK_SLOT_ID slot, uint32_t size);

  // The module was re-initialised since the pool was opened.
  bool Stale() const { return module_->generation() != generation_; }
  absl::StatusOr<CK_SESSION_HANDLE> OpenSession();
  void CloseSession(CK_SESSION_HANDLE handle);
  void Return(CK_SESSION_HANDLE handle, bool broken, absl::Time since);
  // Hands `handle` (CK_INVALID_HANDLE: the right to open one) to the oldest
  // waiter, or keeps it free. The slot is counted in open_ already.
  void GiveLocked(CK_SESSION_HANDLE handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<Module> module_;
  CK_FUNCTION_LIST* const fns_;
  const CK_SLOT_ID slot_;
  const uint32_t size_;
  const uint64_t generation_;

  mutable std::mutex mu_;
  std::condition_variable drained_cv_;
  std::deque<CK_SESSION_HANDLE> free_ ABSL_GUARDED_BY(mu_);
  std::list<Waiter*> waiters_ ABSL_GUARDED_BY(mu_);
  // Sessions open or being opened (including leases without a session yet).
  uint32_t open_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t replaced_ ABSL_GUARDED_BY(mu_) = 0;
  // Moving average of how long a lease holds a healthy session.
  absl::Duration typical_hold_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool close_sessions_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_SESSION_POOL_H_
