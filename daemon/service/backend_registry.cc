#include "daemon/service/backend_registry.h"

#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/backend/sdf/uri.h"

namespace hsmd::service {
namespace {

// The URI scheme (lowercased), or "" when there is none.
std::string Scheme(absl::string_view uri) {
  size_t colon = uri.find(':');
  if (colon == absl::string_view::npos) return "";
  return absl::AsciiStrToLower(uri.substr(0, colon));
}

std::string CacheKey(const v1::KeyRef& ref) {
  return ref.ref_case() == v1::KeyRef::kUri ? absl::StrCat("u", ref.uri())
                                            : absl::StrCat("k", ref.key_id());
}

}  // namespace

BackendRegistry::BackendRegistry(
    std::vector<std::unique_ptr<backend::Backend>> backends)
    : backends_(std::move(backends)) {
  // An SDF backend reports its configured device name as token_label, from
  // its options (so also while it is not serving).
  for (const auto& b : backends_) {
    device_names_.push_back(b->kind() == "sdf" ? b->GetStatus().token_label()
                                               : std::string());
  }
}

absl::StatusOr<std::unique_ptr<BackendRegistry>> BackendRegistry::New(
    std::vector<std::unique_ptr<backend::Backend>> backends) {
  if (backends.empty()) {
    return absl::InvalidArgumentError("at least one backend is required");
  }
  std::set<std::string> names;
  for (const auto& b : backends) {
    if (b == nullptr) return absl::InvalidArgumentError("null backend");
    if (!names.insert(b->name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two backends are named \"", b->name(), "\""));
    }
  }
  return std::unique_ptr<BackendRegistry>(
      new BackendRegistry(std::move(backends)));
}

absl::StatusOr<std::vector<backend::Backend*>> BackendRegistry::Candidates(
    const v1::KeyRef& ref, absl::string_view field) const {
  std::vector<backend::Backend*> out;
  if (ref.ref_case() != v1::KeyRef::kUri) {
    for (const auto& b : backends_) out.push_back(b.get());
    return out;
  }
  std::string scheme = Scheme(ref.uri());
  if (scheme != "pkcs11" && scheme != "sdf") {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": unsupported scheme in \"",
                     ref.uri().substr(0, 64), "\" (expected a pkcs11: URI)"));
  }
  bool kind_configured = false;
  // sdf: URIs naming a device go to that device's backend only, so one
  // device being down never fails requests for another.
  std::optional<std::string> device;
  if (scheme == "sdf") {
    absl::StatusOr<backend::sdf::SdfUri> uri =
        backend::sdf::SdfUri::Parse(ref.uri());
    // A malformed URI goes to every sdf backend, whose GetKey explains it.
    if (uri.ok()) device = uri->device;
  }
  for (size_t i = 0; i < backends_.size(); ++i) {
    const auto& b = backends_[i];
    if (b->kind() != scheme) continue;
    kind_configured = true;
    if (device.has_value() && *device != device_names_[i]) continue;
    out.push_back(b.get());
  }
  if (!kind_configured) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": no ", scheme, " backend is configured for ",
                     scheme, ": URIs"));
  }
  return out;
}

absl::StatusOr<BackendRegistry::Route> BackendRegistry::Resolve(
    const v1::KeyRef& ref, const backend::RequestContext& ctx) {
  const std::string key = CacheKey(ref);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = routes_.find(key); it != routes_.end()) return it->second;
  }
  absl::StatusOr<std::vector<backend::Backend*>> candidates =
      Candidates(ref, "key.uri");
  if (!candidates.ok()) return candidates.status();
  if (candidates->empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no key matches \"", ref.uri(),
        "\": no sdf backend serves that device (the device= of an sdf: URI "
        "is a backend's configured device_name)"));
  }
  absl::Status first_error;
  absl::Status not_found;
  for (backend::Backend* b : *candidates) {
    absl::StatusOr<v1::Key> found = b->GetKey(ref, ctx);
    if (found.ok()) {
      Route route{
          b,           found->key_id(), found->label(), found->token_label(),
          found->id(), found->uri()};
      std::lock_guard<std::mutex> lock(mu_);
      if (routes_.size() >= kMaxCachedRoutes) routes_.clear();
      routes_[key] = route;
      return route;
    }
    if (found.status().code() == absl::StatusCode::kNotFound) {
      if (not_found.ok()) not_found = found.status();
    } else if (first_error.ok()) {
      first_error = found.status();
    }
  }
  // A backend that could not answer (UNAVAILABLE, a malformed URI, an
  // ambiguous reference) says more than another's NOT_FOUND.
  return first_error.ok() ? not_found : first_error;
}

void BackendRegistry::Observe(const v1::KeyRef& ref, const absl::Status& status,
                              absl::string_view key_id) {
  if (status.ok() && key_id.empty()) return;
  if (!status.ok() && status.code() != absl::StatusCode::kNotFound) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = routes_.find(CacheKey(ref));
  if (it == routes_.end()) return;
  // The reference now names different key material (key re-created): its
  // attributes may differ too.
  if (!status.ok() || it->second.key_id != key_id) routes_.erase(it);
}

void BackendRegistry::ForgetRoutes() {
  std::lock_guard<std::mutex> lock(mu_);
  routes_.clear();
}

absl::StatusOr<std::vector<v1::Key>> BackendRegistry::ListKeys(
    const v1::ListKeysRequest& request, const backend::RequestContext& ctx) {
  std::vector<backend::Backend*> targets;
  if (request.uri_filter().empty()) {
    for (const auto& b : backends_) targets.push_back(b.get());
  } else {
    v1::KeyRef ref;
    ref.set_uri(request.uri_filter());
    absl::StatusOr<std::vector<backend::Backend*>> candidates =
        Candidates(ref, "uri_filter");
    if (!candidates.ok()) return candidates.status();
    targets = *std::move(candidates);
  }
  std::vector<v1::Key> out;
  for (backend::Backend* b : targets) {
    absl::StatusOr<std::vector<v1::Key>> keys = b->ListKeys(request, ctx);
    if (!keys.ok()) return keys.status();
    for (v1::Key& k : *keys) out.push_back(std::move(k));
  }
  return out;
}

absl::StatusOr<backend::Backend*> BackendRegistry::ForGenerateKey(
    absl::string_view name) {
  for (const auto& b : backends_) {
    if (name.empty() ? b->kind() == "pkcs11" : b->name() == name) {
      return b.get();
    }
  }
  if (name.empty()) {
    return absl::FailedPreconditionError(
        "no pkcs11 backend is configured; name the backend to use");
  }
  return absl::NotFoundError(
      absl::StrCat("backend: no backend is named \"", name, "\""));
}

backend::Backend* BackendRegistry::ForRandom() {
  for (const auto& b : backends_) {
    if (b->IsServing()) return b.get();
  }
  return backends_.front().get();
}

bool BackendRegistry::AllServing() const {
  for (const auto& b : backends_) {
    if (!b->IsServing()) return false;
  }
  return true;
}

}  // namespace hsmd::service
