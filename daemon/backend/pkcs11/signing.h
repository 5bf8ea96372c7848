// Signature and decryption: request validation against the key, mechanism
// choice (with software padding where a module's mechanism falls short),
// and running the operation on a session.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_SIGNING_H_
#define HSMD_DAEMON_BACKEND_PKCS11_SIGNING_H_

#include <p11-kit/pkcs11.h>

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/backend/pkcs11/module.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::pkcs11 {

// The digests hsmd computes and the PKCS#11 names for them.
struct HashInfo {
  v1::HashAlgorithm hash;
  const char* name;  // "SHA256"
  size_t length;
  CK_MECHANISM_TYPE ck_hash;
  CK_RSA_PKCS_MGF_TYPE ck_mgf1;
  // DER DigestInfo prefix for RSASSA-PKCS1-v1_5.
  absl::string_view digest_info_prefix;
};

// SHA-1/224/256/384/512; nullptr for the others.
const HashInfo* FindHash(v1::HashAlgorithm hash);
// "SHA256", "MD5_SHA1", ... for messages.
std::string HashName(v1::HashAlgorithm hash);
// "RSA", "EC", "ED25519".
std::string KeyTypeName(v1::KeyType type);

// What to hand C_SignInit / C_Sign.
struct SignPlan {
  CK_MECHANISM_TYPE mechanism_type = 0;
  bool has_pss_params = false;
  CK_RSA_PKCS_PSS_PARAMS pss_params{};
  // The data given to C_Sign (digest, DigestInfo, EM or message).
  std::string data;
  size_t signature_length = 0;
  // CKM_ECDSA returns r || s; the API returns DER ECDSA-Sig-Value.
  bool der_encode_ecdsa = false;
  // A native PSS plan that may be redone in software (CKM_RSA_X_509) if the
  // module rejects its parameters.
  bool software_fallback_possible = false;

  // Points into this plan: keep the plan alive and unmoved while in use.
  CK_MECHANISM mechanism();
};

// Validates `request` against `key` and prepares the mechanism. Errors:
// INVALID_ARGUMENT naming the problem (missing or unfitting algorithm, hash,
// input, digest length, salt length, input size), FAILED_PRECONDITION when
// the key does not allow signing. `software_pss` forces RSA-PSS encoding in
// software (CKM_RSA_X_509).
absl::StatusOr<SignPlan> PlanSign(const v1::Key& key,
                                  const v1::SignRequest& request,
                                  const ModuleQuirks& quirks,
                                  bool software_pss = false);

// C_SignInit + C_Sign with `key_handle` on `session`; the result is in the
// API's form (DER for ECDSA). Errors carry the CK_RV (Pkcs11Error).
absl::StatusOr<std::string> RunSign(CK_FUNCTION_LIST* fns,
                                    CK_SESSION_HANDLE session,
                                    CK_OBJECT_HANDLE key_handle,
                                    SignPlan& plan);

struct DecryptPlan {
  CK_MECHANISM_TYPE mechanism_type = 0;
  bool has_oaep_params = false;
  CK_RSA_PKCS_OAEP_PARAMS oaep_params{};
  std::string label;
  std::string ciphertext;
  size_t modulus_bytes = 0;
  // OAEP decoded here after a raw CKM_RSA_X_509 decryption.
  bool software_oaep = false;
  const HashInfo* hash = nullptr;
  const HashInfo* mgf1_hash = nullptr;
  bool software_fallback_possible = false;

  CK_MECHANISM mechanism();
};

// Validates a decryption request (RSA keys only, CKA_DECRYPT, ciphertext of
// exactly the modulus size, OAEP hashes).
absl::StatusOr<DecryptPlan> PlanDecrypt(const v1::Key& key,
                                        const v1::DecryptRequest& request,
                                        const ModuleQuirks& quirks,
                                        bool software_oaep = false);

// C_DecryptInit + C_Decrypt. Any failure of the decryption itself (padding,
// length) is INVALID_ARGUMENT "decryption failed" with no detail, so the
// error cannot serve as a padding oracle.
absl::StatusOr<std::string> RunDecrypt(CK_FUNCTION_LIST* fns,
                                       CK_SESSION_HANDLE session,
                                       CK_OBJECT_HANDLE key_handle,
                                       DecryptPlan& plan);

// True if a C_*Init failure means "this module does not take these
// parameters" (the software fallback may help).
bool IsParameterRejection(CK_RV rv);

// DER ECDSA-Sig-Value from the raw r || s form.
absl::StatusOr<std::string> EcdsaRawToDer(absl::string_view raw);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_SIGNING_H_
