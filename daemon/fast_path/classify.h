// Tells a client_lib connection (served on the fast path) from any other
// gRPC client (served by the gRPC C++ server) by the SETTINGS frame that
// follows the HTTP/2 client preface: client_lib's carries the
// kFastPathSettingId entry (common/fast_path.h). Only peeks: the bytes stay
// in the socket for whichever server gets the connection.
#ifndef HSMD_DAEMON_FAST_PATH_CLASSIFY_H_
#define HSMD_DAEMON_FAST_PATH_CLASSIFY_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hsmd::fast_path {

enum class Verdict {
  // The opening announces client_lib: serve it on the fast path.
  kFastPath,
  // Anything else (another client, not HTTP/2 at all): gRPC decides.
  kGrpc,
  // More bytes are needed to tell.
  kNeedMore,
};

// Judges the first bytes a client sent.
Verdict ClassifyOpening(absl::string_view bytes);

enum class Transport { kFastPath, kGrpc, kClosed };

// Waits (up to `timeout`) for enough of the opening on `fd` to classify it.
// kClosed when the peer hung up or the socket failed before that; a client
// still silent at the timeout goes to gRPC, which has its own handshake
// timeout.
Transport ClassifyConnection(int fd, absl::Duration timeout);

}  // namespace hsmd::fast_path

#endif  // HSMD_DAEMON_FAST_PATH_CLASSIFY_H_
