# Shared set-up of the TLS server tests (nginx, Apache; sourced, not run):
# hsmproxy's openssl.cnf, the PKCS#11 PROVIDER URI key file a server is
# given, and a certificate signed by the HSM key. The sourcing test sets
# MODULE (hsmproxy.so) and is in its work directory.

# write_hsmproxy_conf FILE SOCKET: an openssl.cnf activating the default
# provider and hsmproxy, hsmproxy talking to hsmd at SOCKET.
write_hsmproxy_conf() {
  cat >"$1" <<CONF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
hsmproxy = hsmproxy_sect
[default_sect]
activate = 1
[hsmproxy_sect]
module = ${MODULE}
socket = $2
activate = 1
CONF
}

# write_key_and_cert KEY_URI KEY_FILE CERT_FILE: the key file a server is
# given (a PKCS#11 PROVIDER URI PEM naming KEY_URI, as pkcs11-provider's
# tools write it) and a self-signed certificate for localhost signed by the
# HSM key. Needs OPENSSL_CONF with hsmproxy.
write_key_and_cert() {
  cat >uri.asn1 <<ASN1
asn1 = SEQUENCE:uri_file
[uri_file]
desc = VISIBLESTRING:PKCS\\#11 Provider URI v1.0
uri = UTF8:$1
ASN1
  openssl asn1parse -genconf uri.asn1 -noout -out uri.der
  { echo "-----BEGIN PKCS#11 PROVIDER URI-----"; openssl base64 -in uri.der
    echo "-----END PKCS#11 PROVIDER URI-----"; } >"$2"
  timeout 60 openssl req -new -x509 -key "$1" -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost" -days 2 -out "$3"
}
