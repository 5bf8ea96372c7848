// SM4 with a key held in the HSM, for whole files: PKCS#7 padding (hsmd does
// not pad) and the run of Encrypt / Decrypt calls that carries a file larger
// than one request.
#ifndef HSMD_TOOLS_HSMCTL_SM4_H_
#define HSMD_TOOLS_HSMCTL_SM4_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client_lib/client.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::hsmctl {

// Bytes of data per Encrypt / Decrypt request: far below hsmd's smallest
// permitted limits.max_message_bytes (1 MiB by default), large enough that
// the per-call cost does not matter.
inline constexpr size_t kSm4ChunkBytes = 64 * 1024;

// PKCS#7 (RFC 5652 6.3), as `openssl enc` pads: 1..16 bytes, each holding the
// number of bytes added, so the result is a non-empty multiple of 16.
std::string Pkcs7Pad(absl::string_view data);

// Removes PKCS#7 padding. INVALID_ARGUMENT "decryption failed: ..." when it
// is not valid: the usual sign of a wrong key, IV or mode.
absl::StatusOr<std::string> Pkcs7Unpad(absl::string_view data);

struct Sm4Result {
  std::string output;
  // key_id hsmd reported.
  std::string key_id;
};

// SM4-ECB or SM4-CBC of `data` (a non-empty multiple of 16 bytes) with the
// HSM key `key`, sent in pieces of at most `chunk_bytes` (a multiple of 16).
// CBC chains across pieces: each piece's IV is the last ciphertext block of
// the one before, so the result equals one call over all of `data`.
absl::StatusOr<Sm4Result> Sm4ThroughHsmd(client::Client& client,
                                         const v1::KeyRef& key,
                                         v1::CipherMode mode,
                                         absl::string_view iv,
                                         absl::string_view data, bool encrypt,
                                         size_t chunk_bytes = kSm4ChunkBytes);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_SM4_H_
