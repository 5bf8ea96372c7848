// A latency histogram with log-linear buckets (64 per power of two, so any
// percentile is within 0.8% of the true sample), cheap enough to record a
// sub-microsecond operation and small enough to send between processes.
#ifndef HSMD_BENCH_HISTOGRAM_H_
#define HSMD_BENCH_HISTOGRAM_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::bench {

class LatencyHistogram {
 public:
  // Values below 128 ns have a bucket each; above, 64 buckets per doubling
  // up to 2^40 ns (18 minutes), which is more than any operation here takes.
  static constexpr int kSubBucketBits = 6;
  static constexpr int kMaxShift = 34;
  static constexpr int kBuckets = 128 + kMaxShift * 64;

  void Record(uint64_t nanos) {
    ++counts_[BucketOf(nanos)];
    ++count_;
    sum_nanos_ += nanos;
    if (nanos > max_nanos_) max_nanos_ = nanos;
  }
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  double MeanMicros() const;
  double MaxMicros() const { return max_nanos_ / 1e3; }
  // The value below which a fraction `q` (0..1) of the samples fall, in
  // microseconds (the middle of its bucket); 0 when empty.
  double PercentileMicros(double q) const;

  // Compact binary form (only non-empty buckets) and back.
  std::string Serialize() const;
  static absl::StatusOr<LatencyHistogram> Parse(absl::string_view bytes);

  static int BucketOf(uint64_t nanos) {
    if (nanos < 128) return static_cast<int>(nanos);
    const int msb = 63 - __builtin_clzll(nanos);
    int shift = msb - kSubBucketBits;
    if (shift > kMaxShift) return kBuckets - 1;
    return 128 + (shift - 1) * 64 + static_cast<int>((nanos >> shift) - 64);
  }
  // Middle of a bucket, in nanoseconds.
  static double BucketMiddle(int bucket);

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_nanos_ = 0;
  uint64_t max_nanos_ = 0;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_HISTOGRAM_H_
