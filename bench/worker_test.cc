#include "bench/worker.h"

#include <atomic>

#include "absl/strings/match.h"
#include "bench/evp_variant.h"
#include "bench/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::bench {
namespace {

using ::testing::HasSubstr;

class CountingRunner final : public OpRunner {
 public:
  absl::Status Run(int thread) override {
    if (fail_after_ > 0 && ++calls_ > fail_after_) {
      return absl::InternalError("runner failed on purpose");
    }
    (void)thread;
    return absl::OkStatus();
  }
  absl::string_view output(int) const override { return ""; }
  void FailAfter(int n) { fail_after_ = n; }

 private:
  std::atomic<int> calls_{0};
  int fail_after_ = 0;
};

TEST(RunRoundTest, StopsAtTheOperationLimitOnEveryThread) {
  CountingRunner runner;
  RoundSpec spec;
  spec.threads = 3;
  spec.start = 0;
  spec.end = INT64_MAX;
  spec.max_ops_per_thread = 50;
  absl::StatusOr<RoundResult> r = RunRound(runner, spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ops, 150u);
  EXPECT_EQ(r->latency.count(), 150u);
  EXPECT_GE(r->elapsed_ns, 0);
}

TEST(RunRoundTest, ReportsTheRunnersError) {
  CountingRunner runner;
  runner.FailAfter(5);
  RoundSpec spec;
  spec.end = INT64_MAX;
  spec.max_ops_per_thread = 100;
  EXPECT_THAT(RunRound(runner, spec).status().message(),
              HasSubstr("runner failed on purpose"));
}

class BrokenVariant final : public Variant {
 public:
  std::string name() const override { return "broken"; }
  absl::StatusOr<std::unique_ptr<OpRunner>> Prepare(Op, int) override {
    return absl::NotFoundError("no such key");
  }
  absl::Status Check(Op, absl::string_view) const override {
    return absl::OkStatus();
  }
};

TEST(WorkerTest, SoftwareWorkerRunsTimedAndBoundedRounds) {
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Spawn(
      "software#0",
      []() -> absl::StatusOr<std::unique_ptr<Variant>> {
        absl::StatusOr<std::unique_ptr<EvpVariant>> v =
            EvpVariant::NewSoftware();
        if (!v.ok()) return v.status();
        return std::unique_ptr<Variant>(std::move(*v));
      },
      2);
  ASSERT_TRUE(worker.ok()) << worker.status();
  // Init signs/decrypts once per thread and verifies every result.
  ASSERT_TRUE((*worker)->Init(absl::Seconds(50)).ok());

  RoundSpec spec;
  spec.op = Op::kEcdsaP256Sign;
  spec.threads = 2;
  spec.start = 0;
  spec.end = INT64_MAX;
  spec.max_ops_per_thread = 20;
  ASSERT_TRUE((*worker)->StartRound(spec).ok());
  absl::StatusOr<RoundResult> r = (*worker)->FinishRound(absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ops, 40u);
  EXPECT_EQ(r->latency.count(), 40u);
  EXPECT_GT(r->cpu_ns, 0);

  spec.op = Op::kRandom32;
  spec.threads = 1;
  spec.max_ops_per_thread = 0;
  spec.start = MonotonicNanos();
  spec.end = spec.start + 20'000'000;
  ASSERT_TRUE((*worker)->StartRound(spec).ok());
  r = (*worker)->FinishRound(absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->ops, 0u);
  EXPECT_GT(r->elapsed_ns, 0);

  // A thread count the worker was not prepared for is refused.
  spec.threads = 3;
  ASSERT_TRUE((*worker)->StartRound(spec).ok());
  EXPECT_FALSE((*worker)->FinishRound(absl::Seconds(30)).ok());
}

TEST(WorkerTest, InitErrorNamesTheWorkerAndOperation) {
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Spawn(
      "broken#1",
      []() -> absl::StatusOr<std::unique_ptr<Variant>> {
        return std::make_unique<BrokenVariant>();
      },
      1);
  ASSERT_TRUE(worker.ok());
  absl::Status status = (*worker)->Init(absl::Seconds(30));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("broken#1"));
  EXPECT_THAT(status.message(), HasSubstr("RSA-2048 PKCS#1"));
  EXPECT_THAT(status.message(), HasSubstr("no such key"));
}

}  // namespace
}  // namespace hsmd::bench
