// What every hsmctl command runs with: the global options, the standard
// streams, a lazily created hsmd client, and the command table entry type.
#ifndef HSMD_TOOLS_HSMCTL_CONTEXT_H_
#define HSMD_TOOLS_HSMCTL_CONTEXT_H_

#include <functional>
#include <istream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client_lib/client.h"
#include "google/protobuf/message.h"
#include "tools/hsmctl/args.h"
#include "tools/hsmctl/exit_codes.h"

namespace hsmd::hsmctl {

inline constexpr absl::Duration kDefaultTimeout = absl::Seconds(30);

struct GlobalOptions {
  std::string socket_path = std::string(client::kDefaultSocketPath);
  absl::Duration timeout = kDefaultTimeout;
  bool json = false;
};

using ClientFactory =
    std::function<absl::StatusOr<std::unique_ptr<client::Client>>(
        const client::ClientOptions&)>;

// The process's surroundings, injectable for tests.
struct Environment {
  std::istream* in = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  bool stdin_is_tty = false;
  // $HSMD_SOCKET, if set and non-empty.
  absl::optional<std::string> socket_from_env;
  // Defaults to client::Client::New.
  ClientFactory client_factory;
};

class CommandContext {
 public:
  CommandContext(GlobalOptions globals, Environment env);

  const GlobalOptions& globals() const { return globals_; }
  bool json() const { return globals_.json; }
  std::istream& in() { return *env_.in; }
  std::ostream& out() { return *env_.out; }
  std::ostream& err() { return *env_.err; }
  bool stdin_is_tty() const { return env_.stdin_is_tty; }

  // The hsmd client, created on first use (creation does not connect).
  absl::StatusOr<client::Client*> client();

  // Writes `message` as JSON to stdout.
  absl::Status PrintJson(const google::protobuf::Message& message);

  // For results that are not failures but still need a non-zero exit
  // (verify: signature mismatch).
  void set_exit_code(ExitCode code) { exit_code_ = code; }
  ExitCode exit_code() const { return exit_code_; }

 private:
  GlobalOptions globals_;
  Environment env_;
  std::unique_ptr<client::Client> client_;
  ExitCode exit_code_ = kExitOk;
};

// One subcommand: its help and its handler. `options` excludes the global
// options, which every command also accepts.
struct CommandSpec {
  std::string name;
  // Positional arguments and required options, e.g. "URI --alg ALG ...".
  std::string synopsis;
  // One line for the command list.
  std::string summary;
  // Further paragraphs for `hsmctl help COMMAND` (may be empty).
  std::string details;
  std::vector<OptionSpec> options;
  size_t min_positional = 0;
  size_t max_positional = 0;
  std::function<absl::Status(CommandContext&, const ParsedArgs&)> run;
};

// Reads an option that must be present, or a usage error naming it.
absl::StatusOr<std::string> RequiredOption(const ParsedArgs& args,
                                           absl::string_view name);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_CONTEXT_H_
