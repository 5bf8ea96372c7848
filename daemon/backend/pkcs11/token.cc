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

bool IsPinRejection(CK_RV rv) {
  return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID ||
         rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_EXPIRED ||
         rv == CKR_PIN_LOCKED;
}

absl::StatusOr<std::unique_ptr<Token>> Token::Open(
    const std::string& backend_name, std::shared_ptr<Module> module,
    const TokenSelector& selector, uint32_t pool_size) {
  std::unique_ptr<Token> token(new Token);
  token->module_ = std::move(module);
  // Holds off a re-initialisation by another user of the module while the
  // slot and sessions are looked up, and ties them to this generation.
  const uint64_t generation = token->module_->generation();
  Module::Use use = token->module_->Enter(generation);
  if (!use.active()) {
    return absl::UnavailableError(
        absl::StrCat("PKCS#11 module ", token->module_->path(),
                     " is not initialised or is being re-initialised"));
  }
  ASSIGN_OR_RETURN(CK_SLOT_ID slot,
                   FindTokenSlot(*token->module_, selector.label,
                                 selector.serial, selector.slot_id));
  CK_FUNCTION_LIST* fns = token->module_->fns();

  TokenIdentity identity;
  identity.backend_name = backend_name;
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
  token->login_required_ =
      (identity.token_info.flags & CKF_LOGIN_REQUIRED) != 0;
  token->keys_ = std::make_unique<KeyStore>(fns, std::move(identity));

  absl::StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::New(token->module_, slot, pool_size);
  if (!pool.ok()) {
    return absl::Status(
        pool.status().code(),
        absl::StrCat(token->Describe(), ": ", pool.status().message()));
  }
  token->pool_ = *std::move(pool);
  if ((*token->pool_).generation() != generation) {
    return absl::UnavailableError(absl::StrCat(
        "PKCS#11 module ", token->module_->path(), " was re-initialised while ",
        token->Describe(), " was being opened"));
  }
  token->module_->AddTokenUser(token->UserKey());
  std::lock_guard<std::mutex> lock(token->mu_);
  token->counted_user_ = true;
  return token;
}

std::string Token::serial() const {
  const CK_TOKEN_INFO& info = identity().token_info;
  return TrimPadded(info.serialNumber, sizeof(info.serialNumber));
}

std::string Token::Describe() const {
  return absl::StrCat("token \"", identity().token_label, "\" (slot ",
                      slot_id(), ")");
}

TokenSelector Token::Selector() const {
  TokenSelector selector;
  selector.label = identity().token_label;
  selector.serial = serial();
  return selector;
}

std::string Token::UserKey() const {
  return absl::StrCat(identity().token_label, "\n", serial());
}

absl::Status Token::LogIn(CK_SESSION_HANDLE session,
                          const PinSource& pin_source) {
  if (pin_source == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(), " needs a login but no PIN source is set"));
  }
  absl::StatusOr<SecretString> pin = pin_source();
  if (!pin.ok()) {
    return absl::Status(pin.status().code(),
                        absl::StrCat("reading the PIN for ", Describe(), ": ",
                                     pin.status().message()));
  }
  const CK_RV rv = fns()->C_Login(
      session, CKU_USER,
      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin->data())),
      pin->size());
  pin->Clear();
  // Another user in this process (a second backend on the same token) may
  // have logged in already: the login state is shared.
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    return Pkcs11Error(rv, "C_Login", Describe());
  }
  std::lock_guard<std::mutex> lock(mu_);
  logged_in_ = true;
  return absl::OkStatus();
}

bool Token::logged_in() const {
  std::lock_guard<std::mutex> lock(mu_);
  return logged_in_ && !closed_;
}

void Token::Close(absl::Duration grace) {
  bool log_out = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    if (counted_user_) {
      counted_user_ = false;
      log_out = module_->RemoveTokenUser(UserKey()) == 0 && logged_in_;
    }
    logged_in_ = false;
  }
  if (pool_ == nullptr) return;
  CK_FUNCTION_LIST* fns = module_->fns();
  pool_->Close(grace, [&](CK_SESSION_HANDLE session) {
    if (log_out) fns->C_Logout(session);
  });
}

void Token::Abandon(bool close_sessions) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    if (counted_user_) {
      counted_user_ = false;
      module_->RemoveTokenUser(UserKey());
    }
    logged_in_ = false;
  }
  if (pool_ != nullptr) {
    pool_->Close(absl::ZeroDuration(), nullptr, close_sessions);
  }
}

Token::~Token() { Close(absl::Seconds(10)); }

}  // namespace hsmd::backend::pkcs11
