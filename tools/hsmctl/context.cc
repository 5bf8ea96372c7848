#include "tools/hsmctl/context.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tools/hsmctl/output.h"

namespace hsmd::hsmctl {
namespace {

// Connecting to a local socket is immediate or fails; a long wait only
// happens when the daemon accepts but does not answer, which the call
// timeout covers.
constexpr absl::Duration kMaxConnectTimeout = absl::Seconds(5);

}  // namespace

CommandContext::CommandContext(GlobalOptions globals, Environment env)
    : globals_(std::move(globals)), env_(std::move(env)) {}

absl::StatusOr<client::Client*> CommandContext::client() {
  if (client_ == nullptr) {
    client::ClientOptions options;
    options.socket_path = globals_.socket_path;
    options.default_timeout = globals_.timeout;
    options.connect_timeout = std::min(globals_.timeout, kMaxConnectTimeout);
    absl::StatusOr<std::unique_ptr<client::Client>> created =
        env_.client_factory ? env_.client_factory(options)
                            : client::Client::New(options);
    // Only the options can make creation fail (e.g. a socket path longer
    // than a Unix socket allows): a usage error.
    if (!created.ok()) return AsUsageError(created.status());
    client_ = std::move(created).value();
  }
  return client_.get();
}

absl::Status CommandContext::PrintJson(
    const google::protobuf::Message& message) {
  ASSIGN_OR_RETURN(std::string json, ToJson(message));
  out() << json;
  out().flush();
  if (!out()) return LocalIoError("cannot write to stdout");
  return absl::OkStatus();
}

absl::StatusOr<std::string> RequiredOption(const ParsedArgs& args,
                                           absl::string_view name) {
  absl::optional<std::string> value = args.Get(name);
  if (!value.has_value()) {
    return UsageError(absl::StrCat("--", name, " is required"));
  }
  return *value;
}

}  // namespace hsmd::hsmctl
