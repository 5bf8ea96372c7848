#include "daemon/connection_registry.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

struct Pair {
  Pair() {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
  }
  ~Pair() {
    close(fd[0]);
    close(fd[1]);
  }
  int fd[2];
};

PeerIdentity Identity(uid_t uid) {
  PeerIdentity p;
  p.uid = uid;
  p.gid = uid;
  p.pid = 1;
  return p;
}

TEST(ConnectionRegistryTest, FindsTheRegisteredIdentityByGrpcPeerName) {
  ConnectionRegistry registry;
  Pair a, b;
  auto ida = registry.Register(a.fd[0], Identity(1000));
  auto idb = registry.Register(b.fd[0], Identity(2000));
  ASSERT_TRUE(ida.ok() && idb.ok());
  EXPECT_NE((*ida)->connection_id, (*idb)->connection_id);
  std::shared_ptr<const PeerIdentity> found =
      registry.Lookup(absl::StrCat("fd:", a.fd[0]));
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->uid, 1000u);
  found = registry.Lookup(absl::StrCat("fd:", b.fd[0]));
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->uid, 2000u);
  EXPECT_EQ(registry.size(), 2u);
}

TEST(ConnectionRegistryTest, OtherPeerNamesAreUnidentified) {
  ConnectionRegistry registry;
  Pair a;
  ASSERT_TRUE(registry.Register(a.fd[0], Identity(1000)).ok());
  EXPECT_EQ(registry.Lookup("unix:/run/hsmd/hsmd.sock"), nullptr);
  EXPECT_EQ(registry.Lookup("ipv4:127.0.0.1:5000"), nullptr);
  EXPECT_EQ(registry.Lookup("fd:"), nullptr);
  EXPECT_EQ(registry.Lookup("fd:x1"), nullptr);
  EXPECT_EQ(registry.Lookup("fd:-1"), nullptr);
  EXPECT_EQ(registry.Lookup(absl::StrCat("fd:", a.fd[1])), nullptr);
}

// The fd number of a closed connection comes back for another socket: the
// old identity must not answer for it.
TEST(ConnectionRegistryTest, ReusedFdNumberNeverYieldsTheOldIdentity) {
  ConnectionRegistry registry;
  Pair first;
  const int n = first.fd[0];
  ASSERT_TRUE(registry.Register(n, Identity(1000)).ok());
  // Another socket takes the same number (as accept() would after gRPC
  // closed the old one).
  Pair second;
  ASSERT_EQ(dup2(second.fd[0], n), n);
  EXPECT_EQ(registry.Lookup(absl::StrCat("fd:", n)), nullptr);
  EXPECT_EQ(registry.size(), 0u) << "the stale entry is dropped";
  // Registered anew, the number answers with the new identity.
  auto again = registry.Register(n, Identity(2000));
  ASSERT_TRUE(again.ok());
  std::shared_ptr<const PeerIdentity> found =
      registry.Lookup(absl::StrCat("fd:", n));
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->uid, 2000u);
}

TEST(ConnectionRegistryTest, ClosedFdIsUnidentified) {
  ConnectionRegistry registry;
  int fd[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
  ASSERT_TRUE(registry.Register(fd[0], Identity(1000)).ok());
  const int n = fd[0];
  close(fd[0]);
  close(fd[1]);
  EXPECT_EQ(registry.Lookup(absl::StrCat("fd:", n)), nullptr);
  EXPECT_FALSE(registry.Register(n, Identity(1)).ok());
}

}  // namespace
}  // namespace hsmd
