// hsmd: the HSM daemon. See hsmd_main.h for flags and exit codes, and
// README.md.
#include "daemon/backend_factory.h"
#include "daemon/hsmd_main.h"

int main(int argc, char** argv) {
  return hsmd::RunHsmd(argc, argv, hsmd::NewBackendFromConfig);
}
