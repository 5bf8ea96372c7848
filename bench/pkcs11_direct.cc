#include "bench/pkcs11_direct.h"

#include <dlfcn.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hsmd::bench {
namespace {

const char* CkName(CK_RV rv) {
  switch (rv) {
    case CKR_OK:
      return "CKR_OK";
    case CKR_GENERAL_ERROR:
      return "CKR_GENERAL_ERROR";
    case CKR_ARGUMENTS_BAD:
      return "CKR_ARGUMENTS_BAD";
    case CKR_DEVICE_ERROR:
      return "CKR_DEVICE_ERROR";
    case CKR_KEY_HANDLE_INVALID:
      return "CKR_KEY_HANDLE_INVALID";
    case CKR_MECHANISM_INVALID:
      return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID:
      return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_PIN_INCORRECT:
      return "CKR_PIN_INCORRECT";
    case CKR_SESSION_HANDLE_INVALID:
      return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SLOT_ID_INVALID:
      return "CKR_SLOT_ID_INVALID";
    case CKR_TOKEN_NOT_PRESENT:
      return "CKR_TOKEN_NOT_PRESENT";
    case CKR_USER_NOT_LOGGED_IN:
      return "CKR_USER_NOT_LOGGED_IN";
    case CKR_USER_ALREADY_LOGGED_IN:
      return "CKR_USER_ALREADY_LOGGED_IN";
    case CKR_BUFFER_TOO_SMALL:
      return "CKR_BUFFER_TOO_SMALL";
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return "CKR_CRYPTOKI_NOT_INITIALIZED";
    case CKR_CRYPTOKI_ALREADY_INITIALIZED:
      return "CKR_CRYPTOKI_ALREADY_INITIALIZED";
    default:
      return "CKR_?";
  }
}

// CK_TOKEN_INFO labels are blank-padded to 32 bytes.
std::string PaddedField(const unsigned char* field, size_t size) {
  return std::string(absl::StripTrailingAsciiWhitespace(
      absl::string_view(reinterpret_cast<const char*>(field), size)));
}

}  // namespace

absl::Status CkError(absl::string_view function, CK_RV rv) {
  return absl::InternalError(
      absl::StrFormat("%s: %s (0x%lx)", function, CkName(rv), rv));
}

absl::StatusOr<std::unique_ptr<Pkcs11Library>> Pkcs11Library::Load(
    const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot load PKCS#11 module ", path, ": ", dlerror()));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(
      dlsym(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* fns = nullptr;
  if (get_list == nullptr || get_list(&fns) != CKR_OK || fns == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " has no usable C_GetFunctionList"));
  }
  return std::unique_ptr<Pkcs11Library>(new Pkcs11Library(fns));
}

absl::StatusOr<std::unique_ptr<Pkcs11Token>> Pkcs11Token::Open(
    CK_FUNCTION_LIST* fns, absl::string_view label, const SecretString& pin,
    int sessions) {
  std::unique_ptr<Pkcs11Token> token(new Pkcs11Token(fns));
  CK_C_INITIALIZE_ARGS args;
  std::memset(&args, 0, sizeof(args));
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = fns->C_Initialize(&args);
  if (rv != CKR_OK) return CkError("C_Initialize", rv);
  token->initialized_ = true;

  CK_ULONG count = 0;
  rv = fns->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return CkError("C_GetSlotList", rv);
  std::vector<CK_SLOT_ID> slots(count);
  rv = fns->C_GetSlotList(CK_TRUE, slots.data(), &count);
  if (rv != CKR_OK) return CkError("C_GetSlotList", rv);
  slots.resize(count);
  bool found = false;
  CK_SLOT_ID slot = 0;
  for (CK_SLOT_ID s : slots) {
    CK_TOKEN_INFO info;
    if (fns->C_GetTokenInfo(s, &info) != CKR_OK) continue;
    if (PaddedField(info.label, sizeof(info.label)) == label) {
      slot = s;
      found = true;
      break;
    }
  }
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("no PKCS#11 token labelled \"", label, "\" among ",
                     slots.size(), " slot(s) (is SOFTHSM2_CONF right?)"));
  }
  for (int i = 0; i < sessions; ++i) {
    CK_SESSION_HANDLE session = 0;
    rv = fns->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                            nullptr, &session);
    if (rv != CKR_OK) return CkError("C_OpenSession", rv);
    token->sessions_.push_back(session);
  }
  rv = fns->C_Login(
      token->sessions_.front(), CKU_USER,
      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data())),
      pin.size());
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    return CkError("C_Login", rv);
  }
  token->logged_in_ = true;
  return token;
}

Pkcs11Token::~Pkcs11Token() {
  if (abandoned_) return;
  if (logged_in_) fns_->C_Logout(sessions_.front());
  for (CK_SESSION_HANDLE s : sessions_) fns_->C_CloseSession(s);
  if (initialized_) fns_->C_Finalize(nullptr);
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Token::FindPrivateKey(
    absl::string_view label) {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  std::string label_copy(label);
  CK_ATTRIBUTE templ[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_LABEL, label_copy.data(), label_copy.size()},
  };
  const CK_SESSION_HANDLE session = sessions_.front();
  CK_RV rv = fns_->C_FindObjectsInit(session, templ, 2);
  if (rv != CKR_OK) return CkError("C_FindObjectsInit", rv);
  CK_OBJECT_HANDLE handles[2];
  CK_ULONG found = 0;
  rv = fns_->C_FindObjects(session, handles, 2, &found);
  fns_->C_FindObjectsFinal(session);
  if (rv != CKR_OK) return CkError("C_FindObjects", rv);
  if (found != 1) {
    return absl::NotFoundError(absl::StrCat(found, " private keys labelled \"",
                                            label, "\" on the token; want 1"));
  }
  return handles[0];
}

}  // namespace hsmd::bench
