#include "daemon/systemd.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

using ::testing::HasSubstr;

class SystemdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hsmdXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    ASSERT_EQ(system(absl::StrCat("rm -rf ", dir_).c_str()), 0);
  }

  int Bound(int type, const std::string& path, bool listening) {
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    if (listening) {
      EXPECT_EQ(listen(fd, 4), 0);
    }
    return fd;
  }

  // Puts `fd` at SD_LISTEN_FDS_START (and copies after it for count > 1),
  // keeping what was there, and sets the variables systemd would.
  void Activate(int fd, int count = 1) {
    for (int i = 0; i < count; ++i) {
      const int target = SD_LISTEN_FDS_START + i;
      saved_.push_back(target == fd ? -1 : fcntl(target, F_DUPFD_CLOEXEC, 100));
      if (target != fd) {
        ASSERT_EQ(dup2(fd, target), target);
      }
    }
    if (fd >= SD_LISTEN_FDS_START + count || fd < SD_LISTEN_FDS_START) {
      close(fd);
    }
    setenv("LISTEN_FDS", std::to_string(count).c_str(), 1);
    setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  }
  void Restore() {
    for (size_t i = 0; i < saved_.size(); ++i) {
      const int target = SD_LISTEN_FDS_START + static_cast<int>(i);
      if (saved_[i] >= 0) {
        dup2(saved_[i], target);
        close(saved_[i]);
      } else {
        close(target);
      }
    }
    saved_.clear();
  }

  std::string dir_;
  std::vector<int> saved_;
};

TEST_F(SystemdTest, NotActivated) {
  unsetenv("LISTEN_FDS");
  absl::StatusOr<std::optional<int>> fd = TakeActivatedSocket(dir_ + "/s");
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_FALSE(fd->has_value());
}

TEST_F(SystemdTest, TakesTheActivatedSocket) {
  const std::string path = dir_ + "/hsmd.sock";
  Activate(Bound(SOCK_STREAM, path, true));
  absl::StatusOr<std::optional<int>> fd = TakeActivatedSocket(path);
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(fd->has_value());
  EXPECT_EQ(**fd, SD_LISTEN_FDS_START);
  EXPECT_EQ(getenv("LISTEN_FDS"), nullptr) << "variables are consumed";
  Restore();
}

TEST_F(SystemdTest, RefusesAnotherPath) {
  Activate(Bound(SOCK_STREAM, dir_ + "/other.sock", true));
  absl::StatusOr<std::optional<int>> fd = TakeActivatedSocket(dir_ + "/s");
  Restore();
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(fd.status().message()),
              HasSubstr("bound to \"" + dir_ + "/other.sock\""));
}

TEST_F(SystemdTest, RefusesNonListeningAndDatagramSockets) {
  Activate(Bound(SOCK_DGRAM, dir_ + "/d.sock", false));
  absl::StatusOr<std::optional<int>> fd = TakeActivatedSocket(dir_ + "/d.sock");
  Restore();
  EXPECT_THAT(std::string(fd.status().message()),
              HasSubstr("listening AF_UNIX stream socket"));
}

TEST_F(SystemdTest, RefusesSeveralSockets) {
  Activate(Bound(SOCK_STREAM, dir_ + "/s", true), /*count=*/2);
  absl::StatusOr<std::optional<int>> fd = TakeActivatedSocket(dir_ + "/s");
  Restore();
  EXPECT_THAT(std::string(fd.status().message()), HasSubstr("2 sockets"));
}

TEST_F(SystemdTest, NotifiesTheNotifySocket) {
  NotifySystemd("READY=1");  // No socket: nothing happens.
  const std::string path = dir_ + "/notify";
  int fd = Bound(SOCK_DGRAM, path, false);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(SystemdNotifyEnabled());
  NotifySystemd("READY=1\nSTATUS=serving");
  pollfd pfd = {fd, POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 30000), 1);
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  close(fd);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)),
            "READY=1\nSTATUS=serving");
}

TEST_F(SystemdTest, WatchdogIntervalIsHalfTheTimeout) {
  EXPECT_EQ(WatchdogPingInterval(), absl::ZeroDuration());
  setenv("WATCHDOG_USEC", "3000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  EXPECT_EQ(WatchdogPingInterval(), absl::Milliseconds(1500));
  // For another process: not ours.
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  EXPECT_EQ(WatchdogPingInterval(), absl::ZeroDuration());
}

}  // namespace
}  // namespace hsmd
