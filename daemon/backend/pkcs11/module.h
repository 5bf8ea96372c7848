// A loaded and initialised PKCS#11 module.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_MODULE_H_
#define HSMD_DAEMON_BACKEND_PKCS11_MODULE_H_

#include <p11-kit/pkcs11.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

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
//
// Generations: every C_Finalize / C_Initialize pair done by Reinitialize
// starts a new generation, and session handles of an older generation are
// dead (the module may even hand out the same numbers again). Users make
// their calls inside a Use of the generation their sessions belong to, so a
// re-initialisation waits for them and they never call into a newer
// generation with an old handle.
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
  bool no_finalize() const { return no_finalize_; }

  // The current generation (see above).
  uint64_t generation() const;

  // A period of calls into one generation; inactive when the generation has
  // ended or a re-initialisation is under way. Movable, not copyable.
  class Use {
   public:
    Use() = default;
    Use(Use&& other) noexcept : module_(other.module_) {
      other.module_ = nullptr;
    }
    Use& operator=(Use&& other) noexcept;
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    ~Use() { Release(); }

    bool active() const { return module_ != nullptr; }
    void Release();

   private:
    friend class Module;
    explicit Use(Module* module) : module_(module) {}
    Module* module_ = nullptr;
  };
  Use Enter(uint64_t generation);

  // Uses currently active (for tests and status).
  int active_uses() const;

  // Re-initialises the module: waits up to `drain` for active Uses to end
  // (new ones are refused meanwhile), then C_Finalize (unless no_finalize)
  // and C_Initialize. Skipped when the module was re-initialised since
  // `seen_generation` by another user and is initialised. Calls still inside
  // the module when `drain` runs out do not stop it (PKCS#11 leaves that
  // case to the module; modules end calls blocked in them). Returns the
  // generation now current; an error (with the CK_RV) when C_Initialize
  // failed, after which the module is uninitialised until the next call.
  absl::StatusOr<uint64_t> Reinitialize(uint64_t seen_generation,
                                        absl::Duration drain);

  // The login state is per token and process, shared by every session on it:
  // backends sharing a token count themselves here (by a key naming the
  // token, not the slot, which may change) so only the last one logs out.
  // Each returns the number of users after the change.
  int AddTokenUser(const std::string& token_key);
  int RemoveTokenUser(const std::string& token_key);

 private:
  Module() = default;
  CK_RV InitializeModule();

  std::string path_;
  void* dl_handle_ = nullptr;
  CK_FUNCTION_LIST* fns_ = nullptr;
  CK_INFO info_{};
  ModuleQuirks quirks_;
  bool no_finalize_ = false;

  mutable std::mutex mu_;
  std::condition_variable drained_cv_;
  // Whether the module is initialised now, and by us (then we finalize it).
  bool initialized_ ABSL_GUARDED_BY(mu_) = false;
  bool initialized_by_us_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  int uses_ ABSL_GUARDED_BY(mu_) = 0;
  bool reinitializing_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, int> token_users_ ABSL_GUARDED_BY(mu_);
};

// A blank-padded PKCS#11 string field (labels, descriptions) without the
// trailing blanks.
std::string TrimPadded(const unsigned char* data, size_t size);

// `value` blank-padded to `size` bytes; false if it is longer.
bool PadTo(const std::string& value, unsigned char* out, size_t size);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_MODULE_H_
