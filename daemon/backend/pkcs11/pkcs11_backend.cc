#include "daemon/backend/pkcs11/pkcs11_backend.h"

#include <openssl/rand.h>

#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/error_detail.h"
#include "common/status_macros.h"
#include "daemon/backend/pkcs11/ck_rv.h"
#include "daemon/backend/pkcs11/key_store.h"
#include "daemon/backend/pkcs11/keygen.h"
#include "daemon/backend/pkcs11/module.h"
#include "daemon/backend/pkcs11/objects.h"
#include "daemon/backend/pkcs11/session_pool.h"
#include "daemon/backend/pkcs11/signing.h"
#include "daemon/backend/pkcs11/spki.h"
#include "daemon/backend/pkcs11/token.h"
#include "daemon/backend/pkcs11/uri.h"

namespace hsmd::backend {
namespace {

using pkcs11::GetCkRv;
using pkcs11::KeyPtr;
using pkcs11::SessionPool;
using pkcs11::Token;

constexpr uint32_t kMaxRandomLength = 65536;
constexpr uint32_t kMaxPoolSize = 1024;
// How long Shutdown waits for in-flight calls to give back their sessions.
constexpr absl::Duration kShutdownGrace = absl::Seconds(10);
// DEGRADED turns back into READY after this long without new trouble.
constexpr absl::Duration kDegradedHold = absl::Seconds(60);

bool FailedIn(const absl::Status& status, absl::string_view function) {
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  return detail.has_value() && detail->backend_function() == function;
}

absl::Status WithKey(absl::Status status, const v1::KeyRef& ref) {
  pkcs11::SetErrorKey(status, pkcs11::DescribeRef(ref));
  return status;
}

class Pkcs11Backend final : public Backend {
 public:
  Pkcs11Backend(Pkcs11BackendOptions options, std::shared_ptr<Token> token)
      : options_(std::move(options)), kind_(pkcs11::kBackendKind) {
    absl::MutexLock lock(&mu_);
    token_ = std::move(token);
    state_ = v1::BACKEND_STATE_READY;
  }
  ~Pkcs11Backend() override { Shutdown(); }

  const std::string& name() const override { return options_.name; }
  const std::string& kind() const override { return kind_; }

  absl::StatusOr<std::vector<v1::Key>> ListKeys(
      const v1::ListKeysRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GetKey(const v1::KeyRef& ref,
                                 const RequestContext& ctx) override;
  absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& request,
                                        const RequestContext& ctx) override;
  absl::StatusOr<v1::DecryptResponse> Decrypt(
      const v1::DecryptRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<std::string> GenerateRandom(
      uint32_t length, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GenerateKey(const v1::GenerateKeyRequest& request,
                                      const RequestContext& ctx) override;
  absl::StatusOr<uint32_t> DeleteKey(const v1::KeyRef& ref,
                                     const RequestContext& ctx) override;
  v1::BackendStatus GetStatus() const override;
  bool IsServing() const override;
  void Shutdown() override;

  // For HoldSessionForTesting.
  absl::StatusOr<std::pair<std::shared_ptr<Token>, SessionPool::Lease>>
  HoldSession(absl::Time deadline);

 private:
  // The token, if requests may be served now and the deadline has not
  // passed.
  absl::StatusOr<std::shared_ptr<Token>> ServingToken(
      const RequestContext& ctx) const;

  // Runs `fn(token, lease)` on a pooled session. A session that proves
  // broken is replaced; idempotent operations are retried once on a fresh
  // session.
  template <typename T, typename Fn>
  absl::StatusOr<T> WithSession(const RequestContext& ctx, bool idempotent,
                                Fn fn);

  v1::BackendStatus StatusLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Records HSM trouble for GetStatus.
  void NoteTrouble(const absl::Status& status);

  const Pkcs11BackendOptions options_;
  const std::string kind_;

  mutable absl::Mutex mu_;
  std::shared_ptr<Token> token_ ABSL_GUARDED_BY(mu_);
  v1::BackendState state_ ABSL_GUARDED_BY(mu_) = v1::BACKEND_STATE_STARTING;
  std::string state_reason_ ABSL_GUARDED_BY(mu_);
  absl::Time last_trouble_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t reinitializations_ ABSL_GUARDED_BY(mu_) = 0;
  // Static facts kept for GetStatus after Shutdown.
  v1::BackendStatus last_known_ ABSL_GUARDED_BY(mu_);

  // Serialises GenerateKey / DeleteKey (label uniqueness checks).
  absl::Mutex admin_mu_;
};

absl::StatusOr<std::shared_ptr<Token>> Pkcs11Backend::ServingToken(
    const RequestContext& ctx) const {
  std::shared_ptr<Token> token;
  {
    absl::MutexLock lock(&mu_);
    if (token_ == nullptr || (state_ != v1::BACKEND_STATE_READY &&
                              state_ != v1::BACKEND_STATE_DEGRADED)) {
      return absl::UnavailableError(
          absl::StrCat("HSM backend \"", options_.name, "\" is not serving",
                       state_reason_.empty() ? "" : ": ", state_reason_));
    }
    token = token_;
  }
  if (absl::Now() >= ctx.deadline) {
    return absl::DeadlineExceededError(
        "the request's deadline passed before the HSM was called");
  }
  return token;
}

void Pkcs11Backend::NoteTrouble(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (state_ != v1::BACKEND_STATE_READY &&
      state_ != v1::BACKEND_STATE_DEGRADED) {
    return;
  }
  state_ = v1::BACKEND_STATE_DEGRADED;
  state_reason_ = std::string(status.message());
  last_trouble_ = absl::Now();
}

template <typename T, typename Fn>
absl::StatusOr<T> Pkcs11Backend::WithSession(const RequestContext& ctx,
                                             bool idempotent, Fn fn) {
  ASSIGN_OR_RETURN(std::shared_ptr<Token> token, ServingToken(ctx));
  for (int attempt = 0;; ++attempt) {
    if (absl::Now() >= ctx.deadline) {
      return absl::DeadlineExceededError(
          "the request's deadline passed before the HSM was called");
    }
    ASSIGN_OR_RETURN(SessionPool::Lease lease,
                     token->pool().Acquire(ctx.deadline));
    absl::StatusOr<T> result = fn(*token, lease);
    if (result.ok()) return result;
    std::optional<CK_RV> rv = GetCkRv(result.status());
    if (!rv.has_value()) return result;
    if (pkcs11::IsBrokenSession(*rv)) {
      lease.Invalidate();
      NoteTrouble(result.status());
      // A device fault needs a module re-initialisation, not a new session.
      if (idempotent && attempt == 0 && !pkcs11::IsDeviceFault(*rv)) continue;
    }
    return result;
  }
}

absl::StatusOr<std::vector<v1::Key>> Pkcs11Backend::ListKeys(
    const v1::ListKeysRequest& request, const RequestContext& ctx) {
  std::optional<pkcs11::Pkcs11Uri> filter;
  if (!request.uri_filter().empty()) {
    ASSIGN_OR_RETURN(filter, pkcs11::Pkcs11Uri::Parse(request.uri_filter()));
  }
  return WithSession<std::vector<v1::Key>>(
      ctx, true,
      [&](Token& token,
          SessionPool::Lease& lease) -> absl::StatusOr<std::vector<v1::Key>> {
        ASSIGN_OR_RETURN(
            std::vector<KeyPtr> keys,
            token.keys().ListKeys(lease.handle(),
                                  filter.has_value() ? &*filter : nullptr));
        std::vector<v1::Key> result;
        for (const KeyPtr& key : keys) {
          if (!request.label().empty() && key->key.label() != request.label()) {
            continue;
          }
          result.push_back(key->key);
        }
        return result;
      });
}

absl::StatusOr<v1::Key> Pkcs11Backend::GetKey(const v1::KeyRef& ref,
                                              const RequestContext& ctx) {
  absl::StatusOr<v1::Key> key = WithSession<v1::Key>(
      ctx, true,
      [&](Token& token, SessionPool::Lease& lease) -> absl::StatusOr<v1::Key> {
        // Always from the token: GetKey must show a re-created key.
        ASSIGN_OR_RETURN(KeyPtr resolved,
                         token.keys().Resolve(lease.handle(), ref, false));
        return resolved->key;
      });
  if (!key.ok()) return WithKey(key.status(), ref);
  return key;
}

absl::StatusOr<v1::SignResponse> Pkcs11Backend::Sign(
    const v1::SignRequest& request, const RequestContext& ctx) {
  absl::StatusOr<v1::SignResponse> response = WithSession<v1::SignResponse>(
      ctx, true,
      [&](Token& token,
          SessionPool::Lease& lease) -> absl::StatusOr<v1::SignResponse> {
        ASSIGN_OR_RETURN(KeyPtr key, token.keys().Resolve(lease.handle(),
                                                          request.key(), true));
        for (int stale_retry = 0;; ++stale_retry) {
          ASSIGN_OR_RETURN(
              pkcs11::SignPlan plan,
              pkcs11::PlanSign(key->key, request, token.module().quirks()));
          absl::StatusOr<std::string> signature =
              pkcs11::RunSign(token.fns(), lease.handle(), key->handle, plan);
          std::optional<CK_RV> rv = GetCkRv(signature.status());
          if (!signature.ok() && plan.software_fallback_possible &&
              rv.has_value() && pkcs11::IsParameterRejection(*rv) &&
              FailedIn(signature.status(), "C_SignInit")) {
            // The module does not take these PSS parameters: pad here.
            ASSIGN_OR_RETURN(plan, pkcs11::PlanSign(key->key, request,
                                                    token.module().quirks(),
                                                    /*software_pss=*/true));
            signature =
                pkcs11::RunSign(token.fns(), lease.handle(), key->handle, plan);
            rv = GetCkRv(signature.status());
          }
          if (!signature.ok() && rv.has_value() && pkcs11::IsStaleHandle(*rv) &&
              stale_retry == 0) {
            // The key object was deleted or re-created: find it again.
            token.keys().Forget(request.key());
            ASSIGN_OR_RETURN(key, token.keys().Resolve(lease.handle(),
                                                       request.key(), false));
            continue;
          }
          if (!signature.ok()) return signature.status();
          v1::SignResponse out;
          out.set_signature(*std::move(signature));
          out.set_key_id(key->key.key_id());
          return out;
        }
      });
  if (!response.ok()) return WithKey(response.status(), request.key());
  return response;
}

absl::StatusOr<v1::DecryptResponse> Pkcs11Backend::Decrypt(
    const v1::DecryptRequest& request, const RequestContext& ctx) {
  absl::StatusOr<v1::DecryptResponse> response =
      WithSession<v1::DecryptResponse>(
          ctx, true,
          [&](Token& token, SessionPool::Lease& lease)
              -> absl::StatusOr<v1::DecryptResponse> {
            ASSIGN_OR_RETURN(
                KeyPtr key,
                token.keys().Resolve(lease.handle(), request.key(), true));
            for (int stale_retry = 0;; ++stale_retry) {
              ASSIGN_OR_RETURN(pkcs11::DecryptPlan plan,
                               pkcs11::PlanDecrypt(key->key, request,
                                                   token.module().quirks()));
              absl::StatusOr<std::string> plaintext = pkcs11::RunDecrypt(
                  token.fns(), lease.handle(), key->handle, plan);
              std::optional<CK_RV> rv = GetCkRv(plaintext.status());
              if (!plaintext.ok() && plan.software_fallback_possible &&
                  rv.has_value() && pkcs11::IsParameterRejection(*rv) &&
                  FailedIn(plaintext.status(), "C_DecryptInit")) {
                ASSIGN_OR_RETURN(plan,
                                 pkcs11::PlanDecrypt(key->key, request,
                                                     token.module().quirks(),
                                                     /*software_oaep=*/true));
                plaintext = pkcs11::RunDecrypt(token.fns(), lease.handle(),
                                               key->handle, plan);
                rv = GetCkRv(plaintext.status());
              }
              if (!plaintext.ok() && rv.has_value() &&
                  pkcs11::IsStaleHandle(*rv) && stale_retry == 0) {
                token.keys().Forget(request.key());
                ASSIGN_OR_RETURN(
                    key,
                    token.keys().Resolve(lease.handle(), request.key(), false));
                continue;
              }
              if (!plaintext.ok()) return plaintext.status();
              v1::DecryptResponse out;
              out.set_plaintext(*std::move(plaintext));
              out.set_key_id(key->key.key_id());
              return out;
            }
          });
  if (!response.ok()) return WithKey(response.status(), request.key());
  return response;
}

absl::StatusOr<std::string> Pkcs11Backend::GenerateRandom(
    uint32_t length, const RequestContext& ctx) {
  if (length == 0 || length > kMaxRandomLength) {
    return absl::InvalidArgumentError(absl::StrCat("random length ", length,
                                                   " is out of range (1..",
                                                   kMaxRandomLength, ")"));
  }
  return WithSession<std::string>(
      ctx, true,
      [&](Token& token,
          SessionPool::Lease& lease) -> absl::StatusOr<std::string> {
        std::string data(length, '\0');
        CK_RV rv = token.fns()->C_GenerateRandom(
            lease.handle(), reinterpret_cast<CK_BYTE*>(data.data()), length);
        if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_GenerateRandom");
        return data;
      });
}

absl::StatusOr<v1::Key> Pkcs11Backend::GenerateKey(
    const v1::GenerateKeyRequest& request, const RequestContext& ctx) {
  RETURN_IF_ERROR(pkcs11::ValidateGenerateKeyRequest(request));
  if (!request.backend().empty() && request.backend() != options_.name) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend \"", request.backend(),
                     "\" is not this backend (\"", options_.name, "\")"));
  }
  absl::MutexLock admin(&admin_mu_);
  return WithSession<v1::Key>(
      ctx, false,
      [&](Token& token, SessionPool::Lease& lease) -> absl::StatusOr<v1::Key> {
        CK_FUNCTION_LIST* fns = token.fns();
        const CK_SESSION_HANDLE session = lease.handle();
        pkcs11::AttributeTemplate by_label;
        by_label.AddBytes(CKA_LABEL, request.label());
        ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> same_label,
                         pkcs11::FindObjects(fns, session, by_label,
                                             pkcs11::kMaxSearchResults));
        if (!same_label.empty()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "label \"", request.label(), "\" is already in use on token \"",
              token.identity().token_label, "\""));
        }
        if (!request.id().empty()) {
          pkcs11::AttributeTemplate by_id;
          by_id.AddBytes(CKA_ID, request.id());
          ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> same_id,
                           pkcs11::FindObjects(fns, session, by_id,
                                               pkcs11::kMaxSearchResults));
          if (!same_id.empty()) {
            return absl::AlreadyExistsError(
                absl::StrCat("id ", pkcs11::PercentEncode(request.id()),
                             " is already in use on token \"",
                             token.identity().token_label, "\""));
          }
        }
        // Without a requested id, generate under a random one, then switch
        // to one derived from the public key (unknown until now).
        std::string id = request.id();
        if (id.empty()) {
          id.resize(16);
          if (RAND_bytes(reinterpret_cast<unsigned char*>(id.data()), 16) !=
              1) {
            return absl::InternalError("RAND_bytes failed");
          }
        }
        ASSIGN_OR_RETURN(pkcs11::KeyPairHandles handles,
                         pkcs11::GenerateKeyPair(fns, session, request, id));
        auto destroy_pair = [&]() {
          fns->C_DestroyObject(session, handles.private_key);
          fns->C_DestroyObject(session, handles.public_key);
        };
        absl::StatusOr<KeyPtr> key =
            token.keys().ReadKey(session, handles.private_key);
        if (!key.ok()) {
          destroy_pair();
          return key.status();
        }
        if (request.id().empty()) {
          // First 8 bytes of the key id (itself a SHA-256 prefix of the
          // SPKI), unless another object holds it already.
          const std::string derived =
              absl::HexStringToBytes((*key)->key.key_id().substr(0, 16));
          pkcs11::AttributeTemplate by_id;
          by_id.AddBytes(CKA_ID, derived);
          absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> taken =
              pkcs11::FindObjects(fns, session, by_id,
                                  pkcs11::kMaxSearchResults);
          if (taken.ok() && taken->empty()) {
            pkcs11::AttributeTemplate set_id;
            set_id.AddBytes(CKA_ID, derived);
            CK_RV rv = fns->C_SetAttributeValue(session, handles.private_key,
                                                set_id.data(), set_id.size());
            if (rv == CKR_OK) {
              rv = fns->C_SetAttributeValue(session, handles.public_key,
                                            set_id.data(), set_id.size());
              if (rv != CKR_OK) {
                // Keep the pair consistent: back to the random id.
                pkcs11::AttributeTemplate old_id;
                old_id.AddBytes(CKA_ID, id);
                fns->C_SetAttributeValue(session, handles.private_key,
                                         old_id.data(), old_id.size());
              }
            }
          }
          key = token.keys().ReadKey(session, handles.private_key);
          if (!key.ok()) {
            destroy_pair();
            return key.status();
          }
        }
        // Cached URI resolutions may now be ambiguous.
        token.keys().ClearCache();
        return (*key)->key;
      });
}

absl::StatusOr<uint32_t> Pkcs11Backend::DeleteKey(const v1::KeyRef& ref,
                                                  const RequestContext& ctx) {
  absl::MutexLock admin(&admin_mu_);
  absl::StatusOr<uint32_t> deleted = WithSession<uint32_t>(
      ctx, false,
      [&](Token& token, SessionPool::Lease& lease) -> absl::StatusOr<uint32_t> {
        CK_FUNCTION_LIST* fns = token.fns();
        ASSIGN_OR_RETURN(KeyPtr key,
                         token.keys().Resolve(lease.handle(), ref, false));
        ASSIGN_OR_RETURN(
            std::vector<CK_OBJECT_HANDLE> objects,
            token.keys().FindCompanionObjects(lease.handle(), *key));
        objects.push_back(key->handle);
        uint32_t count = 0;
        absl::Status first_error;
        for (CK_OBJECT_HANDLE object : objects) {
          CK_RV rv = fns->C_DestroyObject(lease.handle(), object);
          if (rv == CKR_OK) {
            ++count;
          } else if (first_error.ok()) {
            first_error = pkcs11::Pkcs11Error(rv, "C_DestroyObject");
          }
        }
        token.keys().ClearCache();
        if (!first_error.ok()) return first_error;
        return count;
      });
  if (!deleted.ok()) return WithKey(deleted.status(), ref);
  return deleted;
}

v1::BackendStatus Pkcs11Backend::GetStatus() const {
  absl::MutexLock lock(&mu_);
  return StatusLocked();
}

v1::BackendStatus Pkcs11Backend::StatusLocked() const {
  v1::BackendStatus status = last_known_;
  status.set_name(options_.name);
  status.set_kind(kind_);
  status.set_module_path(options_.module_path);
  v1::BackendState state = state_;
  std::string reason = state_reason_;
  if (state == v1::BACKEND_STATE_DEGRADED &&
      absl::Now() - last_trouble_ > kDegradedHold) {
    state = v1::BACKEND_STATE_READY;
    reason.clear();
  }
  status.set_state(state);
  status.set_state_reason(reason);
  status.set_reinitializations(reinitializations_);
  if (token_ != nullptr) {
    const pkcs11::TokenIdentity& identity = token_->identity();
    status.set_library_description(token_->module().library_description());
    status.set_token_label(identity.token_label);
    status.set_token_serial(
        pkcs11::TrimPadded(identity.token_info.serialNumber,
                           sizeof(identity.token_info.serialNumber)));
    status.set_token_manufacturer(
        pkcs11::TrimPadded(identity.token_info.manufacturerID,
                           sizeof(identity.token_info.manufacturerID)));
    status.set_token_model(pkcs11::TrimPadded(
        identity.token_info.model, sizeof(identity.token_info.model)));
    status.set_slot_id(identity.slot_id);
    status.set_logged_in(token_->logged_in());
    status.set_sessions_in_use(token_->pool().in_use());
    status.set_sessions_total(token_->pool().open());
  } else {
    status.set_logged_in(false);
    status.set_sessions_in_use(0);
    status.set_sessions_total(0);
  }
  return status;
}

bool Pkcs11Backend::IsServing() const {
  absl::MutexLock lock(&mu_);
  return token_ != nullptr && (state_ == v1::BACKEND_STATE_READY ||
                               state_ == v1::BACKEND_STATE_DEGRADED);
}

void Pkcs11Backend::Shutdown() {
  std::shared_ptr<Token> token;
  {
    absl::MutexLock lock(&mu_);
    if (token_ == nullptr) return;
    // Keep the static facts for GetStatus.
    v1::BackendStatus snapshot = StatusLocked();
    snapshot.set_logged_in(false);
    snapshot.set_sessions_in_use(0);
    snapshot.set_sessions_total(0);
    last_known_ = std::move(snapshot);
    token = std::move(token_);
    state_ = v1::BACKEND_STATE_FAILED;
    state_reason_ = "shut down";
  }
  // C_Logout and the session closes happen here; C_Finalize when the last
  // reference to the module goes (requests still holding the token keep
  // it alive until they finish).
  token->Close(kShutdownGrace);
}

absl::StatusOr<std::pair<std::shared_ptr<Token>, SessionPool::Lease>>
Pkcs11Backend::HoldSession(absl::Time deadline) {
  RequestContext ctx;
  ctx.deadline = deadline;
  ASSIGN_OR_RETURN(std::shared_ptr<Token> token, ServingToken(ctx));
  ASSIGN_OR_RETURN(SessionPool::Lease lease, token->pool().Acquire(deadline));
  return std::make_pair(std::move(token), std::move(lease));
}

class HeldSession final : public HeldSessionForTesting {
 public:
  HeldSession(std::shared_ptr<Token> token, SessionPool::Lease lease)
      : token_(std::move(token)), lease_(std::move(lease)) {}
  ~HeldSession() override {
    // The lease must go back before the token can go.
    lease_ = SessionPool::Lease();
  }

 private:
  std::shared_ptr<Token> token_;
  SessionPool::Lease lease_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewPkcs11Backend(
    Pkcs11BackendOptions options) {
  if (options.module_path.empty()) {
    return absl::InvalidArgumentError("PKCS#11 module path is empty");
  }
  if (options.session_pool_size == 0 ||
      options.session_pool_size > kMaxPoolSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("session pool size ", options.session_pool_size,
                     " is out of range (1..", kMaxPoolSize, ")"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Token> token, Token::Open(options));
  return std::unique_ptr<Backend>(
      new Pkcs11Backend(std::move(options), std::move(token)));
}

absl::StatusOr<std::unique_ptr<HeldSessionForTesting>> HoldSessionForTesting(
    Backend& backend, absl::Time deadline) {
  auto* pkcs11_backend = dynamic_cast<Pkcs11Backend*>(&backend);
  if (pkcs11_backend == nullptr) {
    return absl::InvalidArgumentError("not a PKCS#11 backend");
  }
  ASSIGN_OR_RETURN(auto held, pkcs11_backend->HoldSession(deadline));
  return std::unique_ptr<HeldSessionForTesting>(
      new HeldSession(std::move(held.first), std::move(held.second)));
}

absl::StatusOr<uint64_t> InitializeToken(const std::string& module_path,
                                         const std::string& label,
                                         absl::string_view so_pin,
                                         absl::string_view user_pin) {
  if (label.empty() || label.size() > 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token label must be 1..32 bytes; \"", label, "\" is ", label.size()));
  }
  if (so_pin.empty() || user_pin.empty()) {
    return absl::InvalidArgumentError("the SO PIN and user PIN must be set");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<pkcs11::Module> module,
                   pkcs11::Module::Load(module_path));
  CK_FUNCTION_LIST* fns = module->fns();
  if (absl::StatusOr<CK_SLOT_ID> existing =
          pkcs11::FindTokenSlot(*module, label, "", std::nullopt);
      existing.ok()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "a token labelled \"", label, "\" already exists in slot ", *existing));
  }
  CK_ULONG count = 0;
  CK_RV rv = fns->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  if (count > 0) {
    rv = fns->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_GetSlotList");
    slots.resize(count);
  }
  std::optional<CK_SLOT_ID> free_slot;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (fns->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) {
      free_slot = slot;
      break;
    }
  }
  if (!free_slot.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "module ", module_path, " has no slot with an uninitialised token"));
  }
  unsigned char padded[32];
  pkcs11::PadTo(label, padded, sizeof(padded));
  const std::string context =
      absl::StrCat("initialising token \"", label, "\" in slot ", *free_slot);
  rv = fns->C_InitToken(
      *free_slot,
      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(so_pin.data())),
      so_pin.size(), padded);
  if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_InitToken", context);

  // SoftHSM moves an initialised token to a slot id derived from its
  // serial: find it again by label.
  ASSIGN_OR_RETURN(CK_SLOT_ID slot,
                   pkcs11::FindTokenSlot(*module, label, "", std::nullopt));
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  rv = fns->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                          nullptr, &session);
  if (rv != CKR_OK) return pkcs11::Pkcs11Error(rv, "C_OpenSession", context);
  absl::Status status;
  rv = fns->C_Login(
      session, CKU_SO,
      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(so_pin.data())),
      so_pin.size());
  if (rv != CKR_OK) {
    status = pkcs11::Pkcs11Error(rv, "C_Login (SO)", context);
  } else {
    rv = fns->C_InitPIN(
        session,
        reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(user_pin.data())),
        user_pin.size());
    if (rv != CKR_OK) status = pkcs11::Pkcs11Error(rv, "C_InitPIN", context);
    fns->C_Logout(session);
  }
  fns->C_CloseSession(session);
  if (!status.ok()) return status;
  return static_cast<uint64_t>(slot);
}

}  // namespace hsmd::backend
