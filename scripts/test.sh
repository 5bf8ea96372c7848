#!/usr/bin/env bash
# The README's second command: installs what is missing, builds everything and
# runs every test (unit, integration, fork, end-to-end), then the sanitizer
# pass. HSMD_SKIP_SANITIZERS=1 skips the latter.
set -euo pipefail

cd "$(dirname "$0")/.."
scripts/install_deps.sh

echo "== bazel test //... =="
scripts/bazel.sh test //... "$@"

if [[ "${HSMD_SKIP_SANITIZERS:-0}" != 1 ]]; then
  echo "== bazel test --config=asan //... (ASan + UBSan) =="
  scripts/bazel.sh test --config=asan //... "$@"
fi
echo "== all tests passed =="
