// Callers are identified per connection, from the kernel, and a request can
// never borrow another connection's identity: hsmctl runs as root and as
// nobody (setpriv) against an in-process hsmd with a policy that tells them
// apart, concurrently, sequentially over reused fd numbers, and while a
// request of a client that died is still in flight.
//
// Needs root (to run clients as other users) and no Bazel sandbox (its user
// namespace maps only uid 0); skips with a message otherwise.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/logging.h"
#include "daemon/testing/log_lines.h"
#include "daemon/testing/subprocess.h"
#include "daemon/testing/test_daemon.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace hsmd::testing {
namespace {

using ::testing::HasSubstr;

constexpr uid_t kNobody = 65534;
const absl::Duration kTimeout = absl::Seconds(60);

// One accepted connection, from hsmd's debug log.
struct Connection {
  uint64_t id = 0;
  int fd = -1;
  uid_t uid = 0;
};

// One audit record, from hsmd's audit trail.
struct Audit {
  uint64_t connection = 0;
  uid_t uid = 0;
  std::string method;
  std::string decision;
  std::string result;
};

class PeerIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "SKIPPED: needs root to run clients as other users";
    }
    std::string out, err;
    absl::StatusOr<int> probe =
        RunToCompletion({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                         "--clear-groups", "/bin/true"},
                        &out, &err, kTimeout);
    if (!probe.ok() || *probe != 0) {
      GTEST_SKIP() << "SKIPPED: cannot switch to uid 65534 here (Bazel "
                      "sandbox user namespace? the test needs tags = "
                      "[\"no-sandbox\"]): "
                   << err;
    }
    log::Configure(log::Level::kDebug, log::Format::kText);
    log::SetSinkForTesting([this](absl::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });

    // A directory everyone can read: hsmctl, the message to sign.
    work_ = MakeShortTempDir();
    ASSERT_EQ(chmod(work_.c_str(), 0755), 0);
    hsmctl_ = work_ + "/hsmctl";
    std::ifstream src(RunfilePath("tools/hsmctl/hsmctl"), std::ios::binary);
    std::ofstream(hsmctl_, std::ios::binary) << src.rdbuf();
    ASSERT_EQ(chmod(hsmctl_.c_str(), 0755), 0);
    message_ = work_ + "/msg";
    std::ofstream(message_) << "message to sign";
    ASSERT_EQ(chmod(message_.c_str(), 0644), 0);

    auto fake = backend::FakeBackend::New({.name = "hsm", .token_label = "t"});
    ASSERT_TRUE(fake.ok());
    fake_ = fake->get();
    v1::GenerateKeyRequest key;
    key.set_label("ec");
    key.set_key_type(v1::KEY_TYPE_EC);
    key.set_curve(v1::CURVE_P256);
    ASSERT_TRUE(fake_->GenerateKey(key, {}).ok());

    // root may sign; nobody may only draw random bytes. The socket is open
    // to all: the policy alone tells the callers apart.
    config::Config config = TestConfig();
    config.mutable_listen()->set_socket_mode("0666");
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        R"(rules { users: "0" keys: "*" operations: [SIGN, RANDOM] }
           rules { users: "nobody" operations: [RANDOM] })",
        config.mutable_policy()));
    std::vector<std::unique_ptr<backend::Backend>> backends;
    backends.push_back(*std::move(fake));
    auto daemon = TestDaemon::Start(std::move(backends), config);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
    ASSERT_EQ(chmod(daemon_->dir().c_str(), 0755), 0);
  }

  void TearDown() override {
    daemon_.reset();
    log::SetSinkForTesting(nullptr);
    log::Configure(log::Level::kInfo, log::Format::kText);
    if (!work_.empty()) {
      ASSERT_EQ(system(absl::StrCat("rm -rf ", work_).c_str()), 0);
    }
  }

  // hsmctl as `uid` (root runs it directly).
  std::unique_ptr<Subprocess> Hsmctl(uid_t uid,
                                     const std::vector<std::string>& args) {
    std::vector<std::string> argv;
    if (uid != 0) {
      argv = {"/usr/bin/setpriv", absl::StrCat("--reuid=", uid),
              absl::StrCat("--regid=", uid), "--clear-groups"};
    }
    argv.push_back(hsmctl_);
    argv.push_back("--socket");
    argv.push_back(daemon_->socket_path());
    argv.push_back("--timeout");
    argv.push_back("60s");
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(argv);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  std::vector<std::string> SignArgs() {
    return {"sign", "pkcs11:object=ec", "--alg", "ecdsa",
            "--in", message_,           "--out", "-"};
  }

  // Runs to completion; returns the exit code.
  int Run(uid_t uid, const std::vector<std::string>& args,
          std::string* err = nullptr) {
    std::unique_ptr<Subprocess> p = Hsmctl(uid, args);
    if (p == nullptr) return -1;
    absl::StatusOr<int> rc = p->Wait(kTimeout);
    if (err != nullptr) *err = p->Stderr();
    return rc.ok() ? *rc : -1;
  }

  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

  std::map<uint64_t, Connection> Connections() {
    std::map<uint64_t, Connection> out;
    for (const std::string& line : Lines()) {
      if (line.find(" msg=connection ") == std::string::npos) continue;
      Connection c;
      EXPECT_TRUE(
          absl::SimpleAtoi(LogfmtValue(line, "connection").value_or(""), &c.id))
          << line;
      EXPECT_TRUE(absl::SimpleAtoi(LogfmtValue(line, "fd").value_or(""), &c.fd))
          << line;
      EXPECT_TRUE(
          absl::SimpleAtoi(LogfmtValue(line, "uid").value_or(""), &c.uid))
          << line;
      out[c.id] = c;
    }
    return out;
  }

  std::vector<Audit> Audits() {
    std::vector<Audit> out;
    for (const std::string& line : Lines()) {
      if (line.find("\"msg\":\"audit\"") == std::string::npos) continue;
      Audit a;
      a.method = JsonValue(line, "method").value_or("");
      a.decision = JsonValue(line, "decision").value_or("");
      a.result = JsonValue(line, "result").value_or("");
      EXPECT_TRUE(
          absl::SimpleAtoi(JsonValue(line, "peer_uid").value_or(""), &a.uid))
          << line;
      EXPECT_TRUE(absl::SimpleAtoi(JsonValue(line, "connection").value_or(""),
                                   &a.connection))
          << line;
      out.push_back(a);
    }
    return out;
  }

  // Waits (bounded) until gRPC has closed the fd of connection `id`.
  void WaitForClose(const Connection& c) {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (daemon_->server().connections().Lookup(absl::StrCat("fd:", c.fd)) !=
           nullptr) {
      ASSERT_LT(absl::Now(), deadline) << "fd " << c.fd << " never closed";
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // Every audit record names the uid of the connection it arrived on.
  void ExpectAuditsMatchTheirConnections() {
    std::map<uint64_t, Connection> connections = Connections();
    for (const Audit& a : Audits()) {
      ASSERT_TRUE(connections.count(a.connection)) << a.connection;
      EXPECT_EQ(a.uid, connections[a.connection].uid)
          << a.method << " on connection " << a.connection;
      // And the policy decided by that uid.
      if (a.method == "Sign") {
        EXPECT_EQ(a.decision, a.uid == 0 ? "allow" : "deny");
      }
    }
  }

  std::string work_, hsmctl_, message_;
  backend::FakeBackend* fake_ = nullptr;
  std::unique_ptr<TestDaemon> daemon_;
  std::mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

TEST_F(PeerIdentityTest, ConcurrentClientsEachSeeTheirOwnIdentity) {
  constexpr int kEach = 8;
  std::vector<std::pair<uid_t, std::unique_ptr<Subprocess>>> clients;
  for (int i = 0; i < kEach; ++i) {
    clients.emplace_back(0, Hsmctl(0, SignArgs()));
    clients.emplace_back(kNobody, Hsmctl(kNobody, SignArgs()));
  }
  for (auto& [uid, p] : clients) {
    ASSERT_NE(p, nullptr);
    absl::StatusOr<int> rc = p->Wait(kTimeout);
    ASSERT_TRUE(rc.ok()) << rc.status();
    if (uid == 0) {
      EXPECT_EQ(*rc, 0) << p->Stderr();
      EXPECT_FALSE(p->Stdout().empty()) << "no signature";
    } else {
      EXPECT_EQ(*rc, 4) << p->Stderr();
      EXPECT_THAT(p->Stderr(),
                  HasSubstr("permission denied: uid 65534 may not sign with "
                            "pkcs11:object=ec"));
    }
  }
  std::vector<Audit> audits = Audits();
  int allowed = 0, denied = 0;
  for (const Audit& a : audits) {
    if (a.method != "Sign") continue;
    if (a.uid == 0 && a.decision == "allow" && a.result == "OK") ++allowed;
    if (a.uid == kNobody && a.decision == "deny" &&
        a.result == "PERMISSION_DENIED") {
      ++denied;
    }
  }
  EXPECT_EQ(allowed, kEach);
  EXPECT_EQ(denied, kEach);
  EXPECT_EQ(fake_->CallCount("Sign"), static_cast<uint64_t>(kEach));
  ExpectAuditsMatchTheirConnections();
}

// Connections closed and opened one after the other get the same fd
// number; the identity always follows the connection, never the number.
TEST_F(PeerIdentityTest, ReusedFdNumbersNeverCarryOldIdentities) {
  std::map<int, std::set<uid_t>> uids_by_fd;
  for (int round = 0; round < 6; ++round) {
    const uid_t uid = round % 2 == 0 ? 0 : kNobody;
    std::string err;
    const int rc = Run(uid, SignArgs(), &err);
    if (uid == 0) {
      EXPECT_EQ(rc, 0) << err;
    } else {
      EXPECT_EQ(rc, 4) << err;
      EXPECT_THAT(err, HasSubstr("uid 65534 may not sign"));
    }
    // Also allowed for both: the same request, each with its own identity.
    EXPECT_EQ(Run(uid, {"random", "8"}, &err), 0) << err;
    for (auto& [id, c] : Connections()) {
      WaitForClose(c);
      uids_by_fd[c.fd].insert(c.uid);
    }
  }
  bool reused_across_users = false;
  for (const auto& [fd, uids] : uids_by_fd) {
    if (uids.size() > 1) reused_across_users = true;
  }
  EXPECT_TRUE(reused_across_users)
      << "expected one fd number to serve both root and nobody";
  ExpectAuditsMatchTheirConnections();
  int random_by_nobody = 0;
  for (const Audit& a : Audits()) {
    if (a.method == "GenerateRandom" && a.uid == kNobody && a.result == "OK") {
      ++random_by_nobody;
    }
  }
  EXPECT_EQ(random_by_nobody, 3);
}

// A request whose client died is still running: its fd stays open (gRPC
// closes it when the last call ends), so a new connection cannot take its
// number, and the request keeps the identity it arrived with.
TEST_F(PeerIdentityTest, InFlightRequestOfADeadClientKeepsItsIdentity) {
  absl::Notification started, release;
  fake_->SetCallHook([&](absl::string_view method) {
    if (method != "Sign" || started.HasBeenNotified()) return;
    started.Notify();
    release.WaitForNotificationWithTimeout(kTimeout);
  });
  std::unique_ptr<Subprocess> root = Hsmctl(0, SignArgs());
  ASSERT_NE(root, nullptr);
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kTimeout));
  std::map<uint64_t, Connection> before = Connections();
  ASSERT_EQ(before.size(), 1u);
  const Connection in_flight = before.begin()->second;
  EXPECT_EQ(in_flight.uid, 0u);
  root->Signal(SIGKILL);
  ASSERT_TRUE(root->Wait(kTimeout).ok());

  std::string err;
  EXPECT_EQ(Run(kNobody, {"random", "8"}, &err), 0) << err;
  EXPECT_EQ(Run(kNobody, SignArgs(), &err), 4) << err;
  EXPECT_THAT(err, HasSubstr("uid 65534 may not sign"));
  for (const auto& [id, c] : Connections()) {
    if (id == in_flight.id) continue;
    EXPECT_NE(c.fd, in_flight.fd)
        << "a new connection got the fd of a connection with a live call";
    EXPECT_EQ(c.uid, kNobody);
  }
  release.Notify();
  // The released request finishes (its client is gone) as root's.
  const absl::Time deadline = absl::Now() + kTimeout;
  for (;;) {
    bool done = false;
    for (const Audit& a : Audits()) {
      if (a.connection == in_flight.id && a.method == "Sign") {
        EXPECT_EQ(a.uid, 0u);
        EXPECT_EQ(a.decision, "allow");
        done = true;
      }
    }
    if (done) break;
    ASSERT_LT(absl::Now(), deadline) << "the released Sign never finished";
    absl::SleepFor(absl::Milliseconds(10));
  }
  ExpectAuditsMatchTheirConnections();
}

}  // namespace
}  // namespace hsmd::testing
