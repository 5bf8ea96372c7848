// libfaulty_pkcs11.so: a PKCS#11 module that forwards every call to a real
// module (FAULTY_PKCS11_TARGET, SoftHSM by default) and injects the faults a
// test writes into a control file (FAULTY_PKCS11_CONTROL). See README.md.
//
// Locking uses std::mutex (pthreads) rather than absl::Mutex so that TSan
// sees it: Debian's Abseil is not built with TSan annotations.

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "tests/faulty_pkcs11/files.h"
#include "tests/faulty_pkcs11/functions.h"
#include "tests/faulty_pkcs11/rules.h"
#include "tests/faulty_pkcs11/stats.h"

namespace hsmd::faulty_pkcs11 {
namespace {

constexpr char kDefaultTarget[] = "/usr/lib/softhsm/libsofthsm2.so";
constexpr absl::Duration kHangPoll = absl::Milliseconds(20);
constexpr absl::Duration kStatsInterval = absl::Milliseconds(100);

std::string GetEnv(const char* name, const char* fallback) {
  const char* value = getenv(name);
  return value != nullptr && value[0] != '\0' ? value : fallback;
}

// Identifies one version of the control file. Writers replace it by rename,
// so the inode alone changes on every write; size and times catch editors
// that rewrite in place.
struct FileVersion {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;

  static FileVersion Of(const struct stat& st) {
    return {true,
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
            st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
  }
  static FileVersion OfPath(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? Of(st) : FileVersion{};
  }
  bool operator==(const FileVersion& o) const {
    return std::tie(exists, dev, ino, size, mtime_ns, ctime_ns) ==
           std::tie(o.exists, o.dev, o.ino, o.size, o.mtime_ns, o.ctime_ns);
  }
  bool operator!=(const FileVersion& o) const { return !(*this == o); }
};

// What the rules decided for one call.
struct Action {
  absl::optional<CK_RV> rv;
  absl::Duration delay = absl::ZeroDuration();
  bool hang = false;
};

// Functions that report CKR_TOKEN_NOT_PRESENT while `token_absent` is in
// force. C_GetSlotList and C_GetSlotInfo instead hide the token.
bool NeedsToken(Fn fn) {
  switch (fn) {
    case Fn::C_GetTokenInfo:
    case Fn::C_GetMechanismList:
    case Fn::C_GetMechanismInfo:
    case Fn::C_InitToken:
    case Fn::C_OpenSession:
      return true;
    default:
      return false;
  }
}

// A call admitted to the target module, or the CK_RV that replaces it.
struct Admission {
  CK_FUNCTION_LIST* target = nullptr;  // Null: return `rv` instead.
  CK_RV rv = CKR_OK;
  bool token_absent = false;
};

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  ~Module() { StopFlusher(); }

  CK_RV Initialize(CK_VOID_PTR init_args);
  CK_RV Finalize(CK_VOID_PTR reserved);
  CK_RV GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR slots,
                    CK_ULONG_PTR count);
  CK_RV GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info);
  CK_RV OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application,
                    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session);
  CK_RV CloseSession(CK_SESSION_HANDLE session);
  CK_RV CloseAllSessions(CK_SLOT_ID slot);
  void CountCall(Fn fn);

  // pthread_atfork handlers (see flush_mu_).
  void BeforeFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { flush_mu_.lock(); }
  void AfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { flush_mu_.unlock(); }

  // Applies the rules to a call of `fn`. Unless they fail it, runs
  // `call(target, token_absent)` against the target module; if a rule fails
  // it, runs `finish(target)` so the target ends the operation the way a
  // failing call would have (see FinishOperation).
  template <typename Call, typename Finish>
  CK_RV Forward(Fn fn, absl::optional<CK_SESSION_HANDLE> session,
                const Call& call, const Finish& finish) {
    uint64_t generation = 0;
    const absl::optional<CK_RV> injected = Inject(fn, generation);
    const Admission admission = Admit(fn, generation, session, injected);
    if (admission.target == nullptr) return admission.rv;
    CK_RV rv;
    if (injected.has_value()) {
      finish(*admission.target);
      rv = *injected;
    } else {
      rv = call(*admission.target, admission.token_absent);
    }
    Leave();
    return rv;
  }

  template <typename Call>
  CK_RV Forward(Fn fn, absl::optional<CK_SESSION_HANDLE> session,
                const Call& call) {
    return Forward(fn, session, call, [](CK_FUNCTION_LIST&) {});
  }

 private:
  // Lets a call into the target: refused when the module is not initialised
  // (or was re-initialised since the call began) or the session was
  // invalidated. A call failed by `injected` is admitted only so that it can
  // finish its operation; its return value stays `injected`.
  Admission Admit(Fn fn, uint64_t generation,
                  absl::optional<CK_SESSION_HANDLE> session,
                  absl::optional<CK_RV> injected);
  void Leave();
  // The fault part of Forward: counts the call and applies hang, delay_ms,
  // rv and token_absent; returns the CK_RV to fail with. `generation` receives
  // the initialisation generation the call belongs to; a hang gives up when it
  // changes.
  absl::optional<CK_RV> Inject(Fn fn, uint64_t& generation);
  Action TakeActionLocked(Fn fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HangPendingLocked(Fn fn) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountFault(Fn fn);

  void ReloadControlIfChanged();
  void LoadControlLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void StartFlusherIfNeeded(CK_VOID_PTR init_args);
  void StopFlusher();
  void FlusherLoop();
  void FlushTickLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(flush_mu_);
  void WriteStatsLocked(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(flush_mu_);

  // Serialises C_Initialize and C_Finalize.
  std::mutex lifecycle_mu_;

  std::mutex mu_;
  std::condition_variable idle_cv_;  // active_calls_ reached 0.

  // Read from the environment at each C_Initialize.
  std::string control_path_ ABSL_GUARDED_BY(mu_);
  std::string stats_path_ ABSL_GUARDED_BY(mu_);

  // The control file as last parsed; nullopt forces a reload.
  absl::optional<FileVersion> control_version_ ABSL_GUARDED_BY(mu_);
  ControlRules control_ ABSL_GUARDED_BY(mu_);

  // The target module, loaded from C_Initialize to C_Finalize.
  bool initialized_ ABSL_GUARDED_BY(mu_) = false;
  void* target_dl_ ABSL_GUARDED_BY(mu_) = nullptr;
  CK_FUNCTION_LIST* target_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Bumped by every C_Initialize and C_Finalize; calls that started in an
  // older generation are refused.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int active_calls_ ABSL_GUARDED_BY(mu_) = 0;

  // Session handle -> slot, for sessions opened through this module.
  absl::flat_hash_map<CK_SESSION_HANDLE, CK_SLOT_ID> open_sessions_
      ABSL_GUARDED_BY(mu_);
  // Sessions hit by invalidate_sessions; still open in the target until the
  // application closes them.
  absl::flat_hash_map<CK_SESSION_HANDLE, CK_SLOT_ID> invalidated_sessions_
      ABSL_GUARDED_BY(mu_);

  std::array<FunctionStats, kFnCount> counters_ ABSL_GUARDED_BY(mu_);
  uint64_t control_loads_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bad_lines_ ABSL_GUARDED_BY(mu_) = 0;
  std::string sync_token_ ABSL_GUARDED_BY(mu_);
  bool stats_dirty_ ABSL_GUARDED_BY(mu_) = false;
  // Held for each stats write, so an older snapshot never lands last, and
  // across fork(), so a child never inherits a half-done write whose heap
  // objects would live on the stack of a thread it does not have.
  std::mutex flush_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  // A pointer, not a std::thread: in a forked child the thread does not
  // exist, and neither joining nor destroying a joinable std::thread is
  // safe there, so the child just forgets it.
  std::thread* flusher_ ABSL_GUARDED_BY(lifecycle_mu_) = nullptr;
  pid_t flusher_pid_ ABSL_GUARDED_BY(lifecycle_mu_) = 0;
  bool stop_flusher_ ABSL_GUARDED_BY(mu_) = false;
  bool stats_error_reported_ ABSL_GUARDED_BY(flush_mu_) = false;
  std::condition_variable flusher_cv_;
};

Module& g_module = *new Module;

// Destroys the module at exit or dlclose, but only in the process that
// loaded it: a forked child's copy of the flusher's condition variable still
// counts the parent's waiting thread, and destroying it would block forever.
// The child's copy stays reachable, so leak checkers do not mind.
const pid_t g_loader_pid = getpid();
struct ModuleReaper {
  ~ModuleReaper() {
    if (getpid() == g_loader_pid) delete &g_module;
  }
} g_module_reaper;

const int g_atfork_registered =
    pthread_atfork([] { g_module.BeforeFork(); }, [] { g_module.AfterFork(); },
                   [] { g_module.AfterFork(); });

// ---- fault decisions -------------------------------------------------------

Action Module::TakeActionLocked(Fn fn) {
  for (Rule& rule : control_.rules) {
    if (!rule.Matches(fn) || rule.count == 0) continue;
    if (rule.count > 0) --rule.count;
    return {rule.rv, rule.delay, rule.hang};
  }
  return {};
}

bool Module::HangPendingLocked(Fn fn) const {
  for (const Rule& rule : control_.rules) {
    if (rule.hang && rule.Matches(fn)) return true;
  }
  return false;
}

void Module::CountFault(Fn fn) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_[static_cast<int>(fn)].faults;
  stats_dirty_ = true;
}

void Module::CountCall(Fn fn) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_[static_cast<int>(fn)].calls;
  stats_dirty_ = true;
}

absl::optional<CK_RV> Module::Inject(Fn fn, uint64_t& generation) {
  ReloadControlIfChanged();
  std::unique_lock<std::mutex> lock(mu_);
  FunctionStats& counters = counters_[static_cast<int>(fn)];
  ++counters.calls;
  stats_dirty_ = true;
  generation = generation_;
  Action action = TakeActionLocked(fn);
  if (action.hang) ++counters.hung;
  while (action.hang) {
    // Poll rather than wait on a condition: the release comes from another
    // process rewriting the file.
    while (HangPendingLocked(fn)) {
      lock.unlock();
      absl::SleepFor(kHangPoll);
      ReloadControlIfChanged();
      lock.lock();
      // C_Finalize (or a re-initialisation) ends a hung call, as a real
      // module's C_Finalize ends calls blocked in it.
      if (generation_ != generation && fn != Fn::C_Initialize &&
          fn != Fn::C_Finalize) {
        ++counters.faults;
        return CKR_CRYPTOKI_NOT_INITIALIZED;
      }
    }
    action = TakeActionLocked(fn);  // Released: decide afresh.
  }
  if (action.delay > absl::ZeroDuration()) {
    ++counters.delayed;
    lock.unlock();
    absl::SleepFor(action.delay);
    ReloadControlIfChanged();
    lock.lock();
  }
  if (!action.rv.has_value() && control_.token_absent && NeedsToken(fn)) {
    action.rv = CKR_TOKEN_NOT_PRESENT;
  }
  if (action.rv.has_value()) ++counters.faults;
  return action.rv;
}

Admission Module::Admit(Fn fn, uint64_t generation,
                        absl::optional<CK_SESSION_HANDLE> session,
                        absl::optional<CK_RV> injected) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!initialized_ || generation_ != generation) {
    return {nullptr, injected.value_or(CKR_CRYPTOKI_NOT_INITIALIZED), false};
  }
  if (session.has_value() && invalidated_sessions_.contains(*session)) {
    if (!injected.has_value()) ++counters_[static_cast<int>(fn)].faults;
    return {nullptr, injected.value_or(CKR_SESSION_HANDLE_INVALID), false};
  }
  ++active_calls_;
  return {target_, CKR_OK, control_.token_absent};
}

void Module::Leave() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--active_calls_ == 0) idle_cv_.notify_all();
}

// ---- control file ----------------------------------------------------------

void Module::ReloadControlIfChanged() {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (control_path_.empty()) return;
    path = control_path_;
  }
  // stat outside the lock keeps the common (unchanged) case cheap.
  const FileVersion version = FileVersion::OfPath(path);
  std::lock_guard<std::mutex> lock(mu_);
  if (control_version_.has_value() && *control_version_ == version &&
      path == control_path_) {
    return;
  }
  LoadControlLocked();
}

void Module::LoadControlLocked() {
  // Reading under the lock keeps versions in order: two threads noticing the
  // same change parse it once, and an older version never replaces a newer.
  FileVersion version;
  std::string text;
  const int fd = open(control_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) {
    // Unreadable: pass through, and report once per version of the file.
    const int error = errno;
    version = FileVersion::OfPath(control_path_);
    if (control_version_.has_value() && *control_version_ == version) return;
    fprintf(stderr, "faulty_pkcs11: cannot open %s: %s (no rules applied)\n",
            control_path_.c_str(), strerror(error));
  } else if (fd >= 0) {
    absl::Cleanup close_fd = [fd] { close(fd); };
    struct stat st;
    if (fstat(fd, &st) != 0) return;  // Retried on the next call.
    version = FileVersion::Of(st);
    if (control_version_.has_value() && *control_version_ == version) return;
    absl::StatusOr<std::string> read = ReadAllFromFd(fd);
    if (read.ok()) {
      text = *std::move(read);
    } else {
      fprintf(stderr, "faulty_pkcs11: cannot read %s: %s (no rules applied)\n",
              control_path_.c_str(),
              std::string(read.status().message()).c_str());
    }
  }
  control_version_ = version;
  control_ = ParseControlRules(text);
  ++control_loads_;
  stats_dirty_ = true;
  for (const std::string& error : control_.errors) {
    ++bad_lines_;
    fprintf(stderr, "faulty_pkcs11: %s %s (line ignored)\n",
            control_path_.c_str(), error.c_str());
  }
  if (control_.invalidate_sessions) {
    // One-shot per file version: later sessions are not affected.
    invalidated_sessions_.insert(open_sessions_.begin(), open_sessions_.end());
    open_sessions_.clear();
  }
}

// ---- life cycle ------------------------------------------------------------

CK_RV Module::Initialize(CK_VOID_PTR init_args) {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  const std::string target_path =
      GetEnv("FAULTY_PKCS11_TARGET", kDefaultTarget);
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::string control_path = GetEnv("FAULTY_PKCS11_CONTROL", "");
    if (control_path != control_path_) {
      control_path_ = std::move(control_path);
      control_version_.reset();
    }
    stats_path_ = GetEnv("FAULTY_PKCS11_STATS", "");
  }
  StartFlusherIfNeeded(init_args);
  uint64_t generation = 0;
  if (absl::optional<CK_RV> rv = Inject(Fn::C_Initialize, generation)) {
    return *rv;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (initialized_) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
  }
  void* dl = dlopen(target_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (dl == nullptr) {
    fprintf(stderr, "faulty_pkcs11: cannot load the target module %s: %s\n",
            target_path.c_str(), dlerror());
    return CKR_GENERAL_ERROR;
  }
  absl::Cleanup unload = [dl] { dlclose(dl); };
  auto get_function_list =
      reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl, "C_GetFunctionList"));
  if (get_function_list == nullptr) {
    fprintf(stderr, "faulty_pkcs11: %s has no C_GetFunctionList\n",
            target_path.c_str());
    return CKR_GENERAL_ERROR;
  }
  CK_FUNCTION_LIST* target = nullptr;
  CK_RV rv = get_function_list(&target);
  if (rv != CKR_OK || target == nullptr) {
    fprintf(stderr, "faulty_pkcs11: C_GetFunctionList of %s failed: 0x%lx\n",
            target_path.c_str(), rv);
    return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
  }
  rv = target->C_Initialize(init_args);
  if (rv != CKR_OK) return rv;
  std::move(unload).Cancel();
  std::lock_guard<std::mutex> lock(mu_);
  target_dl_ = dl;
  target_ = target;
  initialized_ = true;
  ++generation_;
  return CKR_OK;
}

CK_RV Module::Finalize(CK_VOID_PTR reserved) {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  uint64_t generation = 0;
  if (absl::optional<CK_RV> rv = Inject(Fn::C_Finalize, generation)) {
    return *rv;
  }
  void* dl = nullptr;
  CK_FUNCTION_LIST* target = nullptr;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!initialized_) return CKR_CRYPTOKI_NOT_INITIALIZED;
    // From here new calls are refused and hung calls give up; calls already
    // inside the target finish before it is finalised and unloaded.
    initialized_ = false;
    ++generation_;
    idle_cv_.wait(lock, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return active_calls_ == 0;
    });
    dl = target_dl_;
    target = target_;
    target_dl_ = nullptr;
    target_ = nullptr;
    open_sessions_.clear();
    invalidated_sessions_.clear();
  }
  const CK_RV rv = target->C_Finalize(reserved);
  dlclose(dl);
  {
    std::lock_guard<std::mutex> flushing(flush_mu_);
    WriteStatsLocked(/*force=*/true);
  }
  return rv;
}

// ---- functions with their own bookkeeping ----------------------------------

CK_RV Module::GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR slots,
                          CK_ULONG_PTR count) {
  return Forward(Fn::C_GetSlotList, absl::nullopt,
                 [&](CK_FUNCTION_LIST& target, bool token_absent) {
                   if (token_absent && token_present) {
                     if (count == nullptr) return CKR_ARGUMENTS_BAD;
                     CountFault(Fn::C_GetSlotList);
                     *count = 0;
                     return CKR_OK;
                   }
                   return target.C_GetSlotList(token_present, slots, count);
                 });
}

CK_RV Module::GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  return Forward(Fn::C_GetSlotInfo, absl::nullopt,
                 [&](CK_FUNCTION_LIST& target, bool token_absent) {
                   const CK_RV rv = target.C_GetSlotInfo(slot, info);
                   if (rv == CKR_OK && token_absent) {
                     CountFault(Fn::C_GetSlotInfo);
                     info->flags &= ~CKF_TOKEN_PRESENT;
                   }
                   return rv;
                 });
}

CK_RV Module::OpenSession(CK_SLOT_ID slot, CK_FLAGS flags,
                          CK_VOID_PTR application, CK_NOTIFY notify,
                          CK_SESSION_HANDLE_PTR session) {
  return Forward(
      Fn::C_OpenSession, absl::nullopt, [&](CK_FUNCTION_LIST& target, bool) {
        const CK_RV rv =
            target.C_OpenSession(slot, flags, application, notify, session);
        if (rv == CKR_OK) {
          std::lock_guard<std::mutex> lock(mu_);
          open_sessions_[*session] = slot;
        }
        return rv;
      });
}

CK_RV Module::CloseSession(CK_SESSION_HANDLE session) {
  bool was_invalidated = false;
  const CK_RV rv = Forward(
      Fn::C_CloseSession, absl::nullopt, [&](CK_FUNCTION_LIST& target, bool) {
        {
          // Forget the handle first: once closed, the target may reuse it.
          std::lock_guard<std::mutex> lock(mu_);
          was_invalidated = invalidated_sessions_.erase(session) > 0;
          open_sessions_.erase(session);
        }
        // An invalidated session is still open in the target: close it there
        // so it does not leak, but report what a real module would.
        return target.C_CloseSession(session);
      });
  if (was_invalidated) {
    CountFault(Fn::C_CloseSession);
    return CKR_SESSION_HANDLE_INVALID;
  }
  return rv;
}

CK_RV Module::CloseAllSessions(CK_SLOT_ID slot) {
  return Forward(Fn::C_CloseAllSessions, absl::nullopt,
                 [&](CK_FUNCTION_LIST& target, bool) {
                   {
                     std::lock_guard<std::mutex> lock(mu_);
                     absl::erase_if(open_sessions_, [slot](const auto& entry) {
                       return entry.second == slot;
                     });
                     absl::erase_if(invalidated_sessions_,
                                    [slot](const auto& entry) {
                                      return entry.second == slot;
                                    });
                   }
                   return target.C_CloseAllSessions(slot);
                 });
}

// ---- stats
// -------------------------------------------------------------------

void Module::StartFlusherIfNeeded(CK_VOID_PTR init_args) {
  const auto* args = static_cast<const CK_C_INITIALIZE_ARGS*>(init_args);
  if (args != nullptr && (args->flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS)) {
    return;  // Stats are then written at C_Finalize only.
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stats_path_.empty()) return;
    stop_flusher_ = false;
  }
  if (flusher_ != nullptr && flusher_pid_ == getpid()) return;
  flusher_ = new std::thread([this] { FlusherLoop(); });
  flusher_pid_ = getpid();
}

void Module::StopFlusher() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (flusher_ == nullptr || flusher_pid_ != getpid()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_flusher_ = true;
  }
  flusher_cv_.notify_all();
  flusher_->join();
  delete flusher_;
  flusher_ = nullptr;
}

void Module::FlusherLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      flusher_cv_.wait_for(lock, absl::ToChronoMilliseconds(kStatsInterval),
                           [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                             return stop_flusher_;
                           });
      if (stop_flusher_) return;
    }
    std::lock_guard<std::mutex> flushing(flush_mu_);
    FlushTickLocked();
  }
}

void Module::FlushTickLocked() {
  std::string sync_path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stats_path_.empty()) return;
    sync_path = stats_path_ + ".sync";
  }
  // A test asks for fresh stats by writing a token here; echoing it back
  // proves the stats were taken after the request.
  absl::StatusOr<std::string> token = ReadWholeFile(sync_path);
  if (token.ok()) {
    const std::string stripped(absl::StripAsciiWhitespace(*token));
    std::lock_guard<std::mutex> lock(mu_);
    if (!stripped.empty() && stripped != sync_token_) {
      sync_token_ = stripped;
      stats_dirty_ = true;
    }
  }
  WriteStatsLocked(/*force=*/false);
}

void Module::WriteStatsLocked(bool force) {
  std::string path;
  Stats stats;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stats_path_.empty() || !(force || stats_dirty_)) return;
    stats_dirty_ = false;
    path = stats_path_;
    stats.sync_token = sync_token_;
    stats.control_loads = control_loads_;
    stats.bad_lines = bad_lines_;
    for (int i = 0; i < kFnCount; ++i) {
      if (counters_[i].calls > 0) {
        stats.functions[std::string(FnName(static_cast<Fn>(i)))] = counters_[i];
      }
    }
  }
  absl::Status written = WriteFileAtomically(path, FormatStats(stats));
  if (!written.ok() && !stats_error_reported_) {
    // Once: the flusher retries every tick.
    stats_error_reported_ = true;
    fprintf(stderr, "faulty_pkcs11: cannot write stats: %s\n",
            std::string(written.message()).c_str());
  }
}

// ---- the function list
// -------------------------------------------------------

// A call that fails ends its operation (PKCS#11 v2.40 §5.12 ff.: any error
// other than CKR_BUFFER_TOO_SMALL terminates it). An injected failure never
// reached the target, so its operation is still active there and the next
// C_*Init would get CKR_OPERATION_ACTIVE; FinishOperation<fn> ends it by
// completing it in the target with scratch output. The application's output
// buffers are left untouched.
template <typename F, typename... Leading>
void RunWithScratch(F function, Leading... leading) {
  CK_ULONG length = 0;
  if (function(leading..., nullptr, &length) != CKR_OK) return;
  std::vector<CK_BYTE> scratch(length > 0 ? length : 1);
  function(leading..., scratch.data(), &length);
}

template <Fn kFn>
struct FinishOperation {  // Nothing to finish.
  template <typename... Args>
  static void Run(CK_FUNCTION_LIST&, Args...) {}
};

// Single-part calls (session, input, input_len, output, output_len): repeat
// with the same input.
#define FAULTY_PKCS11_FINISH_SINGLE(name)                                \
  template <>                                                            \
  struct FinishOperation<Fn::name> {                                     \
    static void Run(CK_FUNCTION_LIST& target, CK_SESSION_HANDLE session, \
                    CK_BYTE_PTR input, CK_ULONG input_len, CK_BYTE_PTR,  \
                    CK_ULONG_PTR) {                                      \
      RunWithScratch(target.name, session, input, input_len);            \
    }                                                                    \
  };
FAULTY_PKCS11_FINISH_SINGLE(C_Encrypt)
FAULTY_PKCS11_FINISH_SINGLE(C_Decrypt)
FAULTY_PKCS11_FINISH_SINGLE(C_Digest)
FAULTY_PKCS11_FINISH_SINGLE(C_Sign)
FAULTY_PKCS11_FINISH_SINGLE(C_SignRecover)
FAULTY_PKCS11_FINISH_SINGLE(C_VerifyRecover)
#undef FAULTY_PKCS11_FINISH_SINGLE

// Multi-part steps: run the operation's final step.
#define FAULTY_PKCS11_FINISH_WITH_FINAL(name, final)                     \
  template <>                                                            \
  struct FinishOperation<Fn::name> {                                     \
    template <typename... Rest>                                          \
    static void Run(CK_FUNCTION_LIST& target, CK_SESSION_HANDLE session, \
                    Rest...) {                                           \
      RunWithScratch(target.final, session);                             \
    }                                                                    \
  };
FAULTY_PKCS11_FINISH_WITH_FINAL(C_EncryptUpdate, C_EncryptFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_EncryptFinal, C_EncryptFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_DecryptUpdate, C_DecryptFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_DecryptFinal, C_DecryptFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_DigestUpdate, C_DigestFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_DigestKey, C_DigestFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_DigestFinal, C_DigestFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_SignUpdate, C_SignFinal)
FAULTY_PKCS11_FINISH_WITH_FINAL(C_SignFinal, C_SignFinal)
#undef FAULTY_PKCS11_FINISH_WITH_FINAL

template <>
struct FinishOperation<Fn::C_Verify> {
  static void Run(CK_FUNCTION_LIST& target, CK_SESSION_HANDLE session,
                  CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,
                  CK_ULONG signature_len) {
    target.C_Verify(session, data, data_len, signature, signature_len);
  }
};

template <>
struct FinishOperation<Fn::C_VerifyFinal> {
  static void Run(CK_FUNCTION_LIST& target, CK_SESSION_HANDLE session,
                  CK_BYTE_PTR signature, CK_ULONG signature_len) {
    target.C_VerifyFinal(session, signature, signature_len);
  }
};

template <>
struct FinishOperation<Fn::C_VerifyUpdate> {
  static void Run(CK_FUNCTION_LIST& target, CK_SESSION_HANDLE session,
                  CK_BYTE_PTR, CK_ULONG) {
    // A signature of the wrong length fails and so ends the operation.
    CK_BYTE dummy = 0;
    target.C_VerifyFinal(session, &dummy, 1);
  }
};

template <>
struct FinishOperation<Fn::C_FindObjectsFinal> {
  static void Run(CK_FUNCTION_LIST& target, CK_SESSION_HANDLE session) {
    target.C_FindObjectsFinal(session);
  }
};

// Forwarder<&CK_FUNCTION_LIST::C_Sign, Fn::C_Sign, true>::Call has C_Sign's
// signature and forwards through Module::Forward; the argument types come
// from the member's type, so one template serves every generic function.
template <auto kMember, Fn kFn, bool kHasSession>
struct Forwarder;

template <typename... Args, CK_RV (*CK_FUNCTION_LIST::*kMember)(Args...),
          Fn kFn, bool kHasSession>
struct Forwarder<kMember, kFn, kHasSession> {
  static CK_RV Call(Args... args) {
    absl::optional<CK_SESSION_HANDLE> session;
    if constexpr (kHasSession) session = std::get<0>(std::tie(args...));
    return g_module.Forward(
        kFn, session,
        [&](CK_FUNCTION_LIST& target, bool) {
          return (target.*kMember)(args...);
        },
        [&](CK_FUNCTION_LIST& target) {
          FinishOperation<kFn>::Run(target, args...);
        });
  }
};

CK_RV GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

CK_RV Custom_C_Initialize(CK_VOID_PTR args) {
  return g_module.Initialize(args);
}
CK_RV Custom_C_Finalize(CK_VOID_PTR reserved) {
  return g_module.Finalize(reserved);
}
CK_RV Custom_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  return GetFunctionList(list);
}
CK_RV Custom_C_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR slots,
                           CK_ULONG_PTR count) {
  return g_module.GetSlotList(token_present, slots, count);
}
CK_RV Custom_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  return g_module.GetSlotInfo(slot, info);
}
CK_RV Custom_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags,
                           CK_VOID_PTR application, CK_NOTIFY notify,
                           CK_SESSION_HANDLE_PTR session) {
  return g_module.OpenSession(slot, flags, application, notify, session);
}
CK_RV Custom_C_CloseSession(CK_SESSION_HANDLE session) {
  return g_module.CloseSession(session);
}
CK_RV Custom_C_CloseAllSessions(CK_SLOT_ID slot) {
  return g_module.CloseAllSessions(slot);
}

CK_FUNCTION_LIST BuildFunctionList() {
  CK_FUNCTION_LIST list = {};
  list.version.major = CRYPTOKI_VERSION_MAJOR;
  list.version.minor = CRYPTOKI_VERSION_MINOR;
#define FAULTY_PKCS11_SET_PLAIN(name) \
  list.name = &Forwarder<&CK_FUNCTION_LIST::name, Fn::name, false>::Call;
#define FAULTY_PKCS11_SET_SESSION(name) \
  list.name = &Forwarder<&CK_FUNCTION_LIST::name, Fn::name, true>::Call;
#define FAULTY_PKCS11_SET_CUSTOM(name) list.name = &Custom_##name;
#define FAULTY_PKCS11_SET(name, kind) FAULTY_PKCS11_SET_##kind(name)
  FAULTY_PKCS11_FUNCTIONS(FAULTY_PKCS11_SET)
#undef FAULTY_PKCS11_SET
#undef FAULTY_PKCS11_SET_CUSTOM
#undef FAULTY_PKCS11_SET_SESSION
#undef FAULTY_PKCS11_SET_PLAIN
  return list;
}

CK_RV GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  static CK_FUNCTION_LIST function_list = BuildFunctionList();
  g_module.CountCall(Fn::C_GetFunctionList);
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  *list = &function_list;
  return CKR_OK;
}

}  // namespace
}  // namespace hsmd::faulty_pkcs11

// The only exported symbol (faulty_pkcs11.lds).
extern "C" CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  return hsmd::faulty_pkcs11::GetFunctionList(list);
}
