#include "daemon/unix_socket.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

using ::testing::HasSubstr;

// A listening (or, after close, stale) socket file at `path`.
int Listen(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd, 1), 0);
  return fd;
}

class SocketPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hsmdXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ASSERT_EQ(system(absl::StrCat("rm -rf ", dir_).c_str()), 0);
  }
  std::string dir_;
};

TEST_F(SocketPathTest, CreatesDirectoryWithMode0750) {
  std::string path = absl::StrCat(dir_, "/run/hsmd/hsmd.sock");
  absl::StatusOr<std::unique_ptr<SocketPath>> socket =
      SocketPath::Prepare(path);
  ASSERT_TRUE(socket.ok()) << socket.status();
  struct stat st;
  ASSERT_EQ(stat(absl::StrCat(dir_, "/run/hsmd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(SocketPathTest, GivesTheSocketDirectoryToTheSocketGroup) {
  std::string path = absl::StrCat(dir_, "/run/hsmd/hsmd.sock");
  absl::StatusOr<std::unique_ptr<SocketPath>> socket =
      SocketPath::Prepare(path, getgid());
  ASSERT_TRUE(socket.ok()) << socket.status();
  struct stat st;
  ASSERT_EQ(stat(absl::StrCat(dir_, "/run/hsmd").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, getgid());
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(SocketPathTest, ListensWithCloseOnExecAndPrivateMode) {
  std::string path = absl::StrCat(dir_, "/hsmd.sock");
  auto socket = SocketPath::Prepare(path);
  ASSERT_TRUE(socket.ok());
  absl::StatusOr<int> fd = (*socket)->Listen(4);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_NE(fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(fcntl(*fd, F_GETFL) & O_NONBLOCK, 0);
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  // Owner only until SetPermissions.
  EXPECT_EQ(st.st_mode & 0077, 0u);
  EXPECT_TRUE(SomethingListensOn(path));
  // Binding again fails with a clear message.
  absl::StatusOr<int> again = (*socket)->Listen(4);
  EXPECT_THAT(std::string(again.status().message()),
              HasSubstr("cannot bind " + path));
  close(*fd);
}

TEST_F(SocketPathTest, SecondPrepareIsRefusedWhileLocked) {
  std::string path = absl::StrCat(dir_, "/hsmd.sock");
  auto first = SocketPath::Prepare(path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = SocketPath::Prepare(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("another hsmd is running"));
  first->reset();
  EXPECT_TRUE(SocketPath::Prepare(path).ok());
}

TEST_F(SocketPathTest, RefusesWhenSomethingListens) {
  std::string path = absl::StrCat(dir_, "/hsmd.sock");
  int fd = Listen(path);
  EXPECT_TRUE(SomethingListensOn(path));
  auto socket = SocketPath::Prepare(path);
  EXPECT_EQ(socket.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(socket.status().message()),
              HasSubstr("another process is listening on"));
  close(fd);
}

TEST_F(SocketPathTest, RemovesStaleSocket) {
  std::string path = absl::StrCat(dir_, "/hsmd.sock");
  close(Listen(path));  // The file stays; nobody listens.
  EXPECT_FALSE(SomethingListensOn(path));
  auto socket = SocketPath::Prepare(path);
  ASSERT_TRUE(socket.ok()) << socket.status();
  struct stat st;
  EXPECT_NE(lstat(path.c_str(), &st), 0);
}

TEST_F(SocketPathTest, RefusesNonSocketFile) {
  std::string path = absl::StrCat(dir_, "/hsmd.sock");
  close(open(path.c_str(), O_CREAT | O_WRONLY, 0600));
  auto socket = SocketPath::Prepare(path);
  EXPECT_EQ(socket.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(socket.status().message()),
              HasSubstr("is not a socket"));
}

TEST_F(SocketPathTest, SetsPermissionsAndRemoves) {
  std::string path = absl::StrCat(dir_, "/hsmd.sock");
  auto socket = SocketPath::Prepare(path);
  ASSERT_TRUE(socket.ok());
  int fd = Listen(path);
  ASSERT_TRUE((*socket)->SetPermissions(0660, getgid()).ok());
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, getgid());
  (*socket)->RemoveSocket();
  EXPECT_NE(lstat(path.c_str(), &st), 0);
  close(fd);
}

TEST_F(SocketPathTest, RejectsOverlongPath) {
  auto socket = SocketPath::Prepare("/tmp/" + std::string(120, 'a'));
  EXPECT_EQ(socket.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hsmd
