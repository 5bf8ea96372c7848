#include "daemon/service/stats.h"

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "gtest/gtest.h"

namespace hsmd::service {
namespace {

const v1::OperationStats* Find(const v1::GetStatsResponse& r,
                               const std::string& op, const std::string& key) {
  for (const v1::OperationStats& s : r.operations()) {
    if (s.operation() == op && s.key_id() == key) return &s;
  }
  return nullptr;
}

TEST(StatsTest, CountsLatencyAndErrors) {
  Stats stats;
  stats.Record("Sign", "k1", "ec-p256", absl::OkStatus(),
               absl::Microseconds(40));
  stats.Record("Sign", "k1", "", absl::OkStatus(), absl::Microseconds(150));
  stats.Record("Sign", "k1", "", absl::OkStatus(), absl::Seconds(60));
  absl::Status hsm_error = absl::InternalError("x");
  v1::ErrorDetail detail;
  detail.set_backend_code_name("CKR_DEVICE_ERROR");
  SetErrorDetail(hsm_error, detail);
  stats.Record("Sign", "k1", "", hsm_error, absl::Microseconds(100));
  stats.Record("Sign", "", "", absl::NotFoundError("x"),
               absl::Microseconds(10));
  stats.Record("GenerateRandom", "", "", absl::OkStatus(),
               absl::Microseconds(10));

  v1::GetStatsResponse r = stats.Snapshot();
  ASSERT_EQ(r.operations_size(), 3);
  // Sorted by operation, then key.
  EXPECT_EQ(r.operations(0).operation(), "GenerateRandom");
  EXPECT_EQ(r.operations(1).key_id(), "");
  EXPECT_EQ(r.operations(2).key_id(), "k1");
  EXPECT_GT(r.since().seconds(), 0);

  const v1::OperationStats* s = Find(r, "Sign", "k1");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->count(), 4u);
  EXPECT_EQ(s->error_count(), 1u);
  EXPECT_EQ(s->key_label(), "ec-p256");
  EXPECT_EQ(s->errors_by_code().at("INTERNAL"), 1u);
  EXPECT_EQ(s->errors_by_code().at("CKR_DEVICE_ERROR"), 1u);
  const v1::LatencyHistogram& h = s->latency();
  ASSERT_EQ(h.bucket_upper_bounds_us_size(), 17);
  ASSERT_EQ(h.counts_size(), 18);
  EXPECT_EQ(h.counts(0), 1u);   // 40 us <= 50
  EXPECT_EQ(h.counts(1), 1u);   // 100 us <= 100 (inclusive bound)
  EXPECT_EQ(h.counts(2), 1u);   // 150 us <= 200
  EXPECT_EQ(h.counts(17), 1u);  // 60 s: the open bucket
  EXPECT_EQ(h.sum_us(), 40u + 150u + 60000000u + 100u);
  EXPECT_EQ(h.max_us(), 60000000u);

  const v1::OperationStats* unresolved = Find(r, "Sign", "");
  ASSERT_NE(unresolved, nullptr);
  EXPECT_EQ(unresolved->errors_by_code().at("NOT_FOUND"), 1u);
  EXPECT_EQ(unresolved->errors_by_code().size(), 1u);
}

TEST(StatsTest, BoundsTheNumberOfEntries) {
  Stats stats;
  for (size_t i = 0; i < Stats::kMaxEntries + 10; ++i) {
    stats.Record("Sign", absl::StrCat("key", i), "label", absl::OkStatus(),
                 absl::Microseconds(1));
  }
  v1::GetStatsResponse r = stats.Snapshot();
  EXPECT_EQ(r.operations_size(), static_cast<int>(Stats::kMaxEntries) + 1);
  const v1::OperationStats* other = Find(r, "Sign", "(other)");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->count(), 10u);
  EXPECT_EQ(other->key_label(), "");
}

TEST(StatsTest, ConcurrentRecordsAllCount) {
  Stats stats;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&stats, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::Status status =
            i % 10 == 0 ? absl::UnavailableError("x") : absl::OkStatus();
        stats.Record("Sign", absl::StrCat("k", i % 3), "", status,
                     absl::Microseconds(t * 100 + i % 7));
      }
    });
  }
  // Snapshots while recording must be safe.
  for (int i = 0; i < 20; ++i) stats.Snapshot();
  for (std::thread& th : threads) th.join();
  v1::GetStatsResponse r = stats.Snapshot();
  uint64_t total = 0, errors = 0, bucketed = 0;
  for (const v1::OperationStats& s : r.operations()) {
    total += s.count();
    errors += s.error_count();
    for (uint64_t c : s.latency().counts()) bucketed += c;
    if (s.error_count() > 0) {
      EXPECT_EQ(s.errors_by_code().at("UNAVAILABLE"), s.error_count());
    }
  }
  EXPECT_EQ(total, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(bucketed, total);
  EXPECT_EQ(errors, static_cast<uint64_t>(kThreads * kPerThread / 10));
}

}  // namespace
}  // namespace hsmd::service
