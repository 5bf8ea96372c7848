#include "daemon/backend/backend_state.h"

#include "daemon/logging.h"

namespace hsmd::backend {

absl::string_view BackendStateName(v1::BackendState state) {
  switch (state) {
    case v1::BACKEND_STATE_STARTING:
      return "STARTING";
    case v1::BACKEND_STATE_READY:
      return "READY";
    case v1::BACKEND_STATE_DEGRADED:
      return "DEGRADED";
    case v1::BACKEND_STATE_REINITIALIZING:
      return "REINITIALIZING";
    case v1::BACKEND_STATE_FAILED:
      return "FAILED";
    default:
      return "UNSPECIFIED";
  }
}

std::string FaultCauseName(const absl::Status& cause,
                           const std::optional<v1::ErrorDetail>& detail) {
  if (!detail.has_value() || detail->backend_code_name().empty()) {
    return std::string(cause.message());
  }
  std::string name = detail->backend_code_name();
  if (!detail->backend_function().empty()) {
    absl::StrAppend(&name, " in ", detail->backend_function());
  }
  return name;
}

void LogStateChange(absl::string_view backend, absl::string_view kind,
                    v1::BackendState from, v1::BackendState to,
                    absl::string_view reason, bool shut_down) {
  if (from == to) return;
  log::Level level = log::Level::kInfo;
  if (to == v1::BACKEND_STATE_DEGRADED ||
      to == v1::BACKEND_STATE_REINITIALIZING) {
    level = log::Level::kWarning;
  } else if (to == v1::BACKEND_STATE_FAILED && !shut_down) {
    level = log::Level::kError;
  }
  if (kind.empty()) {
    log::Log(level, "backend state changed",
             {{"backend", backend},
              {"from", BackendStateName(from)},
              {"to", BackendStateName(to)},
              {"reason", reason}});
  } else {
    log::Log(level, "backend state changed",
             {{"backend", backend},
              {"kind", kind},
              {"from", BackendStateName(from)},
              {"to", BackendStateName(to)},
              {"reason", reason}});
  }
}

void LogRecovered(absl::string_view backend, absl::string_view cause,
                  int attempts, absl::Duration took) {
  log::Info("backend recovered",
            {{"backend", backend},
             {"after", cause},
             {"attempts", attempts},
             {"took_ms", absl::ToInt64Milliseconds(took)}});
}

void LogAttemptFailed(absl::string_view message, absl::string_view backend,
                      int attempt, const absl::Status& error,
                      absl::Duration retry_in) {
  log::Warning(message, {{"backend", backend},
                         {"attempt", attempt},
                         {"error", error.message()},
                         {"retry_in_ms", absl::ToInt64Milliseconds(retry_in)}});
}

}  // namespace hsmd::backend
