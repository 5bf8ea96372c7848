#!/usr/bin/env bash
# Runs Bazel with the project's shared disk cache, so a fresh clone (CI) reuses
# earlier compilations. Usage: scripts/bazel.sh build //...
set -euo pipefail
cache="${HSMD_BAZEL_DISK_CACHE:-$HOME/.cache/hsmd-bazel-disk-cache}"
mkdir -p "$cache"
cmd="$1"
shift
extra=()
for arg in "$@"; do
  if [[ "$arg" == --config=tsan ]]; then
    # TSan reads the project's suppressions (races inside Debian's
    # uninstrumented gRPC and Abseil, see the file) by absolute path: tests
    # and the daemons they start run in sandboxes, not in the source tree.
    root="$(cd "$(dirname "$0")/.." && pwd)"
    extra+=("--test_env=TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tsan_suppressions.txt")
  fi
done
exec bazel "$cmd" --disk_cache="$cache" "$@" ${extra[@]+"${extra[@]}"}
