// Everything tied to one initialisation of one token: the module reference,
// the slot, the login, the session pool and the key cache. A re-initialising
// backend drops its Token and opens a new one.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_TOKEN_H_
#define HSMD_DAEMON_BACKEND_PKCS11_TOKEN_H_

#include <p11-kit/pkcs11.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "daemon/backend/pkcs11/key_store.h"
#include "daemon/backend/pkcs11/module.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/backend/pkcs11/session_pool.h"

namespace hsmd::backend::pkcs11 {

// Which token to use: the first initialised token matching every set field.
struct TokenSelector {
  std::string label;
  std::string serial;
  std::optional<CK_SLOT_ID> slot_id;
};

// The slot holding the initialised token that matches every non-empty
// selector (the first one when there are none). NOT_FOUND names the selector
// and lists the tokens present.
absl::StatusOr<CK_SLOT_ID> FindTokenSlot(const Module& module,
                                         const std::string& label,
                                         const std::string& serial,
                                         std::optional<CK_SLOT_ID> slot_id);

// "label \"demo\", serial \"...\"" for messages.
std::string DescribeTokenSelector(const std::string& label,
                                  const std::string& serial,
                                  std::optional<CK_SLOT_ID> slot_id);

// CKR_PIN_INCORRECT and the other codes that mean the PIN itself was
// refused: logging in again with the same PIN could lock the token.
bool IsPinRejection(CK_RV rv);

class Token {
 public:
  using PinSource = std::function<absl::StatusOr<SecretString>()>;

  // Finds the token in `module` (initialised), opens the pool of
  // `pool_size` sessions. Does not log in: see login_required() / LogIn.
  static absl::StatusOr<std::unique_ptr<Token>> Open(
      const std::string& backend_name, std::shared_ptr<Module> module,
      const TokenSelector& selector, uint32_t pool_size);

  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  ~Token();

  Module& module() const { return *module_; }
  CK_FUNCTION_LIST* fns() const { return module_->fns(); }
  // The module generation the sessions belong to.
  uint64_t generation() const { return pool_->generation(); }
  CK_SLOT_ID slot_id() const { return keys_->identity().slot_id; }
  const TokenIdentity& identity() const { return keys_->identity(); }
  // The token's serial number, trimmed.
  std::string serial() const;
  // "token \"label\" (slot N)" for messages.
  std::string Describe() const;
  // Selects this token again after a re-initialisation (by label and
  // serial; slot ids may change).
  TokenSelector Selector() const;
  SessionPool& pool() const { return *pool_; }
  KeyStore& keys() const { return *keys_; }
  bool login_required() const { return login_required_; }
  bool logged_in() const;

  // C_Login as the user on `session` with the PIN from `pin_source`, which
  // is wiped right after. CKR_USER_ALREADY_LOGGED_IN (the login state is
  // shared by the process) counts as success. Errors name the token and the
  // CK_RV; a failing PIN source is reported as such. Callers decide about
  // retries (see IsPinRejection).
  absl::Status LogIn(CK_SESSION_HANDLE session, const PinSource& pin_source);

  // Closes the sessions (waiting up to `grace` for leases), logging out
  // first when this is the last user of the token in the process. Later
  // Acquire calls fail with UNAVAILABLE. Idempotent.
  void Close(absl::Duration grace);

  // For re-initialisation: stops lending sessions without logging out.
  // With `close_sessions` false no call is made into the module at all
  // (it is about to be finalized, which ends every session).
  void Abandon(bool close_sessions);

 private:
  Token() = default;
  std::string UserKey() const;

  std::shared_ptr<Module> module_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<SessionPool> pool_;
  bool login_required_ = false;

  mutable std::mutex mu_;
  bool logged_in_ ABSL_GUARDED_BY(mu_) = false;
  bool counted_user_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_TOKEN_H_
