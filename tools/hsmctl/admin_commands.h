// Diagnostics commands: `status`, `stats`.
#ifndef HSMD_TOOLS_HSMCTL_ADMIN_COMMANDS_H_
#define HSMD_TOOLS_HSMCTL_ADMIN_COMMANDS_H_

#include <vector>

#include "tools/hsmctl/context.h"

namespace hsmd::hsmctl {

std::vector<CommandSpec> AdminCommands();

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_ADMIN_COMMANDS_H_
