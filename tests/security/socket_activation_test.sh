#!/usr/bin/env bash
# Socket activation end to end: systemd-socket-activate owns the socket and
# starts hsmd on the first connection; hsmd serves on the passed socket,
# reports READY=1 / WATCHDOG=1 / STOPPING=1 on $NOTIFY_SOCKET, takes the PIN
# from $CREDENTIALS_DIRECTORY, and leaves the socket to its owner when it
# stops. Then the same config without activation: hsmd binds the socket
# itself (and removes it at exit).
#
# Usage (from Bazel): socket_activation_test.sh HSMD HSMCTL LSAN_SUPPRESSIONS
source "$(dirname "$0")/testlib.sh"
start_watchdog 240

command -v systemd-socket-activate >/dev/null ||
  skip "systemd-socket-activate is not installed (package systemd)"
HSMD="$(realpath "$1")"
HSMCTL="$(realpath "$2")"
LSAN_SUPPRESSIONS="$(realpath "$3")"
ME="$(id -u)"

step "create the demo token"
make_demo_token "$WORK/demo"

CREDS="$WORK/creds"
mkdir -m 0700 "$CREDS"
cp "$WORK/demo/user.pin" "$CREDS/user-pin"
chmod 0400 "$CREDS/user-pin"
SOCK="$WORK/run/hsmd.sock"
mkdir -p "$WORK/run"
cat >"$WORK/hsmd.conf" <<CONF
listen { socket_path: "$SOCK" }
backends {
  name: "softhsm"
  pkcs11 {
    module_path: "/usr/lib/softhsm/libsofthsm2.so"
    token_label: "demo"
    pin { credential: "user-pin" }
  }
}
policy {
  rules { users: "$ME" keys: "*" operations: [SIGN, LIST, STATUS] }
}
CONF

step "a notification socket standing in for systemd"
NOTIFY="$WORK/notify"
NOTES="$WORK/notify.log"
start_bg "$WORK/notify.err" python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        msg = s.recv(4096).decode()
        out.write(msg.replace("\n", " ") + "\n")
        out.flush()
' "$NOTIFY" "$NOTES"
for _ in $(seq 1 100); do [[ -S "$NOTIFY" ]] && break; sleep 0.05; done
[[ -S "$NOTIFY" ]] || fail "notify listener did not start"

step "systemd-socket-activate holds the socket; hsmd starts on demand"
LOG="$WORK/hsmd.log"
start_bg "$LOG" systemd-socket-activate -l "$SOCK" \
  -E "SOFTHSM2_CONF=$WORK/demo/softhsm2.conf" \
  -E "CREDENTIALS_DIRECTORY=$CREDS" \
  -E "NOTIFY_SOCKET=$NOTIFY" \
  -E "WATCHDOG_USEC=1000000" \
  -E "LSAN_OPTIONS=suppressions=$LSAN_SUPPRESSIONS" \
  ${TSAN_OPTIONS:+-E "TSAN_OPTIONS=$TSAN_OPTIONS"} \
  "$HSMD" --config "$WORK/hsmd.conf"
ACTIVATOR_PID=$BG_PID
for _ in $(seq 1 100); do [[ -S "$SOCK" ]] && break; sleep 0.05; done
[[ -S "$SOCK" ]] || fail "systemd-socket-activate did not create $SOCK"
not_contains "$(cat "$LOG")" "hsmd starting"

step "the first client's connection starts hsmd, which answers it"
expect_rc 0 root "$SOCK" status
contains "$OUT" "READY"
contains "$(cat "$LOG")" "socket_activated=true"
echo "signed after socket activation" >"$WORK/msg"
expect_rc 0 root "$SOCK" show "pkcs11:token=demo;object=ec-p256" --pubout "$WORK/ec.pub.pem"
"$HSMCTL" --socket "$SOCK" sign "pkcs11:token=demo;object=ec-p256" --alg ecdsa \
  --in "$WORK/msg" --out "$WORK/msg.sig" || fail "sign failed"
openssl dgst -sha256 -verify "$WORK/ec.pub.pem" -signature "$WORK/msg.sig" \
  "$WORK/msg" >/dev/null || fail "openssl rejects the signature"

step "READY=1 once serving, then WATCHDOG=1 pings (every 0.5 s here)"
for _ in $(seq 1 200); do
  [[ "$(grep -c '^WATCHDOG=1' "$NOTES" 2>/dev/null || true)" -ge 2 ]] && break
  sleep 0.1
done
grep -q '^READY=1 STATUS=serving' "$NOTES" || fail "no READY=1: $(cat "$NOTES")"
[[ "$(grep -c '^WATCHDOG=1' "$NOTES")" -ge 2 ]] || fail "no watchdog pings: $(cat "$NOTES")"

step "SIGTERM: STOPPING=1, exit 0, the socket stays with its owner"
# systemd-socket-activate execs hsmd in place: same pid.
stop_bg "$ACTIVATOR_PID"
grep -q '^STOPPING=1' "$NOTES" || fail "no STOPPING=1: $(cat "$NOTES")"
[[ -S "$SOCK" ]] || fail "hsmd removed the socket it did not create"
rm -f "$SOCK"

step "the same config without socket activation"
LOG2="$WORK/hsmd-plain.log"
start_bg "$LOG2" env "SOFTHSM2_CONF=$WORK/demo/softhsm2.conf" \
  "CREDENTIALS_DIRECTORY=$CREDS" "LSAN_OPTIONS=suppressions=$LSAN_SUPPRESSIONS" \
  "$HSMD" --config "$WORK/hsmd.conf"
PLAIN_PID=$BG_PID
wait_ready "$PLAIN_PID" root "$SOCK"
contains "$(cat "$LOG2")" "socket_activated=false"
expect_rc 0 root "$SOCK" list
stop_bg "$PLAIN_PID"
[[ ! -e "$SOCK" ]] || fail "hsmd left its own socket behind"

step "a socket bound elsewhere is refused with a clear message"
set +e
timeout 60 systemd-socket-activate -l "$WORK/run/other.sock" \
  "$HSMD" --config "$WORK/hsmd.conf" >"$WORK/other.log" 2>&1 &
other=$!
set -e
for _ in $(seq 1 100); do [[ -S "$WORK/run/other.sock" ]] && break; sleep 0.05; done
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' \
  "$WORK/run/other.sock" || true
set +e
wait "$other"
rc=$?
set -e
[[ "$rc" -eq 4 ]] || fail "hsmd with a foreign socket exited $rc, want 4: $(cat "$WORK/other.log")"
contains "$(cat "$WORK/other.log")" "listen.socket_path is \\\"$SOCK\\\""
echo "PASS"
