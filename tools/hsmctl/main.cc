// hsmctl: the command-line tool for hsmd. See README.md here and
// `hsmctl --help`.
//
// It reaches hsmd only through client_lib (no gRPC C++ runtime) and never
// handles a PIN: hsmd holds it.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "tools/hsmctl/commands.h"

int main(int argc, char** argv) {
  // Writing to a closed pipe (`hsmctl list | head -1`) should end in a write
  // error, not a silent kill mid-output.
  signal(SIGPIPE, SIG_IGN);
  std::ios::sync_with_stdio(false);

  hsmd::hsmctl::Environment env;
  env.in = &std::cin;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.stdin_is_tty = isatty(STDIN_FILENO) == 1;
  if (const char* socket = getenv("HSMD_SOCKET");
      socket != nullptr && *socket != '\0') {
    env.socket_from_env = socket;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  const int code = hsmd::hsmctl::RunCommandLine(args, std::move(env));
  std::cout.flush();
  return code;
}
