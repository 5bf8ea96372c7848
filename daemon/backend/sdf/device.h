// One opened SDF device: the SDF_OpenDevice handle, its session pool (each
// session holding the access rights of the configured private keys), and the
// keys read from it. Recovery replaces the whole object.
#ifndef HSMD_DAEMON_BACKEND_SDF_DEVICE_H_
#define HSMD_DAEMON_BACKEND_SDF_DEVICE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/backend/sdf/key_table.h"
#include "daemon/backend/sdf/library.h"
#include "daemon/backend/sdf/session_pool.h"
#include "daemon/backend/sdf/uri.h"

namespace hsmd::backend::sdf {

struct DeviceKeySpec {
  uint32_t index = 0;
  KeyUsage usage = KeyUsage::kSign;
  std::string label;
  // SM4 keys only: a key wrapped with SM4-ECB under the device's
  // key-encryption key at `index`, imported per session with
  // SDF_ImportKeyWithKEK. Empty: the device's own SM4 key at `index`
  // (SDF_GetSymmKeyHandle).
  std::string wrapped_key;
};

struct DeviceConfig {
  std::string backend_name;
  std::string device_name;
  std::vector<DeviceKeySpec> keys;
  uint32_t pool_size = 4;
  uint32_t sm2_sign_alg = 0;  // for SDF_ExternalVerify_ECC in the self-test
  uint32_t sm4_ecb_alg = 0;   // for SDF_ImportKeyWithKEK
  // Largest input of one SDF_GenerateRandom / SDF_Encrypt / SDF_Decrypt
  // call; 0 takes DEVICEINFO.BufferSize (4096 if the device reports 0).
  uint32_t max_chunk_bytes = 0;
  // Sign with every signing key at open and verify the signature with
  // OpenSSL (and SDF_ExternalVerify_ECC if exported).
  bool self_test = true;
};

// What SDF_GetDeviceInfo said, printable.
struct DeviceFacts {
  std::string issuer;
  std::string device_name;
  std::string serial;
  uint32_t device_version = 0;
  uint32_t standard_version = 0;
  uint32_t buffer_size = 0;
};

class Device {
 public:
  // Obtains the private-key access rights on a new session.
  using GrantFn = std::function<absl::Status(void* session)>;

  // SDF_OpenDevice, `config.pool_size` sessions (each granted with
  // `grant`, in turn: the first failure stops), SDF_GetDeviceInfo, the
  // public keys of the configured SM2 keys, a handle for each SM4 key (when
  // the library can make one), and the self-test. On failure everything
  // opened is closed again. Errors name the device and key index.
  static absl::StatusOr<std::shared_ptr<Device>> Open(
      std::shared_ptr<const Library> library, const DeviceConfig& config,
      GrantFn grant);

  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  // Close(ZeroDuration(), true) unless closed.
  ~Device();

  const Library& library() const { return *library_; }
  const SdfFunctions& fns() const { return library_->fns(); }
  SessionPool& pool() { return *pool_; }
  const KeyTable& keys() const { return keys_; }
  const DeviceFacts& facts() const { return facts_; }
  // Bytes per SDF_GenerateRandom / SDF_Encrypt / SDF_Decrypt call.
  size_t chunk() const { return chunk_; }

  // The session's handle for the SM4 key `key`, made on first use
  // (SDF_GetSymmKeyHandle, or SDF_ImportKeyWithKEK for a wrapped key).
  // UNIMPLEMENTED naming the function when the library lacks it.
  absl::StatusOr<void*> Sm4Handle(SdfSession& session, const KeyEntry& key);
  // Forgets (and destroys) a cached handle the device no longer knows.
  void DropSm4Handle(SdfSession& session, uint32_t index);

  // Stops lending sessions and waits up to `grace` for those out. With
  // `release`, releases the access rights and key handles and closes the
  // sessions (shutdown); without, makes no call but SDF_CloseDevice (the
  // device is being dropped as broken). Then SDF_CloseDevice. Idempotent.
  void Close(absl::Duration grace, bool release);

 private:
  Device(std::shared_ptr<const Library> library, const DeviceConfig& config,
         GrantFn grant, void* handle);

  absl::StatusOr<std::unique_ptr<SdfSession>> OpenSession();
  void CloseSession(SdfSession& session);
  const DeviceKeySpec* SpecFor(const KeyEntry& key) const;
  absl::Status ReadDevice(SdfSession& first);
  absl::Status SelfTest(SdfSession& first);

  const std::shared_ptr<const Library> library_;
  const DeviceConfig config_;
  const GrantFn grant_;
  void* const handle_;
  // Indexes whose private keys need an access right.
  std::vector<uint32_t> private_indexes_;
  std::unique_ptr<SessionPool> pool_;
  KeyTable keys_;
  DeviceFacts facts_;
  size_t chunk_ = 4096;

  std::mutex close_mu_;
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;
};

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_DEVICE_H_
