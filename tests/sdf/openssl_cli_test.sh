#!/bin/bash
# The openssl CLI (default provider) and the SDF backend agree: signatures
# made through the backend verify with `openssl pkeyutl -verify` and the
# exported public key; `openssl pkeyutl -encrypt` output decrypts through the
# backend. The device is the software SDF device, its store made here.
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
tool="${runfiles}/tests/sdf/sdf_tool"
init="${runfiles}/tools/softsdf/softsdf-init"
lib="${runfiles}/tools/softsdf/libsoftsdf.so"
# Only OpenSSL's built-in default provider.
export OPENSSL_CONF=/dev/null

umask 077
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/sdfcli.XXXXXX")"
cd "${work}"

# Passwords only in 0600 files, never on a command line.
printf '1:cli password\n' > init-passwords
timeout 60 "${init}" --store "${work}/store" --sign-keys 1 --enc-keys 1 \
  --password-file init-passwords --pbkdf2-iterations 1000
printf 'cli password' > password
export SOFTSDF_STORE="${work}/store"

sdf() {
  timeout 60 "${tool}" --library "${lib}" --device cli --index 1 \
    --password-file "${work}/password" "$@"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

sdf pubkey sign sign.pub.pem
sdf pubkey enc enc.pub.pem
# The exported keys are the device's (softsdf-init wrote them too).
for usage in sign enc; do
  openssl pkey -pubin -in "${usage}.pub.pem" -outform DER -out "${usage}.a.der"
  openssl pkey -pubin -in "store/${usage}-1.pub.pem" -outform DER \
    -out "${usage}.b.der"
  cmp "${usage}.a.der" "${usage}.b.der" || fail "${usage} public key differs"
done

verify() {  # ID SIGNATURE
  openssl pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
    -pkeyopt "distid:$1" -in msg -sigfile "$2"
}

printf '国密 message signed through hsmd\n' > msg
sdf sign msg sig.default
verify 1234567812345678 sig.default || fail "default-ID signature"
sdf sign msg sig.alice alice@example.com
verify alice@example.com sig.alice || fail "custom-ID signature"
# The checks are real: another ID or another message fails.
if verify 1234567812345678 sig.alice; then fail "wrong ID accepted"; fi
cp msg msg.orig
printf 'tampered' >> msg
if verify 1234567812345678 sig.default; then fail "wrong message accepted"; fi
mv msg.orig msg

for size in 1 32 1000; do
  head -c "${size}" /dev/urandom > plain
  openssl pkeyutl -encrypt -pubin -inkey enc.pub.pem -in plain -out cipher
  sdf decrypt cipher decrypted
  cmp plain decrypted || fail "decryption of ${size} bytes"
done

echo "PASS"
