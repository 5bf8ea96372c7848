#!/usr/bin/env bash
# The token PIN never leaves hsmd: not in any log line (debug level, JSON,
# audit records, errors, a client pasting it into a URI), not in
# /proc/PID/cmdline or /proc/PID/environ; hsmd is not dumpable and has no
# core limit. hsmd runs as an unprivileged user (4242) with the PIN from a
# systemd-style credential directory, so "not dumpable" is visible as
# /proc/PID files owned by root.
#
# Usage (from Bazel): pin_exposure_test.sh HSMD HSMCTL LSAN_SUPPRESSIONS
source "$(dirname "$0")/testlib.sh"
start_watchdog 240

require_root_and_setpriv
HSMD="$(public_copy "$(realpath "$1")")"
HSMCTL="$(public_copy "$(realpath "$2")")"
LSAN_SUPPRESSIONS="$(public_copy "$(realpath "$3")")"
USER_SPEC="4242:4242"

step "create the demo token as uid 4242"
make_demo_token "$WORK/demo" "$USER_SPEC"
PIN="$(cat "$WORK/demo/user.pin")"
[[ ${#PIN} -ge 8 ]] || fail "unexpected demo PIN length"

step "start hsmd as uid 4242 with the PIN as a credential, debug logging"
CREDS="$WORK/creds"
mkdir -m 0700 "$CREDS"
cp "$WORK/demo/user.pin" "$CREDS/user-pin"
chmod 0400 "$CREDS/user-pin"
chown -R 4242:4242 "$CREDS"
SOCK="$WORK/demo/hsmd.sock"
cat >"$WORK/hsmd.conf" <<CONF
listen { socket_path: "$SOCK" socket_mode: "0600" }
backends {
  name: "softhsm"
  pkcs11 {
    module_path: "/usr/lib/softhsm/libsofthsm2.so"
    token_label: "demo"
    pin { credential: "user-pin" }
  }
}
logging { level: DEBUG format: JSON }
audit { output: STDERR }
policy {
  rules { users: "4242" keys: "*" operations: [SIGN, DECRYPT, RANDOM, LIST, STATUS, ADMIN] }
}
CONF
chmod 0644 "$WORK/hsmd.conf"
LOG="$WORK/hsmd.log"
start_bg "$LOG" setpriv --reuid=4242 --regid=4242 --clear-groups env \
  "SOFTHSM2_CONF=$WORK/demo/softhsm2.conf" "CREDENTIALS_DIRECTORY=$CREDS" \
  "LSAN_OPTIONS=suppressions=$LSAN_SUPPRESSIONS" \
  "$HSMD" --config "$WORK/hsmd.conf"
HSMD_PID=$BG_PID
wait_ready "$HSMD_PID" "$USER_SPEC" "$SOCK"

step "exercise every path that could log"
echo "message" >"$WORK/msg"
chmod 0644 "$WORK/msg"
expect_rc 0 "$USER_SPEC" "$SOCK" list
expect_rc 0 "$USER_SPEC" "$SOCK" sign "pkcs11:token=demo;object=ec-p256" \
  --alg ecdsa --in "$WORK/msg" --out /dev/null
expect_rc 0 "$USER_SPEC" "$SOCK" random 32
expect_rc 0 "$USER_SPEC" "$SOCK" genkey --label pin-test --type ec --curve p256
expect_rc 0 "$USER_SPEC" "$SOCK" delete "pkcs11:object=pin-test" --yes
expect_rc 0 "$USER_SPEC" "$SOCK" stats
# A client pasting the PIN into a key URI: refused, and redacted in logs.
expect_rc 4 "$USER_SPEC" "$SOCK" sign "pkcs11:object=ec-p256?pin-value=$PIN" \
  --alg ecdsa --in "$WORK/msg" --out /dev/null
not_contains "$ERR" "$PIN"

step "not in /proc/PID/cmdline, /proc/PID/environ; not dumpable; no cores"
tr '\0' ' ' <"/proc/$HSMD_PID/cmdline" >"$WORK/cmdline"
not_contains "$(cat "$WORK/cmdline")" "$PIN"
contains "$(cat "$WORK/cmdline")" "--config"
tr '\0' '\n' <"/proc/$HSMD_PID/environ" >"$WORK/environ"
not_contains "$(cat "$WORK/environ")" "$PIN"
contains "$(cat "$WORK/environ")" "CREDENTIALS_DIRECTORY="
[[ "$(stat -c %u "/proc/$HSMD_PID/environ")" == 0 ]] ||
  fail "hsmd (uid 4242) is dumpable: /proc/PID owned by $(stat -c %u "/proc/$HSMD_PID/environ")"
grep -Eq '^Max core file size +0 +0 ' "/proc/$HSMD_PID/limits" ||
  fail "core dumps not disabled: $(grep 'core file' "/proc/$HSMD_PID/limits")"
[[ "$(stat -c %u "/proc/$HSMD_PID/status")" == 0 ]] || fail "status not root's"

step "stop; the PIN is in no log line"
stop_bg "$HSMD_PID"
grep -q '"level":"debug"' "$LOG" || fail "debug logging was not on"
grep -q '"msg":"audit"' "$LOG" || fail "no audit records"
grep -q 'pin-value=REDACTED' "$LOG" || fail "the pasted PIN was not redacted"
if grep -F -q "$PIN" "$LOG" "$WORK/demo-init.log"; then
  fail "the PIN appears in a log: $(grep -F -n "$PIN" "$LOG" "$WORK/demo-init.log" | head -3)"
fi

step "a wrong PIN: login fails, hsmd exits 3, the PIN is not logged"
WRONG="wrong-pin-$RANDOM$RANDOM"
chmod 0600 "$CREDS/user-pin"
printf '%s\n' "$WRONG" >"$CREDS/user-pin"
chmod 0400 "$CREDS/user-pin"
set +e
setpriv --reuid=4242 --regid=4242 --clear-groups env \
  "SOFTHSM2_CONF=$WORK/demo/softhsm2.conf" "CREDENTIALS_DIRECTORY=$CREDS" \
  "LSAN_OPTIONS=suppressions=$LSAN_SUPPRESSIONS" \
  timeout 60 "$HSMD" --config "$WORK/hsmd.conf" >"$WORK/wrong.log" 2>&1
rc=$?
set -e
[[ "$rc" -eq 3 ]] || fail "hsmd with a wrong PIN exited $rc, want 3: $(cat "$WORK/wrong.log")"
grep -q "CKR_PIN_INCORRECT" "$WORK/wrong.log" || fail "no CKR_PIN_INCORRECT: $(cat "$WORK/wrong.log")"
if grep -F -q "$WRONG" "$WORK/wrong.log"; then fail "the wrong PIN was logged"; fi

step "a PIN readable by others is refused without reading it out"
chmod 0644 "$CREDS/user-pin"
set +e
setpriv --reuid=4242 --regid=4242 --clear-groups env \
  "SOFTHSM2_CONF=$WORK/demo/softhsm2.conf" "CREDENTIALS_DIRECTORY=$CREDS" \
  "$HSMD" --config "$WORK/hsmd.conf" --check-config >"$WORK/mode.log" 2>&1
rc=$?
set -e
[[ "$rc" -eq 2 ]] || fail "--check-config with a 0644 PIN exited $rc"
contains "$(cat "$WORK/mode.log")" "mode 0644"
if grep -F -q "$WRONG" "$WORK/mode.log"; then fail "the PIN was printed"; fi
echo "PASS"
