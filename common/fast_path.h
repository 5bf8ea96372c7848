// How a client_lib connection tells hsmd that hsmd may serve it on its fast
// path (daemon/fast_path/) instead of the gRPC C++ server.
//
// client_lib puts one extra entry in the SETTINGS frame that opens every
// connection: an identifier from the range RFC 9113 section 11.3 reserves
// for experimental use. HTTP/2 peers must ignore settings they do not know,
// so a gRPC server that is not hsmd's fast path (an older hsmd, or one with
// listen.fast_path off) serves the connection as usual.
#ifndef HSMD_COMMON_FAST_PATH_H_
#define HSMD_COMMON_FAST_PATH_H_

#include <cstdint>

namespace hsmd {

inline constexpr uint16_t kFastPathSettingId = 0xf0d5;
// The fast path's protocol revision: unary gRPC calls, one at a time per
// connection, as client_lib makes them.
inline constexpr uint32_t kFastPathSettingValue = 1;

}  // namespace hsmd

#endif  // HSMD_COMMON_FAST_PATH_H_
