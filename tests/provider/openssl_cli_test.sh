#!/bin/bash
# End-to-end: the openssl command line with HSM keys through hsmproxy and a
# real `hsmd --demo`, configured the way the README tells users to
# (openssl.cnf activating default + hsmproxy).
set -euo pipefail

WORK="${TEST_TMPDIR}/cli"
# hsmd --demo, ossl/fail, openssl.cnf and openssl-default-first.cnf.
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
write_conf "${WORK}/openssl-down.cnf" hsmproxy-first "${DEMO}/no-such.sock"
EXTRA_CLEANUP='[[ -n "${SERVER_PID}" ]] && kill "${SERVER_PID}" 2>/dev/null'
SERVER_PID=""
export OPENSSL_CONF="${WORK}/openssl.cnf"

uri() { echo "pkcs11:token=demo;object=$1;type=private"; }

echo "hello from the HSM" >msg.txt
ossl dgst -sha256 -binary -out msg.sha256 msg.txt

echo "== public keys"
for k in rsa-2048 rsa-3072 ec-p256 ec-p384 ed25519; do
  ossl pkey -in "$(uri "$k")" -pubout -out "$k.pub.pem"
  ossl pkey -pubin -in "pkcs11:token=demo;object=$k;type=public" -pubout -out "$k.pub2.pem"
  cmp "$k.pub.pem" "$k.pub2.pem" || fail "$k: public keys differ"
done
ossl pkey -in "$(uri rsa-2048)" -text_pub -noout | grep -q "Public-Key: (2048 bit)" || fail "text_pub"

echo "== pkeyutl -sign / -verify"
# RSA PKCS#1 v1.5
ossl pkeyutl -sign -inkey "$(uri rsa-2048)" -in msg.sha256 -pkeyopt digest:sha256 -out rsa.sig
ossl pkeyutl -verify -pubin -inkey rsa-2048.pub.pem -in msg.sha256 -sigfile rsa.sig -pkeyopt digest:sha256
ossl pkeyutl -verify -inkey "$(uri rsa-2048)" -in msg.sha256 -sigfile rsa.sig -pkeyopt digest:sha256
# RSA-PSS, every salt length setting
for salt in digest max auto 0 32 -1; do
  ossl pkeyutl -sign -inkey "$(uri rsa-3072)" -in msg.sha256 -pkeyopt digest:sha256 \
    -pkeyopt rsa_padding_mode:pss -pkeyopt "rsa_pss_saltlen:${salt}" -out pss.sig
  vsalt="${salt}"; [[ "${salt}" == max ]] && vsalt=auto
  ossl pkeyutl -verify -pubin -inkey rsa-3072.pub.pem -in msg.sha256 -sigfile pss.sig \
    -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt "rsa_pss_saltlen:${vsalt}" \
    >/dev/null || fail "PSS salt ${salt}"
done
# ECDSA
for k in ec-p256 ec-p384; do
  ossl pkeyutl -sign -inkey "$(uri "$k")" -in msg.sha256 -out "$k.sig"
  ossl pkeyutl -verify -pubin -inkey "$k.pub.pem" -in msg.sha256 -sigfile "$k.sig"
done
# Ed25519 (one-shot over the message)
ossl pkeyutl -sign -rawin -inkey "$(uri ed25519)" -in msg.txt -out ed.sig
ossl pkeyutl -verify -rawin -pubin -inkey ed25519.pub.pem -in msg.txt -sigfile ed.sig

echo "== pkeyutl -decrypt"
head -c 32 /dev/urandom >secret.bin
ossl pkeyutl -encrypt -pubin -inkey rsa-2048.pub.pem -in secret.bin -out secret.pkcs1
ossl pkeyutl -decrypt -inkey "$(uri rsa-2048)" -in secret.pkcs1 -out secret.out1
cmp secret.bin secret.out1 || fail "PKCS#1 decrypt"
ossl pkeyutl -encrypt -pubin -inkey rsa-2048.pub.pem -in secret.bin -out secret.oaep \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha1
ossl pkeyutl -decrypt -inkey "$(uri rsa-2048)" -in secret.oaep -out secret.out2 \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha1
cmp secret.bin secret.out2 || fail "OAEP decrypt"
# A corrupted OAEP ciphertext: an ordinary error without padding detail.
{ head -c 100 secret.oaep; printf '\x5a'; tail -c +102 secret.oaep; } >secret.bad
if ossl pkeyutl -decrypt -inkey "$(uri rsa-2048)" -in secret.bad -out /dev/null \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha1 2>decrypt.err; then
  fail "a corrupted OAEP ciphertext decrypted"
fi
grep -q "decryption failed" decrypt.err || fail "decrypt error: $(cat decrypt.err)"

echo "== dgst -sign / -verify"
for k in rsa-2048 ec-p384; do
  ossl dgst -sha256 -sign "$(uri "$k")" -out "$k.dgst.sig" msg.txt
  ossl dgst -sha256 -verify "$k.pub.pem" -signature "$k.dgst.sig" msg.txt | grep -q "Verified OK"
done

echo "== req -x509, x509 -req -CA, cms -sign"
ossl req -new -x509 -key "$(uri ec-p256)" -subj "/CN=hsmd demo CA" -days 2 -out ca.crt
ossl verify -CAfile ca.crt ca.crt | grep -q OK
ossl req -new -x509 -key "$(uri rsa-2048)" -subj "/CN=localhost" -days 2 -out rsa.crt
ossl req -new -x509 -key "$(uri ec-p256)" -subj "/CN=localhost" -days 2 -out ec.crt
ossl req -new -x509 -key "$(uri ed25519)" -subj "/CN=ed" -days 2 -out ed.crt
ossl verify -CAfile ed.crt ed.crt | grep -q OK
ossl req -new -x509 -key "$(uri rsa-3072)" -sigopt rsa_padding_mode:pss -subj "/CN=pss" -days 2 -out pss.crt
ossl verify -CAfile pss.crt pss.crt | grep -q OK
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf.key
ossl req -new -key leaf.key -subj "/CN=leaf" -out leaf.csr
ossl x509 -req -in leaf.csr -CA ca.crt -CAkey "$(uri ec-p256)" -CAcreateserial -days 1 -out leaf.crt
ossl verify -CAfile ca.crt leaf.crt | grep -q OK
ossl cms -sign -binary -nodetach -signer ca.crt -inkey "$(uri ec-p256)" -in msg.txt -out msg.cms -outform PEM
ossl cms -verify -binary -CAfile ca.crt -in msg.cms -inform PEM -out msg.verified
cmp msg.txt msg.verified || fail "cms content"
ossl cms -sign -binary -nodetach -signer rsa.crt -inkey "$(uri rsa-2048)" -keyopt rsa_padding_mode:pss -in msg.txt -out msg2.cms -outform PEM
ossl cms -verify -CAfile rsa.crt -in msg2.cms -inform PEM -out /dev/null

echo "== PKCS#11 PROVIDER URI key files"
uri_pem() {  # uri_pem URI OUT
  cat >uri.asn1 <<EOF
asn1 = SEQUENCE:uri_file
[uri_file]
desc = VISIBLESTRING:PKCS\\#11 Provider URI v1.0
uri = UTF8:$1
EOF
  ossl asn1parse -genconf uri.asn1 -noout -out uri.der
  { echo "-----BEGIN PKCS#11 PROVIDER URI-----"; openssl base64 -in uri.der; echo "-----END PKCS#11 PROVIDER URI-----"; } >"$2"
}
uri_pem "$(uri ec-p256)" ec-p256.key.pem
ossl asn1parse -in ec-p256.key.pem | grep -q "VISIBLESTRING *:PKCS#11 Provider URI v1.0" ||
  fail "URI file description: $(ossl asn1parse -in ec-p256.key.pem)"
uri_pem "$(uri rsa-2048)" rsa-2048.key.pem
ossl pkey -in ec-p256.key.pem -pubout | cmp - ec-p256.pub.pem || fail "URI PEM public key"
ossl pkeyutl -sign -inkey ec-p256.key.pem -in msg.sha256 -out pem.sig
ossl pkeyutl -verify -pubin -inkey ec-p256.pub.pem -in msg.sha256 -sigfile pem.sig
ossl x509 -in ec.crt -noout -pubkey | cmp - ec-p256.pub.pem || fail "cert key"

echo "== s_server / s_client"
tls_check() {  # tls_check KEY CERT VERSION
  local port log
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    log="${WORK}/s_server.${port}.log"
    timeout 60 openssl s_server -accept "${port}" -naccept 1 -www -key "$1" -cert "$2" >"${log}" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
      grep -q ACCEPT "${log}" && break
      kill -0 "${SERVER_PID}" 2>/dev/null || break
      sleep 0.05
    done
    grep -q ACCEPT "${log}" && break
    wait "${SERVER_PID}" 2>/dev/null || true
    SERVER_PID=""
  done
  [[ -n "${SERVER_PID}" ]] || fail "s_server did not start: $(cat "${log}")"
  printf 'GET / HTTP/1.0\r\n\r\n' | timeout 60 openssl s_client -connect "127.0.0.1:${port}" \
    "-$3" -CAfile "$2" -verify_return_error -servername localhost >client.out 2>&1 ||
    { cat client.out "${log}"; fail "s_client $1 $3"; }
  wait "${SERVER_PID}" 2>/dev/null || true
  SERVER_PID=""
  grep -q "Verify return code: 0 (ok)" client.out || fail "verify $1 $3"
  case "$3" in
    tls1_2) grep -q "New, TLSv1.2, Cipher is" client.out || fail "not TLS 1.2" ;;
    tls1_3) grep -q "New, TLSv1.3, Cipher is" client.out || fail "not TLS 1.3" ;;
  esac
}
for v in tls1_2 tls1_3; do
  tls_check "$(uri rsa-2048)" rsa.crt "$v"
  tls_check "$(uri ec-p256)" ec.crt "$v"
done
tls_check rsa-2048.key.pem rsa.crt tls1_3
tls_check "$(uri ed25519)" ed.crt tls1_3

echo "== rand"
[[ "$(ossl rand -hex 32 | tr -d '\n' | wc -c)" == 64 ]] || fail "rand"
HSMPROXY_DEBUG=1 HSMPROXY_SOCKET="${DEMO}/hsmd.sock" OPENSSL_CONF=/dev/null \
  timeout 60 openssl rand -provider-path "$(dirname "${MODULE}")" -provider hsmproxy \
  -provider default -hex 32 >/dev/null
cat >"${WORK}/openssl-seed.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
random = random_sect
[provider_sect]
default = default_sect
hsmproxy = hsmproxy_sect
[default_sect]
activate = 1
[hsmproxy_sect]
module = ${MODULE}
socket = ${DEMO}/hsmd.sock
activate = 1
[random_sect]
seed = HSMPROXY-RAND
seed_properties = provider=hsmproxy
EOF
HSMPROXY_DEBUG=1 OPENSSL_CONF="${WORK}/openssl-seed.cnf" ossl rand -hex 32 2>rand.err >/dev/null
grep -q "random bytes from hsmd" rand.err || fail "the DRBG was not seeded from the HSM: $(cat rand.err)"

echo "== software keys are unaffected (both provider orders)"
for conf in openssl.cnf openssl-default-first.cnf; do
  export OPENSSL_CONF="${WORK}/${conf}"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sw-rsa.key
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out sw-ec.key
  ossl genpkey -algorithm ED25519 -out sw-ed.key
  for k in sw-rsa sw-ec; do
    ossl pkey -in "$k.key" -pubout -out "$k.pub"
    ossl dgst -sha256 -sign "$k.key" -out "$k.sig" msg.txt
    ossl dgst -sha256 -verify "$k.pub" -signature "$k.sig" msg.txt | grep -q "Verified OK"
  done
  ossl pkeyutl -sign -rawin -inkey sw-ed.key -in msg.txt -out sw-ed.sig
  ossl req -new -x509 -key sw-ec.key -subj "/CN=localhost" -days 1 -out sw-ec.crt
  ossl req -new -x509 -key sw-rsa.key -subj "/CN=localhost" -days 1 -out sw-rsa.crt
  tls_check sw-ec.key sw-ec.crt tls1_2
  tls_check sw-rsa.key sw-rsa.crt tls1_3
done
export OPENSSL_CONF="${WORK}/openssl.cnf"

echo "== errors"
if ossl pkeyutl -sign -inkey "pkcs11:token=demo;object=missing-key" -in msg.sha256 -out x 2>err.txt; then
  fail "missing key signed"
fi
grep -q "key not found: pkcs11:token=demo;object=missing-key" err.txt || fail "missing key: $(cat err.txt)"
if OPENSSL_CONF="${WORK}/openssl-down.cnf" ossl pkeyutl -sign -inkey "$(uri ec-p256)" -in msg.sha256 -out x 2>err.txt; then
  fail "signed without hsmd"
fi
grep -q "hsmproxy" err.txt || fail "no hsmproxy error: $(cat err.txt)"
grep -q "hsmd unavailable at ${DEMO}/no-such.sock" err.txt || fail "daemon down: $(cat err.txt)"

echo "PASS"
