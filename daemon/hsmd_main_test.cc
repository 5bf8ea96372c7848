// hsmd's main program as a process: flags, exit codes, socket ownership,
// and graceful shutdown on SIGTERM. Uses the real hsmd binary where no HSM
// is needed, and fake_hsmd (the same RunHsmd with fake backends) where a
// backend must serve or be slow on purpose.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/testing/signature_verifier.h"
#include "daemon/testing/subprocess.h"
#include "daemon/unix_socket.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.grpc.pb.h"

namespace hsmd {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::RunfilePath;
using testing::RunToCompletion;
using testing::Subprocess;

const absl::Duration kStartTimeout = absl::Seconds(60);
const absl::Duration kExitTimeout = absl::Seconds(60);

std::string Hsmd() { return RunfilePath("daemon/hsmd"); }
std::string FakeHsmd() { return RunfilePath("daemon/testing/fake_hsmd"); }

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

class HsmdMainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hsmdXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/hsmd.sock";
    pin_ = dir_ + "/user.pin";
    WriteFile(pin_, "1234\n", 0600);
  }
  void TearDown() override {
    ASSERT_EQ(system(absl::StrCat("rm -rf ", dir_).c_str()), 0);
  }

  void WriteFile(const std::string& path, const std::string& text,
                 mode_t mode = 0644) {
    std::ofstream(path) << text;
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }

  // A config for `module` (fake_hsmd ignores it) with a short grace period
  // unless given.
  std::string Config(const std::string& module, const std::string& extra = "") {
    std::string path = dir_ + "/hsmd.conf";
    WriteFile(path, absl::StrCat("listen { socket_path: \"", socket_,
                                 "\" socket_mode: \"0660\" }\n"
                                 "backends { name: \"hsm\" pkcs11 {\n"
                                 "  module_path: \"",
                                 module,
                                 "\"\n"
                                 "  token_label: \"t\"\n"
                                 "  pin { file: \"",
                                 pin_, "\" } } }\n", extra));
    return path;
  }

  std::unique_ptr<v1::KeyService::Stub> KeyStub() {
    return v1::KeyService::NewStub(grpc::CreateChannel(
        "unix:" + socket_, grpc::InsecureChannelCredentials()));
  }

  std::string dir_;
  std::string socket_;
  std::string pin_;
};

TEST_F(HsmdMainTest, VersionHelpAndUsageErrors) {
  std::string out, err;
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--version"}, &out, &err), 0);
  EXPECT_EQ(out, "hsmd 0.1.0\n");
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--help"}, &out, &err), 0);
  EXPECT_THAT(out, AllOf(HasSubstr("--config FILE"), HasSubstr("Exit codes"),
                         HasSubstr("--demo DIR")));
  EXPECT_EQ(*RunToCompletion({Hsmd()}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("give exactly one of --config FILE and --demo"));
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--bogus"}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("unknown argument \"--bogus\""));
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config"}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("--config needs a value"));
  EXPECT_EQ(
      *RunToCompletion({Hsmd(), "--config=x", "--socket", "/s"}, &out, &err),
      1);
}

TEST_F(HsmdMainTest, ConfigErrorsExit2NamingFileAndLine) {
  std::string path = dir_ + "/bad.conf";
  WriteFile(path, "listen {\n  socket_path: \"/x\"\n  mode: 1\n}\n");
  std::string out, err;
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config", path}, &out, &err), 2);
  EXPECT_THAT(err, AllOf(HasSubstr(path + ":3:"), HasSubstr("mode")));

  WriteFile(path, "backends { name: \"a\" pkcs11 { token_label: \"t\" } }\n");
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config", path}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("backends[0].pkcs11.module_path: is required"));

  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config", dir_ + "/missing.conf"}, &out,
                             &err),
            2);
  EXPECT_THAT(err, HasSubstr("cannot open"));
}

TEST_F(HsmdMainTest, CheckConfig) {
  std::string conf = Config("/usr/lib/softhsm/libsofthsm2.so");
  std::string out, err;
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config", conf, "--check-config"}, &out,
                             &err),
            0)
      << err;
  EXPECT_EQ(out, "config OK\n");
  EXPECT_FALSE(Exists(socket_)) << "--check-config must not listen";

  // A PIN file others can read is refused, naming path and mode, and the PIN
  // never appears.
  ASSERT_EQ(chmod(pin_.c_str(), 0644), 0);
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config", conf, "--check-config"}, &out,
                             &err),
            2);
  EXPECT_THAT(err, AllOf(HasSubstr(pin_), HasSubstr("0644"),
                         HasSubstr("backends[0].pkcs11.pin")));
  EXPECT_THAT(err + out, ::testing::Not(HasSubstr("1234")));
  ASSERT_EQ(chmod(pin_.c_str(), 0600), 0);

  conf = Config("/nonexistent/module.so");
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config", conf, "--check-config"}, &out,
                             &err),
            2);
  EXPECT_THAT(err, HasSubstr("module_path: cannot read /nonexistent"));
}

TEST_F(HsmdMainTest, BackendStartFailureExits3) {
  std::string conf = Config("/nonexistent/module.so");
  std::string out, err;
  EXPECT_EQ(*RunToCompletion({Hsmd(), "--config", conf}, &out, &err), 3);
  EXPECT_THAT(err, AllOf(HasSubstr("backend failed to start"),
                         HasSubstr("/nonexistent/module.so")));
  EXPECT_FALSE(Exists(socket_));
}

TEST_F(HsmdMainTest, SecondDaemonOnTheSameSocketExits4) {
  std::string conf = Config("/fake");
  auto first = Subprocess::Start({FakeHsmd(), "--config", conf});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(testing::WaitForSocket(**first, socket_, kStartTimeout).ok());
  struct stat st;
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  std::string out, err;
  EXPECT_EQ(*RunToCompletion({FakeHsmd(), "--config", conf}, &out, &err,
                             kExitTimeout),
            4);
  EXPECT_THAT(err, HasSubstr("another hsmd is running on " + socket_));
  // The first daemon is unharmed.
  EXPECT_TRUE(SomethingListensOn(socket_));

  (*first)->Signal(SIGTERM);
  EXPECT_EQ(*(*first)->Wait(kExitTimeout), 0);
  EXPECT_FALSE(Exists(socket_));
}

TEST_F(HsmdMainTest, StaleSocketIsReplaced) {
  // A socket file nobody listens on, as a killed daemon leaves behind.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket_.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  ASSERT_TRUE(Exists(socket_));

  auto daemon = Subprocess::Start({FakeHsmd(), "--config", Config("/fake")});
  ASSERT_TRUE(daemon.ok());
  ASSERT_TRUE(testing::WaitForSocket(**daemon, socket_, kStartTimeout).ok());
  (*daemon)->Signal(SIGINT);
  EXPECT_EQ(*(*daemon)->Wait(kExitTimeout), 0);
}

TEST_F(HsmdMainTest, SigtermLetsInFlightRequestFinish) {
  const std::string started = dir_ + "/sign-started";
  std::string conf = Config("/fake", "limits { shutdown_grace_ms: 30000 }\n");
  auto daemon = Subprocess::Start(
      {FakeHsmd(), "--config", conf},
      {"HSMD_FAKE_SIGN_DELAY_MS=1500",
       absl::StrCat("HSMD_FAKE_SIGN_STARTED_FILE=", started)});
  ASSERT_TRUE(daemon.ok());
  ASSERT_TRUE(testing::WaitForSocket(**daemon, socket_, kStartTimeout).ok());

  auto stub = KeyStub();
  // An idle second client: its open connection must not hold up shutdown.
  auto idle = KeyStub();
  {
    grpc::ClientContext context;
    v1::GenerateRandomRequest request;
    request.set_length(4);
    v1::GenerateRandomResponse response;
    ASSERT_TRUE(idle->GenerateRandom(&context, request, &response).ok());
  }
  v1::GetKeyRequest get;
  get.mutable_key()->set_uri("pkcs11:object=ec-p256");
  v1::GetKeyResponse key;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->GetKey(&context, get, &key).ok());
  }

  v1::SignRequest request;
  request.mutable_key()->set_uri("pkcs11:object=ec-p256");
  request.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  request.set_message("signed while shutting down");
  v1::SignResponse response;
  grpc::Status status;
  std::thread client([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    status = stub->Sign(&context, request, &response);
  });
  // The request is in the backend before SIGTERM is sent.
  const absl::Time limit = absl::Now() + absl::Seconds(60);
  while (!Exists(started) && absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(Exists(started));
  (*daemon)->Signal(SIGTERM);
  client.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(testing::VerifySignature(key.key().public_key_der(), request,
                                       response.signature())
                  .ok());
  absl::StatusOr<int> code = (*daemon)->Wait(kExitTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*daemon)->Stderr();
  EXPECT_FALSE(Exists(socket_)) << "socket file left behind";
  std::string log = (*daemon)->Stderr();
  EXPECT_THAT(
      log, AllOf(HasSubstr("signal received"), HasSubstr("backend shut down"),
                 HasSubstr("hsmd stopped")));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("grace period over")));
}

TEST_F(HsmdMainTest, SecondSignalDuringShutdownExitsAtOnce) {
  const std::string started = dir_ + "/sign-started";
  // A backend call far longer than the test may wait, and a grace period
  // as long: only the second signal can end the process in time.
  std::string conf = Config("/fake", "limits { shutdown_grace_ms: 600000 }\n");
  auto daemon = Subprocess::Start(
      {FakeHsmd(), "--config", conf},
      {"HSMD_FAKE_SIGN_DELAY_MS=600000",
       absl::StrCat("HSMD_FAKE_SIGN_STARTED_FILE=", started)});
  ASSERT_TRUE(daemon.ok());
  ASSERT_TRUE(testing::WaitForSocket(**daemon, socket_, kStartTimeout).ok());
  auto stub = KeyStub();
  std::thread client([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    v1::SignRequest request;
    request.mutable_key()->set_uri("pkcs11:object=ec-p256");
    request.mutable_algorithm()->mutable_ecdsa()->set_hash(
        v1::HASH_ALGORITHM_SHA256);
    request.set_message("never finishes");
    v1::SignResponse response;
    EXPECT_FALSE(stub->Sign(&context, request, &response).ok());
  });
  const absl::Time limit = absl::Now() + absl::Seconds(60);
  while (!Exists(started) && absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(Exists(started));
  (*daemon)->Signal(SIGTERM);
  // Wait until the first signal has been taken before sending the second.
  while ((*daemon)->Stderr().find("shutting down") == std::string::npos &&
         absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  (*daemon)->Signal(SIGTERM);
  absl::StatusOr<int> code = (*daemon)->Wait(kExitTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 6) << (*daemon)->Stderr();
  EXPECT_THAT((*daemon)->Stderr(), HasSubstr("second signal during shutdown"));
  client.join();
}

}  // namespace
}  // namespace hsmd
