// The loop in which both device backends (PKCS#11, SDF) run a request's
// device call: the serving token or device, a pooled session before the
// deadline, the call, and another try when the pool was closed under the
// request (the token or device is being replaced) or the call asks for one
// (its session proved broken).
#ifndef HSMD_DAEMON_BACKEND_SESSION_LOOP_H_
#define HSMD_DAEMON_BACKEND_SESSION_LOOP_H_

#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "daemon/backend/backend_state.h"

namespace hsmd::backend {

// Runs `attempt(std::shared_ptr<R> resource, Lease lease, bool& retry)`
// (returning absl::StatusOr<T>) at most `max_attempts` times. `device` and
// `session` name the device and its sessions in errors ("HSM",
// "HSM session").
template <typename T, typename R, typename Attempt>
absl::StatusOr<T> RunWithPooledSession(
    const BackendState<R>& state, absl::Time deadline, uint32_t max_attempts,
    absl::string_view device, absl::string_view session, Attempt&& attempt) {
  for (uint32_t n = 0;; ++n) {
    ASSIGN_OR_RETURN(std::shared_ptr<R> resource, state.Serving());
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the request's deadline passed before the ", device, " was called"));
    }
    auto lease = resource->pool().Acquire(deadline);
    if (lease.ok() && absl::Now() >= deadline) {
      // Our turn came too late: do not start a call nobody will wait for.
      return absl::ResourceExhaustedError(
          absl::StrCat("no ", session, " became free before the deadline"));
    }
    if (!lease.ok()) {
      // The pool was closed under us: the resource is being replaced.
      if (absl::IsUnavailable(lease.status())) {
        if (state.IsServing() && n + 1 < max_attempts) continue;
        return state.NotServingError();
      }
      return lease.status();
    }
    bool retry = false;
    absl::StatusOr<T> result =
        attempt(std::move(resource), *std::move(lease), retry);
    if (retry && n + 1 < max_attempts) continue;
    return result;
  }
}

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_SESSION_LOOP_H_
