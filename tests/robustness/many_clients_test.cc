// 256 concurrent clients against one hsmd (`hsmd --demo`, SoftHSM, 4
// sessions): each is its own connection (client_lib, one thread each) and
// sends its requests as fast as it is answered. Checked: every request
// ends (success, or RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED, the documented
// back-pressure answers), every signature verifies, no client is starved
// (each completes all its requests), the daemon's memory stays bounded
// (its peak RSS, from /proc, grows by less than 64 MiB), and it serves
// normally afterwards.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client_lib/client.h"
#include "daemon/testing/signature_verifier.h"
#include "daemon/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/robustness/hsmd_process.h"

namespace hsmd::testing {
namespace {

constexpr int kClients = 256;
constexpr int kRequestsPerClient = 8;
constexpr uint64_t kMaxGrowthBytes = 64 << 20;

struct ClientResult {
  int ok = 0;
  int wrong = 0;
  // Back-pressure answers (RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED).
  int pushed_back = 0;
  // Anything else: a failure of the test.
  std::vector<std::string> unexpected;
  absl::Duration slowest = absl::ZeroDuration();
};

TEST(ManyClientsTest, TwoHundredFiftySixClientsAreAllServedInBoundedMemory) {
  absl::StatusOr<std::string> dir = ShortTempDir();
  ASSERT_TRUE(dir.ok());
  absl::StatusOr<std::unique_ptr<Subprocess>> daemon = StartDemoHsmd(*dir);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  const std::string socket = *dir + "/hsmd.sock";
  const pid_t pid = (*daemon)->pid();

  std::unique_ptr<client::Client> probe = NewClient(socket);
  ASSERT_NE(probe, nullptr);
  absl::StatusOr<std::string> spki = PublicKeyOf(*probe, kDemoEcKey);
  ASSERT_TRUE(spki.ok()) << spki.status();
  // Warm up (first-use allocations are not growth under load).
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(probe->Sign(EcdsaSignRequest(kDemoEcKey, "warm-up")).ok());
  }
  absl::StatusOr<uint64_t> rss_before = ProcMemoryBytes(pid, "VmRSS");
  ASSERT_TRUE(rss_before.ok()) << rss_before.status();

  std::vector<ClientResult> results(kClients);
  std::atomic<int> connected{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      ClientResult& result = results[c];
      std::unique_ptr<client::Client> client = NewClient(socket);
      // Connected before the start, so the requests really overlap.
      v1::GenerateRandomRequest random;
      random.set_length(8);
      absl::StatusOr<v1::GenerateRandomResponse> hello =
          client->GenerateRandom(random);
      if (!hello.ok()) result.unexpected.push_back(hello.status().ToString());
      connected++;
      while (!go.load()) absl::SleepFor(absl::Milliseconds(1));
      for (int r = 0; r < kRequestsPerClient; ++r) {
        const v1::SignRequest request =
            EcdsaSignRequest(kDemoEcKey, absl::StrCat("client ", c, " #", r));
        const absl::Time start = absl::Now();
        absl::StatusOr<v1::SignResponse> response = client->Sign(request);
        result.slowest = std::max(result.slowest, absl::Now() - start);
        if (response.ok()) {
          if (VerifySignature(*spki, request, response->signature()).ok()) {
            result.ok++;
          } else {
            result.wrong++;
          }
        } else if (absl::IsResourceExhausted(response.status()) ||
                   absl::IsDeadlineExceeded(response.status())) {
          result.pushed_back++;
        } else {
          result.unexpected.push_back(response.status().ToString());
        }
      }
    });
  }
  while (connected.load() < kClients) absl::SleepFor(absl::Milliseconds(5));
  const absl::Time start = absl::Now();
  go = true;
  for (std::thread& t : threads) t.join();
  const absl::Duration elapsed = absl::Now() - start;

  absl::StatusOr<uint64_t> peak = ProcMemoryBytes(pid, "VmHWM");
  absl::StatusOr<uint64_t> rss_after = ProcMemoryBytes(pid, "VmRSS");
  ASSERT_TRUE(peak.ok() && rss_after.ok());

  int ok = 0, pushed_back = 0;
  absl::Duration slowest = absl::ZeroDuration();
  for (int c = 0; c < kClients; ++c) {
    const ClientResult& r = results[c];
    EXPECT_EQ(r.wrong, 0) << "client " << c;
    EXPECT_THAT(r.unexpected, ::testing::IsEmpty()) << "client " << c;
    // Not starved: every request of every client was answered.
    EXPECT_EQ(r.ok + r.pushed_back + r.wrong +
                  static_cast<int>(r.unexpected.size()),
              kRequestsPerClient)
        << "client " << c;
    EXPECT_GT(r.ok, 0) << "client " << c << " never got a signature";
    ok += r.ok;
    pushed_back += r.pushed_back;
    slowest = std::max(slowest, r.slowest);
  }
  const uint64_t growth = *peak > *rss_before ? *peak - *rss_before : 0;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  // Sanitizer shadow memory and per-thread state (hsmd is built the same
  // way) swamp the daemon's own memory: only the plain build checks it.
  constexpr bool kCheckMemory = false;
#else
  constexpr bool kCheckMemory = true;
#endif
  if (kCheckMemory) {
    EXPECT_LT(growth, kMaxGrowthBytes)
        << "hsmd's peak RSS grew by " << growth / (1 << 20) << " MiB";
  }

  // Serves normally afterwards.
  const v1::SignRequest after = EcdsaSignRequest(kDemoEcKey, "after the storm");
  absl::StatusOr<v1::SignResponse> response = probe->Sign(after);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(VerifySignature(*spki, after, response->signature()).ok());
  absl::StatusOr<v1::GetStatusResponse> status =
      probe->GetStatus(v1::GetStatusRequest());
  ASSERT_TRUE(status.ok()) << status.status();

  printf("%d clients x %d signatures: %d verified, %d back-pressure answers, "
         "in %s (slowest request %s)\n",
         kClients, kRequestsPerClient, ok, pushed_back,
         absl::FormatDuration(elapsed).c_str(),
         absl::FormatDuration(slowest).c_str());
  printf("hsmd memory: RSS before %.1f MiB, peak %.1f MiB (+%.1f MiB), after "
         "%.1f MiB\n",
         *rss_before / 1048576.0, *peak / 1048576.0, growth / 1048576.0,
         *rss_after / 1048576.0);

  (*daemon)->Signal(SIGTERM);
  absl::StatusOr<int> code = (*daemon)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*daemon)->Stderr();
  std::string rm = absl::StrCat("rm -rf ", *dir);
  EXPECT_EQ(system(rm.c_str()), 0);
}

}  // namespace
}  // namespace hsmd::testing
