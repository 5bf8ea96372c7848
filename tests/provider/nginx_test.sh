#!/bin/bash
# nginx (prefork: a master that loads the key, then 4 workers) serving TLS
# with an HSM key through hsmproxy, from a PKCS#11 PROVIDER URI key file:
#   400 full handshakes spread over all workers; `nginx -s reload` (new
#   workers) and 400 more; hsmd restarted under nginx and 400 more.
# Every handshake must be signed by hsmd (counted in hsmd's log).
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE:-hsmd}"
HSMD="${RUNFILES}/daemon/hsmd"
MODULE="${RUNFILES}/proxy_provider/hsmproxy.so"
source "$(dirname "${BASH_SOURCE[0]}")/tls_server_lib.sh"
CLIENT="${RUNFILES}/tests/provider/tls_client.py"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
PYTHON="$(command -v /usr/bin/python3 || command -v python3)"
WORK="${TEST_TMPDIR}/nginx"
mkdir -p "${WORK}/logs" "${WORK}/tmp"
cd "${WORK}"

fail() {
  echo "FAIL: $*" >&2
  echo "--- nginx error log" >&2
  cat "${WORK}/logs/error.log" >&2 2>/dev/null || true
  exit 1
}

DEMO="$(mktemp -d /tmp/hsmdXXXXXX)"
HSMD_PID=""
NGINX_STARTED=0
cleanup() {
  if [[ "${NGINX_STARTED}" == 1 ]]; then
    "${NGINX}" -p "${WORK}" -c "${WORK}/nginx.conf" -e "${WORK}/logs/error.log" -s stop 2>/dev/null || true
    sleep 0.5
    [[ -f "${WORK}/nginx.pid" ]] && kill -9 "$(cat "${WORK}/nginx.pid")" 2>/dev/null || true
  fi
  [[ -n "${HSMD_PID}" ]] && kill "${HSMD_PID}" 2>/dev/null || true
  [[ -n "${HSMD_PID}" ]] && wait "${HSMD_PID}" 2>/dev/null || true
  rm -rf "${DEMO}"
}
trap cleanup EXIT

start_hsmd() {
  local before
  before="$(grep -c 'msg="hsmd ready"' "${WORK}/hsmd.log" 2>/dev/null || true)"
  env -u OPENSSL_CONF "${HSMD}" --demo "${DEMO}" >>"${WORK}/hsmd.log" 2>&1 &
  HSMD_PID=$!
  for _ in $(seq 1 600); do
    [[ "$(grep -c 'msg="hsmd ready"' "${WORK}/hsmd.log" || true)" -gt "${before:-0}" ]] && return 0
    kill -0 "${HSMD_PID}" 2>/dev/null || fail "hsmd exited: $(tail -5 "${WORK}/hsmd.log")"
    sleep 0.1
  done
  fail "hsmd did not start"
}
# Successful signatures: audit records (the demo keeps an audit trail, and
# then writes a successful request's own line at debug level only), or
# request lines when auditing is off.
signatures() {
  grep -cE 'method=Sign .*status=OK|"msg":"audit","method":"Sign",.*"result":"OK"' \
    "${WORK}/hsmd.log" || true
}

start_hsmd

write_hsmproxy_conf "${WORK}/openssl.cnf" "${DEMO}/hsmd.sock"
export OPENSSL_CONF="${WORK}/openssl.cnf"
KEY_URI="pkcs11:token=demo;object=ec-p256;type=private"

# The key file nginx is given, and a certificate signed by the HSM key.
write_key_and_cert "${KEY_URI}" server.key.pem server.crt

PORT=""
for _ in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 20000))
  if ! (echo >"/dev/tcp/127.0.0.1/${candidate}") 2>/dev/null; then
    PORT="${candidate}"
    break
  fi
done
[[ -n "${PORT}" ]] || fail "no free port"

cat >"${WORK}/nginx.conf" <<EOF
user root;
worker_processes 4;
daemon on;
master_process on;
pid ${WORK}/nginx.pid;
error_log ${WORK}/logs/error.log notice;
# Workers inherit the variable (nginx clears the environment otherwise).
env OPENSSL_CONF;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${WORK}/tmp/body;
  proxy_temp_path ${WORK}/tmp/proxy;
  fastcgi_temp_path ${WORK}/tmp/fastcgi;
  uwsgi_temp_path ${WORK}/tmp/uwsgi;
  scgi_temp_path ${WORK}/tmp/scgi;
  server {
    # reuseport: the kernel spreads connections over all workers.
    listen 127.0.0.1:${PORT} ssl reuseport;
    ssl_certificate ${WORK}/server.crt;
    ssl_certificate_key ${WORK}/server.key.pem;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / { return 200 "\$pid\n"; }
  }
}
EOF

"${NGINX}" -t -p "${WORK}" -c "${WORK}/nginx.conf" -e "${WORK}/logs/error.log" ||
  fail "nginx -t"
"${NGINX}" -p "${WORK}" -c "${WORK}/nginx.conf" -e "${WORK}/logs/error.log" || fail "nginx start"
NGINX_STARTED=1
for _ in $(seq 1 100); do [[ -s "${WORK}/nginx.pid" ]] && break; sleep 0.1; done

round() {  # round NAME: 400 handshakes from 8 client threads
  local before after pids
  before="$(signatures)"
  OPENSSL_CONF=/dev/null timeout 300 "${PYTHON}" "${CLIENT}" --port "${PORT}" \
    --cafile "${WORK}/server.crt" --count 400 --threads 8 >"${WORK}/$1.pids" ||
    fail "$1: handshakes failed"
  after="$(signatures)"
  pids="$(sort -u "${WORK}/$1.pids" | wc -l)"
  echo "$1: 400 handshakes, $((after - before)) HSM signatures, ${pids} workers"
  [[ "$((after - before))" -ge 400 ]] || fail "$1: only $((after - before)) signatures by hsmd"
  [[ "${pids}" -eq 4 ]] || fail "$1: served by ${pids} workers, not 4"
}

round first
"${NGINX}" -p "${WORK}" -c "${WORK}/nginx.conf" -e "${WORK}/logs/error.log" -s reload
# Wait until the old workers are gone (their pids no longer answer).
for _ in $(seq 1 100); do
  old_alive=0
  for pid in $(sort -u "${WORK}/first.pids"); do kill -0 "${pid}" 2>/dev/null && old_alive=1; done
  [[ "${old_alive}" == 0 ]] && break
  sleep 0.1
done
round after-reload
if comm -12 <(sort -u first.pids) <(sort -u after-reload.pids) | grep -q .; then
  fail "reload did not replace the workers"
fi

kill "${HSMD_PID}"
wait "${HSMD_PID}" 2>/dev/null || true
start_hsmd
round after-hsmd-restart

# Bazel's sandbox (a user namespace) refuses setgroups: nginx logs that and
# carries on; anything else at these levels is a failure.
if grep -v "initgroups(" "${WORK}/logs/error.log" | grep -q "\[emerg\]\|\[alert\]\|\[crit\]"; then
  fail "nginx logged errors"
fi
echo "PASS"
