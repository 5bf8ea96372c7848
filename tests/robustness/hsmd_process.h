// Real hsmd processes for the robustness tests: the demo token made by
// `hsmd --demo`, hsmd run with a config of the test's own, and the
// daemon's memory read from /proc.
#ifndef HSMD_TESTS_ROBUSTNESS_HSMD_PROCESS_H_
#define HSMD_TESTS_ROBUSTNESS_HSMD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client_lib/client.h"
#include "daemon/testing/subprocess.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::testing {

inline constexpr char kDemoEcKey[] =
    "pkcs11:token=demo;object=ec-p256;type=private";

// A fresh mkdtemp("/tmp/hsmdXXXXXX") directory, short enough for sockets.
absl::StatusOr<std::string> ShortTempDir();

// Starts `hsmd --demo DIR` and waits until it serves kDemoEcKey (the demo
// keys exist then).
absl::StatusOr<std::unique_ptr<Subprocess>> StartDemoHsmd(
    const std::string& dir);

// Starts `hsmd --config CONFIG` with `env` added and waits for its socket.
absl::StatusOr<std::unique_ptr<Subprocess>> StartHsmd(
    const std::string& config_path, const std::string& socket_path,
    const std::vector<std::string>& env = {});

// A client_lib client of the daemon at `socket_path` keeping at most one
// idle connection, so each client is one connection.
std::unique_ptr<client::Client> NewClient(const std::string& socket_path);

// The public key (DER SubjectPublicKeyInfo) of `uri`, asked of the daemon.
absl::StatusOr<std::string> PublicKeyOf(client::Client& client,
                                        const std::string& uri);

// An ECDSA-with-SHA-256 SignRequest for `uri` over `message`.
v1::SignRequest EcdsaSignRequest(const std::string& uri,
                                 const std::string& message);

// A field of /proc/PID/status in bytes ("VmRSS", "VmHWM").
absl::StatusOr<uint64_t> ProcMemoryBytes(pid_t pid, absl::string_view field);

// Waits until the process's stderr (hsmd's log) contains `text`.
absl::Status WaitForLog(const Subprocess& process, absl::string_view text,
                        absl::Duration timeout);

}  // namespace hsmd::testing

#endif  // HSMD_TESTS_ROBUSTNESS_HSMD_PROCESS_H_
