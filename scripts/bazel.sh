#!/usr/bin/env bash
# Runs Bazel with the project's shared disk cache, so a fresh clone (CI) reuses
# earlier compilations. Usage: scripts/bazel.sh build //...
set -euo pipefail
cache="${HSMD_BAZEL_DISK_CACHE:-$HOME/.cache/hsmd-bazel-disk-cache}"
mkdir -p "$cache"
cmd="$1"
shift
exec bazel "$cmd" --disk_cache="$cache" "$@"
