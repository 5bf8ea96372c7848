// Invalid UTF-8 in string fields makes protobuf log an ERROR line per parse;
// fuzz targets test the parse failure itself, so the log is only noise.
#ifndef HSMD_TESTS_FUZZ_QUIET_PROTOBUF_H_
#define HSMD_TESTS_FUZZ_QUIET_PROTOBUF_H_

#include "google/protobuf/stubs/logging.h"

namespace hsmd::fuzz {

// Silences protobuf's log for the rest of the process (once).
inline void QuietProtobufLogs() {
  static const bool kQuiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)kQuiet;
}

}  // namespace hsmd::fuzz

#endif  // HSMD_TESTS_FUZZ_QUIET_PROTOBUF_H_
