// Key discovery and lifecycle commands: `list`, `show`, `genkey`, `delete`,
// `export-uri-pem`.
#ifndef HSMD_TOOLS_HSMCTL_KEY_COMMANDS_H_
#define HSMD_TOOLS_HSMCTL_KEY_COMMANDS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "tools/hsmctl/context.h"

namespace hsmd::hsmctl {

std::vector<CommandSpec> KeyCommands();

// GetKey for a command-line key reference (URI or key id); shared by the
// commands that need the public key.
absl::StatusOr<v1::Key> FetchKey(CommandContext& ctx, const v1::KeyRef& ref);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_KEY_COMMANDS_H_
