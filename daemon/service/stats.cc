#include "daemon/service/stats.h"

#include <algorithm>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/error_detail.h"
#include "daemon/service/status_mapping.h"

namespace hsmd::service {
namespace {

std::string EntryKey(absl::string_view operation, absl::string_view key_id) {
  // '\n' never occurs in method names or key ids.
  return absl::StrCat(operation, "\n", key_id);
}

}  // namespace

Stats::Stats() : since_(absl::Now()) {}

Stats::Entry* Stats::FindOrCreate(absl::string_view operation,
                                  absl::string_view key_id) {
  std::string key = EntryKey(operation, key_id);
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second.get();
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second.get();
  if (entries_.size() >= kMaxEntries && key_id != kOtherKey) {
    key_id = kOtherKey;
    key = EntryKey(operation, key_id);
    it = entries_.find(key);
    if (it != entries_.end()) return it->second.get();
  }
  auto entry = std::make_unique<Entry>();
  entry->operation = std::string(operation);
  entry->key_id = std::string(key_id);
  Entry* raw = entry.get();
  entries_.emplace(std::move(key), std::move(entry));
  return raw;
}

void Stats::Record(absl::string_view operation, absl::string_view key_id,
                   absl::string_view key_label, const absl::Status& status,
                   absl::Duration latency) {
  Entry* entry = FindOrCreate(operation, key_id);
  const uint64_t us = static_cast<uint64_t>(
      std::max<int64_t>(0, absl::ToInt64Microseconds(latency)));
  size_t bucket = static_cast<size_t>(
      std::lower_bound(kBucketBoundsUs.begin(), kBucketBoundsUs.end(), us) -
      kBucketBoundsUs.begin());
  entry->count.fetch_add(1, std::memory_order_relaxed);
  entry->buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  entry->sum_us.fetch_add(us, std::memory_order_relaxed);
  uint64_t prev = entry->max_us.load(std::memory_order_relaxed);
  while (prev < us && !entry->max_us.compare_exchange_weak(
                          prev, us, std::memory_order_relaxed)) {
  }
  const bool need_label = !key_label.empty();
  if (status.ok() && !need_label) return;
  std::lock_guard<std::mutex> lock(entry->mu);
  if (need_label && entry->label.empty() && entry->key_id != kOtherKey) {
    entry->label = std::string(key_label);
  }
  if (status.ok()) return;
  entry->error_count.fetch_add(1, std::memory_order_relaxed);
  ++entry->errors_by_code[GrpcCodeName(status.code())];
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  if (detail.has_value() && !detail->backend_code_name().empty()) {
    ++entry->errors_by_code[detail->backend_code_name()];
  }
}

v1::GetStatsResponse Stats::Snapshot() const {
  std::vector<Entry*> entries;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (const auto& [key, entry] : entries_) entries.push_back(entry.get());
  }
  std::sort(entries.begin(), entries.end(), [](Entry* a, Entry* b) {
    return std::tie(a->operation, a->key_id) <
           std::tie(b->operation, b->key_id);
  });
  v1::GetStatsResponse response;
  response.mutable_since()->set_seconds(absl::ToUnixSeconds(since_));
  for (Entry* entry : entries) {
    v1::OperationStats* op = response.add_operations();
    op->set_operation(entry->operation);
    op->set_key_id(entry->key_id);
    op->set_count(entry->count.load(std::memory_order_relaxed));
    op->set_error_count(entry->error_count.load(std::memory_order_relaxed));
    v1::LatencyHistogram* h = op->mutable_latency();
    for (uint64_t bound : kBucketBoundsUs) h->add_bucket_upper_bounds_us(bound);
    for (const auto& bucket : entry->buckets) {
      h->add_counts(bucket.load(std::memory_order_relaxed));
    }
    h->set_sum_us(entry->sum_us.load(std::memory_order_relaxed));
    h->set_max_us(entry->max_us.load(std::memory_order_relaxed));
    std::lock_guard<std::mutex> lock(entry->mu);
    op->set_key_label(entry->label);
    for (const auto& [code, n] : entry->errors_by_code) {
      (*op->mutable_errors_by_code())[code] = n;
    }
  }
  return response;
}

}  // namespace hsmd::service
