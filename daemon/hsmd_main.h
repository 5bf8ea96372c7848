// hsmd's main program, as a function so that test builds can run the very
// same start-up, signal and shutdown code with another backend factory.
//
// Usage: hsmd --config FILE [--check-config]
//        hsmd --demo DIR [--socket PATH] [--softsdf-library PATH]
//        hsmd --version | --help
//
// Exit codes:
//   0  clean shutdown after SIGTERM/SIGINT; --check-config found no problem;
//      --version / --help
//   1  usage error (unknown flag, missing argument), or the process could
//      not be set up (OpenSSL configuration, signals)
//   2  configuration error: the file does not parse or validate, or (with
//      --check-config) a PIN, module or socket group is unusable
//   3  a backend failed to start (module not loadable, token not found,
//      login failed)
//   4  the socket could not be prepared or bound (another hsmd running,
//      permissions, path in use by something else)
//   5  --demo could not set up its directory, token or keys
//   6  a second SIGTERM/SIGINT arrived during shutdown: immediate exit
#ifndef HSMD_DAEMON_HSMD_MAIN_H_
#define HSMD_DAEMON_HSMD_MAIN_H_

#include "daemon/backend_factory.h"

namespace hsmd {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,
  kExitConfig = 2,
  kExitBackend = 3,
  kExitSocket = 4,
  kExitDemo = 5,
  kExitForced = 6,
};

// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
int RunHsmd(int argc, char** argv, const BackendFactory& factory);

}  // namespace hsmd

#endif  // HSMD_DAEMON_HSMD_MAIN_H_
