#include "daemon/backend_factory.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/backend/sdf/sdf_backend.h"
#include "daemon/config/pin_source.h"

namespace hsmd {
namespace {

// Copies the config's recovery settings into either kind's options.
template <typename Options>
void ApplyRecovery(const config::Recovery& r, Options& options) {
  options.reinit_backoff_initial =
      absl::Milliseconds(r.reinit_backoff_initial_ms());
  options.reinit_backoff_max = absl::Milliseconds(r.reinit_backoff_max_ms());
  options.reinit_drain_timeout =
      absl::Milliseconds(r.reinit_drain_timeout_ms());
  options.degraded_hold = absl::Milliseconds(r.degraded_hold_ms());
  options.calls_on_workers = r.calls_on_workers();
}

backend::SdfKeyUsage ToUsage(config::SdfKey::Usage usage) {
  switch (usage) {
    case config::SdfKey::ENC:
      return backend::SdfKeyUsage::kEnc;
    case config::SdfKey::SM4:
      return backend::SdfKeyUsage::kSm4;
    default:
      return backend::SdfKeyUsage::kSign;
  }
}

backend::SdfBackendOptions SdfOptions(
    const config::Backend& config) {
  const config::SdfBackend& s = config.sdf();
  backend::SdfBackendOptions options;
  options.name = config.name();
  options.library_path = s.library_path();
  options.device_name = s.device_name();
  options.session_pool_size = s.session_pool_size();
  options.algorithm_ids.sm2_sign = s.algorithm_ids().sm2_sign();
  options.algorithm_ids.sm2_encrypt = s.algorithm_ids().sm2_encrypt();
  options.algorithm_ids.sm4_ecb = s.algorithm_ids().sm4_ecb();
  options.algorithm_ids.sm4_cbc = s.algorithm_ids().sm4_cbc();
  options.max_chunk_bytes = s.max_chunk_bytes();
  options.self_test = s.self_test();
  ApplyRecovery(config.recovery(), options);
  // One access password per index, given on its sign or enc key (the
  // loader checked that the two agree when both give one).
  std::map<uint32_t, const config::Pin*> passwords;
  for (const config::SdfKey& key : s.keys()) {
    if (key.has_password()) passwords.emplace(key.index(), &key.password());
  }
  for (const config::SdfKey& key : s.keys()) {
    backend::SdfKeyConfig k;
    k.index = key.index();
    k.usage = ToUsage(key.usage());
    k.label = key.label();
    if (k.usage != backend::SdfKeyUsage::kSm4) {
      auto it = passwords.find(key.index());
      if (it != passwords.end()) {
        k.password_source = config::MakePinSource(*it->second);
      }
    }
    // 32 hex digits (checked by the config loader).
    if (key.has_wrapped_key()) {
      k.wrapped_key = absl::HexStringToBytes(key.wrapped_key());
    }
    options.keys.push_back(std::move(k));
  }
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<backend::Backend>> NewBackendFromConfig(
    const config::Backend& config) {
  switch (config.kind_case()) {
    case config::Backend::kPkcs11: {
      const config::Pkcs11Backend& p = config.pkcs11();
      backend::Pkcs11BackendOptions options;
      options.name = config.name();
      options.module_path = p.module_path();
      options.token_label = p.token_label();
      options.token_serial = p.token_serial();
      if (p.has_slot_id()) options.slot_id = p.slot_id();
      options.pin_source = config::MakePinSource(p.pin());
      options.session_pool_size = p.session_pool_size();
      options.no_finalize = p.no_finalize();
      ApplyRecovery(config.recovery(), options);
      return backend::NewPkcs11Backend(std::move(options));
    }
    case config::Backend::kSdf: {
      return backend::NewSdfBackend(SdfOptions(config));
    }
    case config::Backend::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("backend ", config.name(), ": no backend kind configured"));
}

}  // namespace hsmd
