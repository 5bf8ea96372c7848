// An in-process hsmd Server on a real Unix socket (in a fresh
// /tmp/hsmdXXXXXX directory) with gRPC C++ client stubs, for service tests.
#ifndef HSMD_DAEMON_TESTING_TEST_DAEMON_H_
#define HSMD_DAEMON_TESTING_TEST_DAEMON_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/backend/backend.h"
#include "daemon/config/config.pb.h"
#include "daemon/server.h"
#include "hsmd/v1/hsmd.grpc.pb.h"

namespace hsmd::testing {

// A valid config whose backends section names one placeholder pkcs11
// backend (the real backends are passed to TestDaemon::Start); the socket
// path is filled in by Start.
config::Config TestConfig();

// A fresh mkdtemp("/tmp/hsmdXXXXXX") directory (short enough for sockets).
std::string MakeShortTempDir();

// A client context whose deadline is `timeout` from now (a hang guard).
std::unique_ptr<grpc::ClientContext> Context(
    absl::Duration timeout = absl::Seconds(60));

class TestDaemon {
 public:
  // Starts a server for `backends` with `config` (socket_path is replaced by
  // DIR/hsmd.sock).
  static absl::StatusOr<std::unique_ptr<TestDaemon>> Start(
      std::vector<std::unique_ptr<backend::Backend>> backends,
      config::Config config = TestConfig(),
      absl::Duration health_poll_interval = absl::Milliseconds(20));
  ~TestDaemon();

  Server& server() { return *server_; }
  const std::string& socket_path() const { return socket_path_; }
  const std::string& dir() const { return dir_; }
  // A new channel (max receive size raised to 64 MiB for oversized tests).
  std::shared_ptr<grpc::Channel> NewChannel() const;
  v1::KeyService::Stub& keys() { return *keys_; }
  v1::AdminService::Stub& admin() { return *admin_; }

 private:
  TestDaemon() = default;

  std::string dir_;
  std::string socket_path_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KeyService::Stub> keys_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

}  // namespace hsmd::testing

#endif  // HSMD_DAEMON_TESTING_TEST_DAEMON_H_
