// The PKCS#11 implementation of hsmd's Backend: one module, one token.
//
// Failure behaviour (BackendStatus.state, IsServing, what requests get):
//   READY           serving.
//   DEGRADED        serving; sessions had to be replaced recently
//                   (CKR_SESSION_HANDLE_INVALID / CKR_SESSION_CLOSED /
//                   CKR_OPERATION_ACTIVE). Such a session is closed and
//                   replaced, and sign / decrypt / random / key lookups are
//                   retried on another session (up to pool size + 1 tries),
//                   so callers see no error. READY again after
//                   degraded_hold without trouble.
//   REINITIALIZING  not serving. Entered on CKR_DEVICE_REMOVED,
//                   CKR_DEVICE_ERROR, CKR_TOKEN_NOT_PRESENT,
//                   CKR_TOKEN_NOT_RECOGNIZED, CKR_CRYPTOKI_NOT_INITIALIZED,
//                   CKR_SLOT_ID_INVALID, or 3 CKR_GENERAL_ERROR in a row on
//                   different sessions (C_Decrypt's excepted: SoftHSM
//                   reports bad padding so). A background thread drops the
//                   pool (no calls into its sessions when the module will be
//                   finalized), waits up to reinit_drain_timeout for calls
//                   still inside the module, C_Finalize (unless
//                   no_finalize) + C_Initialize, finds the token again by
//                   label and serial (never by slot id: modules renumber),
//                   logs in, opens a new pool (keys are resolved again by
//                   URI), with exponential backoff between attempts. Requests
//                   fail at once with UNAVAILABLE "HSM backend "NAME" is
//                   re-initialising after CKR_DEVICE_REMOVED in C_Sign
//                   (attempt N)", carrying the triggering CK_RV as
//                   ErrorDetail. Back to READY when an attempt succeeds;
//                   BackendStatus.reinitializations counts those.
//   FAILED          not serving, for good: the token refused the PIN
//                   (CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE,
//                   CKR_PIN_EXPIRED, CKR_PIN_LOCKED) during a re-login or a
//                   re-initialisation. C_Login is never called again, so
//                   hsmd cannot lock the token; requests get UNAVAILABLE
//                   "HSM backend "NAME" failed: the user PIN was rejected:
//                   token "LABEL" ...: C_Login failed: CKR_PIN_INCORRECT..."
//                   with that CK_RV as ErrorDetail (UNAVAILABLE rather than
//                   FAILED_PRECONDITION: the API reserves the latter for key
//                   properties, and clients treat both as "not now"). Also
//                   the state after Shutdown ("shut down").
// CKR_USER_NOT_LOGGED_IN: the backend logs in again once (PIN read from
// pin_source, wiped after; concurrent requests share that one login) and
// retries idempotent operations. At start-up a rejected PIN makes
// NewPkcs11Backend fail with PERMISSION_DENIED naming the token and CK_RV.
//
// Deadlines: waiting for a session ends at the request's deadline with
// RESOURCE_EXHAUSTED; waiters are served first come, first served, and one
// whose turn comes with less time left than a session is typically held is
// told RESOURCE_EXHAUSTED at once. With calls_on_workers (default), a
// request with a finite deadline makes its PKCS#11 calls on a worker thread
// and returns DEADLINE_EXCEEDED at its deadline if they hang; the session
// stays out of the pool until the call returns (then goes back, or is
// replaced if the call failed). A request whose caller ends it at its
// deadline by itself (RequestContext::caller_enforces_deadline: hsmd's gRPC
// service sets it when the client sent a deadline) makes its calls on its
// own thread instead, saving the hand-off; a hung call then holds that
// thread and its session until it returns, counts as abandoned once past
// the deadline, and its result is replaced by DEADLINE_EXCEEDED. Every
// state change is logged.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_PKCS11_BACKEND_H_
#define HSMD_DAEMON_BACKEND_PKCS11_PKCS11_BACKEND_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "daemon/backend/backend.h"

namespace hsmd::backend {

struct Pkcs11BackendOptions {
  // Backend name from the config (appears in Key.backend, logs, status).
  std::string name = "pkcs11";
  // Path of the PKCS#11 module to dlopen (e.g.
  // /usr/lib/softhsm/libsofthsm2.so).
  std::string module_path;
  // Token selection: the first token matching every non-empty field.
  std::string token_label;
  std::string token_serial;
  absl::optional<uint64_t> slot_id;
  // Reads the user PIN from its source (file or systemd credential) each time
  // the backend must log in (start-up, and re-login during recovery), so the
  // PIN is in memory only for the duration of C_Login and is wiped after.
  std::function<absl::StatusOr<SecretString>()> pin_source;
  // Number of sessions opened on the token and shared by all requests.
  uint32_t session_pool_size = 4;
  // Module quirk: skip C_Finalize on shutdown / re-initialisation (some
  // modules misbehave there). Re-initialisation then closes the old sessions
  // one by one and opens the token again without finalizing the module.
  bool no_finalize = false;

  // Recovery. After a device-level fault (CKR_DEVICE_REMOVED, ...) the
  // backend re-initialises the module in the background: the first attempt
  // at once, then after `reinit_backoff_initial`, doubling up to
  // `reinit_backoff_max`, until it succeeds (or the PIN is rejected).
  absl::Duration reinit_backoff_initial = absl::Milliseconds(100);
  absl::Duration reinit_backoff_max = absl::Seconds(5);
  // How long a re-initialisation waits for calls still inside the module
  // before C_Finalize.
  absl::Duration reinit_drain_timeout = absl::Seconds(2);
  // DEGRADED (sessions had to be replaced) turns back into READY after this
  // long without new trouble.
  absl::Duration degraded_hold = absl::Seconds(60);
  // A request with a finite deadline makes its PKCS#11 calls on a worker
  // thread and waits for them only until its deadline, so a hung HSM call
  // ends the request with DEADLINE_EXCEEDED on time (the session stays out
  // of the pool until the call returns). Costs a thread hand-off per
  // request; false makes every call on the request's thread (a hung call
  // then holds the request until it returns).
  bool calls_on_workers = true;
};

// dlopens the module, C_Initialize (CKF_OS_LOCKING_OK), finds the token,
// logs in once, opens the session pool, starts the recovery thread (joined
// by Shutdown). Errors name the module path / token.
absl::StatusOr<std::unique_ptr<Backend>> NewPkcs11Backend(
    Pkcs11BackendOptions options);

// For `hsmd --demo` and tests: initialises a new token in the first slot
// without one (C_InitToken, then C_InitPIN) through the module's PKCS#11 API,
// so no PIN ever appears on a command line. Returns the slot id used, which
// is valid only while the module stays initialised in this process (SoftHSM
// renumbers slots on re-initialisation): select the token by label later.
// ALREADY_EXISTS if a token with this label exists.
absl::StatusOr<uint64_t> InitializeToken(const std::string& module_path,
                                         const std::string& label,
                                         absl::string_view so_pin,
                                         absl::string_view user_pin);

// Test hook: borrows one pooled session of a backend made by
// NewPkcs11Backend and keeps it until the returned object is destroyed, so
// tests can exhaust the pool deterministically. INVALID_ARGUMENT for other
// backends; the pool's errors (RESOURCE_EXHAUSTED past `deadline`) as is.
class HeldSessionForTesting {
 public:
  virtual ~HeldSessionForTesting() = default;
};
absl::StatusOr<std::unique_ptr<HeldSessionForTesting>> HoldSessionForTesting(
    Backend& backend, absl::Time deadline);

// Recovery counters of a backend made by NewPkcs11Backend (for tests and
// diagnostics).
struct Pkcs11BackendCounters {
  // Requests that ended with DEADLINE_EXCEEDED while their HSM call went on.
  uint64_t calls_abandoned = 0;
  // Of those, calls still running: each holds its session out of the pool.
  uint64_t abandoned_calls_running = 0;
  // Broken sessions closed and replaced (since the last re-initialisation).
  uint64_t sessions_replaced = 0;
  // Logins after CKR_USER_NOT_LOGGED_IN.
  uint64_t relogins = 0;
  // Re-initialisation attempts (successful ones are in
  // BackendStatus.reinitializations).
  uint64_t reinit_attempts = 0;
  // Worker threads started (see calls_on_workers) and requests waiting for a
  // session now.
  uint32_t worker_threads = 0;
  uint32_t waiting_for_session = 0;
};
// INVALID_ARGUMENT for other backends.
absl::StatusOr<Pkcs11BackendCounters> GetPkcs11BackendCounters(
    const Backend& backend);

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_PKCS11_PKCS11_BACKEND_H_
