// The PKCS#11 module driven directly, as an application that loads it
// in-process would: dlopen, C_Initialize, find the token by label, open
// sessions, log in once. Deliberately independent of hsmd's backend, so the
// in-process ceiling does not depend on the code it is compared with.
#ifndef HSMD_BENCH_PKCS11_DIRECT_H_
#define HSMD_BENCH_PKCS11_DIRECT_H_

#include <p11-kit/pkcs11.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secret.h"

namespace hsmd::bench {

// "C_Sign: CKR_... (0x..)".
absl::Status CkError(absl::string_view function, CK_RV rv);

// A loaded module (never unloaded: SoftHSM keeps static state).
class Pkcs11Library {
 public:
  static absl::StatusOr<std::unique_ptr<Pkcs11Library>> Load(
      const std::string& path);
  CK_FUNCTION_LIST* fns() const { return fns_; }

 private:
  explicit Pkcs11Library(CK_FUNCTION_LIST* fns) : fns_(fns) {}
  CK_FUNCTION_LIST* const fns_;
};

// An initialised module with one token's sessions, logged in.
class Pkcs11Token {
 public:
  // C_Initialize (OS locking), the first token labelled `label`, `sessions`
  // sessions, C_Login as user on the first.
  static absl::StatusOr<std::unique_ptr<Pkcs11Token>> Open(
      CK_FUNCTION_LIST* fns, absl::string_view label, const SecretString& pin,
      int sessions);
  // Logs out, closes the sessions, C_Finalize; nothing after Abandon().
  ~Pkcs11Token();
  Pkcs11Token(const Pkcs11Token&) = delete;
  Pkcs11Token& operator=(const Pkcs11Token&) = delete;

  // In a forked child: forget the inherited state without calling the
  // module (the child re-initialises it itself).
  void Abandon() { abandoned_ = true; }

  CK_FUNCTION_LIST* fns() const { return fns_; }
  int sessions() const { return static_cast<int>(sessions_.size()); }
  CK_SESSION_HANDLE session(int i) const { return sessions_[i]; }
  // The private key object labelled `label`.
  absl::StatusOr<CK_OBJECT_HANDLE> FindPrivateKey(absl::string_view label);

 private:
  explicit Pkcs11Token(CK_FUNCTION_LIST* fns) : fns_(fns) {}
  CK_FUNCTION_LIST* const fns_;
  std::vector<CK_SESSION_HANDLE> sessions_;
  bool initialized_ = false;
  bool logged_in_ = false;
  bool abandoned_ = false;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_PKCS11_DIRECT_H_
