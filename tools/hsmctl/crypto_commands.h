// Cryptographic commands: `sign` and `decrypt` (in the HSM, through hsmd),
// `verify` and `encrypt` (locally, with the key's public half), `random`.
#ifndef HSMD_TOOLS_HSMCTL_CRYPTO_COMMANDS_H_
#define HSMD_TOOLS_HSMCTL_CRYPTO_COMMANDS_H_

#include <vector>

#include "tools/hsmctl/context.h"

namespace hsmd::hsmctl {

std::vector<CommandSpec> CryptoCommands();

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_CRYPTO_COMMANDS_H_
