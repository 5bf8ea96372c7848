#include "daemon/testing/test_daemon.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace hsmd::testing {

config::Config TestConfig() {
  config::Config config;
  config::Backend* b = config.add_backends();
  b->set_name("test");
  b->mutable_pkcs11()->set_module_path("/nonexistent/test-module.so");
  b->mutable_pkcs11()->set_token_label("test");
  b->mutable_pkcs11()->mutable_pin()->set_file("/nonexistent/test.pin");
  config.mutable_limits()->set_shutdown_grace_ms(2000);
  return config;
}

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

std::string MakeShortTempDir() {
  char tmpl[] = "/tmp/hsmdXXXXXX";
  if (mkdtemp(tmpl) == nullptr) std::abort();
  return tmpl;
}

absl::StatusOr<std::unique_ptr<TestDaemon>> TestDaemon::Start(
    std::vector<std::unique_ptr<backend::Backend>> backends,
    config::Config config, absl::Duration health_poll_interval) {
  std::unique_ptr<TestDaemon> daemon(new TestDaemon);
  daemon->dir_ = MakeShortTempDir();
  daemon->socket_path_ = absl::StrCat(daemon->dir_, "/hsmd.sock");
  config.mutable_listen()->set_socket_path(daemon->socket_path_);
  ServerOptions options;
  options.config = std::move(config);
  options.config_path = "test.conf";
  options.health_poll_interval = health_poll_interval;
  ASSIGN_OR_RETURN(daemon->server_,
                   Server::New(std::move(options), std::move(backends)));
  RETURN_IF_ERROR(daemon->server_->Start());
  daemon->channel_ = daemon->NewChannel();
  daemon->keys_ = v1::KeyService::NewStub(daemon->channel_);
  daemon->admin_ = v1::AdminService::NewStub(daemon->channel_);
  return daemon;
}

std::shared_ptr<grpc::Channel> TestDaemon::NewChannel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(absl::StrCat("unix:", socket_path_),
                                   grpc::InsecureChannelCredentials(), args);
}

TestDaemon::~TestDaemon() {
  keys_.reset();
  admin_.reset();
  channel_.reset();
  if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  server_.reset();
  // The socket is gone after shutdown; the lock file and directory remain.
  unlink(absl::StrCat(socket_path_, ".lock").c_str());
  rmdir(dir_.c_str());
}

}  // namespace hsmd::testing
