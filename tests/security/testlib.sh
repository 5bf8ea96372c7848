# Shared helpers for the shell tests in tests/security (sourced).
#
# Sets WORK (a short /tmp/hsmdXXXXXX directory, mode 0755, removed at exit),
# a watchdog that fails the test instead of hanging, and cleanup that stops
# every daemon started with start_bg. Callers set HSMD, HSMCTL (absolute
# paths) before using the hsmd helpers.
set -euo pipefail

WORK="$(mktemp -d /tmp/hsmdXXXXXX)"
chmod 0755 "$WORK"
STEP="setup"
BG_PIDS=()
WATCHDOG_PID=""
LOGS_TO_SHOW=()

cleanup() {
  local rc=$?
  local pid
  for pid in "${BG_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$WATCHDOG_PID" ]]; then
    kill "$WATCHDOG_PID" 2>/dev/null || true
    wait "$WATCHDOG_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 ]]; then
    local log
    for log in "${LOGS_TO_SHOW[@]}"; do
      if [[ -f "$log" ]]; then
        echo "---- $log (last 40 lines) ----" >&2
        tail -n 40 "$log" >&2 || true
      fi
    done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 1' TERM INT

# A hang anywhere fails the test instead of blocking until Bazel's timeout.
start_watchdog() {
  local seconds="$1"
  (
    trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
    sleep "$seconds" &
    sleep_pid=$!
    wait "$sleep_pid"
    echo "WATCHDOG: test still running after $seconds s (step: see above)" >&2
    kill -TERM $$
  ) &
  WATCHDOG_PID=$!
}

fail() {
  echo "FAIL [$STEP]: $*" >&2
  exit 1
}

step() {
  STEP="$1"
  echo "== $1"
}

skip() {
  echo "SKIPPED: $*"
  exit 0
}

contains() {
  [[ "$1" == *"$2"* ]] || fail "expected '$2' in: $1"
}

not_contains() {
  [[ "$1" != *"$2"* ]] || fail "did not expect '$2' in: $1"
}

# Skips unless running as root and able to switch to other uids (Bazel's
# sandbox maps only uid 0: such tests are tagged no-sandbox).
require_root_and_setpriv() {
  [[ "$(id -u)" -eq 0 ]] || skip "needs root to run clients as other users"
  command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
  setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null ||
    skip "cannot switch to uid 65534 here (a user namespace mapping only uid 0?)"
}

# Copies a binary where every user can run it (the Bazel output tree is
# under /root, mode 0700).
public_copy() {
  mkdir -p "$WORK/bin"
  chmod 0755 "$WORK/bin"
  cp "$1" "$WORK/bin/$(basename "$1")"
  chmod 0755 "$WORK/bin/$(basename "$1")"
  echo "$WORK/bin/$(basename "$1")"
}

# Starts a command in the background, remembering it for cleanup.
# Usage: start_bg LOG cmd...; sets BG_PID.
start_bg() {
  local log="$1"
  shift
  LOGS_TO_SHOW+=("$log")
  "$@" >"$log" 2>&1 &
  BG_PID=$!
  BG_PIDS+=("$BG_PID")
}

# hsmctl as a user. Usage: hsmctl_as SPEC SOCKET args...; SPEC is "root" or
# "UID:GID[:GROUP,GROUP...]". Sets RC, OUT, ERR.
hsmctl_as() {
  local spec="$1" socket="$2"
  shift 2
  local -a prefix=()
  if [[ "$spec" != root ]]; then
    IFS=: read -r uid gid groups <<<"$spec"
    prefix=(setpriv "--reuid=$uid" "--regid=$gid")
    if [[ -n "${groups:-}" ]]; then
      prefix+=("--groups=$groups")
    else
      prefix+=(--clear-groups)
    fi
  fi
  set +e
  timeout 60 "${prefix[@]}" "$HSMCTL" --socket "$socket" --timeout 30s "$@" \
    >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
  OUT="$(cat "$WORK/out")"
  ERR="$(cat "$WORK/err")"
}

# expect_rc CODE SPEC SOCKET args...
expect_rc() {
  local want="$1"
  shift
  hsmctl_as "$@"
  [[ "$RC" -eq "$want" ]] ||
    fail "hsmctl as $1: ${*:3} exited $RC, want $want; stdout: $OUT; stderr: $ERR"
}

# Waits until hsmd (BG_PID-style pid $1) answers `status` as SPEC on SOCKET.
wait_ready() {
  local pid="$1" spec="$2" socket="$3"
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || fail "hsmd exited during start-up"
    if [[ -S "$socket" ]]; then
      hsmctl_as "$spec" "$socket" status
      if [[ "$RC" -eq 0 && "$OUT" == *READY* ]]; then
        return 0
      fi
    fi
    sleep 0.1
  done
  fail "hsmd did not become ready: $OUT $ERR"
}

# Stops a background daemon with SIGTERM; checks its exit code.
stop_bg() {
  local pid="$1" want="${2:-0}"
  kill -TERM "$pid"
  set +e
  wait "$pid"
  local rc=$?
  set -e
  [[ "$rc" -eq "$want" ]] || fail "process $pid exited $rc, want $want"
}

# Creates the SoftHSM token "demo" with the demo keys in DIR (through
# `hsmd --demo`, which initialises it through PKCS#11 with random PINs; the
# user PIN ends up in DIR/user.pin). Usage: make_demo_token DIR [SPEC]; with
# SPEC (UID:GID) the token belongs to that user.
make_demo_token() {
  local dir="$1" spec="${2:-root}"
  local -a prefix=()
  if [[ "$spec" != root ]]; then
    IFS=: read -r uid gid _ <<<"$spec"
    mkdir -p "$dir"
    chown "$uid:$gid" "$dir"
    chmod 0700 "$dir"
    prefix=(setpriv "--reuid=$uid" "--regid=$gid" --clear-groups)
  fi
  start_bg "$WORK/demo-init.log" "${prefix[@]}" env \
    "LSAN_OPTIONS=suppressions=$LSAN_SUPPRESSIONS" \
    "$HSMD" --demo "$dir" --socket "$dir/init.sock"
  local pid=$BG_PID
  wait_ready "$pid" "$spec" "$dir/init.sock"
  stop_bg "$pid"
}
