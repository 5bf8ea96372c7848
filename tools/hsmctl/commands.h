// hsmctl's command table, global options, help text, and the top-level
// driver that main() calls: parse, dispatch, print errors, pick the exit code.
#ifndef HSMD_TOOLS_HSMCTL_COMMANDS_H_
#define HSMD_TOOLS_HSMCTL_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "tools/hsmctl/context.h"

namespace hsmd::hsmctl {

inline constexpr absl::string_view kHsmctlVersion = "0.1.0";

// Every command, in help order.
const std::vector<CommandSpec>& AllCommands();

// Options every command accepts (before or after the command name).
const std::vector<OptionSpec>& GlobalOptionSpecs();

// `hsmctl --help`.
std::string GeneralHelp();
// `hsmctl help COMMAND` / `hsmctl COMMAND --help`.
std::string CommandHelp(const CommandSpec& command);

// Runs hsmctl with `args` (argv without argv[0]) and returns the exit code.
// Errors go to env.err as "hsmctl: <command>: <message>".
int RunCommandLine(const std::vector<std::string>& args, Environment env);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_COMMANDS_H_
