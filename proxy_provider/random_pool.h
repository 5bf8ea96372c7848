// Random bytes from hsmd, fetched in batches and handed out in order, so
// RAND_bytes(32) does not cost an RPC each time.
//
// Fork safety: the buffered bytes belong to the process that fetched them. A
// forked child must never hand out bytes its parent also hands out, so the
// pool keeps its state per process: the first use in a process whose pid
// differs abandons the inherited state (without taking its lock, which
// another parent thread may have held at fork time) and starts empty.
#ifndef HSMD_PROXY_PROVIDER_RANDOM_POOL_H_
#define HSMD_PROXY_PROVIDER_RANDOM_POOL_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hsmd::proxy {

class RandomPool {
 public:
  // Returns exactly `length` fresh random bytes (one RPC).
  using Fetcher = std::function<absl::StatusOr<std::string>(size_t length)>;

  static constexpr size_t kDefaultBatchBytes = 16384;
  // hsmd's GenerateRandom limit per call.
  static constexpr size_t kMaxFetchBytes = 65536;

  explicit RandomPool(Fetcher fetcher, size_t batch_bytes = kDefaultBatchBytes);
  ~RandomPool();

  RandomPool(const RandomPool&) = delete;
  RandomPool& operator=(const RandomPool&) = delete;

  // Fills `out` with `length` bytes. Thread-safe.
  absl::Status Fill(unsigned char* out, size_t length);

  // Number of fetches made by this process (for tests and debug logs).
  size_t fetches_in_this_process();

 private:
  struct State {
    explicit State(pid_t owner) : pid(owner) {}
    const pid_t pid;
    // std::mutex rather than absl::Mutex: Debian's Abseil is not built for
    // ThreadSanitizer, which then cannot see absl::Mutex ordering.
    std::mutex mu;
    // Unused bytes are buffer[position, size).
    std::string buffer ABSL_GUARDED_BY(mu);
    size_t position ABSL_GUARDED_BY(mu) = 0;
    size_t fetches ABSL_GUARDED_BY(mu) = 0;
    // States abandoned by earlier processes (kept reachable, never locked).
    State* abandoned = nullptr;
  };

  // This process's state, replacing an inherited one.
  State* CurrentState();

  const Fetcher fetcher_;
  const size_t batch_bytes_;
  std::atomic<State*> state_{nullptr};
};

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_RANDOM_POOL_H_
