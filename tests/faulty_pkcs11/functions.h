// The PKCS#11 v2.40 functions the fault-injecting module knows by name.
#ifndef HSMD_TESTS_FAULTY_PKCS11_FUNCTIONS_H_
#define HSMD_TESTS_FAULTY_PKCS11_FUNCTIONS_H_

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace hsmd::faulty_pkcs11 {

// X(name, kind) for every CK_FUNCTION_LIST entry, in struct order. `kind`
// tells the module how to forward the function:
//   PLAIN:   no session argument; forwarded as is.
//   SESSION: the first argument is a session handle, checked against the set
//            of invalidated sessions before forwarding.
//   CUSTOM:  written by hand (life cycle, slot view, session bookkeeping).
#define FAULTY_PKCS11_FUNCTIONS(X)  \
  X(C_Initialize, CUSTOM)           \
  X(C_Finalize, CUSTOM)             \
  X(C_GetInfo, PLAIN)               \
  X(C_GetFunctionList, CUSTOM)      \
  X(C_GetSlotList, CUSTOM)          \
  X(C_GetSlotInfo, CUSTOM)          \
  X(C_GetTokenInfo, PLAIN)          \
  X(C_GetMechanismList, PLAIN)      \
  X(C_GetMechanismInfo, PLAIN)      \
  X(C_InitToken, PLAIN)             \
  X(C_InitPIN, SESSION)             \
  X(C_SetPIN, SESSION)              \
  X(C_OpenSession, CUSTOM)          \
  X(C_CloseSession, CUSTOM)         \
  X(C_CloseAllSessions, CUSTOM)     \
  X(C_GetSessionInfo, SESSION)      \
  X(C_GetOperationState, SESSION)   \
  X(C_SetOperationState, SESSION)   \
  X(C_Login, SESSION)               \
  X(C_Logout, SESSION)              \
  X(C_CreateObject, SESSION)        \
  X(C_CopyObject, SESSION)          \
  X(C_DestroyObject, SESSION)       \
  X(C_GetObjectSize, SESSION)       \
  X(C_GetAttributeValue, SESSION)   \
  X(C_SetAttributeValue, SESSION)   \
  X(C_FindObjectsInit, SESSION)     \
  X(C_FindObjects, SESSION)         \
  X(C_FindObjectsFinal, SESSION)    \
  X(C_EncryptInit, SESSION)         \
  X(C_Encrypt, SESSION)             \
  X(C_EncryptUpdate, SESSION)       \
  X(C_EncryptFinal, SESSION)        \
  X(C_DecryptInit, SESSION)         \
  X(C_Decrypt, SESSION)             \
  X(C_DecryptUpdate, SESSION)       \
  X(C_DecryptFinal, SESSION)        \
  X(C_DigestInit, SESSION)          \
  X(C_Digest, SESSION)              \
  X(C_DigestUpdate, SESSION)        \
  X(C_DigestKey, SESSION)           \
  X(C_DigestFinal, SESSION)         \
  X(C_SignInit, SESSION)            \
  X(C_Sign, SESSION)                \
  X(C_SignUpdate, SESSION)          \
  X(C_SignFinal, SESSION)           \
  X(C_SignRecoverInit, SESSION)     \
  X(C_SignRecover, SESSION)         \
  X(C_VerifyInit, SESSION)          \
  X(C_Verify, SESSION)              \
  X(C_VerifyUpdate, SESSION)        \
  X(C_VerifyFinal, SESSION)         \
  X(C_VerifyRecoverInit, SESSION)   \
  X(C_VerifyRecover, SESSION)       \
  X(C_DigestEncryptUpdate, SESSION) \
  X(C_DecryptDigestUpdate, SESSION) \
  X(C_SignEncryptUpdate, SESSION)   \
  X(C_DecryptVerifyUpdate, SESSION) \
  X(C_GenerateKey, SESSION)         \
  X(C_GenerateKeyPair, SESSION)     \
  X(C_WrapKey, SESSION)             \
  X(C_UnwrapKey, SESSION)           \
  X(C_DeriveKey, SESSION)           \
  X(C_SeedRandom, SESSION)          \
  X(C_GenerateRandom, SESSION)      \
  X(C_GetFunctionStatus, SESSION)   \
  X(C_CancelFunction, SESSION)      \
  X(C_WaitForSlotEvent, PLAIN)

enum class Fn : int {
#define FAULTY_PKCS11_ENUMERATOR(name, kind) name,
  FAULTY_PKCS11_FUNCTIONS(FAULTY_PKCS11_ENUMERATOR)
#undef FAULTY_PKCS11_ENUMERATOR
};

#define FAULTY_PKCS11_PLUS_ONE(name, kind) +1
inline constexpr int kFnCount =
    0 FAULTY_PKCS11_FUNCTIONS(FAULTY_PKCS11_PLUS_ONE);
#undef FAULTY_PKCS11_PLUS_ONE

// "C_Sign" for Fn::C_Sign.
absl::string_view FnName(Fn fn);

// The function called `name` (exact, case-sensitive), if any.
absl::optional<Fn> FnByName(absl::string_view name);

}  // namespace hsmd::faulty_pkcs11

#endif  // HSMD_TESTS_FAULTY_PKCS11_FUNCTIONS_H_
