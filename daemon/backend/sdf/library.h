// A vendor SDF (GM/T 0018) library loaded with dlopen(), and the table of
// the functions hsmd uses (see the top of gmt0018.h for the list).
#ifndef HSMD_DAEMON_BACKEND_SDF_LIBRARY_H_
#define HSMD_DAEMON_BACKEND_SDF_LIBRARY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/backend/sdf/gmt0018.h"

namespace hsmd::backend::sdf {

// Resolved entry points. Required ones are never null; optional ones are null
// when the library does not export them.
struct SdfFunctions {
  // Required.
  SDF_OpenDevice_fn OpenDevice = nullptr;
  SDF_CloseDevice_fn CloseDevice = nullptr;
  SDF_OpenSession_fn OpenSession = nullptr;
  SDF_CloseSession_fn CloseSession = nullptr;
  SDF_GetDeviceInfo_fn GetDeviceInfo = nullptr;
  SDF_GenerateRandom_fn GenerateRandom = nullptr;
  SDF_GetPrivateKeyAccessRight_fn GetPrivateKeyAccessRight = nullptr;
  SDF_ReleasePrivateKeyAccessRight_fn ReleasePrivateKeyAccessRight = nullptr;
  SDF_ExportSignPublicKey_ECC_fn ExportSignPublicKey_ECC = nullptr;
  SDF_ExportEncPublicKey_ECC_fn ExportEncPublicKey_ECC = nullptr;
  SDF_InternalSign_ECC_fn InternalSign_ECC = nullptr;
  // Optional.
  SDF_InternalDecrypt_ECC_fn InternalDecrypt_ECC = nullptr;
  SDF_Encrypt_fn Encrypt = nullptr;
  SDF_Decrypt_fn Decrypt = nullptr;
  SDF_DestroyKey_fn DestroyKey = nullptr;
  SDF_GetSymmKeyHandle_fn GetSymmKeyHandle = nullptr;
  SDF_ImportKeyWithKEK_fn ImportKeyWithKEK = nullptr;
  SDF_ExternalVerify_ECC_fn ExternalVerify_ECC = nullptr;
};

class Library {
 public:
  // dlopen(path, RTLD_NOW | RTLD_LOCAL) and dlsym of every function. A
  // missing required function fails with FAILED_PRECONDITION naming the
  // function and the library; missing optional ones are listed in
  // missing_optional().
  static absl::StatusOr<std::shared_ptr<Library>> Load(const std::string& path);

  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  // dlclose (the mapping stays: RTLD_NODELETE, as vendor libraries often
  // keep threads or atexit handlers).
  ~Library();

  const SdfFunctions& fns() const { return fns_; }
  const std::string& path() const { return path_; }
  // Optional functions the library does not export, e.g.
  // {"SDF_InternalDecrypt_ECC"}.
  const std::vector<std::string>& missing_optional() const {
    return missing_optional_;
  }
  // "SDF_InternalDecrypt_ECC is not exported by /path/lib.so" style text for
  // a feature that needs `function`.
  std::string Missing(const char* function) const;

 private:
  Library() = default;

  std::string path_;
  void* dl_handle_ = nullptr;
  SdfFunctions fns_;
  std::vector<std::string> missing_optional_;
};

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_LIBRARY_H_
