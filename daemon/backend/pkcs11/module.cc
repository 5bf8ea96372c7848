#include "daemon/backend/pkcs11/module.h"

#include <dlfcn.h>
#include <stdlib.h>

#include <chrono>
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
  std::mutex mu;
  std::condition_variable erased_cv;
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
  std::unique_lock<std::mutex> lock(registry.mu);
  while (true) {
    auto it = registry.modules.find(key);
    if (it == registry.modules.end()) break;
    if (std::shared_ptr<Module> existing = it->second.lock()) {
      return existing;
    }
    // Being finalized by its last owner: wait until the entry is erased.
    registry.erased_cv.wait(lock);
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
  rv = module->InitializeModule();
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    return Pkcs11Error(rv, "C_Initialize", absl::StrCat("module ", path));
  }
  {
    std::lock_guard<std::mutex> module_lock(module->mu_);
    module->initialized_ = true;
    // Someone else in this process initialised it: never finalize theirs.
    module->initialized_by_us_ = rv == CKR_OK;
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
    std::lock_guard<std::mutex> lock(registry.mu);
    delete m;
    registry.modules.erase(key);
    registry.erased_cv.notify_all();
  });
  registry.modules[key] = shared;
  return shared;
}

CK_RV Module::InitializeModule() {
  // The module may use its own threads and OS mutexes; we call it from many
  // request threads at once.
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  return fns_->C_Initialize(&args);
}

Module::~Module() {
  bool finalize;
  {
    std::lock_guard<std::mutex> lock(mu_);
    finalize =
        fns_ != nullptr && initialized_ && initialized_by_us_ && !no_finalize_;
  }
  if (finalize) fns_->C_Finalize(nullptr);
  if (dl_handle_ != nullptr) dlclose(dl_handle_);
}

std::string Module::library_description() const {
  return TrimPadded(info_.libraryDescription, sizeof(info_.libraryDescription));
}

std::string Module::manufacturer() const {
  return TrimPadded(info_.manufacturerID, sizeof(info_.manufacturerID));
}

uint64_t Module::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

Module::Use& Module::Use::operator=(Use&& other) noexcept {
  if (this != &other) {
    Release();
    module_ = std::exchange(other.module_, nullptr);
  }
  return *this;
}

void Module::Use::Release() {
  if (module_ == nullptr) return;
  Module* module = std::exchange(module_, nullptr);
  std::lock_guard<std::mutex> lock(module->mu_);
  if (--module->uses_ == 0 && module->reinitializing_) {
    module->drained_cv_.notify_all();
  }
}

Module::Use Module::Enter(uint64_t generation) {
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != generation_ || reinitializing_ || !initialized_) {
    return Use();
  }
  ++uses_;
  return Use(this);
}

int Module::active_uses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return uses_;
}

absl::StatusOr<uint64_t> Module::Reinitialize(uint64_t seen_generation,
                                              absl::Duration drain) {
  bool finalize;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (reinitializing_) {
      return absl::UnavailableError(
          absl::StrCat("PKCS#11 module ", path_,
                       " is being re-initialised by another user"));
    }
    if (initialized_ && generation_ != seen_generation) return generation_;
    reinitializing_ = true;
    drained_cv_.wait_for(
        lock, absl::ToChronoNanoseconds(drain),
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return uses_ == 0; });
    finalize = initialized_ && !no_finalize_;
  }
  // Not under mu_: a module that hangs here must not block Enter (callers
  // are refused while reinitializing_ is set).
  if (finalize) {
    // CKR_CRYPTOKI_NOT_INITIALIZED (finalized behind our back) is fine, and
    // nothing else can be done about another failure.
    fns_->C_Finalize(nullptr);
  }
  const CK_RV rv = InitializeModule();
  std::lock_guard<std::mutex> lock(mu_);
  reinitializing_ = false;
  // Handles of the old generation are dead once the module was finalized
  // or found uninitialised (C_Initialize then succeeds).
  if (finalize || rv == CKR_OK || !initialized_) ++generation_;
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    initialized_ = false;
    return Pkcs11Error(rv, "C_Initialize", absl::StrCat("module ", path_));
  }
  initialized_ = true;
  if (rv == CKR_OK) initialized_by_us_ = true;
  return generation_;
}

int Module::AddTokenUser(const std::string& token_key) {
  std::lock_guard<std::mutex> lock(mu_);
  return ++token_users_[token_key];
}

int Module::RemoveTokenUser(const std::string& token_key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = token_users_.find(token_key);
  if (it == token_users_.end()) return 0;
  int left = --it->second;
  if (left <= 0) token_users_.erase(it);
  return left;
}

}  // namespace hsmd::backend::pkcs11
