#include "daemon/in_flight_calls.h"

namespace hsmd {

void InFlightCalls::Add() {
  std::lock_guard<std::mutex> lock(mu_);
  ++count_;
}

void InFlightCalls::Done() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--count_ == 0) zero_.notify_all();
}

bool InFlightCalls::WaitForZero(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return zero_.wait_until(lock, absl::ToChronoTime(deadline),
                          [this] { return count_ == 0; });
}

int64_t InFlightCalls::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

}  // namespace hsmd
