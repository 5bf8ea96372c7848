// The daemon's HSM backend interface.
//
// A Backend owns everything about one HSM (a PKCS#11 token, later an SDF
// device): module handle, sessions, login state, key handles and the recovery
// state machine. The gRPC service layer (daemon/service/) validates requests
// that need no key knowledge, resolves which backend serves a key, calls it,
// and maps absl::Status to grpc::Status. Implementations must be thread-safe:
// many request threads call them at once.
//
// Errors: every method returns the canonical codes documented in
// proto/hsmd/v1/hsmd.proto; failures that come from the HSM carry an
// hsmd.v1.ErrorDetail payload (common/error_detail.h) naming the CK_RV.
#ifndef HSMD_DAEMON_BACKEND_BACKEND_H_
#define HSMD_DAEMON_BACKEND_BACKEND_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend {

// Per-request context passed down from the service layer.
struct RequestContext {
  // Absolute deadline: waiting for a free session ends here with
  // RESOURCE_EXHAUSTED; an HSM call still running past it ends the request
  // with DEADLINE_EXCEEDED (the session is then not reused until it returns).
  absl::Time deadline = absl::InfiniteFuture();
  // The caller ends the request at `deadline` by itself, whatever the
  // backend does (gRPC does for a deadline the client sent). A backend may
  // then make its device calls on the caller's thread instead of handing
  // them to a worker: a hung call holds that thread and its session until
  // it returns, and the request's result is DEADLINE_EXCEEDED.
  bool caller_enforces_deadline = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The name from the config (e.g. "softhsm") and the kind ("pkcs11").
  virtual const std::string& name() const = 0;
  virtual const std::string& kind() const = 0;

  // Keys matching the filter (an empty filter lists all private keys).
  virtual absl::StatusOr<std::vector<v1::Key>> ListKeys(
      const v1::ListKeysRequest& request, const RequestContext& ctx) = 0;

  // Exactly one key. NOT_FOUND if none matches (the message names the
  // reference), FAILED_PRECONDITION if several do, INVALID_ARGUMENT for a
  // malformed URI.
  virtual absl::StatusOr<v1::Key> GetKey(const v1::KeyRef& ref,
                                         const RequestContext& ctx) = 0;

  virtual absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& request,
                                                const RequestContext& ctx) = 0;

  virtual absl::StatusOr<v1::DecryptResponse> Decrypt(
      const v1::DecryptRequest& request, const RequestContext& ctx) = 0;

  // Symmetric encryption with an HSM-held key (SM4 on SDF devices). Backends
  // without symmetric keys keep this default.
  virtual absl::StatusOr<v1::EncryptResponse> Encrypt(
      const v1::EncryptRequest& request, const RequestContext& ctx) {
    (void)request;
    (void)ctx;
    return absl::InvalidArgumentError(
        "backend " + name() + " holds no keys that can encrypt");
  }

  // Key agreement (ECDH) with an HSM-held private key. Backends without it
  // keep this default.
  virtual absl::StatusOr<v1::DeriveResponse> Derive(
      const v1::DeriveRequest& request, const RequestContext& ctx) {
    (void)request;
    (void)ctx;
    return absl::UnimplementedError("backend \"" + name() + "\" (" + kind() +
                                    ") does not support key agreement "
                                    "(Derive)");
  }

  virtual absl::StatusOr<std::string> GenerateRandom(
      uint32_t length, const RequestContext& ctx) = 0;

  virtual absl::StatusOr<v1::Key> GenerateKey(
      const v1::GenerateKeyRequest& request, const RequestContext& ctx) = 0;

  // Returns the number of objects destroyed.
  virtual absl::StatusOr<uint32_t> DeleteKey(const v1::KeyRef& ref,
                                             const RequestContext& ctx) = 0;

  // A snapshot of the backend's state for GetStatus and the health service.
  virtual v1::BackendStatus GetStatus() const = 0;

  // True when requests can be served (READY or DEGRADED).
  virtual bool IsServing() const = 0;

  // Closes sessions, logs out and finalizes the module. Called once at
  // shutdown after in-flight requests have drained; later calls fail with
  // UNAVAILABLE.
  virtual void Shutdown() = 0;
};

}  // namespace hsmd::backend

#endif  // HSMD_DAEMON_BACKEND_BACKEND_H_
