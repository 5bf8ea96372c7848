// Everything tied to one initialisation of one token: the module reference,
// the slot, the login, the session pool and the key cache. A re-initialising
// backend drops its Token and opens a new one.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_TOKEN_H_
#define HSMD_DAEMON_BACKEND_PKCS11_TOKEN_H_

#include <p11-kit/pkcs11.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/backend/pkcs11/key_store.h"
#include "daemon/backend/pkcs11/module.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/backend/pkcs11/session_pool.h"

namespace hsmd::backend::pkcs11 {

// The slot holding the initialised token that matches every non-empty
// selector (the first one when there are none). NOT_FOUND names the selector
// and lists the tokens present.
absl::StatusOr<CK_SLOT_ID> FindTokenSlot(const Module& module,
                                         const std::string& label,
                                         const std::string& serial,
                                         std::optional<CK_SLOT_ID> slot_id);

// "token=\"demo\" serial=\"...\"" for messages.
std::string DescribeTokenSelector(const std::string& label,
                                  const std::string& serial,
                                  std::optional<CK_SLOT_ID> slot_id);

class Token {
 public:
  // Loads the module, finds the token, opens the pool and logs in once with
  // the PIN from options.pin_source (wiped right after C_Login; never
  // retried).
  static absl::StatusOr<std::unique_ptr<Token>> Open(
      const Pkcs11BackendOptions& options);

  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  ~Token();

  Module& module() const { return *module_; }
  CK_FUNCTION_LIST* fns() const { return module_->fns(); }
  CK_SLOT_ID slot_id() const { return keys_->identity().slot_id; }
  const TokenIdentity& identity() const { return keys_->identity(); }
  SessionPool& pool() const { return *pool_; }
  KeyStore& keys() const { return *keys_; }
  bool logged_in() const;

  // Closes the sessions (waiting up to `grace` for leases), logging out
  // first when this is the last user of the token in the process. Later
  // Acquire calls fail with UNAVAILABLE. Idempotent.
  void Close(absl::Duration grace);

 private:
  Token() = default;

  std::shared_ptr<Module> module_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<SessionPool> pool_;

  mutable absl::Mutex mu_;
  bool logged_in_ ABSL_GUARDED_BY(mu_) = false;
  bool counted_user_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_TOKEN_H_
