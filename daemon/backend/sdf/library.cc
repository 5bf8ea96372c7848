#include "daemon/backend/sdf/library.h"

#include <dlfcn.h>

#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hsmd::backend::sdf {

absl::StatusOr<std::shared_ptr<Library>> Library::Load(
    const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("SDF library path is empty");
  }
  std::shared_ptr<Library> library(new Library());
  library->path_ = path;
  // dlerror() is per thread: clear whatever an earlier call left.
  dlerror();
  library->dl_handle_ =
      dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (library->dl_handle_ == nullptr) {
    const char* error = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load SDF library ", path, ": ",
                     error != nullptr ? error : "dlopen failed"));
  }
  void* handle = library->dl_handle_;
  std::vector<std::string> missing_required;
  auto resolve = [&](auto& fn, const char* name, bool required) {
    void* symbol = dlsym(handle, name);
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(symbol);
    if (symbol != nullptr) return;
    (required ? missing_required : library->missing_optional_).push_back(name);
  };
  SdfFunctions& f = library->fns_;
  resolve(f.OpenDevice, "SDF_OpenDevice", true);
  resolve(f.CloseDevice, "SDF_CloseDevice", true);
  resolve(f.OpenSession, "SDF_OpenSession", true);
  resolve(f.CloseSession, "SDF_CloseSession", true);
  resolve(f.GetDeviceInfo, "SDF_GetDeviceInfo", true);
  resolve(f.GenerateRandom, "SDF_GenerateRandom", true);
  resolve(f.GetPrivateKeyAccessRight, "SDF_GetPrivateKeyAccessRight", true);
  resolve(f.ReleasePrivateKeyAccessRight, "SDF_ReleasePrivateKeyAccessRight",
          true);
  resolve(f.ExportSignPublicKey_ECC, "SDF_ExportSignPublicKey_ECC", true);
  resolve(f.ExportEncPublicKey_ECC, "SDF_ExportEncPublicKey_ECC", true);
  resolve(f.InternalSign_ECC, "SDF_InternalSign_ECC", true);
  resolve(f.InternalDecrypt_ECC, "SDF_InternalDecrypt_ECC", false);
  resolve(f.Encrypt, "SDF_Encrypt", false);
  resolve(f.Decrypt, "SDF_Decrypt", false);
  resolve(f.DestroyKey, "SDF_DestroyKey", false);
  resolve(f.GetSymmKeyHandle, "SDF_GetSymmKeyHandle", false);
  resolve(f.ImportKeyWithKEK, "SDF_ImportKeyWithKEK", false);
  resolve(f.ExternalVerify_ECC, "SDF_ExternalVerify_ECC", false);
  if (!missing_required.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "SDF library ", path, " does not export ",
        absl::StrJoin(missing_required, ", "),
        ", which hsmd requires (see daemon/backend/sdf/README.md)"));
  }
  return library;
}

Library::~Library() {
  if (dl_handle_ != nullptr) dlclose(dl_handle_);
}

std::string Library::Missing(const char* function) const {
  return absl::StrCat(function, " is not exported by the SDF library ", path_);
}

}  // namespace hsmd::backend::sdf
