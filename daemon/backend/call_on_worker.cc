#include "daemon/backend/call_on_worker.h"

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"

namespace hsmd::backend {

// Overload ends many calls a little late (the service logs those requests);
// a call that hung is worth a line of its own.
constexpr absl::Duration kLongAbandonedCall = absl::Seconds(1);

void AbandonedCalls::Ended(absl::Duration late) {
  running_.fetch_sub(1);
  if (late >= kLongAbandonedCall) {
    log::Warning(absl::StrCat(device_,
                              " call returned long after its request gave up"),
                 {{"backend", backend_},
                  {"late_ms", absl::ToInt64Milliseconds(late)}});
  }
}

}  // namespace hsmd::backend
