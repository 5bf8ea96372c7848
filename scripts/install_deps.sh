#!/usr/bin/env bash
# Installs the Debian bookworm packages hsmd builds and tests with (only the
# missing ones). Runs apt-get through sudo when not root.
set -euo pipefail

PACKAGES=(
  # build
  bazel-bootstrap g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev libssl-dev libgtest-dev libgmock-dev libnghttp2-dev
  libp11-kit-dev libsystemd-dev grpc-proto
  # run and test
  softhsm2 openssl opensc python3 nginx-light apache2-bin systemd procps util-linux
  ca-certificates
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install_deps: installing ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
