# Shared set-up of the provider's openssl command-line tests (sourced, not
# run): a real `hsmd --demo` in a short temporary directory (stopped on exit,
# with whatever the test adds to EXTRA_CLEANUP), openssl wrappers with a time
# limit, and openssl.cnf writers. The sourcing test sets WORK first.
RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE:-hsmd}"
HSMD="${RUNFILES}/daemon/hsmd"
MODULE="${RUNFILES}/proxy_provider/hsmproxy.so"
mkdir -p "${WORK}"
cd "${WORK}"

# Every openssl command gets a time limit: a hang fails the test.
ossl() { timeout 60 openssl "$@"; }
# OpenSSL alone, no hsmproxy anywhere.
plain() { OPENSSL_CONF=/dev/null timeout 60 openssl "$@"; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Short directory: Unix socket paths are limited to 108 bytes.
DEMO="$(mktemp -d /tmp/hsmdXXXXXX)"
HSMD_PID=""
EXTRA_CLEANUP=""
cleanup() {
  if [[ -n "${EXTRA_CLEANUP}" ]]; then eval "${EXTRA_CLEANUP}" || true; fi
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

# write_conf FILE ORDER [SOCKET]: an openssl.cnf activating the default
# provider and hsmproxy, in ORDER (hsmproxy-first or default-first; ordinary
# keys must keep working even when hsmproxy's implementations are found
# first), hsmproxy talking to SOCKET (default: the demo's).
write_conf() {
  local first second
  if [[ "$2" == hsmproxy-first ]]; then first=hsmproxy; second=default; else first=default; second=hsmproxy; fi
  cat >"$1" <<CONF
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
socket = ${3:-${DEMO}/hsmd.sock}
timeout_ms = 5000
activate = 1
CONF
}
write_conf "${WORK}/openssl.cnf" hsmproxy-first
write_conf "${WORK}/openssl-default-first.cnf" default-first
