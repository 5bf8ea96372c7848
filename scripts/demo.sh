#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, starts hsmd on
# an embedded SoftHSM demo token and a software SDF device "soft0" (国密,
# both created once in ./demo), and shows it working: status, keys, a
# signature made in the HSM and verified by OpenSSL with the exported public
# key, and an SM2 signature made through hsmproxy and verified by plain
# OpenSSL. hsmd then keeps running in the foreground
# (Ctrl-C stops it); with --no-wait it is stopped after the tour (CI uses this).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD"
wait_for_daemon=1
demo_dir="$root/demo"
for arg in "$@"; do
  case "$arg" in
    --no-wait) wait_for_daemon=0 ;;
    --dir=*) demo_dir="${arg#--dir=}" ;;
    *) echo "usage: $0 [--no-wait] [--dir=DIR]" >&2; exit 2 ;;
  esac
done

scripts/install_deps.sh
scripts/bazel.sh build //daemon:hsmd //tools/hsmctl:hsmctl //proxy_provider:hsmproxy.so \
  //tools/softsdf:libsoftsdf.so

bin="$root/bazel-bin"
mkdir -p "$demo_dir"
export HSMD_SOCKET="$demo_dir/hsmd.sock"

"$bin/daemon/hsmd" --demo "$demo_dir" \
  --softsdf-library "$bin/tools/softsdf/libsoftsdf.so" >"$demo_dir/hsmd.log" 2>&1 &
hsmd_pid=$!
stop_daemon() {
  if kill -0 "$hsmd_pid" 2>/dev/null; then
    kill -TERM "$hsmd_pid"
    wait "$hsmd_pid" || true
  fi
}
trap stop_daemon EXIT INT TERM

for _ in $(seq 1 300); do
  if "$bin/tools/hsmctl/hsmctl" status >/dev/null 2>&1; then break; fi
  if ! kill -0 "$hsmd_pid" 2>/dev/null; then
    echo "demo: hsmd exited; see $demo_dir/hsmd.log" >&2
    exit 1
  fi
  sleep 0.1
done

hsmctl() { "$bin/tools/hsmctl/hsmctl" "$@"; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step hsmctl status
hsmctl status
step hsmctl list
hsmctl list

work="$(mktemp -d)"
trap 'rm -rf "$work"; stop_daemon' EXIT INT TERM
echo "hello from hsmd" > "$work/message.txt"
uri="pkcs11:token=demo;object=ec-p256;type=private"
step hsmctl sign "'$uri'" --alg ecdsa --hash sha256 --in message.txt --out message.sig
hsmctl sign "$uri" --alg ecdsa --hash sha256 --in "$work/message.txt" --out "$work/message.sig"
step hsmctl show "'$uri'" --pubout ec-p256.pub.pem
hsmctl show "$uri" --pubout "$work/ec-p256.pub.pem" >/dev/null
cat "$work/ec-p256.pub.pem"
step openssl dgst -sha256 -verify ec-p256.pub.pem -signature message.sig message.txt
openssl dgst -sha256 -verify "$work/ec-p256.pub.pem" -signature "$work/message.sig" "$work/message.txt"
step hsmctl random 16 --hex
hsmctl random 16 --hex

# The same key from plain OpenSSL through the hsmproxy provider: the private
# key stays in the HSM, the openssl process only holds a reference.
cat > "$work/openssl.cnf" <<EOC
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
hsmproxy = hsmproxy_sect
[default_sect]
activate = 1
[hsmproxy_sect]
module = $bin/proxy_provider/hsmproxy.so
socket = $HSMD_SOCKET
activate = 1
EOC
export OPENSSL_CONF="$work/openssl.cnf"
rsa="pkcs11:token=demo;object=rsa-2048;type=private"
step OPENSSL_CONF=openssl.cnf openssl dgst -sha256 -sign "'$rsa'" -out message.rsa.sig message.txt
openssl dgst -sha256 -sign "$rsa" -out "$work/message.rsa.sig" "$work/message.txt"
step openssl pkey -in "'$rsa'" -pubout -out rsa.pub.pem
openssl pkey -in "$rsa" -pubout -out "$work/rsa.pub.pem"
step openssl dgst -sha256 -verify rsa.pub.pem -signature message.rsa.sig message.txt
OPENSSL_CONF=/dev/null openssl dgst -sha256 -verify "$work/rsa.pub.pem" \
  -signature "$work/message.rsa.sig" "$work/message.txt"
step openssl req -new -x509 -key "'$uri'" -subj /CN=hsmd-demo -days 1 -out demo-cert.pem
openssl req -new -x509 -key "$uri" -subj /CN=hsmd-demo -days 1 -out "$work/demo-cert.pem"
OPENSSL_CONF=/dev/null openssl verify -CAfile "$work/demo-cert.pem" "$work/demo-cert.pem"

# 国密: SM2 with SM3 on the software SDF device, through the same provider.
# OpenSSL 3.0's own default distinguishing ID is empty; hsmproxy signs with
# GM/T 0009's 1234567812345678, so the plain-OpenSSL check names it.
sm2="sdf:device=soft0;index=1;usage=sign"
step openssl pkeyutl -sign -inkey "'$sm2'" -rawin -digest sm3 -in message.txt -out message.sm2.sig
openssl pkeyutl -sign -inkey "$sm2" -rawin -digest sm3 -in "$work/message.txt" \
  -out "$work/message.sm2.sig"
step openssl pkey -in "'$sm2'" -pubout -out sm2.pub.pem
openssl pkey -in "$sm2" -pubout -out "$work/sm2.pub.pem"
cat "$work/sm2.pub.pem"
step OPENSSL_CONF=/dev/null openssl pkeyutl -verify -pubin -inkey sm2.pub.pem -rawin -digest sm3 \
  -pkeyopt distid:1234567812345678 -in message.txt -sigfile message.sm2.sig
OPENSSL_CONF=/dev/null openssl pkeyutl -verify -pubin -inkey "$work/sm2.pub.pem" -rawin \
  -digest sm3 -pkeyopt distid:1234567812345678 -in "$work/message.txt" \
  -sigfile "$work/message.sm2.sig"
unset OPENSSL_CONF
step hsmctl stats
hsmctl stats

cat <<EOM

hsmd is serving the demo token and the SDF device soft0 on $HSMD_SOCKET
(its log: $demo_dir/hsmd.log).
In another shell:
  export HSMD_SOCKET=$HSMD_SOCKET
  $bin/tools/hsmctl/hsmctl list
  grpcurl -plaintext -unix $HSMD_SOCKET list        # if grpcurl is installed
Use a key from OpenSSL through the hsmproxy provider: see README, "Use your HSM key from OpenSSL".
EOM

if [[ $wait_for_daemon -eq 1 ]]; then
  echo "Press Ctrl-C to stop hsmd."
  wait "$hsmd_pid"
fi
