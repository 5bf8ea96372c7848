// `kill -9` of hsmd under load, then a restart on the same socket, 20 times.
//
// Several client processes sign continuously through hsmproxy.so (OpenSSL
// EVP_DigestSign with keys loaded from `pkcs11:` URIs) and verify every
// signature with the public key in a library context of their own (OpenSSL's
// default provider only). The test SIGKILLs hsmd and starts it again 20
// times. The clients are never restarted: they must recover by themselves,
// never accept a wrong signature, make progress after every restart, and
// see only errors (never a crash or a hang) while hsmd is down.
//
// The clients are forked before this process loads any provider; each loads
// hsmproxy itself, as an application would. They report through a shared
// memory page; each writes the distinct error messages it saw to a file.
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/provider/demo_daemon.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {
namespace {

constexpr int kClients = 4;
constexpr int kRestarts = 20;
// A client that makes no progress for this long is hung: the test fails
// instead of waiting for Bazel's timeout. Not a performance threshold.
constexpr absl::Duration kProgressTimeout = absl::Seconds(60);

const char* const kKeys[] = {
    "pkcs11:token=demo;object=ec-p256;type=private",
    "pkcs11:token=demo;object=rsa-2048;type=private",
};

// One client's counters, in memory shared with the test process.
struct ClientSlot {
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> failed{0};
  // Signatures returned as success that did not verify.
  std::atomic<uint64_t> wrong{0};
  // Longest failed call (it must be an error, not a hang), in ns.
  std::atomic<int64_t> max_failed_call_ns{0};
  // Restart generation whose first success this client has recorded.
  std::atomic<int> seen_generation{0};
  // Wall time (ns) of the first success after restart g, ended after the
  // test had seen hsmd ready again.
  std::atomic<int64_t> first_ok_ns[kRestarts + 1];
  std::atomic<bool> ready{false};
};

struct Shared {
  std::atomic<bool> stop{false};
  // Incremented by the test each time a restarted hsmd is ready.
  std::atomic<int> generation{0};
  ClientSlot clients[kClients];
};

std::string ErrorFile(const std::string& dir, int i) {
  return absl::StrCat(dir, "/client-", i, ".errors");
}

// The client process's body; returns its exit code.
int RunClient(Shared* shared, int index, const std::string& dir) {
  ClientSlot& slot = shared->clients[index];
  const std::string provider_dir = RunfilePath("proxy_provider");
  if (OSSL_PROVIDER_set_default_search_path(nullptr, provider_dir.c_str()) !=
          1 ||
      OSSL_PROVIDER_load(nullptr, "hsmproxy") == nullptr ||
      OSSL_PROVIDER_load(nullptr, "default") == nullptr) {
    fprintf(stderr, "client %d: loading providers: %s\n", index,
            DrainErrors().c_str());
    return 10;
  }
  absl::StatusOr<EvpPkeyPtr> key =
      LoadKey(nullptr, kKeys[index % 2], OSSL_STORE_INFO_PKEY);
  if (!key.ok()) {
    fprintf(stderr, "client %d: %s\n", index, key.status().ToString().c_str());
    return 11;
  }
  // Verification must not involve hsmproxy: the public key lives in a
  // library context that only has OpenSSL's default provider.
  OsslLibCtxPtr verify_ctx(OSSL_LIB_CTX_new());
  if (verify_ctx == nullptr ||
      OSSL_PROVIDER_load(verify_ctx.get(), "default") == nullptr) {
    return 12;
  }
  EvpPkeyPtr public_key = PublicKeyFromSpki(verify_ctx.get(), SpkiOf(key->get()));
  if (public_key == nullptr) {
    fprintf(stderr, "client %d: no public key\n", index);
    return 13;
  }
  slot.ready = true;

  std::map<std::string, uint64_t> errors;
  for (uint64_t seq = 0; !shared->stop.load(); ++seq) {
    const std::string message = absl::StrCat("client ", index, " #", seq);
    const absl::Time start = absl::Now();
    absl::StatusOr<std::string> signature =
        DigestSign(nullptr, key->get(), "SHA256", message);
    const absl::Time end = absl::Now();
    if (!signature.ok()) {
      slot.failed++;
      const int64_t ns = absl::ToInt64Nanoseconds(end - start);
      if (ns > slot.max_failed_call_ns.load()) slot.max_failed_call_ns = ns;
      errors[std::string(signature.status().message())]++;
      // An application would not spin on a dead daemon either.
      absl::SleepFor(absl::Milliseconds(5));
      continue;
    }
    absl::StatusOr<bool> valid = DigestVerify(
        verify_ctx.get(), public_key.get(), "SHA256", message, *signature);
    if (!valid.ok() || !*valid) {
      slot.wrong++;
      continue;
    }
    slot.ok++;
    const int generation = shared->generation.load();
    if (slot.seen_generation.load() < generation) {
      slot.first_ok_ns[generation] = absl::ToUnixNanos(end);
      slot.seen_generation = generation;
    }
  }
  std::ofstream out(ErrorFile(dir, index));
  for (const auto& [text, count] : errors) out << count << "\t" << text << "\n";
  out.close();
  return out ? 0 : 14;
}

TEST(KillRestartTest, ProviderClientsRecoverFromKill9WithoutRestarting) {
  absl::StatusOr<std::unique_ptr<DemoDaemon>> daemon = DemoDaemon::Start();
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  setenv("HSMPROXY_SOCKET", (*daemon)->socket_path().c_str(), 1);

  void* page = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  Shared* shared = new (page) Shared();

  std::vector<pid_t> children;
  for (int i = 0; i < kClients; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(900);  // A hung client dies instead of outliving the test.
      _exit(RunClient(shared, i, (*daemon)->dir()));
    }
    children.push_back(pid);
  }
  auto all_ready = [&] {
    for (const ClientSlot& c : shared->clients) {
      if (!c.ready.load() || c.ok.load() == 0) return false;
    }
    return true;
  };
  absl::Time limit = absl::Now() + kProgressTimeout;
  while (!all_ready() && absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(all_ready()) << "the clients did not start signing";

  std::vector<absl::Duration> recovery;  // Ready → slowest client's success.
  std::vector<absl::Duration> restart_time;  // SIGKILL → hsmd ready again.
  for (int round = 1; round <= kRestarts; ++round) {
    // Some load on the live daemon, different each round so the kill lands
    // at varied points of the calls.
    absl::SleepFor(absl::Milliseconds(50 + 37 * (round % 7)));
    const absl::Time killed = absl::Now();
    ASSERT_TRUE((*daemon)->Stop(/*kill=*/true).ok());
    // hsmd is gone: clients fail (quickly) meanwhile.
    absl::SleepFor(absl::Milliseconds(100));
    absl::Status restarted = (*daemon)->Restart();
    ASSERT_TRUE(restarted.ok()) << "round " << round << ": " << restarted;
    const absl::Time ready = absl::Now();
    restart_time.push_back(ready - killed);
    shared->generation = round;

    absl::Time deadline = absl::Now() + kProgressTimeout;
    bool all_progressed = false;
    while (!all_progressed && absl::Now() < deadline) {
      all_progressed = true;
      for (const ClientSlot& c : shared->clients) {
        if (c.seen_generation.load() < round) all_progressed = false;
      }
      if (!all_progressed) absl::SleepFor(absl::Milliseconds(2));
    }
    ASSERT_TRUE(all_progressed)
        << "round " << round << ": a client made no progress for "
        << kProgressTimeout << " after hsmd restarted";
    absl::Time slowest = ready;
    for (const ClientSlot& c : shared->clients) {
      slowest = std::max(slowest, absl::FromUnixNanos(c.first_ok_ns[round]));
    }
    recovery.push_back(slowest - ready);
  }

  shared->stop = true;
  for (size_t i = 0; i < children.size(); ++i) {
    int status = 0;
    ASSERT_EQ(waitpid(children[i], &status, 0), children[i]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "client " << i << " ended with status " << status
        << " (a crash or an alarm() watchdog)";
  }

  // Every error a client saw while hsmd was down.
  std::map<std::string, uint64_t> errors;
  for (int i = 0; i < kClients; ++i) {
    std::ifstream in(ErrorFile((*daemon)->dir(), i));
    std::string line;
    while (std::getline(in, line)) {
      size_t tab = line.find('\t');
      ASSERT_NE(tab, std::string::npos) << line;
      errors[line.substr(tab + 1)] += std::stoull(line.substr(0, tab));
    }
  }
  uint64_t ok = 0, failed = 0;
  int64_t max_failed_ns = 0;
  for (int i = 0; i < kClients; ++i) {
    const ClientSlot& c = shared->clients[i];
    EXPECT_EQ(c.wrong.load(), 0u) << "client " << i << " got wrong signatures";
    ok += c.ok;
    failed += c.failed;
    max_failed_ns = std::max(max_failed_ns, c.max_failed_call_ns.load());
  }
  for (const auto& [text, count] : errors) {
    // A clear error: it says the daemon is unavailable, where.
    EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(text), "unavailable") &&
                absl::StrContains(text, (*daemon)->socket_path()))
        << "unclear error during the outage: " << text;
  }

  std::sort(recovery.begin(), recovery.end());
  std::sort(restart_time.begin(), restart_time.end());
  printf("%d clients, %d kill -9 + restart rounds: %llu signatures verified, "
         "%llu calls failed while hsmd was down (slowest failure %.1f ms)\n",
         kClients, kRestarts, static_cast<unsigned long long>(ok),
         static_cast<unsigned long long>(failed), max_failed_ns / 1e6);
  printf("kill -9 -> hsmd ready again: min %s, median %s, max %s\n",
         absl::FormatDuration(restart_time.front()).c_str(),
         absl::FormatDuration(restart_time[restart_time.size() / 2]).c_str(),
         absl::FormatDuration(restart_time.back()).c_str());
  printf("hsmd ready -> every client signing again: min %s, median %s, "
         "max %s\n",
         absl::FormatDuration(recovery.front()).c_str(),
         absl::FormatDuration(recovery[recovery.size() / 2]).c_str(),
         absl::FormatDuration(recovery.back()).c_str());
  printf("errors seen by the clients during the outages:\n");
  for (const auto& [text, count] : errors) {
    printf("  %6llu x %s\n", static_cast<unsigned long long>(count),
           text.c_str());
  }
  munmap(page, sizeof(Shared));
}

}  // namespace
}  // namespace hsmd::testing
