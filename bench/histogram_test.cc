#include "bench/histogram.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace hsmd::bench {
namespace {

TEST(LatencyHistogramTest, EmptyHasZeroPercentiles) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.PercentileMicros(0.5), 0);
  EXPECT_EQ(h.MeanMicros(), 0);
}

TEST(LatencyHistogramTest, BucketsAreContiguousAndMonotonic) {
  int previous = -1;
  for (uint64_t v = 0; v < (uint64_t{1} << 22); v += 1 + v / 1000) {
    const int b = LatencyHistogram::BucketOf(v);
    EXPECT_GE(b, previous) << v;
    EXPECT_LE(b, previous + 1) << v;
    previous = b;
  }
  EXPECT_EQ(LatencyHistogram::BucketOf(~uint64_t{0}),
            LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogramTest, BucketMiddleIsWithinOnePercent) {
  for (uint64_t v :
       {uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{1000},
        uint64_t{55555}, uint64_t{1234567}, uint64_t{9876543210}}) {
    const double middle =
        LatencyHistogram::BucketMiddle(LatencyHistogram::BucketOf(v));
    EXPECT_NEAR(middle, static_cast<double>(v), 0.008 * v + 0.5) << v;
  }
}

TEST(LatencyHistogramTest, PercentilesOfUniformSamples) {
  LatencyHistogram h;
  // 1..1000 microseconds.
  for (uint64_t us = 1; us <= 1000; ++us) h.Record(us * 1000);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_NEAR(h.PercentileMicros(0.5), 500, 5);
  EXPECT_NEAR(h.PercentileMicros(0.99), 990, 9);
  EXPECT_NEAR(h.PercentileMicros(1.0), 1000, 9);
  EXPECT_NEAR(h.MeanMicros(), 500.5, 0.01);
  EXPECT_NEAR(h.MaxMicros(), 1000, 0.001);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a;
  LatencyHistogram b;
  for (int i = 0; i < 100; ++i) a.Record(10'000);
  for (int i = 0; i < 300; ++i) b.Record(20'000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 400u);
  EXPECT_NEAR(a.PercentileMicros(0.2), 10, 0.1);
  EXPECT_NEAR(a.PercentileMicros(0.5), 20, 0.2);
}

TEST(LatencyHistogramTest, SerializeRoundTrip) {
  LatencyHistogram h;
  for (uint64_t v = 1; v < 5'000'000; v = v * 3 + 7) h.Record(v);
  absl::StatusOr<LatencyHistogram> back =
      LatencyHistogram::Parse(h.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->count(), h.count());
  EXPECT_EQ(back->PercentileMicros(0.5), h.PercentileMicros(0.5));
  EXPECT_EQ(back->PercentileMicros(0.99), h.PercentileMicros(0.99));
  EXPECT_EQ(back->MeanMicros(), h.MeanMicros());
}

TEST(LatencyHistogramTest, ParseRejectsGarbage) {
  EXPECT_FALSE(LatencyHistogram::Parse("").ok());
  EXPECT_FALSE(LatencyHistogram::Parse("not a histogram at all").ok());
  LatencyHistogram h;
  h.Record(5);
  std::string bytes = h.Serialize();
  EXPECT_FALSE(LatencyHistogram::Parse(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(LatencyHistogram::Parse(bytes + "x").ok());
}

}  // namespace
}  // namespace hsmd::bench
