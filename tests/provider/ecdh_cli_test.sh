#!/bin/bash
# End-to-end ECDH: the openssl command line derives with HSM EC keys through
# hsmproxy and a real `hsmd --demo`; the result must equal what the peer
# computes with its own private key and the HSM key's public key. Also CMS
# encryption to an HSM EC key's certificate (ECDH key agreement, X9.63 KDF)
# and its decryption with the HSM key.
set -euo pipefail

WORK="${TEST_TMPDIR}/ecdh"
# hsmd --demo, ossl/fail, openssl.cnf and openssl-default-first.cnf.
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

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
