// The scripted behaviour of test_server, shared with the tests that drive it.
//
// KeyService.Sign interprets the key URI:
//   kErrorKey          FAILED_PRECONDITION, message kErrorMessage, and an
//                      hsmd.v1.ErrorDetail (kErrorDetail*) in the details
//   "test:sleep:MS"    sleeps MS milliseconds (until cancelled), then signs
//   kDeadlineKey       key_id = the server's remaining deadline in ms, or
//                      "none" without one
//   "test:big:N"       signature = N bytes of PatternByte
//   anything else      signature = SHA-256(message or digest), key_id = URI,
//                      or, with an Sm2Signature, key_id = "sm2:digest" or
//                      "sm2:message:" + distinguishing_id
// KeyService.GenerateRandom: `length` bytes of PatternByte (no upper bound, so
//   tests can provoke large responses).
// KeyService.Decrypt: plaintext = ciphertext reversed; key_id = the request's
//   key_id, or DescribeCipher() of an SM2 / SM4 algorithm.
// KeyService.Encrypt: kErrorKey fails as for Sign (function "SDF_Encrypt");
//   otherwise ciphertext = plaintext reversed, key_id = DescribeCipher().
// KeyService.GetKey: NOT_FOUND for kMissingKey, else a key with that URI.
// KeyService.ListKeys: kListedKeys keys labelled "key-0", "key-1", ...,
//   filtered by label.
// AdminService.GenerateKey: a key echoing label, type and rsa_bits.
// AdminService.DeleteKey: objects_deleted = 3.
// AdminService.GetStatus: version kServerVersion, pid = the server's pid.
// AdminService.GetStats: one OperationStats "all" counting requests served.
#ifndef HSMD_CLIENT_LIB_TESTING_TEST_SERVER_SCRIPT_H_
#define HSMD_CLIENT_LIB_TESTING_TEST_SERVER_SCRIPT_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace hsmd::client::testing {

inline constexpr absl::string_view kErrorKey = "test:error";
// Needs percent-encoding on the wire: non-ASCII, '%' and a newline.
inline constexpr absl::string_view kErrorMessage =
    "ключ %/\n is not allowed to sign";
inline constexpr absl::string_view kErrorDetailCodeName =
    "CKR_KEY_FUNCTION_NOT_PERMITTED";
inline constexpr uint64_t kErrorDetailCode = 0x68;
inline constexpr absl::string_view kErrorDetailFunction = "C_Sign";
inline constexpr absl::string_view kSleepKeyPrefix = "test:sleep:";
inline constexpr absl::string_view kDeadlineKey = "test:deadline";
inline constexpr absl::string_view kBigKeyPrefix = "test:big:";
inline constexpr absl::string_view kMissingKey = "test:missing";
inline constexpr absl::string_view kServerVersion = "hsmd-test-server";
inline constexpr int kListedKeys = 3;
// Larger than gRPC's 4 MiB default so the client's own limit is what the
// tests exercise.
inline constexpr int kServerMaxMessageBytes = 8 * 1024 * 1024;

// How test_server reports the SM2 / SM4 parameters it received:
// "sm2", "sm4:ecb:" / "sm4:cbc:" + the IV in hex, "sm4:unspecified:" + ...
inline constexpr absl::string_view kSm2CipherName = "sm2";
inline constexpr absl::string_view kSm4EcbPrefix = "sm4:ecb:";
inline constexpr absl::string_view kSm4CbcPrefix = "sm4:cbc:";
inline constexpr absl::string_view kSm4OtherPrefix = "sm4:unspecified:";

inline char PatternByte(size_t i) {
  return static_cast<char>((i * 131 + 7) & 0xff);
}

}  // namespace hsmd::client::testing

#endif  // HSMD_CLIENT_LIB_TESTING_TEST_SERVER_SCRIPT_H_
