#!/usr/bin/env bash
# Audit records go to the systemd journal, with structured fields, when hsmd
# runs under systemd (here: $JOURNAL_STREAM set, audit output AUTO), and
# they agree with GetStats: the same requests per method and key.
#
# The journal is a stand-in: in a private mount namespace, a tmpfs over /run
# and a datagram socket at /run/systemd/journal/socket that decodes the
# journal's native protocol (what libsystemd's sd_journal_sendv speaks).
#
# Usage (from Bazel): journal_audit_test.sh FAKE_HSMD HSMCTL
if [[ -z "${HSMD_TEST_IN_NAMESPACE:-}" ]]; then
  [[ "$(id -u)" -eq 0 ]] || { echo "SKIPPED: needs root for a mount namespace"; exit 0; }
  unshare --mount --propagation private true 2>/dev/null ||
    { echo "SKIPPED: cannot create a mount namespace here"; exit 0; }
  export HSMD_TEST_IN_NAMESPACE=1
  exec unshare --mount --propagation private "$0" "$@"
fi
source "$(dirname "$0")/testlib.sh"
start_watchdog 180
require_root_and_setpriv
HSMD="$(realpath "$1")"
HSMCTL="$(public_copy "$(realpath "$2")")"

step "a journal socket in a private /run"
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal
JOURNAL="$WORK/journal.jsonl"
start_bg "$WORK/journal.err" python3 -u -c '
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
os.chmod("/run/systemd/journal/socket", 0o666)
def parse(data):
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            v = data[nl + 9:nl + 9 + size]
            i = nl + 9 + size + 1
        fields[k.decode()] = v.decode()
    return fields
with open(sys.argv[1], "a") as out:
    while True:
        data, anc, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(4))
        for level, kind, payload in anc:
            if kind == socket.SCM_RIGHTS:  # Large entries come as a memfd.
                fd = struct.unpack("i", payload[:4])[0]
                data = os.pread(fd, 1 << 20, 0)
                os.close(fd)
        out.write(json.dumps(parse(data)) + "\n")
        out.flush()
' "$JOURNAL"
for _ in $(seq 1 100); do [[ -S /run/systemd/journal/socket ]] && break; sleep 0.05; done
[[ -S /run/systemd/journal/socket ]] || fail "journal stand-in did not start"

step "hsmd under \"systemd\" (JOURNAL_STREAM set)"
SOCK="$WORK/hsmd.sock"
cat >"$WORK/hsmd.conf" <<CONF
listen { socket_path: "$SOCK" socket_mode: "0666" }
backends {
  name: "hsm"
  pkcs11 {
    module_path: "/fake"
    token_label: "fake"
    pin { file: "/fake.pin" }
  }
}
policy {
  rules { users: "root" keys: "*" operations: [SIGN, LIST, STATUS, RANDOM] }
  rules { users: "nobody" operations: [RANDOM] }
}
CONF
LOG="$WORK/hsmd.log"
start_bg "$LOG" env JOURNAL_STREAM=8:4242 "$HSMD" --config "$WORK/hsmd.conf"
HSMD_PID=$BG_PID
wait_ready "$HSMD_PID" root "$SOCK"
contains "$(cat "$LOG")" "audit=journal"

step "requests: allowed, failed, denied"
echo "message" >"$WORK/msg"
chmod 0644 "$WORK/msg"
for _ in 1 2 3; do
  expect_rc 0 root "$SOCK" sign "pkcs11:object=ec-p256" --alg ecdsa \
    --in "$WORK/msg" --out /dev/null
done
expect_rc 4 root "$SOCK" sign "pkcs11:object=ec-p256" --alg rsa-pkcs1 \
  --in "$WORK/msg" --out /dev/null
expect_rc 4 root "$SOCK" sign "pkcs11:object=missing" --alg ecdsa \
  --in "$WORK/msg" --out /dev/null
expect_rc 4 "65534:65534" "$SOCK" sign "pkcs11:object=ec-p256" --alg ecdsa \
  --in "$WORK/msg" --out /dev/null
contains "$ERR" "permission denied: uid 65534 may not sign"
expect_rc 0 "65534:65534" "$SOCK" random 8
expect_rc 0 root "$SOCK" list
expect_rc 0 root "$SOCK" --json stats
printf '%s' "$OUT" >"$WORK/stats.json"
stop_bg "$HSMD_PID"

step "the journal has one record per request, matching GetStats"
if grep -q '"msg":"audit"' "$LOG"; then
  fail "audit records went to stderr instead of the journal"
fi
python3 - "$JOURNAL" "$WORK/stats.json" <<'PY' || fail "journal and stats disagree"
import collections, json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
audit = [e for e in entries if e.get("HSMD_AUDIT") == "1"]
assert audit, entries
for e in audit:
    assert e["MESSAGE_ID"] == "5f1c8e0a2b7d4c3e9a6f0b1d2c3e4f50", e
    assert e["SYSLOG_IDENTIFIER"] == "hsmd", e
    assert e["MESSAGE"].startswith("audit: uid "), e
    for field in ("HSMD_METHOD", "HSMD_DECISION", "HSMD_RESULT", "HSMD_PEER_UID",
                  "HSMD_PEER_GID", "HSMD_PEER_PID", "HSMD_CONNECTION",
                  "HSMD_LATENCY_US"):
        assert field in e, (field, e)
    assert e["HSMD_PEER_EXE"].endswith("/hsmctl"), e
denied = [e for e in audit if e["HSMD_DECISION"] == "deny"]
assert len(denied) == 1, denied
d = denied[0]
assert d["PRIORITY"] == "4" and d["HSMD_PEER_UID"] == "65534", d
assert d["HSMD_KEY"] == "pkcs11:object=ec-p256" and d["HSMD_OPERATION"] == "sign", d
signed = [e for e in audit if e["HSMD_METHOD"] == "Sign" and e["HSMD_RESULT"] == "OK"]
assert len(signed) == 3 and all(e["PRIORITY"] == "6" for e in signed), signed
assert all(e["HSMD_MECHANISM"] == "ecdsa-sha-256" for e in signed), signed[0]
assert all(e["HSMD_KEY_URI"].startswith("pkcs11:token=fake;object=ec-p256") for e in signed)

# GetStats counts every request that finished before it; the GetStats
# request itself is recorded after its snapshot.
journal = collections.Counter()
journal_errors = collections.Counter()
for e in audit:
    if e["HSMD_METHOD"] == "GetStats":
        continue
    key = (e["HSMD_METHOD"], e.get("HSMD_KEY_ID", ""))
    journal[key] += 1
    if e["HSMD_RESULT"] != "OK":
        journal_errors[key] += 1
stats = collections.Counter()
stats_errors = collections.Counter()
for op in json.load(open(sys.argv[2]))["operations"]:
    key = (op["operation"], op.get("keyId", ""))
    stats[key] = int(op["count"])
    stats_errors[key] = int(op.get("errorCount", 0))
assert journal == stats, (journal, stats)
assert journal_errors == +stats_errors, (journal_errors, stats_errors)
print("journal records:", sum(journal.values()) + 1, "by method/key:", dict(journal))
PY
echo "PASS"
