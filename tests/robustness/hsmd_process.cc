#include "tests/robustness/hsmd_process.h"

#include <stdlib.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace hsmd::testing {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(60);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<std::string> ShortTempDir() {
  char pattern[] = "/tmp/hsmdXXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    return absl::InternalError("mkdtemp(/tmp/hsmdXXXXXX) failed");
  }
  return std::string(pattern);
}

absl::StatusOr<std::unique_ptr<Subprocess>> StartDemoHsmd(
    const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Subprocess>> daemon = Subprocess::Start(
      {RunfilePath("daemon/hsmd"), "--demo", dir});
  if (!daemon.ok()) return daemon.status();
  const std::string socket = dir + "/hsmd.sock";
  absl::Status up = WaitForSocket(**daemon, socket, kStartTimeout);
  if (!up.ok()) return up;
  std::unique_ptr<client::Client> client = NewClient(socket);
  const absl::Time limit = absl::Now() + kStartTimeout;
  absl::StatusOr<std::string> key = PublicKeyOf(*client, kDemoEcKey);
  while (!key.ok() && absl::Now() < limit && (*daemon)->Running()) {
    absl::SleepFor(absl::Milliseconds(50));
    key = PublicKeyOf(*client, kDemoEcKey);
  }
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat("hsmd --demo never served ", kDemoEcKey,
                                     ": ", key.status().message(), "\n",
                                     (*daemon)->Stderr()));
  }
  return daemon;
}

absl::StatusOr<std::unique_ptr<Subprocess>> StartHsmd(
    const std::string& config_path, const std::string& socket_path,
    const std::vector<std::string>& env) {
  absl::StatusOr<std::unique_ptr<Subprocess>> daemon = Subprocess::Start(
      {RunfilePath("daemon/hsmd"), "--config", config_path}, env);
  if (!daemon.ok()) return daemon.status();
  absl::Status up = WaitForSocket(**daemon, socket_path, kStartTimeout);
  if (!up.ok()) return up;
  return daemon;
}

std::unique_ptr<client::Client> NewClient(const std::string& socket_path) {
  client::ClientOptions options;
  options.socket_path = socket_path;
  options.max_idle_connections = 1;
  absl::StatusOr<std::unique_ptr<client::Client>> client =
      client::Client::New(options);
  return client.ok() ? *std::move(client) : nullptr;
}

absl::StatusOr<std::string> PublicKeyOf(client::Client& client,
                                        const std::string& uri) {
  v1::GetKeyRequest request;
  request.mutable_key()->set_uri(uri);
  absl::StatusOr<v1::GetKeyResponse> response = client.GetKey(request);
  if (!response.ok()) return response.status();
  return response->key().public_key_der();
}

v1::SignRequest EcdsaSignRequest(const std::string& uri,
                                 const std::string& message) {
  v1::SignRequest request;
  request.mutable_key()->set_uri(uri);
  request.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  request.set_message(message);
  return request;
}

absl::StatusOr<uint64_t> ProcMemoryBytes(pid_t pid, absl::string_view field) {
  const std::string path = absl::StrCat("/proc/", pid, "/status");
  const std::string text = ReadFile(path);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    // "VmRSS:	   12345 kB"
    if (!absl::ConsumePrefix(&line, field) || !absl::ConsumePrefix(&line, ":")) {
      continue;
    }
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumeSuffix(&line, " kB")) break;
    uint64_t kib = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kib)) break;
    return kib * 1024;
  }
  return absl::NotFoundError(absl::StrCat("no ", field, " in ", path));
}

absl::Status WaitForLog(const Subprocess& process, absl::string_view text,
                        absl::Duration timeout) {
  const absl::Time limit = absl::Now() + timeout;
  while (absl::Now() < limit) {
    if (absl::StrContains(process.Stderr(), text)) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "\"", text, "\" never appeared in the log:\n", process.Stderr()));
}

}  // namespace hsmd::testing
