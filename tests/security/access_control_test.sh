#!/usr/bin/env bash
# Access control end to end: a real hsmd (SoftHSM token "demo") with a
# policy, clients run as other users with setpriv:
#   uid 4242, groups 4343 (socket) + 4500 (signers): may sign with ec-* keys
#   uid 65534 (nobody), group 4343 only: reaches the socket, is denied keys
#   uid 4444, no groups: the socket's permissions keep it out (EACCES)
# Every signature is checked with openssl; denials are logged and audited.
#
# Usage (from Bazel): access_control_test.sh HSMD HSMCTL LSAN_SUPPRESSIONS
source "$(dirname "$0")/testlib.sh"
start_watchdog 240

require_root_and_setpriv
HSMD="$(realpath "$1")"
HSMCTL="$(public_copy "$(realpath "$2")")"
LSAN_SUPPRESSIONS="$(realpath "$3")"

SIGNER="4242:4242:4343,4500"
NOBODY="65534:65534:4343"
OUTSIDER="4444:4444"

step "create the demo token"
make_demo_token "$WORK/demo"

step "start hsmd with a policy"
mkdir -p "$WORK/run"
chmod 0755 "$WORK/run"
SOCK="$WORK/run/hsmd.sock"
cat >"$WORK/hsmd.conf" <<CONF
listen { socket_path: "$SOCK" socket_mode: "0660" socket_group: "4343" }
backends {
  name: "softhsm"
  pkcs11 {
    module_path: "/usr/lib/softhsm/libsofthsm2.so"
    token_label: "demo"
    pin { file: "$WORK/demo/user.pin" }
  }
}
policy {
  rules { name: "ops" users: "root" keys: "*" operations: [ADMIN, LIST] }
  rules {
    name: "signers"
    groups: "4500"
    keys: "pkcs11:token=demo;object=ec-*"
    operations: [SIGN]
  }
  rules { name: "socket-users" groups: "4343" operations: [RANDOM] }
}
audit { output: STDERR }
CONF
LOG="$WORK/hsmd.log"
start_bg "$LOG" env "SOFTHSM2_CONF=$WORK/demo/softhsm2.conf" \
  "LSAN_OPTIONS=suppressions=$LSAN_SUPPRESSIONS" "$HSMD" --config "$WORK/hsmd.conf"
HSMD_PID=$BG_PID
wait_ready "$HSMD_PID" root "$SOCK"
[[ "$(stat -c '%a %g' "$SOCK")" == "660 4343" ]] ||
  fail "socket mode/group: $(stat -c '%a %g' "$SOCK")"

step "public keys (root: ADMIN, LIST)"
for label in ec-p256 ec-p384 rsa-2048; do
  expect_rc 0 root "$SOCK" show "pkcs11:token=demo;object=$label" \
    --pubout "$WORK/$label.pub.pem"
done
echo "a message signed through hsmd" >"$WORK/msg"
chmod 0644 "$WORK/msg"

step "a signer (uid 4242, group 4500) signs with ec-* keys"
for label in ec-p256 ec-p384; do
  # The signature goes to a file the test (root) opened.
  setpriv --reuid=4242 --regid=4242 --groups=4343,4500 timeout 60 "$HSMCTL" \
    --socket "$SOCK" --timeout 30s sign "pkcs11:token=demo;object=$label" \
    --alg ecdsa --in "$WORK/msg" --out - >"$WORK/$label.sig" 2>"$WORK/err" ||
    fail "signer could not sign with $label: $(cat "$WORK/err")"
  openssl dgst -sha256 -verify "$WORK/$label.pub.pem" \
    -signature "$WORK/$label.sig" "$WORK/msg" >/dev/null ||
    fail "openssl rejects the $label signature"
done

step "the signer may not use other keys, and sees only its keys"
expect_rc 4 "$SIGNER" "$SOCK" sign "pkcs11:token=demo;object=rsa-2048" \
  --alg rsa-pkcs1 --in "$WORK/msg" --out -
contains "$ERR" "permission denied: uid 4242 may not sign with pkcs11:token=demo;object=rsa-2048"
expect_rc 0 "$SIGNER" "$SOCK" --json list
labels="$(printf '%s' "$OUT" | python3 -c '
import json, sys
print(",".join(sorted(k["label"] for k in json.load(sys.stdin)["keys"])))')"
[[ "$labels" == "ec-p256,ec-p384" ]] || fail "signer lists: $labels"
expect_rc 0 "$SIGNER" "$SOCK" random 16

step "nobody reaches the socket (group 4343) but is denied keys"
expect_rc 4 "$NOBODY" "$SOCK" sign "pkcs11:token=demo;object=ec-p256" \
  --alg ecdsa --in "$WORK/msg" --out -
contains "$ERR" "permission denied: uid 65534 may not sign with pkcs11:token=demo;object=ec-p256"
not_contains "$ERR" "signers"  # No policy internals in the message.
expect_rc 4 "$NOBODY" "$SOCK" list
contains "$ERR" "permission denied: uid 65534 may not list keys"
expect_rc 4 "$NOBODY" "$SOCK" status
contains "$ERR" "permission denied: uid 65534 may not read the daemon status"
# Missing and existing keys look alike to a caller without grants.
expect_rc 4 "$NOBODY" "$SOCK" sign "pkcs11:token=demo;object=no-such-key" \
  --alg ecdsa --in "$WORK/msg" --out -
contains "$ERR" "permission denied"
expect_rc 0 "$NOBODY" "$SOCK" random 16

step "a user without the socket group cannot connect at all"
expect_rc 3 "$OUTSIDER" "$SOCK" random 16
contains "$ERR" "permission denied"

step "root manages keys (ADMIN)"
expect_rc 0 root "$SOCK" genkey --label sec-test --type ec --curve p256
expect_rc 4 "$SIGNER" "$SOCK" delete "pkcs11:token=demo;object=sec-test" --yes
contains "$ERR" "permission denied: uid 4242 may not delete"
expect_rc 0 root "$SOCK" delete "pkcs11:token=demo;object=sec-test" --yes
expect_rc 4 root "$SOCK" sign "pkcs11:token=demo;object=ec-p256" \
  --alg ecdsa --in "$WORK/msg" --out -
contains "$ERR" "permission denied: uid 0 may not sign"

step "stop hsmd; denials were logged and audited"
stop_bg "$HSMD_PID"
log="$(cat "$LOG")"
grep -q 'level=warning msg=request uid=65534 .*method=Sign .*status=PERMISSION_DENIED' "$LOG" ||
  fail "no warning log line for nobody's denied Sign"
python3 - "$LOG" <<'PY' || fail "audit records do not match the requests"
import json, sys
records = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{") and '"msg":"audit"' in l]
def count(**kw):
    return sum(all(r.get(k) == v for k, v in kw.items()) for r in records)
# The signer: one signature with each ec key allowed, one denied.
assert count(method="Sign", peer_uid=4242, decision="allow", result="OK") == 2, records
assert count(method="Sign", peer_uid=4242, decision="deny") == 1
assert count(method="Sign", peer_uid=65534, decision="deny",
             key="pkcs11:token=demo;object=ec-p256") == 1
assert count(method="Sign", peer_uid=65534, decision="deny") == 2
assert count(method="ListKeys", peer_uid=65534, decision="deny") == 1
assert count(method="GenerateRandom", peer_uid=65534, result="OK") == 1
# The outsider never got in, so it has no record.
assert count(peer_uid=4444) == 0
# Allowed records name the rule; every record names the peer.
assert all(r["rule"] == "signers" for r in records
           if r["method"] == "Sign" and r["decision"] == "allow")
assert all("peer_pid" in r and "peer_gid" in r for r in records)
signer = [r for r in records if r.get("peer_uid") == 4242]
assert all(r["peer_groups"] == "4343,4500" for r in signer), signer[0]
assert all(r["peer_exe"].endswith("/hsmctl") for r in signer), signer[0]
denied = [r for r in records if r["decision"] == "deny"]
assert all(r["level"] == "warning" for r in denied)
PY
echo "PASS"
