#include "proxy_provider/debug.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace hsmd::proxy {
namespace {

std::atomic<bool> debug_enabled{false};

}  // namespace

void SetDebugEnabled(bool enabled) {
  debug_enabled.store(enabled, std::memory_order_relaxed);
}

bool DebugEnabled() { return debug_enabled.load(std::memory_order_relaxed); }

bool DebugRequestedByEnvironment() {
  const char* value = std::getenv("HSMPROXY_DEBUG");
  return value != nullptr && value[0] != '\0' && std::string(value) != "0";
}

void DebugLine(absl::string_view message) {
  std::string line = absl::StrCat("hsmproxy[", static_cast<long>(getpid()),
                                  "]: ", message, "\n");
  const char* data = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, data, left);
    if (n <= 0) return;
    data += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace hsmd::proxy
