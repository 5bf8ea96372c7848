#!/bin/bash
# The full benchmark, exactly as the README's figures were produced:
# an optimised build, then one run (about 4 minutes on 2 cores) that starts
# its own `hsmd --demo`, and writes bench/results.{json,md} plus the text
# table on stdout.
#
#   bench/run.sh [extra hsmd_bench flags, e.g. --skip nginx]
#
# BAZEL_STARTUP / BAZEL_FLAGS add options, e.g. on a shared machine:
#   BAZEL_STARTUP=--output_base=$HOME/.cache/bazel-ob-bench \
#   BAZEL_FLAGS=--disk_cache=$HOME/.cache/hsmd-disk-cache bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2086
exec bazel ${BAZEL_STARTUP:-} run -c opt ${BAZEL_FLAGS:-} //bench:hsmd_bench -- \
  --json_out bench/results.json --markdown_out bench/results.md "$@"
