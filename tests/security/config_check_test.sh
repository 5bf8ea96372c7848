#!/usr/bin/env bash
# Policy errors are caught before hsmd starts, with the file's line number:
# by `hsmd --check-config` and by a normal start (exit code 2, no socket).
#
# Usage (from Bazel): config_check_test.sh HSMD
source "$(dirname "$0")/testlib.sh"
start_watchdog 120
HSMD="$(realpath "$1")"

SOCK="$WORK/hsmd.sock"
printf '1234\n' >"$WORK/user.pin"
chmod 0600 "$WORK/user.pin"

# write_config FILE POLICY-LINES...: the policy starts on line 11.
write_config() {
  local file="$1"
  shift
  {
    echo "listen { socket_path: \"$SOCK\" }"
    echo "backends {"
    echo "  name: \"hsm\""
    echo "  pkcs11 {"
    echo "    module_path: \"/usr/lib/softhsm/libsofthsm2.so\""
    echo "    token_label: \"demo\""
    echo "    pin { file: \"$WORK/user.pin\" }"
    echo "  }"
    echo "}"
    echo "# Access control"
    printf '%s\n' "$@"
  } >"$file"
}

# check FILE WANT_RC: runs --check-config and a start; sets ERR (of both).
check() {
  local file="$1" want="$2"
  set +e
  "$HSMD" --config "$file" --check-config >"$WORK/out" 2>"$WORK/err"
  local rc=$?
  set -e
  ERR="$(cat "$WORK/err")"
  OUT="$(cat "$WORK/out")"
  [[ "$rc" -eq "$want" ]] || fail "--check-config $file exited $rc, want $want: $OUT $ERR"
  if [[ "$want" -ne 0 ]]; then
    set +e
    timeout 60 "$HSMD" --config "$file" >"$WORK/out2" 2>"$WORK/err2"
    rc=$?
    set -e
    [[ "$rc" -eq "$want" ]] || fail "hsmd --config $file exited $rc, want $want"
    [[ ! -e "$SOCK" ]] || fail "hsmd created its socket with a bad config"
    local start_err
    start_err="$(cat "$WORK/err2")"
    [[ "$start_err" == *"$(echo "$ERR" | tail -n 1 | sed 's/^hsmd: //')"* ]] ||
      fail "a start reports differently: $start_err vs $ERR"
  fi
}

step "a valid policy passes --check-config"
write_config "$WORK/good.conf" \
  'policy {' \
  '  rules { name: "web" groups: "root" keys: "pkcs11:token=demo;object=web-*" operations: [SIGN, LIST] }' \
  '  rules { users: "nobody" users: "0" operations: [RANDOM, STATUS] }' \
  '}'
check "$WORK/good.conf" 0
[[ "$OUT" == "config OK" ]] || fail "--check-config printed: $OUT"

step "an unknown user is rejected with its line"
write_config "$WORK/user.conf" \
  'policy {' \
  '  rules {' \
  '    users: "no-such-user-hsmd-test"' \
  '    keys: "*"' \
  '    operations: [SIGN]' \
  '  }' \
  '}'
check "$WORK/user.conf" 2
contains "$ERR" "$WORK/user.conf:13:5: policy.rules[0].users[0]: no user named \"no-such-user-hsmd-test\""

step "a bad key pattern is rejected with its line"
write_config "$WORK/key.conf" \
  'policy {' \
  '  rules { users: "root" operations: [SIGN]' \
  '          keys: "*"' \
  '          keys: "pkcs11:serial=42" }' \
  '}'
check "$WORK/key.conf" 2
contains "$ERR" "$WORK/key.conf:14:11: policy.rules[0].keys[1]: attribute \"serial\" is not supported"

step "a rule without callers or operations names the rule's line"
write_config "$WORK/empty.conf" \
  'policy {' \
  '  rules { name: "nothing" }' \
  '}'
check "$WORK/empty.conf" 2
contains "$ERR" "$WORK/empty.conf:12:3: policy.rules[0]: names no caller"
contains "$ERR" "policy.rules[0].operations: grants nothing"

step "a misspelt operation is a syntax error with its line"
write_config "$WORK/op.conf" \
  'policy {' \
  '  rules { users: "root" keys: "*" operations: [SIGN, DELETE] }' \
  '}'
check "$WORK/op.conf" 2
contains "$ERR" "$WORK/op.conf:12:"
contains "$ERR" "DELETE"
echo "PASS"
