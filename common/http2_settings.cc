#include "common/http2_settings.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace hsmd {

uint32_t WindowFor(size_t max_message_bytes) {
  return static_cast<uint32_t>(
      std::clamp<size_t>(max_message_bytes + 64 * 1024,
                         NGHTTP2_INITIAL_WINDOW_SIZE, NGHTTP2_MAX_WINDOW_SIZE));
}

absl::Status SubmitOpeningSettings(
    nghttp2_session* session, absl::Span<const nghttp2_settings_entry> entries,
    uint32_t window) {
  int err = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, entries.data(),
                                    entries.size());
  if (err == 0) {
    err = nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                                static_cast<int32_t>(window));
  }
  if (err != 0) {
    return absl::InternalError(
        absl::StrCat("cannot queue HTTP/2 SETTINGS: ", nghttp2_strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace hsmd
