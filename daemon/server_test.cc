// Server's systemd notifications (READY only once every backend serves,
// STATUS on changes, WATCHDOG pings, STOPPING) and its socket handling:
// permissions and group of a socket it binds, an activated socket it is
// given.
#include "daemon/server.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/testing/test_daemon.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Duration kTimeout = absl::Seconds(30);

class Notes {
 public:
  void Add(const std::string& state) {
    std::lock_guard<std::mutex> lock(mu_);
    notes_.push_back(state);
  }
  std::vector<std::string> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return notes_;
  }
  int Count(absl::string_view prefix) {
    int n = 0;
    for (const std::string& s : Get()) n += absl::StartsWith(s, prefix);
    return n;
  }
  // Waits (bounded) until `count` notes start with `prefix`.
  bool WaitFor(absl::string_view prefix, int count = 1) {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (Count(prefix) < count) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> notes_ ABSL_GUARDED_BY(mu_);
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeShortTempDir();
    auto fake = backend::FakeBackend::New({.name = "hsm", .serving = false});
    ASSERT_TRUE(fake.ok());
    fake_ = fake->get();
    backends_.push_back(*std::move(fake));
    options_.config = testing::TestConfig();
    options_.config.mutable_listen()->set_socket_path(dir_ + "/hsmd.sock");
    options_.config_path = "test.conf";
    options_.health_poll_interval = absl::Milliseconds(10);
    options_.notify = [this](const std::string& s) { notes_.Add(s); };
    options_.audit_output = AuditLog::Output::kOff;
  }
  void TearDown() override {
    server_.reset();
    ASSERT_EQ(system(absl::StrCat("rm -rf ", dir_).c_str()), 0);
  }

  void Start() {
    auto server = Server::New(std::move(options_), std::move(backends_));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->Start().ok());
  }

  std::string dir_;
  backend::FakeBackend* fake_ = nullptr;
  std::vector<std::unique_ptr<backend::Backend>> backends_;
  ServerOptions options_;
  Notes notes_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, ReadyOnlyOnceEveryBackendServes) {
  Start();
  // Polls happen every 10 ms; give it many of them: still not ready.
  for (int i = 0; i < 20 && !server_->serving(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(notes_.Get(), Not(Contains(HasSubstr("READY=1"))));
  const int not_serving = notes_.Count("STATUS=not serving");
  fake_->SetServing(true);
  ASSERT_TRUE(notes_.WaitFor("READY=1\nSTATUS=serving"));
  fake_->SetServing(false, "token removed");
  ASSERT_TRUE(notes_.WaitFor("STATUS=not serving", not_serving + 1));
  fake_->SetServing(true);
  ASSERT_TRUE(notes_.WaitFor("STATUS=serving"));
  EXPECT_EQ(notes_.Count("READY=1"), 1) << "READY is sent once";
  server_->Shutdown(absl::Seconds(1));
  EXPECT_EQ(notes_.Count("STOPPING=1"), 1);
}

TEST_F(ServerTest, WatchdogPings) {
  options_.watchdog_interval = absl::Milliseconds(20);
  Start();
  ASSERT_TRUE(notes_.WaitFor("WATCHDOG=1", 3));
  server_->Shutdown(absl::Seconds(1));
  const int after_shutdown = notes_.Count("WATCHDOG=1");
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(notes_.Count("WATCHDOG=1"), after_shutdown)
      << "no pings once stopped";
}

TEST_F(ServerTest, BindsItsSocketWithTheConfiguredModeAndRemovesIt) {
  options_.config.mutable_listen()->set_socket_mode("0640");
  Start();
  struct stat st;
  const std::string path = dir_ + "/hsmd.sock";
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  server_->Shutdown(absl::Seconds(1));
  EXPECT_NE(lstat(path.c_str(), &st), 0);
}

TEST_F(ServerTest, ServesAnActivatedSocketAndLeavesItAlone) {
  const std::string path = dir_ + "/hsmd.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  ASSERT_EQ(chmod(path.c_str(), 0604), 0);
  options_.listen_fd = fd;
  fake_->SetServing(true);
  Start();
  EXPECT_EQ(server_->socket_path(), path);
  // Served: a GetStatus over the activated socket.
  auto channel = grpc::CreateChannel(absl::StrCat("unix:", path),
                                     grpc::InsecureChannelCredentials());
  auto admin = v1::AdminService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
  v1::GetStatusResponse status;
  grpc::Status s = admin->GetStatus(&context, {}, &status);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(server_->connections().size(), 1u);
  server_->Shutdown(absl::Seconds(1));
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0) << "the owner's socket is left";
  EXPECT_EQ(st.st_mode & 07777, 0604u) << "and its mode untouched";
}

}  // namespace
}  // namespace hsmd
