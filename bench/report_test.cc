#include "bench/report.h"

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::bench {
namespace {

using ::testing::HasSubstr;

CellResult Cell(Op op, const char* variant, int p, int t, uint64_t ops,
                uint64_t latency_us) {
  CellResult c;
  c.op = op;
  c.variant = variant;
  c.processes = p;
  c.threads = t;
  c.ops = ops;
  c.seconds = 1;
  c.round_rates = {static_cast<double>(ops)};
  for (uint64_t i = 0; i < 100; ++i) c.latency.Record(latency_us * 1000);
  return c;
}

const TargetCheck& Find(const std::vector<TargetCheck>& checks,
                        absl::string_view prefix) {
  for (const TargetCheck& t : checks) {
    if (absl::StartsWith(t.name, prefix)) return t;
  }
  static const TargetCheck* none = new TargetCheck{"missing", "", "", {}};
  return *none;
}

TEST(ReportTest, EvaluatesRatioTargets) {
  BenchReport r;
  r.cells.push_back(Cell(Op::kRsa2048Pkcs1Sign, kInProcess, 2, 1, 1000, 600));
  r.cells.push_back(Cell(Op::kRsa2048Pkcs1Sign, kHsmproxy, 2, 1, 960, 620));
  r.cells.push_back(Cell(Op::kEcdsaP256Sign, kInProcess, 2, 1, 1000, 50));
  r.cells.push_back(Cell(Op::kEcdsaP256Sign, kHsmproxy, 2, 1, 700, 90));
  const std::vector<TargetCheck> checks = EvaluateTargets(r);
  const TargetCheck& rsa = Find(checks, "RSA-2048 sign, 2 client processes (");
  ASSERT_TRUE(rsa.met.has_value());
  EXPECT_TRUE(*rsa.met);
  EXPECT_THAT(rsa.measured, HasSubstr("0.96"));
  const TargetCheck& ec =
      Find(checks, "ECDSA P-256 sign, 2 client processes (");
  ASSERT_TRUE(ec.met.has_value());
  EXPECT_FALSE(*ec.met);
  // Not measured at all: no verdict.
  EXPECT_FALSE(Find(checks, "RAND_bytes(32), 1 process").met.has_value());
}

TEST(ReportTest, AddedLatencyUsesTheWorstOperation) {
  BenchReport r;
  r.cells.push_back(Cell(Op::kEcdsaP256Sign, kInProcess, 1, 1, 1000, 50));
  r.cells.push_back(Cell(Op::kEcdsaP256Sign, kHsmproxy, 1, 1, 800, 70));
  r.cells.push_back(Cell(Op::kEd25519Sign, kInProcess, 1, 1, 1000, 100));
  r.cells.push_back(Cell(Op::kEd25519Sign, kHsmproxy, 1, 1, 800, 140));
  const std::vector<TargetCheck> checks = EvaluateTargets(r);
  const TargetCheck& t = Find(checks, "Added latency");
  ASSERT_TRUE(t.met.has_value());
  EXPECT_FALSE(*t.met);
  EXPECT_THAT(t.measured, HasSubstr("worst +40 us"));
}

TEST(ReportTest, ForkAndFootprintTargets) {
  BenchReport r;
  ForkCost hsm;
  hsm.variant = kHsmproxy;
  hsm.op = Op::kEcdsaP256Sign;
  ForkCost in = hsm;
  in.variant = kInProcess;
  for (int i = 0; i < 10; ++i) {
    hsm.steady.Record(100'000);
    hsm.first.Record(150'000);
    in.first.Record(20'000'000);
  }
  r.forks = {hsm, in};
  r.footprint = {{"baseline", 1, 10000}, {"one_signature", 1, 11500}};
  const std::vector<TargetCheck> checks = EvaluateTargets(r);
  const TargetCheck& first =
      Find(checks, "Child's first signature after fork (ecdsa_p256_sign) vs");
  ASSERT_TRUE(first.met.has_value());
  EXPECT_TRUE(*first.met);
  const TargetCheck& versus =
      Find(checks, "Child's first signature after fork (ecdsa_p256_sign):");
  ASSERT_TRUE(versus.met.has_value());
  EXPECT_TRUE(*versus.met);
  const TargetCheck& threads = Find(checks, "Threads added");
  ASSERT_TRUE(threads.met.has_value());
  EXPECT_TRUE(*threads.met);
  const TargetCheck& rss = Find(checks, "RSS added");
  ASSERT_TRUE(rss.met.has_value());
  EXPECT_TRUE(*rss.met);
  EXPECT_THAT(rss.measured, HasSubstr("1500 KiB"));
}

TEST(ReportTest, FormatsEveryOutput) {
  BenchReport r;
  r.mode = "smoke";
  r.cells.push_back(Cell(Op::kRandom32, kInProcess, 1, 1, 100000, 5));
  r.cells.push_back(Cell(Op::kRandom32, kHsmproxy, 1, 1, 200000, 2));
  r.notes.push_back("phase nginx skipped (--skip)");
  const std::string text = FormatText(r);
  EXPECT_THAT(text, HasSubstr("RAND_bytes(32)"));
  EXPECT_THAT(text, HasSubstr("2.00"));
  const std::string md = FormatMarkdown(r);
  EXPECT_THAT(md, HasSubstr("| RAND_bytes(32) / C_GenerateRandom(32) | 1 x 1"));
  EXPECT_THAT(md, HasSubstr("**2.00**"));
  const std::string json = FormatJson(r);
  EXPECT_THAT(json, HasSubstr(R"("op":"random_32","variant":"hsmproxy")"));
  EXPECT_THAT(json, HasSubstr(R"("ratio_to_in_process":2)"));
  EXPECT_THAT(json, HasSubstr("phase nginx skipped"));
}

}  // namespace
}  // namespace hsmd::bench
