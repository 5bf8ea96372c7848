// Debug logging for hsmproxy: silent unless enabled (HSMPROXY_DEBUG set to
// anything but "" or "0", or `debug = 1` in the provider's config section).
// Lines go to stderr as "hsmproxy[pid]: message". Never log PINs or key
// material; URIs and key ids are fine.
#ifndef HSMD_PROXY_PROVIDER_DEBUG_H_
#define HSMD_PROXY_PROVIDER_DEBUG_H_

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace hsmd::proxy {

// Turns debug logging on or off for the whole process.
void SetDebugEnabled(bool enabled);
bool DebugEnabled();

// True when the environment asks for debug logs (HSMPROXY_DEBUG).
bool DebugRequestedByEnvironment();

// Writes one line (with a single write(2), so lines from threads and forked
// children do not interleave).
void DebugLine(absl::string_view message);

}  // namespace hsmd::proxy

// Usage: HSMPROXY_DEBUG_LOG("sign with ", uri, " took ", n, " bytes");
#define HSMPROXY_DEBUG_LOG(...)                              \
  do {                                                       \
    if (::hsmd::proxy::DebugEnabled()) {                     \
      ::hsmd::proxy::DebugLine(::absl::StrCat(__VA_ARGS__)); \
    }                                                        \
  } while (0)

#endif  // HSMD_PROXY_PROVIDER_DEBUG_H_
