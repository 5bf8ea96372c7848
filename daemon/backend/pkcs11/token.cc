#include "daemon/backend/pkcs11/token.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/secret.h"
#include "common/status_macros.h"
#include "daemon/backend/pkcs11/ck_rv.h"

namespace hsmd::backend::pkcs11 {

std::string DescribeTokenSelector(const std::string& label,
                                  const std::string& serial,
                                  std::optional<CK_SLOT_ID> slot_id) {
  std::vector<std::string> parts;
  if (!label.empty()) parts.push_back(absl::StrCat("label \"", label, "\""));
  if (!serial.empty()) parts.push_back(absl::StrCat("serial \"", serial, "\""));
  if (slot_id.has_value()) parts.push_back(absl::StrCat("slot ", *slot_id));
  if (parts.empty()) return "any initialised token";
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<CK_SLOT_ID> FindTokenSlot(const Module& module,
                                         const std::string& label,
                                         const std::string& serial,
                                         std::optional<CK_SLOT_ID> slot_id) {
  CK_FUNCTION_LIST* fns = module.fns();
  CK_ULONG count = 0;
  CK_RV rv = fns->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) {
    return Pkcs11Error(rv, "C_GetSlotList",
                       absl::StrCat("module ", module.path()));
  }
  std::vector<CK_SLOT_ID> slots(count);
  if (count > 0) {
    rv = fns->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv != CKR_OK) {
      return Pkcs11Error(rv, "C_GetSlotList",
                         absl::StrCat("module ", module.path()));
    }
    slots.resize(count);
  }
  std::vector<std::string> available;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (fns->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    const std::string token_label = TrimPadded(info.label, sizeof(info.label));
    const std::string token_serial =
        TrimPadded(info.serialNumber, sizeof(info.serialNumber));
    available.push_back(absl::StrCat("\"", token_label, "\" (slot ", slot,
                                     ", serial ", token_serial, ")"));
    if (!label.empty() && token_label != label) continue;
    if (!serial.empty() && token_serial != serial) continue;
    if (slot_id.has_value() && *slot_id != slot) continue;
    return slot;
  }
  return absl::NotFoundError(absl::StrCat(
      "no token matches ", DescribeTokenSelector(label, serial, slot_id),
      " in module ", module.path(), "; tokens present: ",
      available.empty() ? "none" : absl::StrJoin(available, ", ")));
}

absl::StatusOr<std::unique_ptr<Token>> Token::Open(
    const Pkcs11BackendOptions& options) {
  std::unique_ptr<Token> token(new Token);
  ASSIGN_OR_RETURN(token->module_,
                   Module::Load(options.module_path, options.no_finalize));
  std::optional<CK_SLOT_ID> wanted_slot;
  if (options.slot_id.has_value()) wanted_slot = *options.slot_id;
  ASSIGN_OR_RETURN(CK_SLOT_ID slot,
                   FindTokenSlot(*token->module_, options.token_label,
                                 options.token_serial, wanted_slot));
  CK_FUNCTION_LIST* fns = token->module_->fns();

  TokenIdentity identity;
  identity.backend_name = options.name;
  identity.module_info = token->module_->info();
  identity.slot_id = slot;
  CK_RV rv = fns->C_GetSlotInfo(slot, &identity.slot_info);
  if (rv != CKR_OK) {
    return Pkcs11Error(rv, "C_GetSlotInfo", absl::StrCat("slot ", slot));
  }
  rv = fns->C_GetTokenInfo(slot, &identity.token_info);
  if (rv != CKR_OK) {
    return Pkcs11Error(rv, "C_GetTokenInfo", absl::StrCat("slot ", slot));
  }
  identity.token_label =
      TrimPadded(identity.token_info.label, sizeof(identity.token_info.label));
  const std::string context =
      absl::StrCat("token \"", identity.token_label, "\" (slot ", slot, ")");
  const bool login_required =
      (identity.token_info.flags & CKF_LOGIN_REQUIRED) != 0;
  token->keys_ = std::make_unique<KeyStore>(fns, std::move(identity));

  absl::StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::New(fns, slot, options.session_pool_size);
  if (!pool.ok()) {
    return absl::Status(pool.status().code(),
                        absl::StrCat(context, ": ", pool.status().message()));
  }
  token->pool_ = *std::move(pool);

  if (login_required) {
    if (options.pin_source == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(context, " needs a login but no PIN source is set"));
    }
    absl::StatusOr<SecretString> pin = options.pin_source();
    if (!pin.ok()) {
      return absl::Status(pin.status().code(),
                          absl::StrCat("reading the PIN for ", context, ": ",
                                       pin.status().message()));
    }
    ASSIGN_OR_RETURN(SessionPool::Lease lease,
                     token->pool_->Acquire(absl::InfiniteFuture()));
    rv = fns->C_Login(
        lease.handle(), CKU_USER,
        reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin->data())),
        pin->size());
    pin->Clear();
    // Another user in this process (a second backend on the same token)
    // may have logged in already: the login state is shared.
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      return Pkcs11Error(rv, "C_Login", context);
    }
    absl::MutexLock lock(&token->mu_);
    token->logged_in_ = true;
  }
  token->module_->AddTokenUser(slot);
  absl::MutexLock lock(&token->mu_);
  token->counted_user_ = true;
  return token;
}

bool Token::logged_in() const {
  absl::MutexLock lock(&mu_);
  return logged_in_ && !closed_;
}

void Token::Close(absl::Duration grace) {
  bool log_out = false;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    if (counted_user_) {
      counted_user_ = false;
      log_out = module_->RemoveTokenUser(slot_id()) == 0 && logged_in_;
    }
    logged_in_ = false;
  }
  if (pool_ == nullptr) return;
  CK_FUNCTION_LIST* fns = module_->fns();
  pool_->Close(grace, [&](CK_SESSION_HANDLE session) {
    if (log_out) fns->C_Logout(session);
  });
}

Token::~Token() { Close(absl::Seconds(10)); }

}  // namespace hsmd::backend::pkcs11
