#include "bench/histogram.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hsmd::bench {
namespace {

constexpr uint32_t kMagic = 0x68697374;  // "hist"

void Append(std::string& out, const void* p, size_t n) {
  out.append(static_cast<const char*>(p), n);
}

template <typename T>
bool Take(absl::string_view& in, T* value) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(value, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

}  // namespace

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_nanos_ += other.sum_nanos_;
  if (other.max_nanos_ > max_nanos_) max_nanos_ = other.max_nanos_;
}

double LatencyHistogram::MeanMicros() const {
  return count_ == 0 ? 0 : static_cast<double>(sum_nanos_) / count_ / 1e3;
}

double LatencyHistogram::BucketMiddle(int bucket) {
  if (bucket < 128) return bucket;
  const int shift = (bucket - 128) / 64 + 1;
  const uint64_t lower = static_cast<uint64_t>((bucket - 128) % 64 + 64)
                         << shift;
  return static_cast<double>(lower) +
         static_cast<double>(uint64_t{1} << shift) / 2;
}

double LatencyHistogram::PercentileMicros(double q) const {
  if (count_ == 0) return 0;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  // The rank of the sample at quantile q (1-based, nearest rank).
  uint64_t rank =
      static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank < 1) rank = 1;
  if (rank > count_) rank = count_;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const double middle = BucketMiddle(i);
      const double max = static_cast<double>(max_nanos_);
      return (middle > max ? max : middle) / 1e3;
    }
  }
  return MaxMicros();
}

std::string LatencyHistogram::Serialize() const {
  std::string out;
  Append(out, &kMagic, sizeof(kMagic));
  Append(out, &count_, sizeof(count_));
  Append(out, &sum_nanos_, sizeof(sum_nanos_));
  Append(out, &max_nanos_, sizeof(max_nanos_));
  uint32_t used = 0;
  for (uint64_t c : counts_) used += c != 0;
  Append(out, &used, sizeof(used));
  for (uint32_t i = 0; i < kBuckets; ++i) {
    if (counts_[i] == 0) continue;
    Append(out, &i, sizeof(i));
    Append(out, &counts_[i], sizeof(counts_[i]));
  }
  return out;
}

absl::StatusOr<LatencyHistogram> LatencyHistogram::Parse(
    absl::string_view bytes) {
  LatencyHistogram h;
  uint32_t magic = 0;
  uint32_t used = 0;
  if (!Take(bytes, &magic) || magic != kMagic || !Take(bytes, &h.count_) ||
      !Take(bytes, &h.sum_nanos_) || !Take(bytes, &h.max_nanos_) ||
      !Take(bytes, &used) || used > kBuckets) {
    return absl::InvalidArgumentError("malformed latency histogram header");
  }
  uint64_t total = 0;
  for (uint32_t n = 0; n < used; ++n) {
    uint32_t index = 0;
    uint64_t count = 0;
    if (!Take(bytes, &index) || !Take(bytes, &count) || index >= kBuckets) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed latency histogram bucket ", n));
    }
    h.counts_[index] = count;
    total += count;
  }
  if (!bytes.empty() || total != h.count_) {
    return absl::InvalidArgumentError("latency histogram counts do not add up");
  }
  return h;
}

}  // namespace hsmd::bench
