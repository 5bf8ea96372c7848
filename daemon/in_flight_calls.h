// Counts the requests in progress over both transports, so a shutdown can
// wait for them to finish.
#ifndef HSMD_DAEMON_IN_FLIGHT_CALLS_H_
#define HSMD_DAEMON_IN_FLIGHT_CALLS_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace hsmd {

class InFlightCalls {
 public:
  void Add();
  void Done();
  // True when the count reached zero before `deadline`.
  bool WaitForZero(absl::Time deadline);
  int64_t count() const;

 private:
  // std::mutex, not absl::Mutex: Debian's Abseil is invisible to TSan.
  mutable std::mutex mu_;
  std::condition_variable zero_;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace hsmd

#endif  // HSMD_DAEMON_IN_FLIGHT_CALLS_H_
