#include "tools/hsmctl/commands.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "tools/hsmctl/admin_commands.h"
#include "tools/hsmctl/crypto_commands.h"
#include "tools/hsmctl/exit_codes.h"
#include "tools/hsmctl/key_commands.h"

namespace hsmd::hsmctl {
namespace {

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& command : AllCommands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

const OptionSpec* FindGlobal(absl::string_view arg) {
  for (const OptionSpec& spec : GlobalOptionSpecs()) {
    if (arg == absl::StrCat("--", spec.name) ||
        absl::StartsWith(arg, absl::StrCat("--", spec.name, "=")) ||
        (spec.short_name != 0 &&
         arg == absl::StrCat("-", std::string(1, spec.short_name)))) {
      return &spec;
    }
  }
  return nullptr;
}

// Splits argv into the global options before the command, the command name
// (empty if none) and everything after it.
struct SplitArgs {
  std::vector<std::string> leading;
  std::string command;
  std::vector<std::string> rest;
};

absl::StatusOr<SplitArgs> SplitCommand(const std::vector<std::string>& args) {
  SplitArgs split;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.empty() || arg[0] != '-' || arg == "-") break;
    const OptionSpec* spec = FindGlobal(arg);
    if (spec == nullptr) {
      return UsageError(absl::StrCat(
          "unknown option ", arg,
          " before the command (command options follow the command name)"));
    }
    split.leading.push_back(arg);
    if (spec->takes_value() && arg.find('=') == std::string::npos) {
      if (i + 1 >= args.size()) {
        return UsageError(absl::StrCat("option --", spec->name,
                                       " needs a value (", spec->value_name,
                                       ")"));
      }
      split.leading.push_back(args[++i]);
    }
  }
  if (i < args.size()) {
    split.command = args[i];
    split.rest.assign(args.begin() + i + 1, args.end());
  }
  return split;
}

absl::StatusOr<GlobalOptions> ResolveGlobals(const ParsedArgs& parsed,
                                             const Environment& env) {
  GlobalOptions globals;
  if (absl::optional<std::string> socket = parsed.Get("socket")) {
    globals.socket_path = *socket;
  } else if (env.socket_from_env.has_value()) {
    globals.socket_path = *env.socket_from_env;
  }
  if (globals.socket_path.empty()) {
    return UsageError("--socket: the socket path is empty");
  }
  if (absl::optional<std::string> timeout = parsed.Get("timeout")) {
    ASSIGN_OR_RETURN(globals.timeout,
                     AsUsageError(ParseTimeout("--timeout", *timeout)));
  }
  globals.json = parsed.Has("json");
  return globals;
}

int Fail(Environment& env, absl::string_view command,
         const absl::Status& status) {
  *env.err << FormatError(command, status) << "\n";
  ExitCode code = ExitCodeFor(status);
  if (code == kExitUsage) {
    *env.err << (command.empty()
                     ? std::string("Run 'hsmctl --help' for usage.\n")
                     : absl::StrCat("Run 'hsmctl ", command,
                                    " --help' for usage.\n"));
  }
  return code;
}

int PrintVersion(Environment& env) {
  *env.out << "hsmctl " << kHsmctlVersion << "\n";
  return kExitOk;
}

}  // namespace

const std::vector<CommandSpec>& AllCommands() {
  static const auto* const kCommands = [] {
    auto* commands = new std::vector<CommandSpec>();
    for (auto group : {AdminCommands(), KeyCommands(), CryptoCommands()}) {
      for (CommandSpec& c : group) commands->push_back(std::move(c));
    }
    return commands;
  }();
  return *kCommands;
}

const std::vector<OptionSpec>& GlobalOptionSpecs() {
  static const auto* const kSpecs = new std::vector<OptionSpec>{
      {"socket", "PATH",
       "hsmd's socket (default: $HSMD_SOCKET, else /run/hsmd/hsmd.sock)"},
      {"timeout", "DURATION",
       "deadline per request, e.g. 5s, 500ms (default 30s)"},
      {"json", "", "print results as JSON (proto3 JSON mapping)"},
      {"help", "", "show help", 'h'},
      {"version", "", "print hsmctl's version"},
  };
  return *kSpecs;
}

std::string GeneralHelp() {
  std::string out =
      "hsmctl: inspect and use the keys served by hsmd.\n\n"
      "Usage: hsmctl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n\n"
      "Commands:\n";
  size_t width = 0;
  for (const CommandSpec& c : AllCommands())
    width = std::max(width, c.name.size());
  for (const CommandSpec& c : AllCommands()) {
    absl::StrAppendFormat(&out, "  %-*s  %s\n", static_cast<int>(width), c.name,
                          c.summary);
  }
  absl::StrAppend(
      &out, "\nGlobal options (accepted before or after the command):\n",
      FormatOptionHelp(GlobalOptionSpecs()),
      "\nKeys are named by a pkcs11: URI (RFC 7512, e.g.\n"
      "'pkcs11:token=demo;object=ec-p256') or by the key id `hsmctl list` "
      "shows.\nhsmctl never asks for a PIN: hsmd holds it.\n\n"
      "Run 'hsmctl help COMMAND' for a command's options.\n\n",
      kExitCodeHelp);
  return out;
}

std::string CommandHelp(const CommandSpec& command) {
  std::string out = absl::StrCat("Usage: hsmctl ", command.name);
  if (!command.synopsis.empty()) absl::StrAppend(&out, " ", command.synopsis);
  absl::StrAppend(&out, "\n\n", command.summary, ".\n");
  if (!command.details.empty()) {
    absl::StrAppend(&out, "\n", command.details, "\n");
  }
  if (!command.options.empty()) {
    absl::StrAppend(&out, "\nOptions:\n", FormatOptionHelp(command.options));
  }
  absl::StrAppend(&out, "\nGlobal options:\n",
                  FormatOptionHelp(GlobalOptionSpecs()), "\n", kExitCodeHelp);
  return out;
}

int RunCommandLine(const std::vector<std::string>& args, Environment env) {
  absl::StatusOr<SplitArgs> split = SplitCommand(args);
  if (!split.ok()) return Fail(env, "", split.status());

  if (split->command.empty() || split->command == "help") {
    absl::StatusOr<ParsedArgs> leading =
        ParseArgs(split->leading, GlobalOptionSpecs());
    if (!leading.ok()) return Fail(env, "", AsUsageError(leading.status()));
    if (leading->Has("version") && split->command.empty()) {
      return PrintVersion(env);
    }
    if (split->command == "help" && !split->rest.empty()) {
      const CommandSpec* command = FindCommand(split->rest[0]);
      if (command == nullptr) {
        return Fail(
            env, "help",
            UsageError(absl::StrCat("unknown command '", split->rest[0], "'")));
      }
      *env.out << CommandHelp(*command);
      return kExitOk;
    }
    if (split->command.empty() && !leading->Has("help")) {
      *env.err << GeneralHelp();
      return kExitUsage;
    }
    *env.out << GeneralHelp();
    return kExitOk;
  }

  const CommandSpec* command = FindCommand(split->command);
  if (command == nullptr) {
    return Fail(
        env, "",
        UsageError(absl::StrCat("unknown command '", split->command, "'")));
  }
  std::vector<OptionSpec> specs = command->options;
  specs.insert(specs.end(), GlobalOptionSpecs().begin(),
               GlobalOptionSpecs().end());
  std::vector<std::string> all = split->leading;
  all.insert(all.end(), split->rest.begin(), split->rest.end());
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(all, specs);
  if (!parsed.ok()) {
    return Fail(env, command->name, AsUsageError(parsed.status()));
  }
  if (parsed->Has("help")) {
    *env.out << CommandHelp(*command);
    return kExitOk;
  }
  if (parsed->Has("version")) return PrintVersion(env);
  const size_t n = parsed->positional().size();
  if (n < command->min_positional || n > command->max_positional) {
    std::string message =
        n < command->min_positional
            ? absl::StrCat("missing argument; usage: hsmctl ", command->name,
                           " ", command->synopsis)
            : absl::StrCat("unexpected argument '",
                           parsed->positional()[command->max_positional], "'");
    return Fail(env, command->name, UsageError(message));
  }
  absl::StatusOr<GlobalOptions> globals = ResolveGlobals(*parsed, env);
  if (!globals.ok()) return Fail(env, command->name, globals.status());

  CommandContext ctx(*std::move(globals), env);
  absl::Status status = command->run(ctx, *parsed);
  ctx.out().flush();
  if (!status.ok()) return Fail(env, command->name, status);
  return ctx.exit_code();
}

}  // namespace hsmd::hsmctl
