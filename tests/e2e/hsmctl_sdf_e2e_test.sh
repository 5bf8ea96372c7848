#!/usr/bin/env bash
# End-to-end test of hsmctl's 国密 commands against a real `hsmd --demo` serving
# the software SDF device "soft0" (libsoftsdf.so).
#
# Before hsmd starts, the device's key store is created with softsdf-init from
# keys made here with OpenSSL (an SM2 signing key, an SM2 encryption key, and
# the GB/T 32907 example SM4 key), the way keys are imported into a real card
# with the vendor's tool; `hsmd --demo` then serves that store. So every result
# can be checked by plain OpenSSL (default provider, no hsmproxy):
#   - hsmctl's SM2 signatures verify with `openssl pkeyutl -verify -rawin
#     -digest sm3 -pkeyopt distid:ID` and the public key hsmctl exported;
#   - OpenSSL's signatures with the same key verify with `hsmctl verify`;
#   - `openssl pkeyutl -encrypt` output decrypts with `hsmctl decrypt`, and
#     `hsmctl encrypt` output decrypts with `openssl pkeyutl -decrypt`;
#   - SM4 through the device equals `openssl enc -sm4-ecb/-sm4-cbc` and the
#     standard's test vector;
#   - wrong keys, unknown indexes and bad lengths fail with the documented exit
#     codes and clear messages.
#
# Usage (from Bazel):
#   hsmctl_sdf_e2e_test.sh HSMD_BINARY HSMCTL_BINARY SOFTSDF_INIT_BINARY
set -euo pipefail

HSMD="$(realpath "$1")"
HSMCTL="$(realpath "$2")"
SOFTSDF_INIT="$(realpath "$3")"

# Work directory, cleanup, watchdog, run/expect/contains.
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

# Plain OpenSSL: the default provider only, whatever the environment says.
ossl() {
  OPENSSL_CONF=/dev/null openssl "$@"
}

hex() {
  od -An -v -tx1 "$1" | tr -d ' \n'
}

unhex() {
  python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$1"
}

# Flips one bit in the middle of a file.
corrupt() {
  python3 -c '
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1
open(p, "wb").write(b)' "$1"
}

SIGN='sdf:device=soft0;index=1;usage=sign'
ENC='sdf:device=soft0;index=1;usage=enc'
SM4='sdf:device=soft0;index=1;usage=sm4'
DEFAULT_ID=1234567812345678
# GB/T 32907-2016 Appendix A, example 1: key = plaintext, and the ciphertext.
SM4_KEY_HEX=0123456789abcdeffedcba9876543210
SM4_VECTOR_CT=681edf34d206965e86b3e94f536e4246

step "import OpenSSL-made keys into the software SDF device"
umask 077
mkdir -p "$DEMO"
ossl genpkey -algorithm SM2 -out "$WORK/sign.pem" 2>/dev/null
ossl genpkey -algorithm SM2 -out "$WORK/enc.pem" 2>/dev/null
ossl pkey -in "$WORK/sign.pem" -pubout -out "$WORK/sign.openssl.pub.pem"
ossl pkey -in "$WORK/enc.pem" -pubout -out "$WORK/enc.openssl.pub.pem"
echo "$SM4_KEY_HEX" >"$WORK/sm4.hex"
PASSWORD="e2e password $RANDOM$RANDOM"
printf '1:%s\n' "$PASSWORD" >"$WORK/passwords"
# `hsmd --demo` reuses DIR/sdf and reads its access password from
# DIR/sdf.password (it only creates both when DIR/sdf is missing).
printf '%s\n' "$PASSWORD" >"$DEMO/sdf.password"
"$SOFTSDF_INIT" --store "$DEMO/sdf" --import-sign "1=$WORK/sign.pem" \
  --import-enc "1=$WORK/enc.pem" --import-sm4 "1=$WORK/sm4.hex" \
  --password-file "$WORK/passwords" --pbkdf2-iterations 1000 >/dev/null ||
  fail "softsdf-init failed"
umask 022

step "start hsmd --demo (SoftHSM token and SDF device soft0)"
"$HSMD" --demo "$DEMO" >"$LOG" 2>&1 &
HSMD_PID=$!
ready=0
for _ in $(seq 1 600); do
  kill -0 "$HSMD_PID" 2>/dev/null || fail "hsmd exited during start-up"
  if [[ -S "$SOCK" ]]; then
    run --json status
    if [[ "$RC" -eq 0 ]] && printf '%s' "$OUT" | python3 -c '
import json, sys
backends = json.load(sys.stdin)["backends"]
sys.exit(0 if any(b["name"] == "soft0" and b["kind"] == "sdf" and
                  b["state"] == "BACKEND_STATE_READY" for b in backends) else 1)'
    then
      ready=1
      break
    fi
  fi
  sleep 0.1
done
[[ $ready -eq 1 ]] || fail "soft0 did not become ready: $OUT $ERR"
expect 0 status
contains "$OUT" "soft0: module "
contains "$OUT" "libsoftsdf.so"

step "list: the three SDF keys, typed"
expect 0 list --uri "sdf:device=soft0"
contains "$OUT" "LABEL"
contains "$OUT" "sm2-sign  SM2      sign             "
contains "$OUT" "sm2-enc   SM2      decrypt          "
contains "$OUT" "sm4-demo  SM4-128  encrypt,decrypt  "
[[ "$(printf '%s\n' "$OUT" | tail -n +2 | grep -c .)" -eq 3 ]] ||
  fail "expected 3 SDF keys: $OUT"
expect 0 list --uri "sdf:usage=sign"
[[ "$(printf '%s\n' "$OUT" | tail -n +2 | grep -c .)" -eq 1 ]] ||
  fail "expected 1 SDF signing key: $OUT"
expect 0 --json list --uri "sdf:device=soft0"
printf '%s' "$OUT" | python3 -c '
import json, sys
keys = {k["uri"]: k for k in json.load(sys.stdin)["keys"]}
sign = keys["sdf:device=soft0;index=1;usage=sign"]
assert sign["keyType"] == "KEY_TYPE_SM2" and sign["curve"] == "CURVE_SM2", sign
assert sign["allowedOperations"] == ["OPERATION_SIGN"], sign
sm4 = keys["sdf:device=soft0;index=1;usage=sm4"]
assert sm4["keyType"] == "KEY_TYPE_SM4" and sm4["sizeBits"] == 128, sm4
assert sm4["publicKeyDer"] == "", sm4
assert sorted(sm4["allowedOperations"]) == ["OPERATION_DECRYPT", "OPERATION_ENCRYPT"], sm4
' || fail "list --json: $OUT"

step "show: the exported public keys are the imported ones"
expect 0 show "$SIGN" --pubout "$WORK/sign.pub.pem"
contains "$OUT" "Type:         SM2"
contains "$OUT" "Curve:        SM2"
contains "$OUT" "URI:          $SIGN"
contains "$OUT" "-----BEGIN PUBLIC KEY-----"
SIGN_KEY_ID="$(printf '%s\n' "$OUT" | sed -n 's/^Key id: *//p')"
[[ "$SIGN_KEY_ID" =~ ^[0-9a-f]{32}$ ]] || fail "no key id in show output"
cmp -s "$WORK/sign.pub.pem" "$WORK/sign.openssl.pub.pem" ||
  fail "the device's signing public key is not the imported one"
expect 0 show "$ENC" --pubout "$WORK/enc.pub.pem"
cmp -s "$WORK/enc.pub.pem" "$WORK/enc.openssl.pub.pem" ||
  fail "the device's encryption public key is not the imported one"
expect 0 show "$SM4"
contains "$OUT" "Type:         SM4-128"
contains "$OUT" "Public key:   none (symmetric key)"
expect 2 show "$SM4" --pubout "$WORK/never.pem"
contains "$ERR" "a key without a public half"

MSG="$WORK/msg.txt"
echo "hsmctl 国密 end-to-end test message" >"$MSG"

# ossl_verify PUB ID MSG SIG: plain OpenSSL's SM2 verification.
ossl_verify() {
  ossl pkeyutl -verify -pubin -inkey "$1" -rawin -digest sm3 \
    -pkeyopt "distid:$2" -in "$3" -sigfile "$4" >/dev/null 2>&1
}

step "sm2 sign (default ID): openssl pkeyutl -verify accepts it"
expect 0 sign "$SIGN" --alg sm2 --in "$MSG" --out "$WORK/msg.sig"
[[ -s "$WORK/msg.sig" ]] || fail "empty signature"
ossl asn1parse -inform DER -in "$WORK/msg.sig" >/dev/null ||
  fail "the signature is not DER"
ossl_verify "$WORK/sign.pub.pem" "$DEFAULT_ID" "$MSG" "$WORK/msg.sig" ||
  fail "openssl rejects hsmctl's SM2 signature (ID $DEFAULT_ID)"
if ossl_verify "$WORK/sign.pub.pem" "another-id" "$MSG" "$WORK/msg.sig"; then
  fail "openssl accepted the signature with another ID"
fi
expect 0 verify "$SIGN" --alg sm2 --in "$MSG" --sig "$WORK/msg.sig"
[[ "$OUT" == "Signature OK" ]] || fail "verify printed: $OUT"
corrupt "$WORK/msg.sig"
expect 1 verify "$SIGN" --alg sm2 --in "$MSG" --sig "$WORK/msg.sig"
[[ "$OUT" == "Signature verification FAILED" ]] || fail "verify printed: $OUT"
if ossl_verify "$WORK/sign.pub.pem" "$DEFAULT_ID" "$MSG" "$WORK/msg.sig"; then
  fail "openssl accepted a corrupted signature"
fi

step "sm2 sign with --id / --id-hex, by key id"
expect 0 sign "$SIGN_KEY_ID" --alg sm2-sm3 --id alice@example.com --in "$MSG" \
  --out "$WORK/alice.sig"
ossl_verify "$WORK/sign.pub.pem" alice@example.com "$MSG" "$WORK/alice.sig" ||
  fail "openssl rejects the signature with ID alice@example.com"
if ossl_verify "$WORK/sign.pub.pem" "$DEFAULT_ID" "$MSG" "$WORK/alice.sig"; then
  fail "the ID did not go into the signature"
fi
expect 0 verify "$SIGN" --alg sm2 --id-hex \
  "$(printf 'alice@example.com' | od -An -v -tx1 | tr -d ' \n')" \
  --in "$MSG" --sig "$WORK/alice.sig"
expect 1 verify "$SIGN" --alg sm2 --in "$MSG" --sig "$WORK/alice.sig"

step "sm2 sign a message larger than hsmd's request limit (only e is sent)"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
expect 0 sign "$SIGN" --alg sm2 --in "$WORK/big.bin" --out "$WORK/big.sig"
ossl_verify "$WORK/sign.pub.pem" "$DEFAULT_ID" "$WORK/big.bin" "$WORK/big.sig" ||
  fail "openssl rejects the signature over 3 MiB"

step "sm2 --digest-input: e = SM3(Z || M) computed independently (Python)"
# Z from the standard's curve constants and the exported public point; the
# constants are checked to lie on the curve, so a typo cannot pass silently.
ossl pkey -pubin -in "$WORK/sign.pub.pem" -outform DER -out "$WORK/sign.pub.der"
python3 - "$WORK/sign.pub.der" "$DEFAULT_ID" "$MSG" "$WORK/msg.e" <<'EOF'
import hashlib, sys
p = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
a = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
b = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
gx = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
gy = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
assert (gy * gy - gx ** 3 - a * gx - b) % p == 0, "SM2 constants"
der = open(sys.argv[1], "rb").read()
point = der[-65:]
assert point[0] == 4, "uncompressed public point expected"
xa, ya = point[1:33], point[33:]
assert (int.from_bytes(ya, "big") ** 2 - int.from_bytes(xa, "big") ** 3
        - a * int.from_bytes(xa, "big") - b) % p == 0, "public point"
ident = sys.argv[2].encode()
f = lambda n: n.to_bytes(32, "big")
z = hashlib.new("sm3", (len(ident) * 8).to_bytes(2, "big") + ident + f(a) +
                f(b) + f(gx) + f(gy) + xa + ya).digest()
e = hashlib.new("sm3", z + open(sys.argv[3], "rb").read()).digest()
open(sys.argv[4], "wb").write(e)
EOF
expect 0 sign "$SIGN" --alg sm2 --digest-input --in "$WORK/msg.e" \
  --out "$WORK/e.sig"
ossl_verify "$WORK/sign.pub.pem" "$DEFAULT_ID" "$MSG" "$WORK/e.sig" ||
  fail "a signature over the independently computed e does not verify"
expect 0 verify "$SIGN" --alg sm2 --digest-input --in "$WORK/msg.e" \
  --sig "$WORK/e.sig"
contains "$OUT" "Signature OK"

step "OpenSSL's own SM2 signatures (same key) verify with hsmctl"
ossl pkeyutl -sign -inkey "$WORK/sign.pem" -rawin -digest sm3 \
  -pkeyopt "distid:$DEFAULT_ID" -in "$MSG" -out "$WORK/openssl.sig"
expect 0 verify "$SIGN" --alg sm2 --in "$MSG" --sig "$WORK/openssl.sig"
contains "$OUT" "Signature OK"
ossl pkeyutl -sign -inkey "$WORK/sign.pem" -rawin -digest sm3 \
  -pkeyopt distid:bob -in "$MSG" -out "$WORK/openssl.bob.sig"
expect 0 verify "$SIGN" --alg sm2 --id bob --in "$MSG" \
  --sig "$WORK/openssl.bob.sig"
expect 1 verify "$SIGN" --alg sm2 --in "$MSG" --sig "$WORK/openssl.bob.sig"
expect 0 --json verify "$SIGN" --alg sm2 --in "$MSG" --sig "$WORK/openssl.sig"
printf '%s' "$OUT" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["verified"] is True and r["algorithm"] == "sm2 sm3", r' ||
  fail "verify --json: $OUT"

step "sm2 decrypt: openssl pkeyutl -encrypt output"
printf 'a secret for the SDF device\n' >"$WORK/plain.txt"
ossl pkeyutl -encrypt -pubin -inkey "$WORK/enc.pub.pem" \
  -in "$WORK/plain.txt" -out "$WORK/ct.sm2"
expect 0 decrypt "$ENC" --alg sm2 --in "$WORK/ct.sm2" --out "$WORK/back.sm2"
cmp -s "$WORK/plain.txt" "$WORK/back.sm2" || fail "SM2 decrypt mismatch"
[[ "$(stat -c %a "$WORK/back.sm2")" == "600" ]] ||
  fail "decrypted file is not mode 0600"

step "sm2 encrypt (local, OpenSSL's format): openssl pkeyutl -decrypt and hsmctl"
expect 0 encrypt "$ENC" --alg sm2 --in "$WORK/plain.txt" --out "$WORK/ct.local"
ossl pkeyutl -decrypt -inkey "$WORK/enc.pem" -in "$WORK/ct.local" \
  -out "$WORK/back.openssl"
cmp -s "$WORK/plain.txt" "$WORK/back.openssl" ||
  fail "openssl cannot decrypt hsmctl's SM2 ciphertext"
expect 0 decrypt "$ENC" --alg sm2 --in "$WORK/ct.local" --out -
[[ "$OUT" == "a secret for the SDF device" ]] || fail "round trip: $OUT"
corrupt "$WORK/ct.local"
expect 4 decrypt "$ENC" --alg sm2 --in "$WORK/ct.local" --out "$WORK/never"

step "sm4: the GB/T 32907 vector"
unhex "$SM4_KEY_HEX" >"$WORK/vector.bin"
expect 0 encrypt "$SM4" --alg sm4-ecb --padding none --in "$WORK/vector.bin" \
  --out "$WORK/vector.ct"
[[ "$(hex "$WORK/vector.ct")" == "$SM4_VECTOR_CT" ]] ||
  fail "SM4 vector: got $(hex "$WORK/vector.ct")"
expect 0 decrypt "$SM4" --alg sm4-ecb --padding none --in "$WORK/vector.ct" \
  --out "$WORK/vector.back"
cmp -s "$WORK/vector.bin" "$WORK/vector.back" || fail "SM4 vector decrypt"

step "sm4: equal to openssl enc (ECB and CBC, PKCS#7), both directions"
IV=000102030405060708090a0b0c0d0e0f
# 200 KiB + 5: several requests, chained.
head -c $((200 * 1024 + 5)) /dev/urandom >"$WORK/file.bin"
for mode in ecb cbc; do
  if [[ $mode == cbc ]]; then ivopt=(--iv "$IV"); osslopt=(-iv "$IV"); else
    ivopt=(); osslopt=(); fi
  expect 0 encrypt "$SM4" --alg "sm4-$mode" "${ivopt[@]}" \
    --in "$WORK/file.bin" --out "$WORK/file.$mode"
  ossl enc "-sm4-$mode" -K "$SM4_KEY_HEX" "${osslopt[@]}" \
    -in "$WORK/file.bin" -out "$WORK/file.$mode.openssl"
  cmp -s "$WORK/file.$mode" "$WORK/file.$mode.openssl" ||
    fail "sm4-$mode differs from openssl enc"
  expect 0 decrypt "$SM4" --alg "sm4-$mode" "${ivopt[@]}" \
    --in "$WORK/file.$mode.openssl" --out "$WORK/file.$mode.back"
  cmp -s "$WORK/file.bin" "$WORK/file.$mode.back" ||
    fail "sm4-$mode decrypt of openssl's ciphertext"
done

step "sm4-cbc without --iv: a fresh IV from the HSM, written first"
expect 0 encrypt "$SM4" --alg sm4-cbc --in "$MSG" --out "$WORK/msg.cbc"
expect 0 encrypt "$SM4" --alg sm4-cbc --in "$MSG" --out "$WORK/msg.cbc2"
cmp -s "$WORK/msg.cbc" "$WORK/msg.cbc2" && fail "two encryptions are equal"
head -c 16 "$WORK/msg.cbc" >"$WORK/msg.cbc.iv"
tail -c +17 "$WORK/msg.cbc" >"$WORK/msg.cbc.body"
ossl enc -d -sm4-cbc -K "$SM4_KEY_HEX" -iv "$(hex "$WORK/msg.cbc.iv")" \
  -in "$WORK/msg.cbc.body" -out "$WORK/msg.cbc.openssl"
cmp -s "$MSG" "$WORK/msg.cbc.openssl" ||
  fail "openssl cannot decrypt IV || ciphertext"
expect 0 decrypt "$SM4" --alg sm4-cbc --in "$WORK/msg.cbc" --out "$WORK/msg.back"
cmp -s "$MSG" "$WORK/msg.back" || fail "sm4-cbc round trip without --iv"
expect 0 --json encrypt "$SM4" --alg sm4-ecb --in "$MSG"
printf '%s' "$OUT" | python3 -c '
import base64, json, sys
r = json.load(sys.stdin)
assert len(base64.b64decode(r["ciphertext"])) % 16 == 0, r
assert len(r["keyId"]) == 32, r' || fail "encrypt --json: $OUT"

step "errors: unknown keys"
expect 4 sign "sdf:device=soft0;index=9;usage=sign" --alg sm2 --in "$MSG" \
  --out "$WORK/x"
contains "$ERR" "hsmctl: sign: "
contains "$ERR" "index=9"
expect 4 decrypt "sdf:device=soft0;index=9;usage=enc" --alg sm2 \
  --in "$WORK/ct.sm2" --out "$WORK/x"
contains "$ERR" "index=9"
expect 4 show "sdf:device=nosuch;index=1;usage=sign"
contains "$ERR" "nosuch"
expect 4 show "sdf:device=soft0;index=one;usage=sign"
contains "$ERR" "index"
expect 4 sign "sdf:device=soft0;index=1" --alg sm2 --in "$MSG" --out "$WORK/x"
contains "$ERR" "usage="

step "errors: wrong key usage"
expect 2 sign "$SM4" --alg sm2 --in "$MSG" --out "$WORK/x"
contains "$ERR" "sm2 signing needs an SM2 key; $SM4 is SM4-128"
expect 2 sign "$ENC" --alg sm2 --in "$MSG" --out "$WORK/x"
contains "$ERR" "allows decrypt (use usage=sign)"
expect 4 sign "$ENC" --alg sm2 --digest-input --in "$WORK/msg.e" --out "$WORK/x"
contains "$ERR" "$ENC does not allow"
expect 4 decrypt "$SIGN" --alg sm2 --in "$WORK/ct.sm2" --out "$WORK/x"
contains "$ERR" "$SIGN does not allow"
contains "$ERR" "usage=enc"
expect 2 encrypt "$SIGN" --alg sm2 --in "$MSG" --out "$WORK/x"
contains "$ERR" "(use usage=enc)"
expect 4 encrypt "$SIGN" --alg sm4-cbc --iv "$IV" --in "$MSG" --out "$WORK/x"
contains "$ERR" "sm4"
expect 4 decrypt "$SM4" --alg sm2 --in "$WORK/ct.sm2" --out "$WORK/x"
expect 4 sign "$SIGN" --alg ecdsa --in "$MSG" --out "$WORK/x"
expect 2 verify "$SIGN" --alg ecdsa --in "$MSG" --sig "$WORK/alice.sig"
contains "$ERR" "cannot be used with an SM2 key"
expect 2 verify "$SM4" --alg sm2 --in "$MSG" --sig "$WORK/alice.sig"
contains "$ERR" "a key without a public half"

step "errors: bad IDs, lengths and options"
expect 2 sign "$SIGN" --alg sm2 --id "" --in "$MSG" --out "$WORK/x"
contains "$ERR" "distinguishing ID is empty"
expect 2 sign "$SIGN" --alg sm2 --id "$(printf 'i%.0s' $(seq 1 8192))" \
  --in "$MSG" --out "$WORK/x"
contains "$ERR" "8192 bytes; at most 8191"
expect 2 sign "$SIGN" --alg sm2 --id alice --digest-input --in "$WORK/msg.e" \
  --out "$WORK/x"
expect 2 sign "$SIGN" --alg sm2 --digest-input --in "$MSG" --out "$WORK/x"
contains "$ERR" "sm2 takes e = SM3(Z || M), 32 bytes"
expect 2 sign "$SIGN" --alg sm2 --hash sha256 --in "$MSG" --out "$WORK/x"
expect 2 encrypt "$SM4" --alg sm4-cbc --iv 0011 --in "$MSG" --out "$WORK/x"
contains "$ERR" "--iv is 2 bytes"
expect 2 encrypt "$SM4" --alg sm4-ecb --iv "$IV" --in "$MSG" --out "$WORK/x"
expect 2 encrypt "$SM4" --alg sm4-ecb --padding none --in "$MSG" --out "$WORK/x"
contains "$ERR" "SM4 needs a non-zero multiple of 16"
expect 2 decrypt "$SM4" --alg sm4-ecb --in "$MSG" --out "$WORK/x"
contains "$ERR" "the ciphertext is"
# A block that decrypts to 16 zero bytes is not PKCS#7-padded.
unhex 00000000000000000000000000000000 >"$WORK/zeros.bin"
expect 0 encrypt "$SM4" --alg sm4-ecb --padding none --in "$WORK/zeros.bin" \
  --out "$WORK/zeros.ct"
expect 4 decrypt "$SM4" --alg sm4-ecb --in "$WORK/zeros.ct" --out "$WORK/x"
contains "$ERR" "decryption failed: the PKCS#7 padding is invalid"
expect 2 encrypt "$SM4" --alg sm4 --in "$MSG" --out "$WORK/x"
contains "$ERR" "sm4-ecb or sm4-cbc"
expect 2 decrypt "$ENC" --alg sm2 --in /dev/null --out "$WORK/x"
contains "$ERR" "the SM2 ciphertext is empty"
expect 5 decrypt "$ENC" --alg sm2 --in "$WORK/missing" --out "$WORK/x"
[[ ! -e "$WORK/x" ]] || fail "a failed command wrote its --out file"

step "export-uri-pem names the sdf: key"
expect 0 export-uri-pem "$SIGN_KEY_ID" --out "$WORK/sign.uri.pem"
ASN1="$(ossl asn1parse -in "$WORK/sign.uri.pem")"
contains "$ASN1" ":PKCS#11 Provider URI v1.0"
contains "$ASN1" ":$SIGN"

step "daemon stopped: exit 3"
kill -TERM "$HSMD_PID"
wait "$HSMD_PID" || true
HSMD_PID=""
expect 3 sign "$SIGN" --alg sm2 --digest-input --in "$WORK/msg.e" \
  --out "$WORK/x"
contains "$ERR" "$SOCK"

echo "PASS"
