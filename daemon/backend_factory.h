// Creates the Backend a config `backends { ... }` entry describes.
#ifndef HSMD_DAEMON_BACKEND_FACTORY_H_
#define HSMD_DAEMON_BACKEND_FACTORY_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "daemon/backend/backend.h"
#include "daemon/config/config.pb.h"

namespace hsmd {

using BackendFactory =
    std::function<absl::StatusOr<std::unique_ptr<backend::Backend>>(
        const config::Backend&)>;

// The production factory: pkcs11 entries become PKCS#11 backends (module
// loaded, token found, logged in, session pool open) whose PIN is read from
// the configured source at each login.
absl::StatusOr<std::unique_ptr<backend::Backend>> NewBackendFromConfig(
    const config::Backend& config);

}  // namespace hsmd

#endif  // HSMD_DAEMON_BACKEND_FACTORY_H_
