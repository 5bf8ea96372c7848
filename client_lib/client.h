// hsmd's C++ client: unary gRPC calls over a Unix socket, without the gRPC
// C++ runtime (see ../shared/notes/grpc-fork.md and README "Fork safety").
//
// - No threads, no global state: each call runs on the calling thread over a
//   blocking socket with poll() deadlines, HTTP/2 framed by nghttp2.
// - Thread-safe: concurrent calls use separate pooled connections.
// - Fork-aware: connections belong to the process that opened them. The
//   first call in a forked child notices the pid change, abandons everything
//   inherited (it closes the inherited fds but never speaks on them, never
//   takes an inherited lock) and connects anew. Nothing runs at fork time.
// - Reconnects on demand after the daemon closes a connection or restarts.
// - Errors: absl::Status with the gRPC status code (same numbering as
//   absl::StatusCode), the server's grpc-message, and the server's
//   hsmd.v1.ErrorDetail as payload (common/error_detail.h). Transport
//   failures are UNAVAILABLE with a message naming the socket, e.g.
//   "hsmd unavailable at /run/hsmd/hsmd.sock: connection refused".
#ifndef HSMD_CLIENT_LIB_CLIENT_H_
#define HSMD_CLIENT_LIB_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "google/protobuf/message_lite.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::client {

// Default socket path, also the provider's default.
inline constexpr absl::string_view kDefaultSocketPath = "/run/hsmd/hsmd.sock";

struct ClientOptions {
  // Path of hsmd's Unix socket.
  std::string socket_path = std::string(kDefaultSocketPath);
  // Per-call deadline when the call does not give one (sent as grpc-timeout
  // and enforced locally).
  absl::Duration default_timeout = absl::Seconds(30);
  // Bound on connecting (and on the HTTP/2 handshake).
  absl::Duration connect_timeout = absl::Seconds(5);
  // Largest response message accepted.
  size_t max_response_bytes = 4 * 1024 * 1024;
  // Idle connections kept per process.
  int max_idle_connections = 4;
  // Ask hsmd to serve this client's connections on its fast path (see
  // daemon/fast_path/). Off: hsmd's gRPC server serves them, as it serves
  // any other gRPC client; for comparisons and diagnosis.
  bool fast_path = true;
};

// Counters of this process's use of a Client (a forked child starts at zero).
struct ClientStats {
  // Connections opened to hsmd.
  uint64_t connections_opened = 0;
  // Calls retried once on a fresh connection (see README "Retries").
  uint64_t calls_retried = 0;
};

struct CallOptions {
  // Overrides ClientOptions::default_timeout when set.
  absl::optional<absl::Duration> timeout;
};

class Client {
 public:
  // Does not connect: the first call does.
  static absl::StatusOr<std::unique_ptr<Client>> New(ClientOptions options);

  virtual ~Client() = default;

  virtual const ClientOptions& options() const = 0;

  // Diagnostics; implementations without counters return zeros.
  virtual ClientStats stats() const { return {}; }

  // Generic unary call, e.g. method = "/hsmd.v1.KeyService/Sign".
  virtual absl::Status Call(absl::string_view method,
                            const google::protobuf::MessageLite& request,
                            google::protobuf::MessageLite* response,
                            const CallOptions& call_options = {}) = 0;

  // Typed wrappers over Call.
  absl::StatusOr<v1::ListKeysResponse> ListKeys(
      const v1::ListKeysRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::GetKeyResponse> GetKey(const v1::GetKeyRequest& request,
                                            const CallOptions& options = {});
  absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& request,
                                        const CallOptions& options = {});
  absl::StatusOr<v1::DecryptResponse> Decrypt(const v1::DecryptRequest& request,
                                              const CallOptions& options = {});
  absl::StatusOr<v1::EncryptResponse> Encrypt(const v1::EncryptRequest& request,
                                              const CallOptions& options = {});
  // ECDH with an HSM key; the response holds the raw shared secret (wipe it
  // after use).
  absl::StatusOr<v1::DeriveResponse> Derive(const v1::DeriveRequest& request,
                                            const CallOptions& options = {});
  absl::StatusOr<v1::GenerateRandomResponse> GenerateRandom(
      const v1::GenerateRandomRequest& request,
      const CallOptions& options = {});
  absl::StatusOr<v1::GenerateKeyResponse> GenerateKey(
      const v1::GenerateKeyRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::DeleteKeyResponse> DeleteKey(
      const v1::DeleteKeyRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::GetStatusResponse> GetStatus(
      const v1::GetStatusRequest& request, const CallOptions& options = {});
  absl::StatusOr<v1::GetStatsResponse> GetStats(
      const v1::GetStatsRequest& request, const CallOptions& options = {});
};

// ---------------------------------------------------------------------------
// 国密 (SM2 / SM3 / SM4) requests.
//
// Builders for the SM2 and SM4 forms of Sign, Decrypt and Encrypt. They check
// what can be checked without the key (lengths, IV rules, ID size) so that a
// mistake fails before any round trip, with the INVALID_ARGUMENT hsmd would
// return; hsmd checks everything again.

// The distinguishing ID GM/T 0009 prescribes when none is agreed; hsmd uses
// it for an empty Sm2Signature.distinguishing_id. (OpenSSL 3.0's own default
// is the empty ID: pass `-pkeyopt distid:1234567812345678` to its tools.)
inline constexpr absl::string_view kSm2DefaultId = "1234567812345678";
// ENTL, the ID's length in bits, is 16 bits wide: at most 8191 bytes.
inline constexpr size_t kSm2MaxIdBytes = 0xffff / 8;
// SM3 digest size, i.e. the size of SM2's e = SM3(Z || M).
inline constexpr size_t kSm3DigestBytes = 32;
// SM4 block, key and CBC IV size.
inline constexpr size_t kSm4BlockBytes = 16;

// Sign a precomputed e = SM3(Z || M) (exactly kSm3DigestBytes) with an SM2
// signing key. The signature comes back DER-encoded (SEQUENCE { r, s }).
absl::StatusOr<v1::SignRequest> Sm2SignDigestRequest(v1::KeyRef key,
                                                     std::string e);

// Sign `message`; hsmd computes Z from the key's public key and
// `distinguishing_id` (empty: kSm2DefaultId), then e. An ID longer than
// kSm2MaxIdBytes is INVALID_ARGUMENT.
absl::StatusOr<v1::SignRequest> Sm2SignMessageRequest(
    v1::KeyRef key, std::string message,
    absl::string_view distinguishing_id = {});

// Decrypt OpenSSL's SM2 ciphertext (DER SEQUENCE { x, y, hash, ciphertext })
// with an SM2 encryption key. An empty ciphertext is INVALID_ARGUMENT.
absl::StatusOr<v1::DecryptRequest> Sm2DecryptRequest(v1::KeyRef key,
                                                     std::string ciphertext);

// SM4 with a key held in the HSM. `mode` is CIPHER_MODE_ECB (`iv` must be
// empty) or CIPHER_MODE_CBC (`iv` is kSm4BlockBytes). No padding: `data` must
// be a non-empty multiple of kSm4BlockBytes.
absl::StatusOr<v1::EncryptRequest> Sm4EncryptRequest(v1::KeyRef key,
                                                     v1::CipherMode mode,
                                                     absl::string_view iv,
                                                     std::string plaintext);
absl::StatusOr<v1::DecryptRequest> Sm4DecryptRequest(v1::KeyRef key,
                                                     v1::CipherMode mode,
                                                     absl::string_view iv,
                                                     std::string ciphertext);

}  // namespace hsmd::client

#endif  // HSMD_CLIENT_LIB_CLIENT_H_
