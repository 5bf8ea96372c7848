# Shared set-up of the hsmctl end-to-end tests (sourced, not run): a work
# directory with the demo's paths, cleanup that stops hsmd, a watchdog, and
# helpers to run hsmctl and check its results. Needs HSMCTL set; sets WORK,
# DEMO, SOCK, LOG and uses HSMD_PID (set it when hsmd is started).

# Short directory: Unix socket paths are limited to 108 bytes.
WORK="$(mktemp -d /tmp/hsmde2eXXXXXX)"
DEMO="$WORK/demo"
SOCK="$DEMO/hsmd.sock"
LOG="$WORK/hsmd.out"
HSMD_PID=""
WATCHDOG_PID=""
STEP="setup"

cleanup() {
  local rc=$?
  if [[ -n "$HSMD_PID" ]] && kill -0 "$HSMD_PID" 2>/dev/null; then
    kill -TERM "$HSMD_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$HSMD_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$HSMD_PID" 2>/dev/null || true
    wait "$HSMD_PID" 2>/dev/null || true
  fi
  if [[ -n "$WATCHDOG_PID" ]]; then
    kill "$WATCHDOG_PID" 2>/dev/null || true
    wait "$WATCHDOG_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$LOG" ]]; then
    echo "---- hsmd log (last 50 lines) ----" >&2
    tail -n 50 "$LOG" >&2 || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
# So that the watchdog's SIGTERM still runs cleanup (stops hsmd).
trap 'exit 1' TERM INT

# A hang anywhere fails the test instead of blocking until Bazel's timeout.
(
  trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
  sleep 240 &
  sleep_pid=$!
  wait "$sleep_pid"
  echo "WATCHDOG: test still running after 240 s (last step above)" >&2
  kill -TERM $$
) &
WATCHDOG_PID=$!

fail() {
  echo "FAIL [$STEP]: $*" >&2
  exit 1
}

step() {
  STEP="$1"
  echo "== $1"
}

# Runs hsmctl with a bound on wall time; sets OUT, ERR, RC.
run() {
  set +e
  timeout 60 "$HSMCTL" --socket "$SOCK" --timeout 20s "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
  OUT="$(cat "$WORK/out")"
  ERR="$(cat "$WORK/err")"
}

# expect CODE hsmctl-args...
expect() {
  local want="$1"
  shift
  run "$@"
  if [[ "$RC" -ne "$want" ]]; then
    fail "hsmctl $* exited $RC, want $want; stdout: $OUT; stderr: $ERR"
  fi
}

contains() {
  local haystack="$1" needle="$2"
  [[ "$haystack" == *"$needle"* ]] || fail "expected '$needle' in: $haystack"
}

