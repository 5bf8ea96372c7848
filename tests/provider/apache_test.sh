#!/bin/bash
# Apache httpd with the prefork MPM (a master that loads the key as root, then
# 4 children that serve TLS as an unprivileged user) with an RSA-2048 HSM key
# through hsmproxy, from a PKCS#11 PROVIDER URI key file. This is the set-up
# where in-process PKCS#11 loses the key in freshly forked children under
# concurrent load; here:
#   400 full handshakes from 4 concurrent clients; `apache2 -k graceful`
#   (new children) and 400 more; hsmd killed with SIGKILL and restarted under
#   Apache and 400 more.
# Every handshake must succeed and be signed by hsmd (counted in its log).
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE:-hsmd}"
HSMD="${RUNFILES}/daemon/hsmd"
MODULE="${RUNFILES}/proxy_provider/hsmproxy.so"
source "$(dirname "${BASH_SOURCE[0]}")/tls_server_lib.sh"
CLIENT="${RUNFILES}/tests/provider/tls_client.py"
APACHE="$(command -v apache2 || echo /usr/sbin/apache2)"
MODULES=/usr/lib/apache2/modules
PYTHON="$(command -v /usr/bin/python3 || command -v python3)"
WORK="${TEST_TMPDIR}/apache"
mkdir -p "${WORK}/logs" "${WORK}/run"
cd "${WORK}"

fail() {
  echo "FAIL: $*" >&2
  echo "--- apache error log" >&2
  tail -40 "${WORK}/logs/error.log" >&2 2>/dev/null || true
  echo "--- hsmd log" >&2
  tail -20 "${WORK}/hsmd.log" >&2 2>/dev/null || true
  exit 1
}

[[ -x "${APACHE}" && -f "${MODULES}/mod_ssl.so" ]] ||
  fail "apache2 is not installed (scripts/install_deps.sh installs it)"

# The demo token (created by `hsmd --demo`), served by an hsmd whose socket
# Apache's unprivileged children can reach: a world-searchable directory, mode
# 0666, no policy (the socket's mode is the gate in this test).
DEMO="$(mktemp -d /tmp/hsmdXXXXXX)"
SOCKDIR="$(mktemp -d /tmp/hsmdsockXXXXXX)"
chmod 0755 "${SOCKDIR}"
HSMD_PID=""
APACHE_STARTED=0
cleanup() {
  if [[ "${APACHE_STARTED}" == 1 ]]; then
    "${APACHE}" -d "${WORK}" -f "${WORK}/httpd.conf" -k stop 2>/dev/null || true
    for _ in $(seq 1 50); do [[ -f "${WORK}/run/httpd.pid" ]] || break; sleep 0.1; done
    [[ -f "${WORK}/run/httpd.pid" ]] && kill -9 "$(cat "${WORK}/run/httpd.pid")" 2>/dev/null || true
  fi
  [[ -n "${HSMD_PID}" ]] && kill "${HSMD_PID}" 2>/dev/null || true
  [[ -n "${HSMD_PID}" ]] && wait "${HSMD_PID}" 2>/dev/null || true
  rm -rf "${DEMO}" "${SOCKDIR}"
}
trap cleanup EXIT

# As root the children switch to www-data (Apache refuses to serve as root);
# otherwise they keep the caller's identity.
if [[ "$(id -u)" == 0 ]]; then
  RUN_USER=www-data RUN_GROUP=www-data
else
  RUN_USER="$(id -un)" RUN_GROUP="$(id -gn)"
fi

ready_count() { grep -c 'msg="hsmd ready"' "${WORK}/hsmd.log" 2>/dev/null || true; }
wait_ready() {  # wait_ready BEFORE: until one more "hsmd ready" line
  for _ in $(seq 1 600); do
    [[ "$(ready_count)" -gt "$1" ]] && return 0
    kill -0 "${HSMD_PID}" 2>/dev/null || fail "hsmd exited: $(tail -5 "${WORK}/hsmd.log")"
    sleep 0.1
  done
  fail "hsmd did not start"
}

# Create the demo token and its keys once, then serve it with our config.
env -u OPENSSL_CONF "${HSMD}" --demo "${DEMO}" --socket "${SOCKDIR}/demo-setup.sock" \
  >>"${WORK}/hsmd.log" 2>&1 &
HSMD_PID=$!
wait_ready 0
kill "${HSMD_PID}"
wait "${HSMD_PID}" || fail "hsmd --demo did not stop cleanly"
HSMD_PID=""

cat >"${WORK}/hsmd.conf" <<EOF
listen { socket_path: "${SOCKDIR}/hsmd.sock" socket_mode: "0666" }
backends {
  name: "demo"
  pkcs11 {
    module_path: "/usr/lib/softhsm/libsofthsm2.so"
    token_label: "demo"
    pin { file: "${DEMO}/user.pin" }
  }
}
EOF
start_hsmd() {
  local before
  before="$(ready_count)"
  env -u OPENSSL_CONF SOFTHSM2_CONF="${DEMO}/softhsm2.conf" \
    "${HSMD}" --config "${WORK}/hsmd.conf" >>"${WORK}/hsmd.log" 2>&1 &
  HSMD_PID=$!
  wait_ready "${before}"
}
# Signatures made for Apache's children (they run as RUN_USER), counted from
# hsmd's audit records (on stderr here: no journal).
signatures() {
  grep -c "\"msg\":\"audit\",\"method\":\"Sign\".*\"result\":\"OK\",\"peer_uid\":$(id -u "${RUN_USER}")," \
    "${WORK}/hsmd.log" || true
}

start_hsmd

write_hsmproxy_conf "${WORK}/openssl.cnf" "${SOCKDIR}/hsmd.sock"
export OPENSSL_CONF="${WORK}/openssl.cnf"
KEY_URI="pkcs11:token=demo;object=rsa-2048;type=private"

# The key file Apache is given, and a certificate signed by the HSM key.
write_key_and_cert "${KEY_URI}" server.key.pem server.crt
# The children may run as www-data: the document root lives outside the
# (possibly private) test directory.
HTDOCS="${SOCKDIR}/htdocs"
mkdir -p "${HTDOCS}"
echo ok >"${HTDOCS}/index.html"
chmod -R a+rX "${HTDOCS}"

PORT=""
for _ in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 20000))
  if ! (echo >"/dev/tcp/127.0.0.1/${candidate}") 2>/dev/null; then
    PORT="${candidate}"
    break
  fi
done
[[ -n "${PORT}" ]] || fail "no free port"

cat >"${WORK}/httpd.conf" <<EOF
ServerRoot ${WORK}
ServerName localhost
DefaultRuntimeDir ${WORK}/run
PidFile ${WORK}/run/httpd.pid
Mutex file:${WORK}/run default
User ${RUN_USER}
Group ${RUN_GROUP}
LoadModule mpm_prefork_module ${MODULES}/mod_mpm_prefork.so
LoadModule authz_core_module ${MODULES}/mod_authz_core.so
LoadModule ssl_module ${MODULES}/mod_ssl.so
LoadModule dir_module ${MODULES}/mod_dir.so
StartServers 4
MinSpareServers 4
MaxSpareServers 4
ServerLimit 4
MaxRequestWorkers 4
MaxConnectionsPerChild 0
ErrorLog ${WORK}/logs/error.log
LogLevel warn
# One line per request: the pid of the child that served it.
LogFormat "%P" childpid
CustomLog ${WORK}/logs/access.log childpid
# Full handshakes only: no session cache, no tickets.
SSLSessionCache none
Listen 127.0.0.1:${PORT}
<VirtualHost 127.0.0.1:${PORT}>
  DocumentRoot ${HTDOCS}
  DirectoryIndex index.html
  <Directory ${HTDOCS}>
    Require all granted
  </Directory>
  SSLEngine on
  SSLCertificateFile ${WORK}/server.crt
  SSLCertificateKeyFile ${WORK}/server.key.pem
  SSLSessionTickets off
</VirtualHost>
EOF

"${APACHE}" -d "${WORK}" -f "${WORK}/httpd.conf" -t || fail "apache2 -t"
"${APACHE}" -d "${WORK}" -f "${WORK}/httpd.conf" -k start || fail "apache2 start"
APACHE_STARTED=1
for _ in $(seq 1 100); do [[ -s "${WORK}/run/httpd.pid" ]] && break; sleep 0.1; done
[[ -s "${WORK}/run/httpd.pid" ]] || fail "apache2 did not start"

round() {  # round NAME: 400 handshakes from 4 concurrent clients
  local before after lines_before children
  before="$(signatures)"
  lines_before="$(wc -l <"${WORK}/logs/access.log" 2>/dev/null || echo 0)"
  OPENSSL_CONF=/dev/null timeout 300 "${PYTHON}" "${CLIENT}" --port "${PORT}" \
    --cafile "${WORK}/server.crt" --count 400 --threads 4 >"${WORK}/$1.out" ||
    fail "$1: handshakes failed"
  after="$(signatures)"
  # Apache writes the access log line after the response: let it land.
  for _ in $(seq 1 50); do
    [[ "$(($(wc -l <"${WORK}/logs/access.log") - lines_before))" -ge 400 ]] && break
    sleep 0.1
  done
  tail -n +"$((lines_before + 1))" "${WORK}/logs/access.log" | sort -u >"${WORK}/$1.pids"
  children="$(wc -l <"${WORK}/$1.pids")"
  echo "$1: 400 handshakes, $((after - before)) HSM signatures, ${children} children"
  [[ "$((after - before))" -ge 400 ]] || fail "$1: only $((after - before)) signatures by hsmd"
  [[ "${children}" -ge 2 ]] || fail "$1: served by ${children} child(ren); prefork should spread 4 clients"
  if grep -q -i -E 'hsmproxy|AH02312|AH02565|key handle' "${WORK}/logs/error.log"; then
    fail "$1: errors in Apache's log"
  fi
}

round first
# Graceful restart: the master re-reads the config and forks new children.
"${APACHE}" -d "${WORK}" -f "${WORK}/httpd.conf" -k graceful
for _ in $(seq 1 100); do
  old_alive=0
  for pid in $(cat "${WORK}/first.pids"); do kill -0 "${pid}" 2>/dev/null && old_alive=1; done
  [[ "${old_alive}" == 0 ]] && break
  sleep 0.1
done
round after_graceful
new_children="$(comm -13 "${WORK}/first.pids" "${WORK}/after_graceful.pids" | wc -l)"
[[ "${new_children}" -ge 2 ]] || fail "after_graceful: served by old children only"

# hsmd dies hard and comes back: the children reconnect on their next call.
kill -9 "${HSMD_PID}"
wait "${HSMD_PID}" 2>/dev/null || true
start_hsmd
round after_hsmd_kill
echo "PASS"
