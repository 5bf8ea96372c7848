// The SDF backend's operations: request validation against a key (no device
// needed) and the device calls on one session. Every device failure is
// returned as made by SdfError (sdr.h).
#ifndef HSMD_DAEMON_BACKEND_SDF_OPERATIONS_H_
#define HSMD_DAEMON_BACKEND_SDF_OPERATIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/backend/sdf/key_table.h"
#include "daemon/backend/sdf/library.h"
#include "hsmd/v1/hsmd.pb.h"
#include "tools/softsdf/sm2_codec.h"

namespace hsmd::backend::sdf {

inline constexpr size_t kSm4BlockSize = 16;

// The 32-byte digest e the device signs: the request's `digest` as is (it
// must be 32 bytes), or SM3(Z || message) with Z from the key's public key
// and the request's distinguishing ID (default "1234567812345678", at most
// 8191 bytes). INVALID_ARGUMENT for a non-sm2 algorithm or an SM4 key, bad
// lengths or a missing input; FAILED_PRECONDITION for an encryption key.
absl::StatusOr<std::string> PlanSign(const KeyEntry& key,
                                     const v1::SignRequest& request);

// SDF_InternalSign_ECC of `e` with the signing key at `index`; the DER
// SEQUENCE { r, s } OpenSSL produces.
absl::StatusOr<std::string> InternalSign(const SdfFunctions& fns, void* session,
                                         uint32_t index, absl::string_view e);

// Checks that `request` fits `key`: sm2 needs an SM2 encryption key, sm4 an
// SM4 key (the same codes as PlanSign).
absl::Status CheckDecrypt(const KeyEntry& key,
                          const v1::DecryptRequest& request);

// OpenSSL's SM2 ciphertext (DER C1 || C3 || C2) as the device's ECCCipher;
// INVALID_ARGUMENT naming what is wrong with it.
absl::StatusOr<softsdf::EccCipherBuffer> ParseSm2Ciphertext(
    absl::string_view ciphertext);

// SDF_InternalDecrypt_ECC with the encryption key at `index` and algorithm
// id `alg_id`; `decrypt` may be null (the library lacks it: UNIMPLEMENTED
// naming the function).
absl::StatusOr<std::string> InternalDecrypt(const SdfFunctions& fns,
                                            const Library& library,
                                            void* session, uint32_t index,
                                            uint32_t alg_id,
                                            softsdf::EccCipherBuffer& cipher);

struct Sm4Plan {
  bool encrypt = false;
  bool cbc = false;
  std::string iv;  // 16 bytes for CBC, empty for ECB
};

// Checks an SM4 request: `key` must be an SM4 key, `cipher.mode` ECB (no IV)
// or CBC (16-byte IV), `data` a non-empty multiple of 16 bytes.
// `algorithm_name` is the request's algorithm ("sm4", or e.g. "sm2" to
// report a mismatch).
absl::StatusOr<Sm4Plan> PlanSm4(const KeyEntry& key,
                                const v1::Sm4Cipher& cipher,
                                absl::string_view data, bool encrypt);

// SDF_Encrypt / SDF_Decrypt of `data` in pieces of at most `chunk` bytes (a
// multiple of 16). CBC chaining across pieces is done here from the
// ciphertext, so it does not depend on whether the vendor updates the IV
// buffer. `alg_id` is the device's identifier for the mode.
absl::StatusOr<std::string> RunSm4(const SdfFunctions& fns, void* session,
                                   void* key_handle, uint32_t alg_id,
                                   const Sm4Plan& plan, absl::string_view data,
                                   size_t chunk);

// `length` random bytes in calls of at most `chunk` bytes.
absl::StatusOr<std::string> GenerateRandom(const SdfFunctions& fns,
                                           void* session, uint32_t length,
                                           size_t chunk);

// "SM2", "SM4".
absl::string_view KeyTypeName(v1::KeyType type);

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_OPERATIONS_H_
