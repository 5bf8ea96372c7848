// The PKCS#11 implementation of hsmd's Backend: one module, one token.
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
  // modules misbehave there).
  bool no_finalize = false;
};

// dlopens the module, C_Initialize (CKF_OS_LOCKING_OK), finds the token,
// logs in once, opens the session pool. Errors name the module path / token.
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

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_PKCS11_PKCS11_BACKEND_H_
