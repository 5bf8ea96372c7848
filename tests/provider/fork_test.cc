// Fork safety of hsmproxy.so with a real hsmd, the way applications use it:
// providers loaded into the default library context. Every child runs under
// an alarm() watchdog, so a hang fails the test instead of blocking it.
//
// Every scenario that signs runs with an EC or RSA key and, as the *Sm2
// tests, with an SM2 key on the demo's SDF device.
//
// Includes the seed project's acceptance test (test_fork_basic.c): the
// parent loads the provider and calls RAND_bytes, forks, the child calls
// RAND_bytes twice, and the parent keeps working; here RAND_bytes is served
// by hsmproxy's RAND, so it really crosses the fork.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/store.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/provider/demo_daemon.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {
namespace {

constexpr int kChildWatchdogSeconds = 20;
const char kEcUri[] = "pkcs11:token=demo;object=ec-p256;type=private";
const char kRsaUri[] = "pkcs11:token=demo;object=rsa-2048;type=private";
// An SM2 key on the demo's software SDF device.
const char kSm2Uri[] = "sdf:device=soft0;index=1;usage=sign";

class ForkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alarm(900);
    absl::StatusOr<std::unique_ptr<DemoDaemon>> daemon = DemoDaemon::Start();
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = daemon->release();
    setenv("HSMPROXY_SOCKET", daemon_->socket_path().c_str(), 1);
    provider_dir_ = new std::string(RunfilePath("proxy_provider"));
    ASSERT_EQ(
        OSSL_PROVIDER_set_default_search_path(nullptr, provider_dir_->c_str()),
        1);
    ASSERT_NE(OSSL_PROVIDER_load(nullptr, "hsmproxy"), nullptr)
        << DrainErrors();
    ASSERT_NE(OSSL_PROVIDER_load(nullptr, "default"), nullptr);
    // RAND_bytes is served by hsmproxy's RAND (batches from the HSM).
    ASSERT_EQ(RAND_set_DRBG_type(nullptr, "HSMPROXY-RAND", "provider=hsmproxy",
                                 nullptr, nullptr),
              1);
  }

  static void TearDownTestSuite() {
    // Unloaded so OpenSSL's exit-time cleanup tears the provider down (a
    // provider still loaded by the application is left alone).
    OSSL_PROVIDER_unload(hsmproxy_);
    OSSL_PROVIDER_unload(default_);
    delete daemon_;
    delete provider_dir_;
  }

  static EvpPkeyPtr Key(const char* uri) {
    absl::StatusOr<EvpPkeyPtr> key =
        LoadKey(nullptr, uri, OSSL_STORE_INFO_PKEY);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? std::move(*key) : nullptr;
  }

  // The key's public half in the default provider. Made before forking:
  // decoding takes OpenSSL-internal write locks, which a child forked while
  // another thread holds one would inherit locked (OpenSSL 3.0 has no fork
  // handlers for its own locks; see README).
  static EvpPkeyPtr PublicKey(EVP_PKEY* key) {
    return PublicKeyFromSpki(nullptr, SpkiOf(key));
  }

  // Signs `message` with `key` and verifies the signature with `pub` alone;
  // 0 on success (usable as a child's exit code). SM2 keys sign with SM3,
  // verified with GM/T 0009's default ID (hsmproxy's default for HSM keys).
  static int SignAndVerify(EVP_PKEY* key, EVP_PKEY* pub,
                           const std::string& message) {
    bool sm2 = EVP_PKEY_is_a(key, "SM2");
    const char* md = sm2 ? "SM3" : "SHA256";
    absl::StatusOr<std::string> sig = DigestSign(nullptr, key, md, message);
    if (!sig.ok()) {
      std::fprintf(stderr, "sign failed: %s\n",
                   sig.status().ToString().c_str());
      return 1;
    }
    CtxSetup setup = nullptr;
    if (sm2) {
      setup = [](EVP_PKEY_CTX* c) {
        return EVP_PKEY_CTX_ctrl_str(c, "distid", "1234567812345678") > 0;
      };
    }
    absl::StatusOr<bool> ok =
        DigestVerify(nullptr, pub, md, message, *sig, setup);
    if (!ok.ok() || !*ok) {
      std::fprintf(stderr, "signature does not verify\n");
      return 2;
    }
    return 0;
  }

  // The scenarios, run with each key type.
  void SeedAcceptanceSignatures(const char* uri);
  void ThousandSequentialForks(const char* uri);
  void ForkWhileFourThreadsSign(const char* uri);
  void DoubleFork(const char* uri);
  void ForkThenExecOpenssl(const char* uri);
  void ChildrenExitWithoutUsingTheProvider(const char* uri);
  void ParentOnlyLoadedTheKey(const char* uri);

  static DemoDaemon* daemon_;
  static std::string* provider_dir_;
  static OSSL_PROVIDER* hsmproxy_;
  static OSSL_PROVIDER* default_;
};

DemoDaemon* ForkTest::daemon_ = nullptr;
OSSL_PROVIDER* ForkTest::hsmproxy_ = nullptr;
OSSL_PROVIDER* ForkTest::default_ = nullptr;
std::string* ForkTest::provider_dir_ = nullptr;

std::string Bytes32() {
  unsigned char out[32];
  if (RAND_bytes(out, sizeof(out)) != 1) return "";
  return std::string(reinterpret_cast<char*>(out), sizeof(out));
}

TEST_F(ForkTest, SeedAcceptanceRandBytes) {
  std::string before = Bytes32();
  ASSERT_EQ(before.size(), 32u) << DrainErrors();
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(kChildWatchdogSeconds);
    close(pipe_fds[0]);
    std::string first = Bytes32();
    std::string second = Bytes32();
    if (first.size() != 32 || second.size() != 32 || first == second) _exit(1);
    if (write(pipe_fds[1], first.data(), first.size()) != 32) _exit(2);
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string child(32, '\0');
  ssize_t got = read(pipe_fds[0], child.data(), child.size());
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_EQ(got, 32);
  // The parent keeps working, and never hands out the child's bytes: the
  // child did not reuse the parent's buffered random bytes.
  std::string after = Bytes32();
  ASSERT_EQ(after.size(), 32u) << DrainErrors();
  EXPECT_NE(after, child);
  EXPECT_NE(after, before);
}

TEST_F(ForkTest, SeedAcceptanceSignatures) { SeedAcceptanceSignatures(kEcUri); }
TEST_F(ForkTest, SeedAcceptanceSignaturesSm2) {
  SeedAcceptanceSignatures(kSm2Uri);
}

void ForkTest::SeedAcceptanceSignatures(const char* uri) {
  EvpPkeyPtr key = Key(uri);
  EvpPkeyPtr pub = PublicKey(key.get());
  ASSERT_EQ(SignAndVerify(key.get(), pub.get(), "parent before fork"), 0);
  std::string result = RunInChild(
      [&] {
        if (SignAndVerify(key.get(), pub.get(), "child 1") != 0) return 1;
        return SignAndVerify(key.get(), pub.get(), "child 2");
      },
      kChildWatchdogSeconds);
  EXPECT_EQ(result, "");
  EXPECT_EQ(SignAndVerify(key.get(), pub.get(), "parent after fork"), 0);
}

// ECDH: the parent loads the HSM key and derives; children derive with the
// same loaded key over their own connection, and the parent goes on. Every
// secret equals the one the software peer computes with the HSM key's
// public half.
TEST_F(ForkTest, ChildDerivesWithTheParentsKey) {
  EvpPkeyPtr key = Key(kEcUri);
  ASSERT_NE(key, nullptr);
  EvpPkeyPtr pub = PublicKey(key.get());
  EvpPkeyPtr peer(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  ASSERT_NE(peer, nullptr);
  EvpPkeyPtr peer_public = PublicKeyFromSpki(nullptr, SpkiOf(peer.get()));
  absl::StatusOr<std::string> expected =
      PkeyDerive(nullptr, peer.get(), pub.get());
  ASSERT_TRUE(expected.ok()) << expected.status();
  absl::StatusOr<std::string> parent =
      PkeyDerive(nullptr, key.get(), peer_public.get());
  ASSERT_TRUE(parent.ok()) << parent.status();
  EXPECT_EQ(*parent, *expected);
  const std::string want = *expected;
  for (int i = 0; i < 3; ++i) {
    std::string result = RunInChild(
        [&] {
          absl::StatusOr<std::string> secret =
              PkeyDerive(nullptr, key.get(), peer_public.get());
          if (!secret.ok()) {
            std::fprintf(stderr, "derive failed: %s\n",
                         secret.status().ToString().c_str());
            return 1;
          }
          return *secret == want ? 0 : 2;
        },
        kChildWatchdogSeconds);
    EXPECT_EQ(result, "") << "child " << i;
  }
  parent = PkeyDerive(nullptr, key.get(), peer_public.get());
  ASSERT_TRUE(parent.ok()) << parent.status();
  EXPECT_EQ(*parent, want);
}

TEST_F(ForkTest, ThousandSequentialForks) { ThousandSequentialForks(kEcUri); }
TEST_F(ForkTest, ThousandSequentialForksSm2) {
  ThousandSequentialForks(kSm2Uri);
}

void ForkTest::ThousandSequentialForks(const char* uri) {
  EvpPkeyPtr key = Key(uri);
  EvpPkeyPtr pub = PublicKey(key.get());
  ASSERT_EQ(SignAndVerify(key.get(), pub.get(), "warm-up"), 0);
  int failures = 0;
  std::string first_failure;
  for (int i = 0; i < 1000; ++i) {
    std::string result = RunInChild(
        [&] {
          return SignAndVerify(key.get(), pub.get(), absl::StrCat("child ", i));
        },
        kChildWatchdogSeconds);
    if (!result.empty()) {
      if (failures++ == 0)
        first_failure = absl::StrCat("child ", i, ": ", result);
    }
  }
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_EQ(SignAndVerify(key.get(), pub.get(), "parent after"), 0);
}

TEST_F(ForkTest, ForkWhileFourThreadsSign) { ForkWhileFourThreadsSign(kEcUri); }
TEST_F(ForkTest, ForkWhileFourThreadsSignSm2) {
  ForkWhileFourThreadsSign(kSm2Uri);
}

void ForkTest::ForkWhileFourThreadsSign(const char* uri) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer runtimes' own allocator locks are not fork-safe: a child
  // forked while another thread is inside malloc hangs before reaching any
  // hsmproxy code.
  GTEST_SKIP() << "fork with busy threads is not supported by the sanitizer";
#endif
  EvpPkeyPtr key = Key(uri);
  EvpPkeyPtr pub = PublicKey(key.get());
  std::atomic<bool> stop{false};
  std::atomic<int> thread_failures{0};
  std::atomic<int> thread_signatures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        if (SignAndVerify(key.get(), pub.get(),
                          absl::StrCat("thread ", t, " ", i)) != 0) {
          thread_failures++;
        }
        thread_signatures++;
      }
    });
  }
  int failures = 0;
  std::string first_failure;
  for (int i = 0; i < 100; ++i) {
    std::string result = RunInChild(
        [&] {
          if (SignAndVerify(key.get(), pub.get(), "child a") != 0) return 1;
          return SignAndVerify(key.get(), pub.get(), "child b");
        },
        kChildWatchdogSeconds);
    if (!result.empty() && failures++ == 0) {
      first_failure = absl::StrCat("fork ", i, ": ", result);
    }
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_EQ(thread_failures.load(), 0);
  EXPECT_GT(thread_signatures.load(), 0);
}

TEST_F(ForkTest, DoubleFork) { DoubleFork(kRsaUri); }
TEST_F(ForkTest, DoubleForkSm2) { DoubleFork(kSm2Uri); }

void ForkTest::DoubleFork(const char* uri) {
  EvpPkeyPtr key = Key(uri);
  EvpPkeyPtr pub = PublicKey(key.get());
  ASSERT_EQ(SignAndVerify(key.get(), pub.get(), "parent"), 0);
  std::string result = RunInChild(
      [&] {
        if (SignAndVerify(key.get(), pub.get(), "child") != 0) return 1;
        std::string grandchild = RunInChild(
            [&] { return SignAndVerify(key.get(), pub.get(), "grandchild"); },
            kChildWatchdogSeconds);
        if (!grandchild.empty()) {
          std::fprintf(stderr, "grandchild: %s\n", grandchild.c_str());
          return 2;
        }
        return SignAndVerify(key.get(), pub.get(), "child after grandchild");
      },
      2 * kChildWatchdogSeconds);
  EXPECT_EQ(result, "");
  EXPECT_EQ(SignAndVerify(key.get(), pub.get(), "parent after"), 0);
}

TEST_F(ForkTest, ForkThenExecOpenssl) { ForkThenExecOpenssl(kEcUri); }
TEST_F(ForkTest, ForkThenExecOpensslSm2) { ForkThenExecOpenssl(kSm2Uri); }

void ForkTest::ForkThenExecOpenssl(const char* uri) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the system openssl cannot load a sanitizer-built module";
#endif
  EvpPkeyPtr key = Key(uri);
  EvpPkeyPtr pub = PublicKey(key.get());
  ASSERT_EQ(SignAndVerify(key.get(), pub.get(), "parent"), 0);
  bool sm2 = EVP_PKEY_is_a(key.get(), "SM2");
  std::string dir = ::testing::TempDir();
  std::string in = dir + "/exec-message.txt";
  std::string out = dir + "/exec-message.sig";
  const std::string message = "signed by openssl in a child";
  // SM2: `pkeyutl -rawin -digest sm3` over the message; otherwise a digest.
  std::string input = sm2 ? message : Hash("SHA256", message);
  std::ofstream(in, std::ios::binary) << input;
  fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(kChildWatchdogSeconds);
    if (sm2) {
      execlp("openssl", "openssl", "pkeyutl", "-sign", "-rawin", "-digest",
             "sm3", "-provider-path", provider_dir_->c_str(), "-provider",
             "hsmproxy", "-provider", "default", "-inkey", uri, "-in",
             in.c_str(), "-out", out.c_str(), static_cast<char*>(nullptr));
    } else {
      execlp("openssl", "openssl", "pkeyutl", "-sign", "-provider-path",
             provider_dir_->c_str(), "-provider", "hsmproxy", "-provider",
             "default", "-inkey", uri, "-in", in.c_str(), "-out", out.c_str(),
             static_cast<char*>(nullptr));
    }
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream sig_file(out, std::ios::binary);
  std::stringstream sig;
  sig << sig_file.rdbuf();
  if (sm2) {
    EXPECT_TRUE(*DigestVerify(
        nullptr, pub.get(), "SM3", message, sig.str(), [](EVP_PKEY_CTX* c) {
          return EVP_PKEY_CTX_ctrl_str(c, "distid", "1234567812345678") > 0;
        }));
  } else {
    EXPECT_TRUE(*PkeyVerify(nullptr, pub.get(), input, sig.str()));
  }
  EXPECT_EQ(SignAndVerify(key.get(), pub.get(), "parent after"), 0);
}

TEST_F(ForkTest, ChildrenExitWithoutUsingTheProvider) {
  ChildrenExitWithoutUsingTheProvider(kEcUri);
}
TEST_F(ForkTest, ChildrenExitWithoutUsingTheProviderSm2) {
  ChildrenExitWithoutUsingTheProvider(kSm2Uri);
}

void ForkTest::ChildrenExitWithoutUsingTheProvider(const char* uri) {
  EvpPkeyPtr key = Key(uri);
  EvpPkeyPtr pub = PublicKey(key.get());
  ASSERT_EQ(
      SignAndVerify(key.get(), pub.get(), "parent holds a live connection"), 0);
  for (int i = 0; i < 50; ++i) {
    // exit() runs atexit handlers and OpenSSL's cleanup (provider teardown,
    // client destructor) in the child; it must neither hang nor disturb the
    // parent's connection.
    std::string result = RunInChild(
        [] {
          std::exit(0);
          return 0;
        },
        kChildWatchdogSeconds);
    ASSERT_EQ(result, "") << "exit() child " << i;
    result = RunInChild(
        [] {
          _exit(0);
          return 0;
        },
        kChildWatchdogSeconds);
    ASSERT_EQ(result, "") << "_exit() child " << i;
  }
  EXPECT_EQ(SignAndVerify(key.get(), pub.get(), "parent after"), 0);
}

TEST_F(ForkTest, ParentOnlyLoadedTheKey) { ParentOnlyLoadedTheKey(kRsaUri); }
TEST_F(ForkTest, ParentOnlyLoadedTheKeySm2) { ParentOnlyLoadedTheKey(kSm2Uri); }

void ForkTest::ParentOnlyLoadedTheKey(const char* uri) {
  // As nginx's master: the key is loaded (a ListKeys call), never used.
  EvpPkeyPtr key = Key(uri);
  EvpPkeyPtr pub = PublicKey(key.get());
  ASSERT_NE(key, nullptr);
  for (int i = 0; i < 4; ++i) {
    std::string result = RunInChild(
        [&] {
          return SignAndVerify(key.get(), pub.get(),
                               absl::StrCat("worker ", i));
        },
        kChildWatchdogSeconds);
    EXPECT_EQ(result, "") << "worker " << i;
  }
  EXPECT_EQ(SignAndVerify(key.get(), pub.get(), "master signs later"), 0);
}

}  // namespace
}  // namespace hsmd::testing
