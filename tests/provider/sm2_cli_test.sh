#!/bin/bash
# End-to-end, 国密: SM2 keys on the demo's software SDF device (`hsmd --demo`,
# device "soft0") through hsmproxy and the openssl command line. Every
# result is checked with plain OpenSSL (default provider only,
# OPENSSL_CONF=/dev/null): signatures verify with the exported public key
# and the same distinguishing ID, data encrypted by `openssl pkeyutl
# -encrypt` decrypts through hsmd, certificates carry SM2-with-SM3
# signatures that verify.
set -euo pipefail

WORK="${TEST_TMPDIR}/sm2cli"
# hsmd --demo, ossl/plain/fail, openssl.cnf and openssl-default-first.cnf.
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"
export OPENSSL_CONF="${WORK}/openssl.cnf"

S="sdf:device=soft0;index=1;usage=sign"
E="sdf:device=soft0;index=1;usage=enc"
GMT_ID=1234567812345678

echo "SM2 signed through hsmd" >msg.txt

echo "== public keys"
ossl pkey -in "${S}" -pubout -out sign.pub.pem
ossl pkey -in "${E}" -pubout -out enc.pub.pem
plain pkey -pubin -in sign.pub.pem -text_pub -noout | grep -q "ASN1 OID: SM2" ||
  fail "not an SM2 key: $(plain pkey -pubin -in sign.pub.pem -text_pub -noout)"
cmp -s sign.pub.pem enc.pub.pem && fail "sign and enc keys are the same"

echo "== pkeyutl -sign -rawin -digest sm3, verified by plain openssl"
for conf in openssl.cnf openssl-default-first.cnf; do
  OPENSSL_CONF="${WORK}/${conf}" ossl pkeyutl -sign -inkey "${S}" -rawin -digest sm3 \
    -in msg.txt -out msg.sig
  plain pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
    -pkeyopt "distid:${GMT_ID}" -in msg.txt -sigfile msg.sig |
    grep -q "Signature Verified Successfully" || fail "${conf}: SM2 signature"
done
# The default ID is GM/T 0009's, not OpenSSL's empty one.
if plain pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
  -in msg.txt -sigfile msg.sig >/dev/null 2>&1; then
  fail "the signature verified with the empty ID"
fi
# hsmproxy verifies locally with the same default.
ossl pkeyutl -verify -inkey "${S}" -rawin -digest sm3 -in msg.txt -sigfile msg.sig |
  grep -q "Signature Verified Successfully" || fail "local verification"
# Another distinguishing ID.
ossl pkeyutl -sign -inkey "${S}" -rawin -digest sm3 -pkeyopt distid:alice@example.com \
  -in msg.txt -out alice.sig
plain pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
  -pkeyopt distid:alice@example.com -in msg.txt -sigfile alice.sig |
  grep -q "Signature Verified Successfully" || fail "custom ID"
if plain pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
  -pkeyopt "distid:${GMT_ID}" -in msg.txt -sigfile alice.sig >/dev/null 2>&1; then
  fail "a custom-ID signature verified with the default ID"
fi
ossl pkeyutl -sign -inkey "${S}" -rawin -digest sm3 -pkeyopt hexdistid:0102ff \
  -in msg.txt -out hex.sig
plain pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
  -pkeyopt hexdistid:0102ff -in msg.txt -sigfile hex.sig |
  grep -q "Signature Verified Successfully" || fail "hex ID"

echo "== dgst -sm3 -sign"
ossl dgst -sm3 -sign "${S}" -out dgst.sig msg.txt
plain dgst -sm3 -verify sign.pub.pem -sigopt "distid:${GMT_ID}" -signature dgst.sig msg.txt |
  grep -q "Verified OK" || fail "dgst -sm3 signature"

echo "== pkeyutl -sign of e = SM3(Z || M), Z computed here from the standard"
# Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA) with the curve of
# GB/T 32918.5, computed with the shell and `openssl dgst` only.
A=FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B=28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
XG=32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
YG=BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
# The SPKI ends with the uncompressed point 04 || xA || yA.
XY="$(plain pkey -pubin -in sign.pub.pem -outform DER | tail -c 64 | od -An -v -tx1 | tr -d ' \n')"
ID_HEX="$(printf '%s' "${GMT_ID}" | od -An -v -tx1 | tr -d ' \n')"
printf '%04x%s%s%s%s%s%s' $((${#GMT_ID} * 8)) "${ID_HEX}" "${A}" "${B}" "${XG}" "${YG}" "${XY}" |
  xxd -r -p >z.in
plain dgst -sm3 -binary -out z.bin z.in
cat z.bin msg.txt | plain dgst -sm3 -binary -out e.bin
ossl pkeyutl -sign -inkey "${S}" -in e.bin -out e.sig
plain pkeyutl -verify -pubin -inkey sign.pub.pem -in e.bin -sigfile e.sig |
  grep -q "Signature Verified Successfully" || fail "signature of e"
# ... and it is a signature of the message with the default ID.
plain pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
  -pkeyopt "distid:${GMT_ID}" -in msg.txt -sigfile e.sig |
  grep -q "Signature Verified Successfully" || fail "e is not SM3(Z || M)"

echo "== plain openssl encrypts, hsmd decrypts"
head -c 100 /dev/urandom >secret.bin
plain pkeyutl -encrypt -pubin -inkey enc.pub.pem -in secret.bin -out secret.sm2
ossl pkeyutl -decrypt -inkey "${E}" -in secret.sm2 -out secret.out
cmp secret.bin secret.out || fail "SM2 decryption"
# Encryption with the HSM key's public half (local), decryption in the HSM.
ossl pkeyutl -encrypt -inkey "${E}" -in secret.bin -out secret2.sm2
ossl pkeyutl -decrypt -inkey "${E}" -in secret2.sm2 -out secret2.out
cmp secret.bin secret2.out || fail "SM2 round trip"
# A corrupted ciphertext: an ordinary decryption error.
{ head -c 120 secret.sm2; printf '\x5a'; tail -c +122 secret.sm2; } >secret.bad
if ossl pkeyutl -decrypt -inkey "${E}" -in secret.bad -out /dev/null 2>decrypt.err; then
  fail "a corrupted SM2 ciphertext decrypted"
fi
grep -q "decryption failed" decrypt.err || fail "decrypt error: $(cat decrypt.err)"
# The signing key does not decrypt (the device keeps them apart).
if ossl pkeyutl -decrypt -inkey "${S}" -in secret.sm2 -out /dev/null 2>wrong.err; then
  fail "the signing key decrypted"
fi

# Verifies a certificate's signature with plain openssl: the TBSCertificate
# (at offset 4) signed with the issuer's key and ID.
check_cert_sig() {  # check_cert_sig CERT ISSUER_PUB ID
  plain x509 -in "$1" -outform DER -out cert.der
  plain asn1parse -inform DER -in cert.der -strparse 4 -noout -out tbs.der
  local sig_offset
  sig_offset="$(plain asn1parse -inform DER -in cert.der | grep 'BIT STRING' | tail -1 | cut -d: -f1 | tr -d ' ')"
  plain asn1parse -inform DER -in cert.der -strparse "${sig_offset}" -noout -out sig.der
  plain pkeyutl -verify -pubin -inkey "$2" -rawin -digest sm3 -pkeyopt "distid:$3" \
    -in tbs.der -sigfile sig.der | grep -q "Signature Verified Successfully"
}

echo "== req -x509 -sm3, x509 -req -sm3"
ossl req -new -x509 -key "${S}" -sm3 -subj "/CN=SM2 demo CA" -days 2 -out ca.crt
plain x509 -in ca.crt -noout -text | grep -q "Signature Algorithm: SM2-with-SM3" ||
  fail "not SM2-with-SM3: $(plain x509 -in ca.crt -noout -text)"
plain x509 -in ca.crt -noout -pubkey | cmp - sign.pub.pem || fail "CA certificate key"
check_cert_sig ca.crt sign.pub.pem "${GMT_ID}" || fail "CA self-signature"
plain genpkey -algorithm SM2 -out leaf.key
plain req -new -key leaf.key -sm3 -subj "/CN=leaf" -out leaf.csr
ossl x509 -req -in leaf.csr -CA ca.crt -CAkey "${S}" -sm3 -CAcreateserial -days 1 -out leaf.crt
plain x509 -in leaf.crt -noout -text | grep -q "Signature Algorithm: SM2-with-SM3" || fail "leaf algorithm"
check_cert_sig leaf.crt sign.pub.pem "${GMT_ID}" || fail "leaf signature"
# With the empty ID (`-sigopt distid:`), `openssl verify` checks them itself.
ossl req -new -x509 -key "${S}" -sm3 -sigopt distid: -subj "/CN=SM2 CA, empty ID" -days 2 -out ca0.crt
plain verify -check_ss_sig -CAfile ca0.crt ca0.crt | grep -q OK || fail "verify ca0"
ossl x509 -req -in leaf.csr -CA ca0.crt -CAkey "${S}" -sm3 -sigopt distid: -CAcreateserial \
  -days 1 -out leaf0.crt
plain verify -CAfile ca0.crt leaf0.crt | grep -q OK || fail "verify leaf0"
# The CA key must match the CA certificate.
if ossl x509 -req -in leaf.csr -CA ca.crt -CAkey "${E}" -sm3 -CAcreateserial -days 1 \
  -out /dev/null 2>mismatch.err; then
  fail "x509 -req accepted a CA key that does not match the certificate"
fi

echo "== URI key file"
cat >uri.asn1 <<EOF
asn1 = SEQUENCE:uri_file
[uri_file]
desc = VISIBLESTRING:PKCS\\#11 Provider URI v1.0
uri = UTF8:${S}
EOF
plain asn1parse -genconf uri.asn1 -noout -out uri.der
{ echo "-----BEGIN PKCS#11 PROVIDER URI-----"; plain base64 -in uri.der; echo "-----END PKCS#11 PROVIDER URI-----"; } >sm2.key.pem
ossl pkey -in sm2.key.pem -pubout | cmp - sign.pub.pem || fail "URI file public key"
ossl pkeyutl -sign -inkey sm2.key.pem -rawin -digest sm3 -in msg.txt -out file.sig
plain pkeyutl -verify -pubin -inkey sign.pub.pem -rawin -digest sm3 \
  -pkeyopt "distid:${GMT_ID}" -in msg.txt -sigfile file.sig |
  grep -q "Signature Verified Successfully" || fail "URI file signature"

echo "== software SM2 keys are unaffected (both provider orders)"
for conf in openssl.cnf openssl-default-first.cnf; do
  export OPENSSL_CONF="${WORK}/${conf}"
  ossl genpkey -algorithm SM2 -out sw.key
  ossl pkey -in sw.key -pubout -out sw.pub
  # OpenSSL's own default ID on both sides.
  ossl pkeyutl -sign -inkey sw.key -rawin -digest sm3 -in msg.txt -out sw.sig
  plain pkeyutl -verify -pubin -inkey sw.pub -rawin -digest sm3 -in msg.txt -sigfile sw.sig |
    grep -q "Signature Verified Successfully" || fail "${conf}: software SM2 signature"
  plain pkeyutl -encrypt -pubin -inkey sw.pub -in secret.bin -out sw.sm2
  ossl pkeyutl -decrypt -inkey sw.key -in sw.sm2 -out sw.out
  cmp secret.bin sw.out || fail "${conf}: software SM2 decryption"
  ossl req -new -x509 -key sw.key -sm3 -subj "/CN=software SM2" -days 1 -out sw.crt
  plain verify -check_ss_sig -CAfile sw.crt sw.crt | grep -q OK || fail "${conf}: software SM2 cert"
done
export OPENSSL_CONF="${WORK}/openssl.cnf"

echo "== errors"
if ossl pkeyutl -sign -inkey "sdf:device=soft0;index=99;usage=sign" -rawin -digest sm3 \
  -in msg.txt -out x 2>err.txt; then
  fail "a missing SDF key signed"
fi
grep -q "key not found" err.txt || fail "missing key: $(cat err.txt)"
if ossl pkeyutl -sign -inkey "${S}" -rawin -digest sha256 -in msg.txt -out x 2>err.txt; then
  fail "SM2 signed with SHA-256"
fi
if ossl pkeyutl -sign -inkey "sdf:device=soft0;index=1;usage=sm4" -in e.bin -out x 2>err.txt; then
  fail "an SM4 key signed"
fi
grep -q "SM4" err.txt || fail "SM4 key: $(cat err.txt)"

echo "PASS"
