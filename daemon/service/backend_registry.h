// Owns the configured backends and routes each request to the one that
// serves it.
//
// Routing: a `pkcs11:` URI goes to backends of kind "pkcs11", an `sdf:` URI
// to kind "sdf" (the scheme names the kind), and one with device=NAME only
// to the sdf backend whose device_name is NAME (its
// BackendStatus.token_label); a key_id may live on any backend. The first time a reference is seen, the registry asks the
// candidates' GetKey (in config order) and uses the first that has the key;
// the route is cached per reference (bounded), and dropped when an operation
// through it reports NOT_FOUND or a key is deleted. One extra lookup per
// distinct reference buys the key's id and label for stats and logs even
// when the operation itself fails (wrong algorithm, HSM error).
#ifndef HSMD_DAEMON_SERVICE_BACKEND_REGISTRY_H_
#define HSMD_DAEMON_SERVICE_BACKEND_REGISTRY_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/backend/backend.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::service {

class BackendRegistry {
 public:
  // Cached routes kept at most (then the cache starts over).
  static constexpr size_t kMaxCachedRoutes = 1024;

  // At least one backend, unique names.
  static absl::StatusOr<std::unique_ptr<BackendRegistry>> New(
      std::vector<std::unique_ptr<backend::Backend>> backends);

  // What the key lookup found (every reference is looked up once, then
  // cached). The attributes are those the access policy matches.
  struct Route {
    backend::Backend* backend = nullptr;
    std::string key_id;
    std::string key_label;
    std::string token_label;
    // CKA_ID (raw bytes).
    std::string id;
    // The key's canonical URI.
    std::string uri;
  };

  // The backend serving `ref`. Errors: INVALID_ARGUMENT for an unsupported
  // URI scheme or one no configured backend kind serves; the backends'
  // errors (NOT_FOUND naming the reference, UNAVAILABLE, ...) when the key
  // must be looked up and no backend has it.
  absl::StatusOr<Route> Resolve(const v1::KeyRef& ref,
                                const backend::RequestContext& ctx);

  // Tells the registry how an operation routed for `ref` ended: NOT_FOUND,
  // or success with a different `key_id` (the key was re-created), drops
  // the cached route, so the next request looks the key up afresh.
  void Observe(const v1::KeyRef& ref, const absl::Status& status,
               absl::string_view key_id);
  // Drops every cached route (after DeleteKey / GenerateKey).
  void ForgetRoutes();

  // Keys from every backend the filter can concern (all of them for an
  // empty filter), in backend order. Any backend error fails the call: a
  // partial list would look like missing keys.
  absl::StatusOr<std::vector<v1::Key>> ListKeys(
      const v1::ListKeysRequest& request, const backend::RequestContext& ctx);

  // The backend named `name`, or the first backend of kind "pkcs11" when
  // `name` is empty. NOT_FOUND for an unknown name.
  absl::StatusOr<backend::Backend*> ForGenerateKey(absl::string_view name);

  // The first serving backend (the first backend if none serves, so its
  // UNAVAILABLE explains why).
  backend::Backend* ForRandom();

  const std::vector<std::unique_ptr<backend::Backend>>& backends() const {
    return backends_;
  }
  // True when every backend IsServing().
  bool AllServing() const;

 private:
  explicit BackendRegistry(
      std::vector<std::unique_ptr<backend::Backend>> backends);

  // Backends that may hold a key named by `ref`.
  // `field` names the request field in errors.
  absl::StatusOr<std::vector<backend::Backend*>> Candidates(
      const v1::KeyRef& ref, absl::string_view field) const;

  const std::vector<std::unique_ptr<backend::Backend>> backends_;
  // Per backend: the SDF device name ("" for other kinds).
  std::vector<std::string> device_names_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Route> routes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_BACKEND_REGISTRY_H_
