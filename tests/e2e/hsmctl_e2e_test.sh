#!/usr/bin/env bash
# End-to-end test of hsmctl against a real `hsmd --demo` (SoftHSM token "demo"
# with keys rsa-2048, rsa-3072, ec-p256, ec-p384, ed25519). Every signature
# hsmctl makes is checked by the openssl CLI with the public key hsmctl
# exported, and every documented exit code is provoked.
#
# Usage (from Bazel): hsmctl_e2e_test.sh HSMD_BINARY HSMCTL_BINARY
set -euo pipefail

HSMD="$(realpath "$1")"
HSMCTL="$(realpath "$2")"

# Work directory, cleanup, watchdog, run/expect/contains.
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

DEMO_KEYS=(rsa-2048 rsa-3072 ec-p256 ec-p384 ed25519)
uri() { echo "pkcs11:token=demo;object=$1"; }

step "hsmctl links no gRPC C++ runtime"
if ldd "$HSMCTL" | grep -q -i grpc; then
  fail "hsmctl links gRPC: $(ldd "$HSMCTL" | grep -i grpc)"
fi

step "start hsmd --demo"
"$HSMD" --demo "$DEMO" >"$LOG" 2>&1 &
HSMD_PID=$!
ready=0
for _ in $(seq 1 600); do
  kill -0 "$HSMD_PID" 2>/dev/null || fail "hsmd exited during start-up"
  if [[ -S "$SOCK" ]]; then
    run status
    if [[ "$RC" -eq 0 && "$OUT" == *READY* ]]; then
      ready=1
      break
    fi
  fi
  sleep 0.1
done
[[ $ready -eq 1 ]] || fail "hsmd did not become ready: $OUT $ERR"

step "status"
expect 0 status
contains "$OUT" "Version:"
contains "$OUT" "READY"
contains "$OUT" "demo"

# The demo also serves the SDF device soft0 (3 keys); these steps are about
# the SoftHSM token.
step "list shows the 5 demo keys"
expect 0 list --uri "pkcs11:token=demo"
contains "$OUT" "LABEL"
for label in "${DEMO_KEYS[@]}"; do
  contains "$OUT" "$label"
done
[[ "$(printf '%s\n' "$OUT" | tail -n +2 | grep -c .)" -eq 5 ]] ||
  fail "expected 5 keys: $OUT"

step "list --json"
expect 0 --json list --uri "pkcs11:token=demo"
printf '%s' "$OUT" | python3 -c '
import json, re, sys
keys = json.load(sys.stdin)["keys"]
labels = sorted(k["label"] for k in keys)
assert labels == sorted(["rsa-2048", "rsa-3072", "ec-p256", "ec-p384", "ed25519"]), labels
for k in keys:
    assert re.fullmatch("[0-9a-f]{32}", k["keyId"]), k["keyId"]
    assert k["uri"].startswith("pkcs11:"), k["uri"]
    assert k["publicKeyDer"], k
' || fail "list --json did not parse as expected: $OUT"

step "show, --pubout, and by key id"
for label in "${DEMO_KEYS[@]}"; do
  expect 0 show "$(uri "$label")" --pubout "$WORK/$label.pub.pem"
  contains "$OUT" "Label:        $label"
  contains "$OUT" "-----BEGIN PUBLIC KEY-----"
  openssl pkey -pubin -in "$WORK/$label.pub.pem" -noout ||
    fail "openssl cannot read the exported $label public key"
done
expect 0 show "$(uri rsa-3072)"
contains "$OUT" "RSA-3072"
expect 0 show "$(uri ec-p384)"
contains "$OUT" "EC P-384"
KEY_ID="$(printf '%s\n' "$OUT" | sed -n 's/^Key id: *//p')"
[[ "$KEY_ID" =~ ^[0-9a-f]{32}$ ]] || fail "no key id in show output: $OUT"
expect 0 show "$KEY_ID"
contains "$OUT" "Label:        ec-p384"

MSG="$WORK/msg.txt"
echo "hsmctl end-to-end test message" >"$MSG"

# sign_and_check LABEL "openssl dgst options" hsmctl-sign-options...
# Signs MSG with hsmctl, verifies with `openssl dgst -verify` and with
# `hsmctl verify`, then checks both reject a corrupted signature.
sign_and_check() {
  local label="$1" dgst_opts="$2"
  shift 2
  local sig="$WORK/$label.sig"
  step "sign $label $*"
  expect 0 sign "$(uri "$label")" --in "$MSG" --out "$sig" "$@"
  [[ -s "$sig" ]] || fail "empty signature"
  # shellcheck disable=SC2086
  openssl dgst $dgst_opts -verify "$WORK/$label.pub.pem" -signature "$sig" \
    "$MSG" >/dev/null || fail "openssl rejects the $label signature ($*)"
  expect 0 verify "$(uri "$label")" --in "$MSG" --sig "$sig" "$@"
  [[ "$OUT" == "Signature OK" ]] || fail "verify printed: $OUT"
  python3 -c '
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1
open(p, "wb").write(b)' "$sig"
  expect 1 verify "$(uri "$label")" --in "$MSG" --sig "$sig" "$@"
  [[ "$OUT" == "Signature verification FAILED" ]] || fail "verify printed: $OUT"
  # shellcheck disable=SC2086
  if openssl dgst $dgst_opts -verify "$WORK/$label.pub.pem" -signature "$sig" \
    "$MSG" >/dev/null 2>&1; then
    fail "openssl accepted a corrupted signature"
  fi
}

sign_and_check rsa-2048 "-sha256" --alg rsa-pkcs1
sign_and_check rsa-2048 "-sha384" --alg rsa-pkcs1-sha384
sign_and_check rsa-3072 \
  "-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest" \
  --alg rsa-pss --hash sha256
sign_and_check rsa-3072 \
  "-sha512 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max" \
  --alg rsa-pss --hash sha512 --salt-len max
sign_and_check ec-p256 "-sha256" --alg ecdsa
sign_and_check ec-p384 "-sha384" --alg ecdsa-sha384

step "sign ed25519 (openssl pkeyutl -rawin)"
expect 0 sign "$(uri ed25519)" --alg ed25519 --in "$MSG" --out "$WORK/ed.sig"
openssl pkeyutl -verify -pubin -inkey "$WORK/ed25519.pub.pem" -rawin \
  -in "$MSG" -sigfile "$WORK/ed.sig" >/dev/null ||
  fail "openssl rejects the Ed25519 signature"
expect 0 verify "$(uri ed25519)" --alg ed25519 --in "$MSG" --sig "$WORK/ed.sig"
contains "$OUT" "Signature OK"

step "sign a precomputed digest (ecdsa, --digest-input, stdin/stdout)"
openssl dgst -sha256 -binary "$MSG" >"$WORK/msg.sha256"
set +e
timeout 60 "$HSMCTL" --socket "$SOCK" sign "$(uri ec-p256)" --alg ecdsa \
  --digest-input --in - --out - <"$WORK/msg.sha256" >"$WORK/digest.sig"
rc=$?
set -e
[[ $rc -eq 0 ]] || fail "sign from stdin to stdout exited $rc"
openssl pkeyutl -verify -pubin -inkey "$WORK/ec-p256.pub.pem" \
  -in "$WORK/msg.sha256" -sigfile "$WORK/digest.sig" >/dev/null ||
  fail "openssl rejects the digest signature"

step "rsa-pkcs1 over a raw DigestInfo (--hash none --digest-input)"
{
  printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'
  cat "$WORK/msg.sha256"
} >"$WORK/digestinfo.bin"
expect 0 sign "$(uri rsa-2048)" --alg rsa-pkcs1 --hash none --digest-input \
  --in "$WORK/digestinfo.bin" --out "$WORK/raw.sig"
openssl dgst -sha256 -verify "$WORK/rsa-2048.pub.pem" \
  -signature "$WORK/raw.sig" "$MSG" >/dev/null ||
  fail "raw DigestInfo signature is not a valid sha256 PKCS#1 signature"
expect 0 verify "$(uri rsa-2048)" --alg rsa-pkcs1 --hash none --digest-input \
  --in "$WORK/digestinfo.bin" --sig "$WORK/raw.sig"

step "decrypt (openssl-encrypted) and encrypt/decrypt round trip"
echo "a secret for the HSM" >"$WORK/plain.txt"
openssl pkeyutl -encrypt -pubin -inkey "$WORK/rsa-2048.pub.pem" \
  -in "$WORK/plain.txt" -out "$WORK/ct.pkcs1"
expect 0 decrypt "$(uri rsa-2048)" --alg rsa-pkcs1 --in "$WORK/ct.pkcs1" \
  --out "$WORK/back.pkcs1"
cmp -s "$WORK/plain.txt" "$WORK/back.pkcs1" || fail "PKCS#1 decrypt mismatch"
[[ "$(stat -c %a "$WORK/back.pkcs1")" == "600" ]] ||
  fail "decrypted file is not mode 0600"
openssl pkeyutl -encrypt -pubin -inkey "$WORK/rsa-2048.pub.pem" \
  -pkeyopt rsa_padding_mode:oaep -in "$WORK/plain.txt" -out "$WORK/ct.oaep"
expect 0 decrypt "$(uri rsa-2048)" --alg rsa-oaep --in "$WORK/ct.oaep" \
  --out "$WORK/back.oaep"
cmp -s "$WORK/plain.txt" "$WORK/back.oaep" || fail "OAEP decrypt mismatch"
expect 0 encrypt "$(uri rsa-3072)" --alg rsa-pkcs1 --in "$WORK/plain.txt" \
  --out "$WORK/ct.local"
expect 0 decrypt "$(uri rsa-3072)" --alg rsa-pkcs1 --in "$WORK/ct.local" \
  --out "$WORK/back.local"
cmp -s "$WORK/plain.txt" "$WORK/back.local" || fail "encrypt/decrypt mismatch"
expect 4 decrypt "$(uri rsa-2048)" --alg rsa-pkcs1 --in "$WORK/ct.local" \
  --out "$WORK/never"

step "derive (ECDH) equals what the peer derives"
for k in ec-p256 ec-p384; do
  curve=P-256; [[ "$k" == ec-p384 ]] && curve=P-384
  openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$curve" \
    -out "$WORK/peer-$k.key"
  openssl pkey -in "$WORK/peer-$k.key" -pubout -out "$WORK/peer-$k.pub.pem"
  openssl pkey -in "$WORK/peer-$k.key" -pubout -outform DER -out "$WORK/peer-$k.pub.der"
  expect 0 derive "$(uri "$k")" --peer "$WORK/peer-$k.pub.pem" --out "$WORK/hsm-$k.secret"
  [[ "$(stat -c %a "$WORK/hsm-$k.secret")" == "600" ]] || fail "secret file is not mode 0600"
  openssl pkeyutl -derive -inkey "$WORK/peer-$k.key" -peerkey "$WORK/$k.pub.pem" \
    -out "$WORK/peer-$k.secret"
  cmp -s "$WORK/hsm-$k.secret" "$WORK/peer-$k.secret" ||
    fail "$k: hsmctl derive and the peer derived different secrets"
  expect 0 derive "$(uri "$k")" --peer "$WORK/peer-$k.pub.der" --out "$WORK/hsm-$k.der.secret"
  cmp -s "$WORK/hsm-$k.der.secret" "$WORK/peer-$k.secret" || fail "$k: DER peer key"
done
# The peer on another curve, a key that cannot derive, junk.
expect 4 derive "$(uri ec-p256)" --peer "$WORK/peer-ec-p384.pub.pem" --out "$WORK/never"
contains "$ERR" "curve"
expect 4 derive "$(uri rsa-2048)" --peer "$WORK/peer-ec-p256.pub.pem" --out "$WORK/never"
echo "not a key" >"$WORK/junk.pem"
expect 2 derive "$(uri ec-p256)" --peer "$WORK/junk.pem" --out "$WORK/never"
contains "$ERR" "--peer: not a public key"
expect 2 derive "$(uri ec-p256)" --out "$WORK/never"
[[ ! -e "$WORK/never" ]] || fail "a failed derive wrote its output"

step "random"
expect 0 random 32
[[ "$OUT" =~ ^[0-9a-f]{64}$ ]] || fail "random 32 printed: $OUT"
FIRST="$OUT"
expect 0 random 32 --hex
[[ "$OUT" != "$FIRST" ]] || fail "two random draws are equal"
expect 0 random 32 --out "$WORK/random.bin"
[[ "$(stat -c %s "$WORK/random.bin")" -eq 32 ]] || fail "random --out size"
expect 2 random 0
expect 2 random 65537

step "export-uri-pem"
expect 0 export-uri-pem "$(uri ec-p256)" --out "$WORK/ec-p256.uri.pem"
head -n 1 "$WORK/ec-p256.uri.pem" | grep -qx -- '-----BEGIN PKCS#11 PROVIDER URI-----' ||
  fail "bad PEM header: $(head -n 1 "$WORK/ec-p256.uri.pem")"
ASN1="$(openssl asn1parse -in "$WORK/ec-p256.uri.pem")"
contains "$ASN1" "VISIBLESTRING"
contains "$ASN1" ":PKCS#11 Provider URI v1.0"
contains "$ASN1" "UTF8STRING"
contains "$ASN1" ":pkcs11:"
contains "$ASN1" "ec-p256"
expect 0 export-uri-pem "$(uri rsa-2048)"
contains "$OUT" "-----END PKCS#11 PROVIDER URI-----"
expect 4 export-uri-pem "$(uri no-such-key)"

step "genkey / sign / delete round trip"
for spec in "e2e-ec:0e2e01:--type ec --curve p384" \
  "e2e-ed:0e2e02:--type ed25519"; do
  IFS=: read -r label id args <<<"$spec"
  # shellcheck disable=SC2086
  expect 0 genkey --label "$label" --id "$id" $args
  contains "$OUT" "Label:        $label"
  expect 0 list --label "$label"
  [[ "$(printf '%s\n' "$OUT" | tail -n +2 | grep -c .)" -eq 1 ]] ||
    fail "genkey: $label not listed once: $OUT"
  expect 0 show "$(uri "$label")" --pubout "$WORK/$label.pub.pem"
done
sign_and_check e2e-ec "-sha384" --alg ecdsa --hash sha384
expect 0 list --uri "pkcs11:token=demo"
[[ "$(printf '%s\n' "$OUT" | tail -n +2 | grep -c .)" -eq 7 ]] ||
  fail "expected 7 keys after genkey: $OUT"
expect 2 delete "$(uri e2e-ec)" </dev/null
contains "$ERR" "--yes"
expect 0 show "$(uri e2e-ec)"
for label in e2e-ec e2e-ed; do
  expect 0 delete "$(uri "$label")" --yes
  contains "$OUT" "Deleted"
  expect 4 show "$(uri "$label")"
done
expect 0 list --uri "pkcs11:token=demo"
[[ "$(printf '%s\n' "$OUT" | tail -n +2 | grep -c .)" -eq 5 ]] ||
  fail "expected the 5 demo keys after delete: $OUT"

step "error cases"
expect 4 show "$(uri no-such-key)"
contains "$ERR" "hsmctl: show: "
contains "$ERR" "no-such-key"
expect 4 sign "$(uri no-such-key)" --alg ecdsa --in "$MSG" --out "$WORK/x.sig"
contains "$ERR" "no-such-key"
expect 4 sign "$(uri ec-p256)" --alg rsa-pkcs1 --in "$MSG" --out "$WORK/x.sig"
expect 2 sign "$(uri ec-p256)" --alg rsa-foo --in "$MSG" --out "$WORK/x.sig"
contains "$ERR" "unknown signature algorithm 'rsa-foo'"
expect 2 sign "$(uri ec-p256)" --alg ecdsa --in "$MSG"
expect 2 frobnicate
expect 2 list --no-such-option
expect 5 sign "$(uri ec-p256)" --alg ecdsa --in "$WORK/missing.txt" \
  --out "$WORK/x.sig"
contains "$ERR" "cannot read --in"
set +e
timeout 20 "$HSMCTL" --socket "/tmp/$(printf 'x%.0s' $(seq 1 120)).sock" status \
  >/dev/null 2>"$WORK/err"
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "over-long socket path exited $rc: $(cat "$WORK/err")"

step "--json output parses"
expect 0 --json status
printf '%s' "$OUT" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["version"], s
assert s["backends"][0]["state"] in ("BACKEND_STATE_READY", "BACKEND_STATE_DEGRADED"), s
' || fail "status --json: $OUT"
expect 0 stats --json
printf '%s' "$OUT" | python3 -c '
import json, sys
ops = json.load(sys.stdin)["operations"]
assert any(o["operation"] == "Sign" and int(o["count"]) > 0 for o in ops), ops
' || fail "stats --json: $OUT"
expect 0 stats
contains "$OUT" "P99"
expect 0 sign "$(uri ec-p256)" --alg ecdsa --in "$MSG" --json
printf '%s' "$OUT" | python3 -c '
import base64, json, sys
r = json.load(sys.stdin)
assert len(base64.b64decode(r["signature"])) > 8, r
assert len(r["keyId"]) == 32, r
' || fail "sign --json: $OUT"
expect 0 verify "$(uri ed25519)" --alg ed25519 --in "$MSG" \
  --sig "$WORK/ed.sig" --json
printf '%s' "$OUT" | python3 -c '
import json, sys
assert json.load(sys.stdin)["verified"] is True' || fail "verify --json: $OUT"

step "HSMD_SOCKET is the default socket"
set +e
HSMD_SOCKET="$SOCK" timeout 60 "$HSMCTL" list >/dev/null 2>"$WORK/err"
rc=$?
set -e
[[ $rc -eq 0 ]] || fail "HSMD_SOCKET not used: $(cat "$WORK/err")"

step "daemon stopped: exit 3"
kill -TERM "$HSMD_PID"
wait "$HSMD_PID" || true
HSMD_PID=""
# timeout's own 124 would fail the comparison below: no hang allowed.
expect 3 status
contains "$ERR" "hsmctl: status: "
contains "$ERR" "$SOCK"
expect 3 sign "$(uri ec-p256)" --alg ecdsa --in "$MSG" --out "$WORK/x.sig"

echo "PASS"
