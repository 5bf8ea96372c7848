#include "daemon/peer_credentials.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST(PeerCredentialsTest, ReadsOwnCredentialsOverSocketPair) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  absl::StatusOr<PeerIdentity> peer = ReadPeerIdentity(fds[0]);
  close(fds[0]);
  close(fds[1]);
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->uid, getuid());
  EXPECT_EQ(peer->gid, getgid());
  EXPECT_EQ(peer->pid, getpid());
  EXPECT_EQ(peer->exe, SelfExe());
  EXPECT_FALSE(peer->comm.empty());
  std::vector<gid_t> expected(static_cast<size_t>(getgroups(0, nullptr)));
  getgroups(static_cast<int>(expected.size()), expected.data());
  expected.erase(std::remove(expected.begin(), expected.end(), getgid()),
                 expected.end());
  std::vector<gid_t> got = peer->groups;
  std::sort(expected.begin(), expected.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(peer->InGroup(getgid()));
  EXPECT_THAT(peer->Describe(),
              ::testing::StartsWith("uid " + std::to_string(getuid())));
}

// A child changes identity, then connects: the kernel reports the
// credentials it had at connect().
TEST(PeerCredentialsTest, ReportsAnotherUsersCredentials) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to change uid";
  // A listening abstract socket; the child connects after dropping to
  // 4242:4343 with supplementary group 4444.
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  // Random, not by pid: tests in PID namespaces share pids.
  const std::string name =
      "hsmd-peercred-test-" + std::to_string(std::random_device()());
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  // Closed (EOF) when the child exits: tells a child that gave up from one
  // that is connecting.
  int alive[2];
  ASSERT_EQ(pipe2(alive, O_CLOEXEC), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(alive[0]);
    gid_t groups[] = {4444};
    if (setgroups(1, groups) != 0 || setresgid(4343, 4343, 4343) != 0 ||
        setresuid(4242, 4242, 4242) != 0) {
      _exit(2);
    }
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      _exit(3);
    }
    char byte;
    // Stay connected until the parent has looked.
    ssize_t n = read(c, &byte, 1);
    (void)n;
    _exit(0);
  }
  close(alive[1]);
  // Bounded: a child that could not connect must not hang the test.
  pollfd pfd[2] = {{listener, POLLIN, 0}, {alive[0], POLLIN, 0}};
  absl::StatusOr<PeerIdentity> peer = absl::UnknownError("no connection");
  if (poll(pfd, 2, 30000) > 0 && (pfd[0].revents & POLLIN) != 0) {
    int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(conn, 0);
    peer = ReadPeerIdentity(conn);
    close(conn);
  } else {
    kill(child, SIGKILL);
  }
  close(listener);
  close(alive[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
    GTEST_SKIP() << "cannot change uid here (user namespace without other "
                    "ids mapped?)";
  }
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->uid, 4242u);
  EXPECT_EQ(peer->gid, 4343u);
  EXPECT_EQ(peer->pid, child);
  EXPECT_THAT(peer->groups, ::testing::ElementsAre(4444u));
  EXPECT_TRUE(peer->InGroup(4444));
  EXPECT_TRUE(peer->InGroup(4343));
  EXPECT_FALSE(peer->InGroup(0));
  EXPECT_EQ(peer->GroupList(), "4444");
}

TEST(PeerCredentialsTest, NotASocket) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  absl::StatusOr<PeerIdentity> peer = ReadPeerIdentity(p[0]);
  close(p[0]);
  close(p[1]);
  EXPECT_EQ(peer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(peer.status().message()),
              ::testing::HasSubstr("SO_PEERCRED"));
}

}  // namespace
}  // namespace hsmd
