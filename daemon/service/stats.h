// Request statistics for AdminService.GetStats: per (operation, key id) the
// number of requests and errors, errors by gRPC code name and by backend
// code name, and a latency histogram with fixed bucket bounds.
//
// Thread-safe. The hot path (an existing entry) takes a shared lock for the
// lookup and updates atomics; only errors take the entry's own mutex, and
// only the first request of a new (operation, key) pair takes the exclusive
// lock. The number of entries is bounded (hostile clients can name many
// keys): past kMaxEntries, new keys are counted under key_id "(other)".
#ifndef HSMD_DAEMON_SERVICE_STATS_H_
#define HSMD_DAEMON_SERVICE_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::service {

class Stats {
 public:
  // Upper bounds (inclusive) of the latency buckets in microseconds; one more
  // bucket counts everything slower.
  static constexpr std::array<uint64_t, 17> kBucketBoundsUs = {
      50,    100,    200,    500,    1000,    2000,    5000,    10000,   20000,
      50000, 100000, 200000, 500000, 1000000, 2000000, 5000000, 10000000};
  static constexpr size_t kMaxEntries = 4096;
  static constexpr absl::string_view kOtherKey = "(other)";

  Stats();
  Stats(const Stats&) = delete;
  Stats& operator=(const Stats&) = delete;

  // Records one completed request. `key_id` is empty for requests without a
  // key (or whose key could not be resolved).
  void Record(absl::string_view operation, absl::string_view key_id,
              absl::string_view key_label, const absl::Status& status,
              absl::Duration latency);

  // A consistent-enough snapshot (each counter is read atomically), sorted by
  // operation then key id.
  v1::GetStatsResponse Snapshot() const;

 private:
  struct Entry {
    std::string operation;
    std::string key_id;
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> error_count{0};
    std::array<std::atomic<uint64_t>, kBucketBoundsUs.size() + 1> buckets{};
    std::atomic<uint64_t> sum_us{0};
    std::atomic<uint64_t> max_us{0};
    std::mutex mu;
    std::string label ABSL_GUARDED_BY(mu);
    std::map<std::string, uint64_t> errors_by_code ABSL_GUARDED_BY(mu);
  };

  Entry* FindOrCreate(absl::string_view operation, absl::string_view key_id);

  const absl::Time since_;
  // std mutexes, not absl::Mutex: Debian's Abseil is invisible to TSan.
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_STATS_H_
