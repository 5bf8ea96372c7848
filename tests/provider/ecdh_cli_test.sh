#!/bin/bash
# End-to-end ECDH: the openssl command line derives with HSM EC keys through
# hsmproxy and a real `hsmd --demo`; the result must equal what the peer
# computes with its own private key and the HSM key's public key. Also CMS
# encryption to an HSM EC key's certificate (ECDH key agreement, X9.63 KDF)
# and its decryption with the HSM key.
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE:-hsmd}"
HSMD="${RUNFILES}/daemon/hsmd"
MODULE="${RUNFILES}/proxy_provider/hsmproxy.so"
WORK="${TEST_TMPDIR}/ecdh"
mkdir -p "${WORK}"
cd "${WORK}"

ossl() { timeout 60 openssl "$@"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

DEMO="$(mktemp -d /tmp/hsmdXXXXXX)"
HSMD_PID=""
cleanup() {
  [[ -n "${HSMD_PID}" ]] && kill "${HSMD_PID}" 2>/dev/null || true
  [[ -n "${HSMD_PID}" ]] && wait "${HSMD_PID}" 2>/dev/null || true
  rm -rf "${DEMO}"
}
trap cleanup EXIT

env -u OPENSSL_CONF "${HSMD}" --demo "${DEMO}" >"${WORK}/hsmd.log" 2>&1 &
HSMD_PID=$!
for _ in $(seq 1 600); do
  grep -q 'msg="hsmd ready"' "${WORK}/hsmd.log" && break
  kill -0 "${HSMD_PID}" 2>/dev/null || { cat "${WORK}/hsmd.log"; fail "hsmd exited"; }
  sleep 0.1
done
grep -q 'msg="hsmd ready"' "${WORK}/hsmd.log" || fail "hsmd did not start"

write_conf() {  # write_conf FILE ORDER
  local first second
  if [[ "$2" == hsmproxy-first ]]; then first=hsmproxy; second=default; else first=default; second=hsmproxy; fi
  cat >"$1" <<EOF
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
${first} = ${first}_sect
${second} = ${second}_sect

[default_sect]
activate = 1

[hsmproxy_sect]
module = ${MODULE}
socket = ${DEMO}/hsmd.sock
timeout_ms = 5000
activate = 1
EOF
}
write_conf "${WORK}/openssl.cnf" hsmproxy-first
write_conf "${WORK}/openssl-default-first.cnf" default-first

uri() { echo "pkcs11:token=demo;object=$1;type=private"; }

for conf in openssl.cnf openssl-default-first.cnf; do
  export OPENSSL_CONF="${WORK}/${conf}"
  echo "== pkeyutl -derive (${conf})"
  for k in ec-p256 ec-p384; do
    curve=P-256; [[ "$k" == ec-p384 ]] && curve=P-384
    ossl pkey -in "$(uri "$k")" -pubout -out "$k.pub.pem"
    ossl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:${curve}" -out "peer-$k.key"
    ossl pkey -in "peer-$k.key" -pubout -out "peer-$k.pub.pem"
    # The HSM side and the peer side of the agreement.
    ossl pkeyutl -derive -inkey "$(uri "$k")" -peerkey "peer-$k.pub.pem" -out "hsm-$k.secret"
    env -u OPENSSL_CONF openssl pkeyutl -derive -inkey "peer-$k.key" -peerkey "$k.pub.pem" \
      -out "peer-$k.secret"
    cmp "hsm-$k.secret" "peer-$k.secret" || fail "$k: the two sides derived different secrets"
    want=32; [[ "$k" == ec-p384 ]] && want=48
    [[ "$(stat -c %s "hsm-$k.secret")" == "${want}" ]] || fail "$k: secret is not ${want} bytes"
  done
  # Software keys on both sides: unchanged, no hsmd involved.
  ossl pkeyutl -derive -inkey peer-ec-p256.key -peerkey ec-p256.pub.pem -out sw.secret
  cmp sw.secret peer-ec-p256.secret || fail "software ECDH changed"
done
export OPENSSL_CONF="${WORK}/openssl.cnf"

echo "== pkeyutl -derive errors"
if ossl pkeyutl -derive -inkey "$(uri ec-p256)" -peerkey peer-ec-p384.pub.pem -out x 2>err.txt; then
  fail "derived with a peer on another curve"
fi
grep -qi "hsmproxy\|peer" err.txt || fail "curve mismatch error: $(cat err.txt)"
if ossl pkeyutl -derive -inkey "$(uri rsa-2048)" -peerkey peer-ec-p256.pub.pem -out x 2>err.txt; then
  fail "derived with an RSA key"
fi

echo "== cms -encrypt to an HSM EC key's certificate, cms -decrypt with it"
ossl req -new -x509 -key "$(uri ec-p256)" -subj "/CN=ecdh recipient" -days 2 -out ec-recipient.crt
head -c 1000 /dev/urandom | base64 >plain.txt
# Encryption needs only the certificate (no HSM, default provider only).
env -u OPENSSL_CONF openssl cms -encrypt -binary -aes-256-cbc -recip ec-recipient.crt \
  -in plain.txt -out plain.cms -outform PEM
ossl cms -decrypt -binary -inkey "$(uri ec-p256)" -recip ec-recipient.crt \
  -in plain.cms -inform PEM -out plain.out
cmp plain.txt plain.out || fail "cms -decrypt with the HSM key did not recover the plaintext"
HSMPROXY_DEBUG=1 ossl cms -decrypt -binary -inkey "$(uri ec-p256)" -recip ec-recipient.crt \
  -in plain.cms -inform PEM -out plain.out2 2>cms.err
grep -q "ECDH secret with" cms.err || fail "cms -decrypt did not derive through hsmd: $(cat cms.err)"

echo "PASS"
