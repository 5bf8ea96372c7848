// A fixed-size pool of SDF sessions on one opened device.
#ifndef HSMD_DAEMON_BACKEND_SDF_SESSION_POOL_H_
#define HSMD_DAEMON_BACKEND_SDF_SESSION_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hsmd::backend::sdf {

// One SDF session and what hsmd keeps with it.
struct SdfSession {
  void* handle = nullptr;
  // SM4 key handles made in this session (SDF_GetSymmKeyHandle or
  // SDF_ImportKeyWithKEK), by key index; they die with the session.
  std::map<uint32_t, void*> sm4_keys;
};

// Sessions are opened up front; requests borrow one through a Lease and wait
// (up to their deadline) when all are busy. Waiters are served strictly in
// arrival order, and one whose turn comes with less time left than a session
// is typically held is told RESOURCE_EXHAUSTED at once (so overload does not
// turn into calls that all end past their deadlines). A session that proved
// broken (SDR_OPENSESSION) is closed and replaced, never reused.
//
// Opening a session (`open`) also obtains the private-key access rights,
// which is why it may be slow: Acquire never opens one; when a broken
// session could not be replaced at once, the lease comes without a session
// and its holder opens one (EnsureOpen) where it makes its other calls.
class SessionPool {
 public:
  // Opens a session with its access rights.
  using OpenFn = std::function<absl::StatusOr<std::unique_ptr<SdfSession>>()>;
  // Releases the rights and key handles, closes the session. Errors are
  // ignored: the session is dropped either way.
  using CloseFn = std::function<void(SdfSession&)>;

  // Borrowed session; returns it to the pool when destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    // Null until EnsureOpen when the lease came without a session.
    SdfSession* session() const { return session_.get(); }
    bool valid() const { return pool_ != nullptr; }
    // Opens the session if the lease came without one.
    absl::Status EnsureOpen();
    // The session is broken: close and replace it on return.
    void Invalidate() { broken_ = true; }
    // Gives the session back now (may open a replacement).
    void Release();

   private:
    friend class SessionPool;
    Lease(SessionPool* pool, std::unique_ptr<SdfSession> session)
        : pool_(pool), session_(std::move(session)), since_(absl::Now()) {}

    SessionPool* pool_ = nullptr;
    std::unique_ptr<SdfSession> session_;
    bool broken_ = false;
    absl::Time since_;
  };

  // A pool of `sessions.size()` (>= 1) sessions already opened by the
  // caller; `open` and `close` serve replacements and Close.
  static absl::StatusOr<std::unique_ptr<SessionPool>> New(
      std::vector<std::unique_ptr<SdfSession>> sessions, OpenFn open,
      CloseFn close);

  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;
  // Close(ZeroDuration, true) unless closed; every Lease must have been
  // returned or must outlive nothing it borrowed from.
  ~SessionPool();

  // A session, waiting in line until `deadline` for one: RESOURCE_EXHAUSTED
  // when none became free in time (or too late to be of use), UNAVAILABLE
  // once the pool is closed.
  absl::StatusOr<Lease> Acquire(absl::Time deadline);

  // Stops lending (waiters get UNAVAILABLE), waits up to `grace` for leases
  // to come back, then closes the free sessions with `close` if
  // `close_sessions` (false: the device is being dropped as broken, and its
  // handles must not be called). Leases returned later are dropped without
  // any call, as the device may be closed by then. False if some leases
  // were still out.
  bool Close(absl::Duration grace, bool close_sessions);

  uint32_t size() const { return size_; }
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
    bool too_late = false;
    std::unique_ptr<SdfSession> session;
  };

  SessionPool(uint32_t size, OpenFn open, CloseFn close)
      : size_(size), open_fn_(std::move(open)), close_fn_(std::move(close)) {}

  void Return(std::unique_ptr<SdfSession> session, bool broken,
              absl::Time since);
  // Hands `session` (null: the right to open one) to the oldest waiter, or
  // keeps it free. The slot is counted in open_ already.
  void GiveLocked(std::unique_ptr<SdfSession> session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint32_t size_;
  const OpenFn open_fn_;
  const CloseFn close_fn_;

  mutable std::mutex mu_;
  std::condition_variable drained_cv_;
  std::deque<std::unique_ptr<SdfSession>> free_ ABSL_GUARDED_BY(mu_);
  std::list<Waiter*> waiters_ ABSL_GUARDED_BY(mu_);
  // Sessions open or being opened (including leases without a session yet).
  uint32_t open_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t replaced_ ABSL_GUARDED_BY(mu_) = 0;
  // Moving average of how long a lease holds a healthy session.
  absl::Duration typical_hold_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Whether returned sessions may still be closed with close_fn_.
  bool close_late_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_SESSION_POOL_H_
