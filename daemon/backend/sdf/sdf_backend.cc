#include "daemon/backend/sdf/sdf_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/error_detail.h"
#include "common/status_macros.h"
#include "daemon/backend/backend_state.h"
#include "daemon/backend/call_on_worker.h"
#include "daemon/backend/sdf/device.h"
#include "daemon/backend/sdf/key_table.h"
#include "daemon/backend/sdf/library.h"
#include "daemon/backend/sdf/operations.h"
#include "daemon/backend/sdf/sdr.h"
#include "daemon/backend/sdf/session_pool.h"
#include "daemon/backend/sdf/uri.h"
#include "daemon/backend/session_loop.h"
#include "daemon/backend/worker_pool.h"
#include "daemon/logging.h"

namespace hsmd::backend {
namespace {

using sdf::Device;
using sdf::GetSdrCode;
using sdf::KeyEntry;
using sdf::SdfSession;
using sdf::SessionPool;

constexpr uint32_t kMaxRandomLength = 65536;
constexpr uint32_t kMaxPoolSize = 1024;
// How long Shutdown waits for in-flight calls to give back their sessions.
constexpr absl::Duration kShutdownGrace = absl::Seconds(10);
// Upper bound of the duration options (waits beyond it are mistakes, and
// std::chrono arithmetic overflows near infinity).
constexpr absl::Duration kMaxOptionDuration = absl::Hours(24);

sdf::KeyUsage ToUsage(SdfKeyUsage usage) {
  switch (usage) {
    case SdfKeyUsage::kSign:
      return sdf::KeyUsage::kSign;
    case SdfKeyUsage::kEnc:
      return sdf::KeyUsage::kEnc;
    case SdfKeyUsage::kSm4:
      return sdf::KeyUsage::kSm4;
  }
  return sdf::KeyUsage::kSign;
}

absl::Status WithKey(absl::Status status, const v1::KeyRef& ref) {
  sdf::SetErrorKey(status, sdf::DescribeRef(ref));
  return status;
}

bool FailedIn(const absl::Status& status, absl::string_view function) {
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  return detail.has_value() && detail->backend_function() == function;
}

// What a request does with one borrowed session. Runs at most twice per
// session (again after the access rights were obtained anew).
template <typename T>
using SessionFn = std::function<absl::StatusOr<T>(Device&, SdfSession&)>;

// A private-key index and where its password comes from.
struct PrivateIndex {
  uint32_t index;
  std::function<absl::StatusOr<SecretString>()> source;
};

BackendStateOptions StateOptions(const SdfBackendOptions& options) {
  BackendStateOptions out;
  out.name = options.name;
  out.log_kind = std::string(sdf::kBackendKind);
  out.error_subject = absl::StrCat("SDF backend \"", options.name, "\"");
  out.just_recovered = " has just reopened its device; retry";
  out.recovering_prefix = "reopening the device after ";
  out.attempt_failed_message = "device reopen attempt failed";
  out.degraded_hold = options.degraded_hold;
  out.backoff_initial = options.reinit_backoff_initial;
  out.backoff_max = options.reinit_backoff_max;
  return out;
}

// Everything the request threads, the workers and the recovery thread
// share; the state machine itself is BackendState (see backend_state.h).
// Workers hold it by shared_ptr, so a call still stuck in the device after
// Shutdown never touches freed state. Extra here: the key passwords (never
// retried after a rejection).
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(SdfBackendOptions options, std::shared_ptr<const sdf::Library> library)
      : options_(std::move(options)),
        library_(std::move(library)),
        calls_(options_.name, "SDF"),
        state_(
            StateOptions(options_),
            [this](std::shared_ptr<Device> old) {
              return ReopenOnce(std::move(old));
            },
            [this](const Device& device) {
              std::lock_guard<std::mutex> lock(facts_mu_);
              facts_ = device.facts();
            }) {
    config_.backend_name = options_.name;
    config_.device_name = options_.device_name;
    config_.pool_size = options_.session_pool_size;
    config_.sm2_sign_alg = options_.algorithm_ids.sm2_sign;
    config_.sm4_ecb_alg = options_.algorithm_ids.sm4_ecb;
    config_.max_chunk_bytes = options_.max_chunk_bytes;
    config_.self_test = options_.self_test;
    for (const SdfKeyConfig& key : options_.keys) {
      sdf::DeviceKeySpec spec;
      spec.index = key.index;
      spec.usage = ToUsage(key.usage);
      spec.label = key.label;
      spec.wrapped_key = key.wrapped_key;
      config_.keys.push_back(std::move(spec));
      if (key.usage == SdfKeyUsage::kSm4) continue;
      const bool seen = std::any_of(
          private_indexes_.begin(), private_indexes_.end(),
          [&](const PrivateIndex& p) { return p.index == key.index; });
      if (!seen) private_indexes_.push_back({key.index, key.password_source});
    }
  }

  const SdfBackendOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }
  bool has_private_keys() const { return !private_indexes_.empty(); }
  BackendState<Device>& state() { return state_; }
  const BackendState<Device>& state() const { return state_; }
  // Shares the Core's lifetime (workers may outlive the backend).
  std::shared_ptr<AbandonedCalls> calls() {
    return std::shared_ptr<AbandonedCalls>(shared_from_this(), &calls_);
  }

  // Opens the device with its sessions and access rights.
  absl::StatusOr<std::shared_ptr<Device>> OpenDevice() {
    std::weak_ptr<Core> weak = weak_from_this();
    const sdf::SdfFunctions* fns = &library_->fns();
    return Device::Open(library_, config_, [weak, fns](void* session) {
      std::shared_ptr<Core> core = weak.lock();
      if (core == nullptr) return absl::UnavailableError("shut down");
      return core->Grant(*fns, session);
    });
  }

  // Obtains the access right of every private-key index on `session`, the
  // passwords read from their sources and wiped after. Serialised, and
  // never again after a rejection (the backend is then FAILED).
  absl::Status Grant(const sdf::SdfFunctions& fns, void* session);
  bool password_rejected() {
    std::lock_guard<std::mutex> lock(grant_mu_);
    return password_rejected_;
  }
  // The start-up error after a rejection.
  absl::Status StartupFailure() const { return state_.failure(); }

  // One attempt of a request on one borrowed session: opens the session if
  // needed, runs `fn` (again once after re-obtaining the access rights on
  // SDR_PARDENY), reacts to the outcome (replace the session, reopen the
  // device, ...) and gives the session back. `retry` tells the caller to
  // try again on another session. `call` is set when the attempt runs on a
  // worker for a request that may abandon it.
  template <typename T>
  absl::StatusOr<T> RunAttempt(const std::shared_ptr<Device>& device,
                               SessionPool::Lease& lease, SessionFn<T>& fn,
                               bool& retry, const PendingCallBase* call);

  v1::BackendStatus GetStatus() const;
  SdfBackendCounters Counters() const;

 private:
  void FailForPassword(uint32_t index, const absl::Status& cause);
  void Observe(const std::shared_ptr<Device>& device, SessionPool::Lease& lease,
               const absl::Status& status, bool& retry);
  // The recovery: drops `old` and opens the device again.
  absl::StatusOr<std::shared_ptr<Device>> ReopenOnce(
      std::shared_ptr<Device> old);

  const SdfBackendOptions options_;
  const std::shared_ptr<const sdf::Library> library_;
  sdf::DeviceConfig config_;
  std::vector<PrivateIndex> private_indexes_;
  AbandonedCalls calls_;

  std::mutex grant_mu_;
  bool password_rejected_ ABSL_GUARDED_BY(grant_mu_) = false;

  std::atomic<uint64_t> regrants_{0};
  std::atomic<uint64_t> granted_{0};

  // Kept for GetStatus while no device is open.
  mutable std::mutex facts_mu_;
  sdf::DeviceFacts facts_ ABSL_GUARDED_BY(facts_mu_);

  // Last: its callbacks use the members above.
  BackendState<Device> state_;
};

absl::Status Core::Grant(const sdf::SdfFunctions& fns, void* session) {
  std::lock_guard<std::mutex> lock(grant_mu_);
  if (password_rejected_) return state_.NotServingError();
  for (const PrivateIndex& p : private_indexes_) {
    const std::string what = absl::StrCat(
        "key index ", p.index, " of SDF device \"", options_.device_name, "\"");
    absl::StatusOr<SecretString> password = p.source();
    if (!password.ok()) {
      return absl::Status(password.status().code(),
                          absl::StrCat("reading the password of ", what, ": ",
                                       password.status().message()));
    }
    if (password->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the password of ", what, " is empty"));
    }
    // SDF prototypes take a non-const pointer; the device only reads it.
    const int rc = fns.GetPrivateKeyAccessRight(
        session, p.index,
        reinterpret_cast<unsigned char*>(const_cast<char*>(password->data())),
        static_cast<unsigned int>(password->size()));
    password->Clear();
    if (rc != SDR_OK) {
      absl::Status status =
          sdf::SdfError(rc, "SDF_GetPrivateKeyAccessRight",
                        absl::StrCat("obtaining the access right of ", what));
      if (sdf::IsPasswordRejection(rc)) {
        password_rejected_ = true;
        FailForPassword(p.index, status);
        return StartupFailure();
      }
      return status;
    }
    granted_.fetch_add(1);
  }
  return absl::OkStatus();
}

void Core::FailForPassword(uint32_t index, const absl::Status& cause) {
  const std::string reason = absl::StrCat(
      "the password of key index ", index, " was rejected: ", cause.message(),
      "; hsmd will not try it again (the device could lock the key): fix "
      "the password and restart hsmd");
  absl::Status failure = absl::PermissionDeniedError(absl::StrCat(
      "SDF backend \"", name(), "\" (device \"", options_.device_name, "\", ",
      options_.library_path, "): ", reason));
  if (std::optional<v1::ErrorDetail> detail = GetErrorDetail(cause)) {
    SetErrorDetail(failure, *detail);
  }
  // At start-up NewSdfBackend reports the error itself.
  state_.Fail(std::move(failure), reason);
}

void Core::Observe(const std::shared_ptr<Device>& device,
                   SessionPool::Lease& lease, const absl::Status& status,
                   bool& retry) {
  if (status.ok()) return;
  std::optional<int> code = GetSdrCode(status);
  if (!code.has_value()) return;
  // A device that cannot open a session at all needs reopening too.
  if (sdf::IsDeviceFault(*code) ||
      (FailedIn(status, "SDF_OpenSession") && sdf::IsBrokenSession(*code))) {
    // Not replaced: the reopen drops the whole pool, and opening a session
    // on a failing device would only add calls into it.
    state_.RequestReinit(device, status);
    return;
  }
  if (sdf::IsBrokenSession(*code)) {
    lease.Invalidate();
    state_.NoteTrouble(status);
    retry = true;
  }
}

template <typename T>
absl::StatusOr<T> Core::RunAttempt(const std::shared_ptr<Device>& device,
                                   SessionPool::Lease& lease, SessionFn<T>& fn,
                                   bool& retry, const PendingCallBase* call) {
  retry = false;
  absl::StatusOr<T> result = [&]() -> absl::StatusOr<T> {
    RETURN_IF_ERROR(lease.EnsureOpen());
    absl::StatusOr<T> first = fn(*device, *lease.session());
    if (first.ok() || GetSdrCode(first.status()) != SDR_PARDENY) {
      return first;
    }
    // The session lost its access rights (the device reset its session
    // state): obtain them again, then retry once.
    absl::Status grant = Grant(device->fns(), lease.session()->handle);
    if (!grant.ok()) {
      if (password_rejected()) return state_.NotServingError();
      return grant;
    }
    regrants_.fetch_add(1);
    log::Info("SDF access rights restored",
              {{"backend", name()}, {"device", options_.device_name}});
    return fn(*device, *lease.session());
  }();
  Observe(device, lease, result.status(), retry);
  // A call that outlived its request and then failed leaves its session in
  // an unknown state.
  if (!result.ok() && call != nullptr && call->abandoned()) lease.Invalidate();
  lease.Release();
  return result;
}

absl::StatusOr<std::shared_ptr<Device>> Core::ReopenOnce(
    std::shared_ptr<Device> old) {
  if (old != nullptr) {
    // Requests still holding it finish on their own; its sessions are
    // dropped without calls into a device that failed.
    old->Close(options_.reinit_drain_timeout, /*release=*/false);
    old.reset();
  }
  return OpenDevice();
}

v1::BackendStatus Core::GetStatus() const {
  BackendState<Device>::Snapshot now = state_.snapshot();
  v1::BackendStatus status;
  status.set_name(options_.name);
  status.set_kind(std::string(sdf::kBackendKind));
  status.set_module_path(options_.library_path);
  status.set_state(now.state);
  status.set_state_reason(now.reason);
  status.set_reinitializations(now.reinitializations);
  {
    std::lock_guard<std::mutex> lock(facts_mu_);
    status.set_library_description(absl::StrCat(
        "GM/T 0018 SDF device \"", facts_.device_name, "\" version ",
        facts_.device_version, ", standard version ", facts_.standard_version));
    status.set_token_label(options_.device_name);
    status.set_token_serial(facts_.serial);
    status.set_token_manufacturer(facts_.issuer);
    status.set_token_model(facts_.device_name);
  }
  if (now.serving) {
    // The access rights are held on every open session.
    status.set_logged_in(has_private_keys());
    status.set_sessions_in_use(now.current->pool().in_use());
    status.set_sessions_total(now.current->pool().open());
  }
  return status;
}

SdfBackendCounters Core::Counters() const {
  SdfBackendCounters counters;
  counters.calls_abandoned = calls_.abandoned();
  counters.abandoned_calls_running = calls_.running();
  counters.regrants = regrants_.load();
  counters.access_rights_granted = granted_.load();
  BackendState<Device>::Snapshot now = state_.snapshot();
  counters.reinit_attempts = now.reinit_attempts;
  if (now.current != nullptr) {
    counters.sessions_replaced = now.current->pool().replaced();
    counters.waiting_for_session = now.current->pool().waiting();
  }
  return counters;
}

class SdfBackend final : public Backend {
 public:
  explicit SdfBackend(std::shared_ptr<Core> core)
      : core_(std::move(core)),
        kind_(sdf::kBackendKind),
        // One worker per session, plus as many for calls that outlive their
        // request (each also holds a session of an older pool).
        workers_(2 * static_cast<size_t>(core_->options().session_pool_size) +
                 2) {
    std::lock_guard<std::mutex> lock(shutdown_mu_);
    recovery_ = std::thread([core = core_] { core->state().RecoveryLoop(); });
  }
  ~SdfBackend() override { Shutdown(); }

  const std::string& name() const override { return core_->name(); }
  const std::string& kind() const override { return kind_; }

  absl::StatusOr<std::vector<v1::Key>> ListKeys(
      const v1::ListKeysRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GetKey(const v1::KeyRef& ref,
                                 const RequestContext& ctx) override;
  absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& request,
                                        const RequestContext& ctx) override;
  absl::StatusOr<v1::DecryptResponse> Decrypt(
      const v1::DecryptRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<v1::EncryptResponse> Encrypt(
      const v1::EncryptRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<std::string> GenerateRandom(
      uint32_t length, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GenerateKey(const v1::GenerateKeyRequest& request,
                                      const RequestContext& ctx) override;
  absl::StatusOr<uint32_t> DeleteKey(const v1::KeyRef& ref,
                                     const RequestContext& ctx) override;
  v1::BackendStatus GetStatus() const override { return core_->GetStatus(); }
  bool IsServing() const override { return core_->state().IsServing(); }
  void Shutdown() override;

  SdfBackendCounters Counters() const {
    SdfBackendCounters counters = core_->Counters();
    counters.worker_threads = static_cast<uint32_t>(workers_.threads());
    return counters;
  }

 private:
  bool OnWorker(const RequestContext& ctx) const {
    return core_->options().calls_on_workers &&
           ctx.deadline != absl::InfiniteFuture();
  }

  // The key `ref` names on the current device (no device call).
  absl::StatusOr<KeyEntry> ResolveKey(const v1::KeyRef& ref) const {
    ASSIGN_OR_RETURN(std::shared_ptr<Device> device, core_->state().Serving());
    ASSIGN_OR_RETURN(const KeyEntry* entry, device->keys().Resolve(ref));
    return *entry;
  }

  // SM4 encryption or decryption (Encrypt / Decrypt share it).
  absl::StatusOr<std::string> Sm4(const v1::KeyRef& ref,
                                  const v1::Sm4Cipher& cipher,
                                  const std::string& data, bool encrypt,
                                  const RequestContext& ctx,
                                  std::string& key_id);

  // Runs `fn` on a pooled session. A session that proves broken is
  // replaced and the request retried on another session.
  template <typename T>
  absl::StatusOr<T> WithSession(const RequestContext& ctx, SessionFn<T> fn);

  template <typename T>
  absl::StatusOr<T> RunOnWorker(const RequestContext& ctx,
                                std::shared_ptr<Device> device,
                                SessionPool::Lease lease,
                                std::shared_ptr<SessionFn<T>> fn, bool& retry);

  const std::shared_ptr<Core> core_;
  const std::string kind_;
  WorkerPool workers_;
  std::mutex shutdown_mu_;
  std::thread recovery_ ABSL_GUARDED_BY(shutdown_mu_);
};

template <typename T>
absl::StatusOr<T> SdfBackend::WithSession(const RequestContext& ctx,
                                          SessionFn<T> fn) {
  // After an invalidate-everything event each pooled session may fail once.
  const uint32_t max_attempts = core_->options().session_pool_size + 1;
  auto shared_fn = std::make_shared<SessionFn<T>>(std::move(fn));
  return RunWithPooledSession<T>(
      core_->state(), ctx.deadline, max_attempts, "device", "SDF session",
      [&](std::shared_ptr<Device> device, SessionPool::Lease lease,
          bool& retry) -> absl::StatusOr<T> {
        if (OnWorker(ctx)) {
          return RunOnWorker<T>(ctx, std::move(device), std::move(lease),
                                shared_fn, retry);
        }
        return core_->RunAttempt<T>(device, lease, *shared_fn, retry, nullptr);
      });
}

template <typename T>
absl::StatusOr<T> SdfBackend::RunOnWorker(const RequestContext& ctx,
                                          std::shared_ptr<Device> device,
                                          SessionPool::Lease lease,
                                          std::shared_ptr<SessionFn<T>> fn,
                                          bool& retry) {
  return backend::RunOnWorker<T>(
      workers_, core_->calls(), ctx.deadline,
      [core = core_, device = std::move(device), lease = std::move(lease),
       fn = std::move(fn)](const PendingCallBase* call,
                           bool& retry_later) mutable {
        return core->RunAttempt<T>(device, lease, *fn, retry_later, call);
      },
      retry);
}

absl::StatusOr<std::vector<v1::Key>> SdfBackend::ListKeys(
    const v1::ListKeysRequest& request, const RequestContext& ctx) {
  (void)ctx;  // Keys were read when the device was opened: no device call.
  if (!request.uri_filter().empty() && !sdf::IsSdfUri(request.uri_filter())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "uri_filter: SDF backend \"", name(),
        "\" takes sdf: URI filters (e.g. sdf:device=NAME;usage=sign)"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Device> device, core_->state().Serving());
  return device->keys().List(request.uri_filter(), request.label());
}

absl::StatusOr<v1::Key> SdfBackend::GetKey(const v1::KeyRef& ref,
                                           const RequestContext& ctx) {
  (void)ctx;
  absl::StatusOr<KeyEntry> entry = ResolveKey(ref);
  if (!entry.ok()) return WithKey(entry.status(), ref);
  return entry->key;
}

absl::StatusOr<v1::SignResponse> SdfBackend::Sign(
    const v1::SignRequest& request, const RequestContext& ctx) {
  // Checked and hashed before a session is taken; the key is looked up
  // again on the session's device (it may have been reopened since).
  absl::StatusOr<KeyEntry> planned_key = ResolveKey(request.key());
  if (!planned_key.ok()) return WithKey(planned_key.status(), request.key());
  absl::StatusOr<std::string> planned_e = sdf::PlanSign(*planned_key, request);
  if (!planned_e.ok()) return WithKey(planned_e.status(), request.key());
  auto kept = Keep(request, OnWorker(ctx));
  absl::StatusOr<v1::SignResponse> response = WithSession<v1::SignResponse>(
      ctx,
      [kept, e = *std::move(planned_e), key_id = planned_key->key.key_id()](
          Device& device,
          SdfSession& session) -> absl::StatusOr<v1::SignResponse> {
        ASSIGN_OR_RETURN(const KeyEntry* key,
                         device.keys().Resolve(kept->key()));
        std::string digest = e;
        if (key->key.key_id() != key_id) {
          // The device was reopened with other key material.
          ASSIGN_OR_RETURN(digest, sdf::PlanSign(*key, *kept));
        }
        ASSIGN_OR_RETURN(std::string signature,
                         sdf::InternalSign(device.fns(), session.handle,
                                           key->index, digest));
        v1::SignResponse out;
        out.set_signature(std::move(signature));
        out.set_key_id(key->key.key_id());
        return out;
      });
  if (!response.ok()) return WithKey(response.status(), request.key());
  return response;
}

absl::StatusOr<v1::DecryptResponse> SdfBackend::Decrypt(
    const v1::DecryptRequest& request, const RequestContext& ctx) {
  absl::StatusOr<KeyEntry> key = ResolveKey(request.key());
  if (!key.ok()) return WithKey(key.status(), request.key());
  if (absl::Status s = sdf::CheckDecrypt(*key, request); !s.ok()) {
    return WithKey(s, request.key());
  }
  if (request.algorithm().has_sm4()) {
    std::string key_id;
    absl::StatusOr<std::string> plaintext =
        Sm4(request.key(), request.algorithm().sm4(), request.ciphertext(),
            /*encrypt=*/false, ctx, key_id);
    if (!plaintext.ok()) return plaintext.status();
    v1::DecryptResponse out;
    out.set_plaintext(*std::move(plaintext));
    out.set_key_id(key_id);
    return out;
  }
  absl::StatusOr<softsdf::EccCipherBuffer> parsed =
      sdf::ParseSm2Ciphertext(request.ciphertext());
  if (!parsed.ok()) return WithKey(parsed.status(), request.key());
  auto cipher = std::make_shared<softsdf::EccCipherBuffer>(*std::move(parsed));
  auto ref = Keep(request.key(), OnWorker(ctx));
  const uint32_t alg_id = core_->options().algorithm_ids.sm2_encrypt;
  absl::StatusOr<v1::DecryptResponse> response =
      WithSession<v1::DecryptResponse>(
          ctx,
          [ref, cipher, alg_id](Device& device, SdfSession& session)
              -> absl::StatusOr<v1::DecryptResponse> {
            ASSIGN_OR_RETURN(const KeyEntry* key, device.keys().Resolve(*ref));
            if (key->usage != sdf::KeyUsage::kEnc) {
              return absl::FailedPreconditionError(absl::StrCat(
                  key->key.uri(), " is no longer an SM2 encryption key"));
            }
            ASSIGN_OR_RETURN(std::string plaintext,
                             sdf::InternalDecrypt(
                                 device.fns(), device.library(), session.handle,
                                 key->index, alg_id, *cipher));
            v1::DecryptResponse out;
            out.set_plaintext(std::move(plaintext));
            out.set_key_id(key->key.key_id());
            return out;
          });
  if (!response.ok()) return WithKey(response.status(), request.key());
  return response;
}

absl::StatusOr<v1::EncryptResponse> SdfBackend::Encrypt(
    const v1::EncryptRequest& request, const RequestContext& ctx) {
  if (!request.algorithm().has_sm4()) {
    return WithKey(absl::InvalidArgumentError(
                       "encryption algorithm is missing (sm4 for SDF keys)"),
                   request.key());
  }
  std::string key_id;
  absl::StatusOr<std::string> ciphertext =
      Sm4(request.key(), request.algorithm().sm4(), request.plaintext(),
          /*encrypt=*/true, ctx, key_id);
  if (!ciphertext.ok()) return ciphertext.status();
  v1::EncryptResponse out;
  out.set_ciphertext(*std::move(ciphertext));
  out.set_key_id(key_id);
  return out;
}

absl::StatusOr<std::string> SdfBackend::Sm4(
    const v1::KeyRef& ref, const v1::Sm4Cipher& cipher, const std::string& data,
    bool encrypt, const RequestContext& ctx, std::string& key_id) {
  absl::StatusOr<KeyEntry> key = ResolveKey(ref);
  if (!key.ok()) return WithKey(key.status(), ref);
  absl::StatusOr<sdf::Sm4Plan> plan = sdf::PlanSm4(*key, cipher, data, encrypt);
  if (!plan.ok()) return WithKey(plan.status(), ref);
  const SdfAlgorithmIds& ids = core_->options().algorithm_ids;
  const uint32_t alg_id = plan->cbc ? ids.sm4_cbc : ids.sm4_ecb;
  const bool copy = OnWorker(ctx);
  auto kept_ref = Keep(ref, copy);
  auto kept_data = Keep(data, copy);
  struct Result {
    std::string output;
    std::string key_id;
  };
  absl::StatusOr<Result> result = WithSession<Result>(
      ctx,
      [kept_ref, kept_data, plan = *std::move(plan), alg_id](
          Device& device, SdfSession& session) -> absl::StatusOr<Result> {
        ASSIGN_OR_RETURN(const KeyEntry* key, device.keys().Resolve(*kept_ref));
        if (key->usage != sdf::KeyUsage::kSm4) {
          return absl::FailedPreconditionError(
              absl::StrCat(key->key.uri(), " is no longer an SM4 key"));
        }
        const sdf::SdfFunctions& fns = device.fns();
        const char* missing = fns.Encrypt == nullptr   ? "SDF_Encrypt"
                              : fns.Decrypt == nullptr ? "SDF_Decrypt"
                                                       : nullptr;
        if (missing != nullptr) {
          return absl::UnimplementedError(absl::StrCat(
              device.library().Missing(missing), ": SM4 is not available"));
        }
        for (int attempt = 0;; ++attempt) {
          ASSIGN_OR_RETURN(void* handle, device.Sm4Handle(session, *key));
          absl::StatusOr<std::string> output =
              sdf::RunSm4(fns, session.handle, handle, alg_id, plan, *kept_data,
                          device.chunk());
          if (!output.ok() && attempt == 0 &&
              GetSdrCode(output.status()) == SDR_KEYNOTEXIST) {
            // The device forgot the session's key handle: make a new one.
            device.DropSm4Handle(session, key->index);
            continue;
          }
          if (!output.ok()) return output.status();
          return Result{*std::move(output), key->key.key_id()};
        }
      });
  if (!result.ok()) return WithKey(result.status(), ref);
  key_id = std::move(result->key_id);
  return std::move(result->output);
}

absl::StatusOr<std::string> SdfBackend::GenerateRandom(
    uint32_t length, const RequestContext& ctx) {
  if (length == 0 || length > kMaxRandomLength) {
    return absl::InvalidArgumentError(absl::StrCat("random length ", length,
                                                   " is out of range (1..",
                                                   kMaxRandomLength, ")"));
  }
  return WithSession<std::string>(
      ctx,
      [length](Device& device,
               SdfSession& session) -> absl::StatusOr<std::string> {
        return sdf::GenerateRandom(device.fns(), session.handle, length,
                                   device.chunk());
      });
}

absl::StatusOr<v1::Key> SdfBackend::GenerateKey(
    const v1::GenerateKeyRequest& request, const RequestContext& ctx) {
  (void)request;
  (void)ctx;
  return absl::UnimplementedError(absl::StrCat(
      "SDF backend \"", name(),
      "\" cannot generate keys: an SDF device's keys are provisioned with the "
      "vendor's tools; then add the key index to hsmd's configuration"));
}

absl::StatusOr<uint32_t> SdfBackend::DeleteKey(const v1::KeyRef& ref,
                                               const RequestContext& ctx) {
  (void)ctx;
  return WithKey(
      absl::UnimplementedError(absl::StrCat(
          "SDF backend \"", name(),
          "\" cannot delete keys: an SDF device's keys are managed with the "
          "vendor's tools; remove the key from hsmd's configuration instead")),
      ref);
}

void SdfBackend::Shutdown() {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  bool first = false;
  std::shared_ptr<Device> device = core_->state().BeginShutdown(first);
  if (!first) return;
  if (recovery_.joinable()) recovery_.join();
  // Access rights released, key handles destroyed, sessions and the device
  // closed; a request still holding the device keeps the object (not the
  // handles) alive until it finishes.
  const absl::Time grace_end = absl::Now() + kShutdownGrace;
  if (device != nullptr) device->Close(kShutdownGrace, /*release=*/true);
  device.reset();
  // A call stuck in the device past the grace keeps its worker (detached)
  // and the shared state alive until it returns.
  workers_.Shutdown(std::max(grace_end - absl::Now(), absl::ZeroDuration()));
}

absl::Status ValidateOptions(const SdfBackendOptions& options) {
  if (options.name.empty()) {
    return absl::InvalidArgumentError("SDF backend name is empty");
  }
  const std::string where = absl::StrCat("SDF backend \"", options.name, "\"");
  if (options.library_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": library path is empty"));
  }
  if (options.device_name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     ": device name is empty (it is the device= "
                     "value of the backend's sdf: URIs)"));
  }
  if (options.session_pool_size == 0 ||
      options.session_pool_size > kMaxPoolSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": session pool size ", options.session_pool_size,
                     " is out of range (1..", kMaxPoolSize, ")"));
  }
  if (options.max_chunk_bytes != 0 &&
      options.max_chunk_bytes < sdf::kSm4BlockSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": max_chunk_bytes ", options.max_chunk_bytes,
                     " is below one SM4 block (16)"));
  }
  for (const auto& [field, value] :
       {std::make_pair("reinit_backoff_initial",
                       options.reinit_backoff_initial),
        std::make_pair("reinit_backoff_max", options.reinit_backoff_max),
        std::make_pair("reinit_drain_timeout", options.reinit_drain_timeout),
        std::make_pair("degraded_hold", options.degraded_hold)}) {
    if (value < absl::ZeroDuration() || value > kMaxOptionDuration) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", field, " ", absl::FormatDuration(value),
                       " is out of range (0..",
                       absl::FormatDuration(kMaxOptionDuration), ")"));
    }
  }
  if (options.reinit_backoff_initial == absl::ZeroDuration() ||
      options.reinit_backoff_max < options.reinit_backoff_initial) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": reopen backoff must be positive and its maximum (",
        absl::FormatDuration(options.reinit_backoff_max),
        ") at least its start (",
        absl::FormatDuration(options.reinit_backoff_initial), ")"));
  }
  std::set<std::pair<uint32_t, sdf::KeyUsage>> seen;
  for (const SdfKeyConfig& key : options.keys) {
    const sdf::KeyUsage usage = ToUsage(key.usage);
    const std::string what = absl::StrCat(where, ": key index ", key.index,
                                          " usage ", sdf::UsageName(usage));
    if (!seen.insert({key.index, usage}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is configured twice"));
    }
    if (usage != sdf::KeyUsage::kSm4 && key.password_source == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what,
                       " has no password source (the device grants private-key "
                       "use only with the index's access password)"));
    }
    if (!key.wrapped_key.empty()) {
      if (usage != sdf::KeyUsage::kSm4) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": wrapped_key is for sm4 keys only"));
      }
      if (key.wrapped_key.size() != 16) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": wrapped_key is ", key.wrapped_key.size(),
                         " bytes; an SM4-ECB-wrapped SM4 key has 16"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewSdfBackend(
    SdfBackendOptions options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(std::shared_ptr<sdf::Library> library,
                   sdf::Library::Load(options.library_path));
  if (!library->missing_optional().empty()) {
    log::Info("SDF library lacks optional functions",
              {{"backend", options.name},
               {"library", options.library_path},
               {"missing", absl::StrJoin(library->missing_optional(), ",")}});
  }
  auto core = std::make_shared<Core>(std::move(options), std::move(library));
  absl::StatusOr<std::shared_ptr<Device>> device = core->OpenDevice();
  if (!device.ok()) {
    if (core->password_rejected()) return core->StartupFailure();
    return device.status();
  }
  core->state().Start(*std::move(device));
  return std::unique_ptr<Backend>(new SdfBackend(std::move(core)));
}

absl::StatusOr<SdfBackendCounters> GetSdfBackendCounters(
    const Backend& backend) {
  const auto* sdf_backend = dynamic_cast<const SdfBackend*>(&backend);
  if (sdf_backend == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend \"", backend.name(), "\" is not an SDF backend"));
  }
  return sdf_backend->Counters();
}

}  // namespace hsmd::backend
