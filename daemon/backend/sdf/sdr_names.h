// Names of the SDR_* return codes of GM/T 0018 ("SDR_KEYNOTEXIST"). Shared
// by the SDF backend's error mapping (sdr.h) and the software SDF device's
// debug output, which must not link protobuf (sdr.h's error details do).
#ifndef HSMD_DAEMON_BACKEND_SDF_SDR_NAMES_H_
#define HSMD_DAEMON_BACKEND_SDF_SDR_NAMES_H_

namespace hsmd::backend::sdf {

// The standard's name of `code`, or nullptr for a code it does not define
// (vendor codes, gaps in the range).
const char* SdrCodeName(int code);

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_SDR_NAMES_H_
