#include "daemon/backend/call_on_worker.h"

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"

namespace hsmd::backend {

// Overload ends many calls a little late (the service logs those requests);
// a call that hung is worth a line of its own.
constexpr absl::Duration kLongAbandonedCall = absl::Seconds(1);

void AbandonedCalls::Ended(absl::Duration late) {
  running_.fetch_sub(1);
  LogLate(late);
}

void AbandonedCalls::LogLate(absl::Duration late) {
  if (late >= kLongAbandonedCall) {
    log::Warning(absl::StrCat(device_,
                              " call returned long after its request gave up"),
                 {{"backend", backend_},
                  {"late_ms", absl::ToInt64Milliseconds(late)}});
  }
}

uint64_t AbandonedCalls::InlineLate() const {
  const absl::Time now = absl::Now();
  uint64_t late = 0;
  std::lock_guard<std::mutex> lock(inline_mu_);
  for (const InlineCall* call = inline_head_; call != nullptr;
       call = call->next_) {
    late += now > call->deadline_;
  }
  return late;
}

void AbandonedCalls::InlineEnded(absl::Duration late) {
  abandoned_.fetch_add(1);
  LogLate(late);
}

InlineCall::InlineCall(AbandonedCalls& calls, absl::Time deadline)
    : calls_(calls), deadline_(deadline) {
  std::lock_guard<std::mutex> lock(calls_.inline_mu_);
  next_ = calls_.inline_head_;
  if (next_ != nullptr) next_->prev_ = this;
  calls_.inline_head_ = this;
}

InlineCall::~InlineCall() {
  {
    std::lock_guard<std::mutex> lock(calls_.inline_mu_);
    if (prev_ != nullptr) {
      prev_->next_ = next_;
    } else {
      calls_.inline_head_ = next_;
    }
    if (next_ != nullptr) next_->prev_ = prev_;
  }
  const absl::Duration late = absl::Now() - deadline_;
  if (late > absl::ZeroDuration()) calls_.InlineEnded(late);
}

}  // namespace hsmd::backend
