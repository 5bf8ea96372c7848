// `hsmd --demo DIR`: a self-contained SoftHSM token with demo keys, and a
// software SDF device with SM2 / SM4 keys.
//
// The first run creates, in DIR (mode 0700):
//   softhsm2.conf   SoftHSM's config, pointing at DIR/tokens
//   tokens/         the token store, with one token labelled "demo"
//   user.pin        the token's random user PIN (mode 0600)
//   hsmd.conf       a config serving that token on DIR/hsmd.sock (mode 0600),
//                   with a permissive policy rule for the user who ran it
// The token is initialised through PKCS#11 (C_InitToken / C_InitPIN) with a
// random SO PIN that is not stored anywhere: nobody needs it for the demo,
// and to start over one deletes DIR. Later runs reuse the token. The demo keys
// (rsa-2048, rsa-3072, ec-p256, ec-p384, ed25519) are generated through the
// backend once it is up, on the first run or whenever one is missing.
// 国密: when the software SDF device's library (libsoftsdf.so) is found,
// the demo also serves it as backend and device "soft0":
//   sdf/            its key store (made once with tools/softsdf's key store
//                   code): index 1 holds an SM2 signing key pair, an SM2
//                   encryption key pair and an SM4 key
//   sdf.password    the random access password of index 1 (mode 0600; the
//                   store keeps only its salted hash)
// with keys sdf:device=soft0;index=1;usage=sign|enc|sm4 (labels sm2-sign,
// sm2-enc, sm4-demo). The device finds its store through SOFTSDF_STORE,
// which the demo sets for its own process. Without the library the demo
// serves the SoftHSM token alone and logs a warning saying so.
// DIR/hsmd.conf is regenerated on every run (from DIR and --socket); to
// customise it, copy it elsewhere and run `hsmd --config COPY` with
// SOFTHSM2_CONF=DIR/softhsm2.conf (and SOFTSDF_STORE=DIR/sdf).
#ifndef HSMD_DAEMON_DEMO_H_
#define HSMD_DAEMON_DEMO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/backend/backend.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd {

inline constexpr char kDemoModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";
inline constexpr char kDemoTokenLabel[] = "demo";
// The SDF backend's name and device name.
inline constexpr char kDemoSdfDevice[] = "soft0";

struct DemoSetup {
  std::string dir;          // Absolute.
  std::string config_path;  // DIR/hsmd.conf
  bool created = false;     // True when this run initialised the token.
  // The softsdf library served as "soft0"; empty when there is none.
  std::string softsdf_library;
  bool sdf_created = false;  // True when this run created DIR/sdf.
};

// Where `hsmd --demo` looks for libsoftsdf.so. `flag` (--softsdf-library) is
// used if given (NOT_FOUND if it is not a readable file). Otherwise, relative
// to the hsmd binary as Bazel lays it out: `argv0`'s directory, its
// runfiles tree (argv0.runfiles/hsmd/...), and the directory of
// /proc/self/exe, each + "/../tools/softsdf/libsoftsdf.so" (bazel-bin and
// test runfiles) or the runfiles path. Returns "" when none exists.
absl::StatusOr<std::string> FindSoftSdfLibrary(const std::string& flag,
                                               const std::string& argv0);

// Creates or reuses DIR as described above and sets SOFTHSM2_CONF (and, with
// `softsdf_library`, SOFTSDF_STORE) for this process. `socket_override` (may
// be empty) replaces DIR/hsmd.sock; an empty `softsdf_library` leaves the
// SDF device out.
absl::StatusOr<DemoSetup> PrepareDemo(const std::string& dir,
                                      const std::string& socket_override,
                                      const std::string& softsdf_library);

// The demo key set, as GenerateKey requests.
const std::vector<v1::GenerateKeyRequest>& DemoKeyRequests();

// Generates the demo keys `backend` lacks; returns all five in
// DemoKeyRequests() order.
absl::StatusOr<std::vector<v1::Key>> EnsureDemoKeys(backend::Backend& backend);

// How to use the running demo (printed on stdout). `sdf_keys` are the keys
// of "soft0" (empty without the SDF device).
std::string DemoUsage(const std::string& socket_path,
                      const std::vector<v1::Key>& keys,
                      const std::vector<v1::Key>& sdf_keys);

}  // namespace hsmd

#endif  // HSMD_DAEMON_DEMO_H_
