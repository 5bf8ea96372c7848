// The opening SETTINGS both ends of an hsmd connection send (client_lib and
// hsmd's fast path), with flow-control windows large enough that a maximal
// message crosses without a WINDOW_UPDATE round trip.
#ifndef HSMD_COMMON_HTTP2_SETTINGS_H_
#define HSMD_COMMON_HTTP2_SETTINGS_H_

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace hsmd {

// The stream and connection window for messages of up to
// `max_message_bytes` (plus framing), within HTTP/2's bounds.
uint32_t WindowFor(size_t max_message_bytes);

// Queues SETTINGS with `entries` (which should include
// SETTINGS_INITIAL_WINDOW_SIZE = `window`) and raises the connection window
// to `window`. INTERNAL naming nghttp2's error if either fails.
absl::Status SubmitOpeningSettings(
    nghttp2_session* session, absl::Span<const nghttp2_settings_entry> entries,
    uint32_t window);

}  // namespace hsmd

#endif  // HSMD_COMMON_HTTP2_SETTINGS_H_
