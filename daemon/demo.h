// `hsmd --demo DIR`: a self-contained SoftHSM token with demo keys.
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
// DIR/hsmd.conf is regenerated on every run (from DIR and --socket); to
// customise it, copy it elsewhere and run `hsmd --config COPY` with
// SOFTHSM2_CONF=DIR/softhsm2.conf.
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

struct DemoSetup {
  std::string dir;          // Absolute.
  std::string config_path;  // DIR/hsmd.conf
  bool created = false;     // True when this run initialised the token.
};

// Creates or reuses DIR as described above and sets SOFTHSM2_CONF for this
// process. `socket_override` (may be empty) replaces DIR/hsmd.sock.
absl::StatusOr<DemoSetup> PrepareDemo(const std::string& dir,
                                      const std::string& socket_override);

// The demo key set, as GenerateKey requests.
const std::vector<v1::GenerateKeyRequest>& DemoKeyRequests();

// Generates the demo keys `backend` lacks; returns all five in
// DemoKeyRequests() order.
absl::StatusOr<std::vector<v1::Key>> EnsureDemoKeys(backend::Backend& backend);

// How to use the running demo (printed on stdout).
std::string DemoUsage(const std::string& socket_path,
                      const std::vector<v1::Key>& keys);

}  // namespace hsmd

#endif  // HSMD_DAEMON_DEMO_H_
