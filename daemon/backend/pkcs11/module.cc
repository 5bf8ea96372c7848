#include "daemon/backend/pkcs11/module.h"

#include <dlfcn.h>
#include <stdlib.h>

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/backend/pkcs11/ck_rv.h"

namespace hsmd::backend::pkcs11 {
namespace {

// Loaded modules by canonical path. An entry whose weak_ptr has expired
// belongs to a Module being finalized: Load waits for it to go, so a new
// C_Initialize never overlaps the old C_Finalize.
struct Registry {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::weak_ptr<Module>> modules
      ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

std::string CanonicalPath(const std::string& path) {
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return path;
  std::string result(resolved);
  free(resolved);
  return result;
}

}  // namespace

std::string TrimPadded(const unsigned char* data, size_t size) {
  size_t end = size;
  while (end > 0 && (data[end - 1] == ' ' || data[end - 1] == '\0')) --end;
  return std::string(reinterpret_cast<const char*>(data), end);
}

bool PadTo(const std::string& value, unsigned char* out, size_t size) {
  if (value.size() > size) return false;
  std::memset(out, ' ', size);
  std::memcpy(out, value.data(), value.size());
  return true;
}

absl::StatusOr<std::shared_ptr<Module>> Module::Load(const std::string& path,
                                                     bool no_finalize) {
  if (path.empty()) {
    return absl::InvalidArgumentError("PKCS#11 module path is empty");
  }
  const std::string key = CanonicalPath(path);
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  while (true) {
    auto it = registry.modules.find(key);
    if (it == registry.modules.end()) break;
    if (std::shared_ptr<Module> existing = it->second.lock()) {
      return existing;
    }
    // Being finalized by its last owner: wait until the entry is erased.
    std::pair<Registry*, const std::string*> arg(&registry, &key);
    registry.mu.Await(absl::Condition(
        +[](std::pair<Registry*, const std::string*>* a) {
          return !a->first->modules.contains(*a->second);
        },
        &arg));
  }

  std::unique_ptr<Module> module(new Module);
  module->path_ = path;
  module->no_finalize_ = no_finalize;
  // RTLD_NODELETE: modules (SoftHSM among them) leave OpenSSL callbacks and
  // atexit handlers pointing into their code, so the code must stay mapped
  // after dlclose; a later Load re-initialises the same mapping.
  module->dl_handle_ =
      dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (module->dl_handle_ == nullptr) {
    const char* error = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load PKCS#11 module ", path, ": ",
                     error != nullptr ? error : "dlopen failed"));
  }
  auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(
      dlsym(module->dl_handle_, "C_GetFunctionList"));
  if (get_function_list == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PKCS#11 module ", path, " does not export C_GetFunctionList"));
  }
  CK_RV rv = get_function_list(&module->fns_);
  if (rv != CKR_OK || module->fns_ == nullptr) {
    return Pkcs11Error(rv == CKR_OK ? CKR_GENERAL_ERROR : rv,
                       "C_GetFunctionList", absl::StrCat("module ", path));
  }
  // The module may use its own threads and OS mutexes; we call it from many
  // request threads at once.
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  rv = module->fns_->C_Initialize(&args);
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    // Someone else in this process initialised it: never finalize theirs.
    module->initialized_by_us_ = false;
  } else if (rv != CKR_OK) {
    return Pkcs11Error(rv, "C_Initialize", absl::StrCat("module ", path));
  } else {
    module->initialized_by_us_ = true;
  }
  rv = module->fns_->C_GetInfo(&module->info_);
  if (rv != CKR_OK) {
    return Pkcs11Error(rv, "C_GetInfo", absl::StrCat("module ", path));
  }
  if (absl::StartsWith(module->manufacturer(), "SoftHSM")) {
    module->quirks_.oaep_sha1_only_ignores_label = true;
    module->quirks_.pss_mgf1_must_match_hash = true;
  }

  std::shared_ptr<Module> shared(module.release(), [key](Module* m) {
    Registry& registry = GetRegistry();
    absl::MutexLock lock(&registry.mu);
    delete m;
    registry.modules.erase(key);
  });
  registry.modules[key] = shared;
  return shared;
}

Module::~Module() {
  if (fns_ != nullptr && initialized_by_us_ && !no_finalize_) {
    fns_->C_Finalize(nullptr);
  }
  if (dl_handle_ != nullptr) dlclose(dl_handle_);
}

std::string Module::library_description() const {
  return TrimPadded(info_.libraryDescription, sizeof(info_.libraryDescription));
}

std::string Module::manufacturer() const {
  return TrimPadded(info_.manufacturerID, sizeof(info_.manufacturerID));
}

int Module::AddTokenUser(CK_SLOT_ID slot) {
  absl::MutexLock lock(&mu_);
  return ++token_users_[slot];
}

int Module::RemoveTokenUser(CK_SLOT_ID slot) {
  absl::MutexLock lock(&mu_);
  auto it = token_users_.find(slot);
  if (it == token_users_.end()) return 0;
  int left = --it->second;
  if (left <= 0) token_users_.erase(it);
  return left;
}

}  // namespace hsmd::backend::pkcs11
