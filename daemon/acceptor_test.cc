#include "daemon/acceptor.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

class AcceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hsmdXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/a.sock";
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr = Addr();
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(listen(fd, 16), 0);
    auto acceptor = Acceptor::New(fd, &registry_, [this](int conn, std::shared_ptr<const PeerIdentity> /*peer*/) {
      std::lock_guard<std::mutex> lock(mu_);
      handed_.push_back(conn);
      cv_.notify_all();
    });
    ASSERT_TRUE(acceptor.ok()) << acceptor.status();
    acceptor_ = *std::move(acceptor);
    acceptor_->Start();
  }
  void TearDown() override {
    acceptor_.reset();
    for (int fd : handed_) close(fd);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  sockaddr_un Addr() const {
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    return addr;
  }

  // Connects; returns the client fd (or -errno).
  int Connect() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = Addr();
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      int err = errno;
      close(fd);
      return -err;
    }
    return fd;
  }

  // Waits (bounded) until `n` connections were handed off.
  bool WaitForHandOffs(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30),
                        [&] { return handed_.size() >= n; });
  }

  std::string dir_, path_;
  ConnectionRegistry registry_;
  std::unique_ptr<Acceptor> acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> handed_;
};

TEST_F(AcceptorTest, IdentifiesRegistersAndHandsOff) {
  int c1 = Connect();
  int c2 = Connect();
  ASSERT_GE(c1, 0);
  ASSERT_GE(c2, 0);
  ASSERT_TRUE(WaitForHandOffs(2));
  EXPECT_EQ(acceptor_->accepted(), 2u);
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> ids;
  for (int fd : handed_) {
    EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0) << "fd " << fd;
    EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0) << "fd " << fd;
    std::shared_ptr<const PeerIdentity> peer =
        registry_.Lookup(absl::StrCat("fd:", fd));
    ASSERT_NE(peer, nullptr);
    EXPECT_EQ(peer->uid, getuid());
    EXPECT_EQ(peer->pid, getpid());
    ids.push_back(peer->connection_id);
  }
  EXPECT_NE(ids[0], ids[1]);
  close(c1);
  close(c2);
}

TEST_F(AcceptorTest, StopClosesTheListeningSocket) {
  acceptor_->Stop();
  acceptor_->Stop();  // Idempotent.
  EXPECT_EQ(Connect(), -ECONNREFUSED);
  EXPECT_EQ(acceptor_->accepted(), 0u);
}

}  // namespace
}  // namespace hsmd
