// A loaded and initialised PKCS#11 module.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_MODULE_H_
#define HSMD_DAEMON_BACKEND_PKCS11_MODULE_H_

#include <p11-kit/pkcs11.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace hsmd::backend::pkcs11 {

// Known deviations of a module from the PKCS#11 specification, detected from
// CK_INFO, that the backend works around.
struct ModuleQuirks {
  // CKM_RSA_PKCS_OAEP accepts only SHA-1 with MGF1-SHA-1 and silently ignores
  // the label (SoftHSM 2.6): other OAEP parameters are decoded in software
  // after a raw CKM_RSA_X_509 decryption.
  bool oaep_sha1_only_ignores_label = false;
  // CKM_RSA_PKCS_PSS requires the MGF1 hash to equal the message hash
  // (SoftHSM): other combinations are encoded in software and signed with
  // CKM_RSA_X_509.
  bool pss_mgf1_must_match_hash = false;
};

// dlopen (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) + C_GetFunctionList +
// C_Initialize with CKF_OS_LOCKING_OK. A module can be initialised only once
// per process, so every user of the same path shares one Module; the last
// reference calls C_Finalize (unless no_finalize) and dlcloses it.
class Module {
 public:
  static absl::StatusOr<std::shared_ptr<Module>> Load(const std::string& path,
                                                      bool no_finalize = false);

  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  ~Module();

  CK_FUNCTION_LIST* fns() const { return fns_; }
  const std::string& path() const { return path_; }
  const CK_INFO& info() const { return info_; }
  // CK_INFO's padded fields, trimmed.
  std::string library_description() const;
  std::string manufacturer() const;
  const ModuleQuirks& quirks() const { return quirks_; }

  // The login state is per token and process, shared by every session on it:
  // backends sharing a token count themselves here so only the last one logs
  // out. Each returns the number of users after the change.
  int AddTokenUser(CK_SLOT_ID slot);
  int RemoveTokenUser(CK_SLOT_ID slot);

 private:
  Module() = default;

  std::string path_;
  void* dl_handle_ = nullptr;
  CK_FUNCTION_LIST* fns_ = nullptr;
  CK_INFO info_{};
  ModuleQuirks quirks_;
  bool initialized_by_us_ = false;
  bool no_finalize_ = false;

  absl::Mutex mu_;
  absl::flat_hash_map<CK_SLOT_ID, int> token_users_ ABSL_GUARDED_BY(mu_);
};

// A blank-padded PKCS#11 string field (labels, descriptions) without the
// trailing blanks.
std::string TrimPadded(const unsigned char* data, size_t size);

// `value` blank-padded to `size` bytes; false if it is longer.
bool PadTo(const std::string& value, unsigned char* out, size_t size);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_MODULE_H_
