// A fixed-size pool of read-write sessions on one token.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_SESSION_POOL_H_
#define HSMD_DAEMON_BACKEND_PKCS11_SESSION_POOL_H_

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace hsmd::backend::pkcs11 {

// Sessions are opened up front; requests borrow one through a Lease and wait
// (up to their deadline) when all are busy. The login state is token-wide, so
// sessions opened after C_Login are user sessions too. A session that proved
// broken (CKR_SESSION_HANDLE_INVALID, ...) is closed and replaced, never
// reused.
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
    // The session is broken: close and replace it on return.
    void Invalidate() { broken_ = true; }

   private:
    friend class SessionPool;
    Lease(SessionPool* pool, CK_SESSION_HANDLE handle)
        : pool_(pool), handle_(handle) {}
    void Release();

    SessionPool* pool_ = nullptr;
    CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
    bool broken_ = false;
  };

  // Opens `size` (>= 1) read-write sessions on `slot`. `fns` must outlive
  // the pool.
  static absl::StatusOr<std::unique_ptr<SessionPool>> New(CK_FUNCTION_LIST* fns,
                                                          CK_SLOT_ID slot,
                                                          uint32_t size);

  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;
  // Closes the sessions; every Lease must have been returned.
  ~SessionPool();

  // A free session, waiting until `deadline` for one. RESOURCE_EXHAUSTED
  // when none became free in time; UNAVAILABLE once closed, or when no
  // session can be opened.
  absl::StatusOr<Lease> Acquire(absl::Time deadline);

  // Stops lending, waits up to `grace` for leases to come back, and closes
  // every session. When all came back, `before_close` (if set) runs first
  // with one of them (e.g. for C_Logout). False if some leases were still
  // out (their sessions are closed when they return).
  bool Close(
      absl::Duration grace,
      const std::function<void(CK_SESSION_HANDLE)>& before_close = nullptr);

  uint32_t size() const { return size_; }
  uint32_t in_use() const;
  // Sessions currently open (in use or free).
  uint32_t open() const;
  // Sessions closed and replaced because they broke.
  uint64_t replaced() const;

 private:
  SessionPool(CK_FUNCTION_LIST* fns, CK_SLOT_ID slot, uint32_t size)
      : fns_(fns), slot_(slot), size_(size) {}

  absl::StatusOr<CK_SESSION_HANDLE> OpenSession();
  void CloseSession(CK_SESSION_HANDLE handle);
  void Return(CK_SESSION_HANDLE handle, bool broken);

  CK_FUNCTION_LIST* const fns_;
  const CK_SLOT_ID slot_;
  const uint32_t size_;

  mutable absl::Mutex mu_;
  std::vector<CK_SESSION_HANDLE> free_ ABSL_GUARDED_BY(mu_);
  // Sessions open or being opened.
  uint32_t open_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t replaced_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_SESSION_POOL_H_
