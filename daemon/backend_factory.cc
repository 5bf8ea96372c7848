#include "daemon/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/config/pin_source.h"

namespace hsmd {

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
      return backend::NewPkcs11Backend(std::move(options));
    }
    case config::Backend::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("backend ", config.name(), ": no backend kind configured"));
}

}  // namespace hsmd
