// The SDF (GM/T 0018) implementation of hsmd's Backend: one vendor library,
// one device, the key indexes named in the configuration. See README.md.
//
// Keys: each configured key is an index and a usage. sign and enc are the
// device's SM2 signing / encryption key pairs at that index (Key.key_type
// SM2, public key exported from the device, key_id from its SPKI); sm4 is
// the device's SM4 key (KEY_TYPE_SM4, key_id from the canonical URI). They
// are named by `sdf:device=NAME;index=N;usage=sign|enc|sm4` (uri.h). The
// private keys are used under access rights obtained on every session with
// the key's password (SDF_GetPrivateKeyAccessRight).
//
// Operations: Sign (sm2: the device signs e; with message input hsmd computes
// Z and e = SM3(Z || M) itself), Decrypt (sm2 with an enc key; sm4), Encrypt
// (sm4), GenerateRandom. GenerateKey and DeleteKey fail with UNIMPLEMENTED:
// an SDF device's keys are provisioned with the vendor's tools.
//
// Failure behaviour (BackendStatus.state, IsServing, what requests get):
//   READY           serving.
//   DEGRADED        serving; sessions had to be replaced recently
//                   (SDR_OPENSESSION on a call). The session is closed and
//                   replaced and the request retried on another session
//                   (up to pool size + 1 tries), so callers see no error.
//                   READY again after degraded_hold without trouble.
//                   SDR_PARDENY (a session lost its access rights) makes the
//                   backend obtain them again on that session and retry once.
//   REINITIALIZING  not serving. Entered on SDR_COMMFAIL, SDR_HARDFAIL or
//                   SDR_OPENDEVICE from any call, or when no session can be
//                   opened. A background thread drops the device (waiting up
//                   to reinit_drain_timeout for calls still inside it, then
//                   SDF_CloseDevice without further calls), opens it again,
//                   with its sessions, access rights and keys, with
//                   exponential backoff between attempts. Requests fail at
//                   once with UNAVAILABLE "SDF backend "NAME" is
//                   re-initialising after SDR_HARDFAIL in
//                   SDF_InternalSign_ECC (attempt N)" carrying that code as
//                   ErrorDetail. READY when an attempt succeeds;
//                   BackendStatus.reinitializations counts those.
//   FAILED          not serving, for good: the device refused a key's
//                   password (SDR_PRKRERR or SDR_PARDENY from
//                   SDF_GetPrivateKeyAccessRight) while reopening. The
//                   password is never tried again (a device may lock the
//                   key after a few failures); requests get UNAVAILABLE
//                   "SDF backend "NAME" failed: the password of key index N
//                   was rejected: ..." with the code as ErrorDetail. Also the
//                   state after Shutdown ("shut down").
// At start-up a rejected password makes NewSdfBackend fail with
// PERMISSION_DENIED (after exactly one SDF_GetPrivateKeyAccessRight call).
//
// Deadlines: as the PKCS#11 backend. Waiting for a session ends at the
// request's deadline with RESOURCE_EXHAUSTED (first come, first served);
// with calls_on_workers, a request with a finite deadline makes its SDF
// calls on a worker thread and returns DEADLINE_EXCEEDED at its deadline if
// they hang (the session stays out of the pool until the call returns).
#ifndef HSMD_DAEMON_BACKEND_SDF_SDF_BACKEND_H_
#define HSMD_DAEMON_BACKEND_SDF_SDF_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/sdf/gmt0018.h"

namespace hsmd::backend {

enum class SdfKeyUsage {
  kSign,  // the SM2 signing key pair at the index
  kEnc,   // the SM2 encryption key pair at the index
  kSm4,   // the SM4 key at the index
};

struct SdfKeyConfig {
  // Key index on the device (as the vendor's tools number them).
  uint32_t index = 0;
  SdfKeyUsage usage = SdfKeyUsage::kSign;
  // Key.label and the URI's object= attribute; may be empty.
  std::string label;
  // sign / enc keys: reads the index's access password each time a session
  // needs the access right (start-up, new sessions, recovery), so it is in
  // memory only during SDF_GetPrivateKeyAccessRight and wiped after. One
  // access right covers both key pairs at an index: when sign and enc at an
  // index are both configured, the first one's source is used. Unused for
  // sm4 keys.
  std::function<absl::StatusOr<SecretString>()> password_source;
  // sm4 keys on devices without the SDF_GetSymmKeyHandle extension: a
  // 16-byte SM4 key wrapped with SM4-ECB under the device's key-encryption
  // key at `index`, imported per session with SDF_ImportKeyWithKEK.
  std::string wrapped_key;
};

// Vendors number the algorithms differently (older headers: SM2 sign
// 0x00020100, encrypt 0x00020400); these are passed to the device as is.
struct SdfAlgorithmIds {
  // SDF_ExternalVerify_ECC (start-up self-test).
  uint32_t sm2_sign = SGD_SM2_1;
  // SDF_InternalDecrypt_ECC.
  uint32_t sm2_encrypt = SGD_SM2_3;
  // SDF_Encrypt / SDF_Decrypt, and SDF_ImportKeyWithKEK's unwrapping (ECB).
  uint32_t sm4_ecb = SGD_SM4_ECB;
  uint32_t sm4_cbc = SGD_SM4_CBC;
};

struct SdfBackendOptions {
  // Backend name from the config (appears in Key.backend, logs, status).
  std::string name = "sdf";
  // The vendor SDF library to dlopen (e.g. /opt/vendor/lib/libsdf.so).
  std::string library_path;
  // The `device=` value of this backend's URIs (also Key.token_label).
  std::string device_name;
  // The keys served; (index, usage) pairs must be unique.
  std::vector<SdfKeyConfig> keys;
  // Sessions opened on the device and shared by all requests.
  uint32_t session_pool_size = 4;
  SdfAlgorithmIds algorithm_ids;
  // Largest input of one SDF_GenerateRandom / SDF_Encrypt / SDF_Decrypt
  // call; 0 means DEVICEINFO.BufferSize (4096 if the device reports 0).
  // Longer requests are split.
  uint32_t max_chunk_bytes = 0;
  // At every device open, sign with each signing key and check the
  // signature with OpenSSL (and SDF_ExternalVerify_ECC if the library has
  // it), so a library with a different ABI fails at start, not in clients.
  bool self_test = true;

  // Recovery, as in Pkcs11BackendOptions: the first reopen at once, then
  // after reinit_backoff_initial, doubling up to reinit_backoff_max.
  absl::Duration reinit_backoff_initial = absl::Milliseconds(100);
  absl::Duration reinit_backoff_max = absl::Seconds(5);
  // How long a reopen waits for calls still inside the old device.
  absl::Duration reinit_drain_timeout = absl::Seconds(2);
  // DEGRADED turns back into READY after this long without new trouble.
  absl::Duration degraded_hold = absl::Seconds(60);
  // Requests with a finite deadline make their SDF calls on a worker thread
  // (see the top of this file).
  bool calls_on_workers = true;
};

// Validates the options, dlopens the library (missing required functions:
// FAILED_PRECONDITION naming them), opens the device, the session pool with
// the access rights and reads the keys; starts the recovery thread (joined
// by Shutdown). Errors name the library, device and key index.
absl::StatusOr<std::unique_ptr<Backend>> NewSdfBackend(
    SdfBackendOptions options);

// Recovery counters of a backend made by NewSdfBackend (for tests and
// diagnostics).
struct SdfBackendCounters {
  // Requests that ended with DEADLINE_EXCEEDED while their call went on, and
  // of those, calls still running (each holds its session).
  uint64_t calls_abandoned = 0;
  uint64_t abandoned_calls_running = 0;
  // Broken sessions closed and replaced (since the last reopen).
  uint64_t sessions_replaced = 0;
  // Access rights obtained again after SDR_PARDENY.
  uint64_t regrants = 0;
  // Successful SDF_GetPrivateKeyAccessRight calls since start.
  uint64_t access_rights_granted = 0;
  // Reopen attempts (successful ones are BackendStatus.reinitializations).
  uint64_t reinit_attempts = 0;
  uint32_t worker_threads = 0;
  uint32_t waiting_for_session = 0;
};
// INVALID_ARGUMENT for other backends.
absl::StatusOr<SdfBackendCounters> GetSdfBackendCounters(
    const Backend& backend);

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_SDF_SDF_BACKEND_H_
