#!/usr/bin/env bash
# deploy/systemd: the units pass `systemd-analyze verify` (alone and with
# each documented drop-in), hsmd.service's `systemd-analyze security
# --offline=true` exposure is at most 2.0 (the figure is printed), the
# sysusers snippet parses, and the hardening settings the deployment
# promises are present.
#
# Usage (from Bazel): systemd_units_test.sh HSMD DEPLOY_FILES...
source "$(dirname "$0")/testlib.sh"
start_watchdog 120

command -v systemd-analyze >/dev/null ||
  skip "systemd-analyze is not installed (package systemd)"
HSMD="$(realpath "$1")"
shift
declare -A SRC
for f in "$@"; do SRC["$(basename "$f")"]="$(realpath "$f")"; done
for f in hsmd.service hsmd.socket hsmd.sysusers.conf real-hsm-device.conf \
  network-hsm.conf softhsm.conf; do
  [[ -n "${SRC[$f]:-}" ]] || fail "missing deploy file $f"
done

# Copies of the units whose ExecStart names the built hsmd (verify checks
# that the binary exists).
UNITS="$WORK/units"
mkdir -p "$UNITS"
cp "${SRC[hsmd.socket]}" "$UNITS/"
sed "s|^ExecStart=/usr/local/bin/hsmd |ExecStart=$HSMD |" \
  "${SRC[hsmd.service]}" >"$UNITS/hsmd.service"
grep -q "^ExecStart=$HSMD --config /etc/hsmd/hsmd.conf$" "$UNITS/hsmd.service" ||
  fail "ExecStart= did not have the expected form"

verify() {
  set +e
  systemd-analyze verify --man=no "$UNITS/hsmd.socket" "$UNITS/hsmd.service" \
    >"$WORK/verify.out" 2>&1
  local rc=$?
  set -e
  [[ "$rc" -eq 0 && ! -s "$WORK/verify.out" ]] ||
    fail "systemd-analyze verify (rc $rc): $(cat "$WORK/verify.out")"
}

# Prints and returns (in EXPOSURE) the overall exposure of hsmd.service.
exposure() {
  systemd-analyze security --offline=true --no-pager "$UNITS/hsmd.service" \
    >"$WORK/security.out" 2>&1 || fail "security: $(cat "$WORK/security.out")"
  EXPOSURE="$(sed -n 's/.*Overall exposure level for hsmd.service: \([0-9.]*\).*/\1/p' \
    "$WORK/security.out")"
  [[ -n "$EXPOSURE" ]] || fail "no exposure figure: $(cat "$WORK/security.out")"
}

step "systemd-analyze verify hsmd.socket hsmd.service"
verify

step "systemd-analyze security --offline=true hsmd.service"
exposure
echo "hsmd.service exposure: $EXPOSURE (limit 2.0)"
grep '✗' "$WORK/security.out" || true
python3 -c "import sys; sys.exit(0 if float('$EXPOSURE') <= 2.0 else 1)" ||
  fail "exposure $EXPOSURE is above 2.0"

step "each documented drop-in verifies"
for dropin in real-hsm-device.conf network-hsm.conf softhsm.conf; do
  rm -rf "$UNITS/hsmd.service.d"
  mkdir "$UNITS/hsmd.service.d"
  cp "${SRC[$dropin]}" "$UNITS/hsmd.service.d/"
  verify
  exposure
  echo "with $dropin: exposure $EXPOSURE"
done
rm -rf "$UNITS/hsmd.service.d"

step "the settings the deployment promises are there"
service="$(cat "${SRC[hsmd.service]}")"
for line in Type=notify WatchdogSec= NotifyAccess=main Requires=hsmd.socket \
  "LoadCredential=user-pin:" RuntimeDirectory=hsmd StateDirectory=hsmd \
  User=hsmd SupplementaryGroups=hsmd-hsm NoNewPrivileges=yes \
  ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateNetwork=yes \
  RestrictAddressFamilies=AF_UNIX "CapabilityBoundingSet=
" SystemCallFilter=@system-service MemoryDenyWriteExecute=yes \
  LockPersonality=yes ProtectKernelTunables=yes ProtectKernelModules=yes \
  ProtectKernelLogs=yes UMask=0077 LimitCORE=0; do
  contains "$service" "$line"
done
socket="$(cat "${SRC[hsmd.socket]}")"
for line in ListenStream=/run/hsmd/hsmd.sock SocketGroup=hsmd-clients \
  SocketMode=0660; do
  contains "$socket" "$line"
done

step "the sysusers snippet parses"
if command -v systemd-sysusers >/dev/null; then
  mkdir -p "$WORK/root/etc"
  systemd-sysusers --dry-run --root="$WORK/root" "${SRC[hsmd.sysusers.conf]}" \
    >"$WORK/sysusers.out" 2>&1 || fail "sysusers: $(cat "$WORK/sysusers.out")"
  for want in "group 'hsmd-clients'" "group 'hsmd-hsm'" "user 'hsmd'"; do
    contains "$(cat "$WORK/sysusers.out")" "$want"
  done
else
  echo "systemd-sysusers not installed; snippet not parsed"
fi
echo "PASS (exposure $(sed -n 's/.*hsmd.service: \([0-9.]*\).*/\1/p' "$WORK/security.out" | head -1))"
