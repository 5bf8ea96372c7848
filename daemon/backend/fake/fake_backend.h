// A software Backend for tests that need no HSM: keys live in OpenSSL
// EVP_PKEYs in memory, signatures and decryptions are real (verifiable with
// the public key), and tests can inject failures, delays and readiness
// changes.
//
// It answers `pkcs11:` URIs like a one-token PKCS#11 backend (token label,
// manufacturer "hsmd", model "fake", serial "0000000000000001"), so the
// service layer routes to it exactly as to the real backend; `kind()` is
// "pkcs11" unless configured otherwise.
#ifndef HSMD_DAEMON_BACKEND_FAKE_FAKE_BACKEND_H_
#define HSMD_DAEMON_BACKEND_FAKE_FAKE_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/backend/backend.h"

namespace hsmd::backend {

struct FakeBackendOptions {
  std::string name = "fake";
  // The kind reported and used for routing ("pkcs11" URIs go to pkcs11
  // backends).
  std::string kind = "pkcs11";
  std::string token_label = "fake";
  // Initial readiness (IsServing, health). A backend that is not serving
  // fails every operation with UNAVAILABLE.
  bool serving = true;
  uint32_t session_pool_size = 4;
};

class FakeBackend final : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<FakeBackend>> New(
      FakeBackendOptions options);
  ~FakeBackend() override;

  // Backend.
  const std::string& name() const override { return options_.name; }
  const std::string& kind() const override { return options_.kind; }
  absl::StatusOr<std::vector<v1::Key>> ListKeys(
      const v1::ListKeysRequest& request, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GetKey(const v1::KeyRef& ref,
                                 const RequestContext& ctx) override;
  absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& request,
                                        const RequestContext& ctx) override;
  absl::StatusOr<v1::DecryptResponse> Decrypt(
      const v1::DecryptRequest& request, const RequestContext& ctx) override;
  // ECDH in software with the key's EVP_PKEY (same checks as the PKCS#11
  // backend).
  absl::StatusOr<v1::DeriveResponse> Derive(const v1::DeriveRequest& request,
                                            const RequestContext& ctx) override;
  absl::StatusOr<std::string> GenerateRandom(
      uint32_t length, const RequestContext& ctx) override;
  absl::StatusOr<v1::Key> GenerateKey(const v1::GenerateKeyRequest& request,
                                      const RequestContext& ctx) override;
  absl::StatusOr<uint32_t> DeleteKey(const v1::KeyRef& ref,
                                     const RequestContext& ctx) override;
  v1::BackendStatus GetStatus() const override;
  bool IsServing() const override;
  void Shutdown() override;

  // Test controls; all thread-safe. `method` is the Backend method name:
  // "ListKeys", "GetKey", "Sign", "Decrypt", "Derive", "GenerateRandom",
  // "GenerateKey", "DeleteKey".

  // Readiness as seen by IsServing / GetStatus / every operation.
  void SetServing(bool serving, std::string reason = "");
  // The next `count` calls of `method` (all calls if count < 0) return
  // `status` instead of doing the work.
  void FailNext(absl::string_view method, absl::Status status, int count = 1);
  // Calls of `method` take `delay` before working; if the request deadline
  // comes first they end with DEADLINE_EXCEEDED.
  void SetDelay(absl::string_view method, absl::Duration delay);
  void ClearFaults();
  // Called at the start of every operation with the method name (e.g. to
  // observe that a request is in flight).
  void SetCallHook(std::function<void(absl::string_view method)> hook);
  // Number of calls of `method` so far.
  uint64_t CallCount(absl::string_view method) const;
  bool shut_down() const;

 private:
  struct FakeKey;
  struct Fault {
    absl::Status status;
    int remaining = 0;  // < 0: forever
  };

  explicit FakeBackend(FakeBackendOptions options);

  // Counts the call, runs the hook, applies readiness, faults and delays.
  absl::Status Enter(absl::string_view method, const RequestContext& ctx);
  // Resolves exactly one key.
  absl::StatusOr<std::shared_ptr<const FakeKey>> Resolve(
      const v1::KeyRef& ref, bool for_private_operation) const;
  absl::StatusOr<std::vector<std::shared_ptr<const FakeKey>>> Match(
      absl::string_view uri, bool* public_requested) const;

  const FakeBackendOptions options_;
  std::atomic<bool> serving_;
  std::atomic<bool> shut_down_{false};
  std::atomic<uint32_t> in_flight_{0};

  // std::mutex, not absl::Mutex: Debian's Abseil is invisible to TSan.
  mutable std::mutex mu_;
  std::string state_reason_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<const FakeKey>> keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Fault> faults_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Duration> delays_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> calls_ ABSL_GUARDED_BY(mu_);
  std::function<void(absl::string_view)> hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_FAKE_FAKE_BACKEND_H_
