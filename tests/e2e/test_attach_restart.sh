#!/usr/bin/env bash
# Attaching and detaching, and restart policies, on real VMs:
#   run -dit -> attach (typed input reaches the shell; ctrl-p,ctrl-q leaves it running) ->
#   attach again (exit code) -> start -a -i; foreground run -it detached with custom keys;
#   --restart on-failure:2 restarts twice and stops (wait, inspect, events, logs);
#   --restart always ends for good at fcvm stop. Bad input on the way; nothing left after.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
on_exit "'$FCVM_BIN' rm -f att fg rs al >/dev/null 2>&1"
drive() { python3 "$FCVM_SOURCE_DIR/tests/lib/pty_drive.py" "$@"; }

expect_rc() { # RC CMD...
  local want=$1; shift
  local rc=0
  "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "$* exited $rc, want $want: $(cat "$TEST_TMP/last.err")"
}

# 0. Bad input: one error each, exit 2, nothing created.
expect_rc 2 fcvm run -d --restart sometimes "oci-archive:$busybox" true
grep -q 'invalid --restart "sometimes"' "$TEST_TMP/last.err" || fail "bad --restart: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm run --restart always "oci-archive:$busybox" true
grep -q -- '--restart always needs -d' "$TEST_TMP/last.err" || fail "--restart without -d: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm run -d --rm --restart on-failure "oci-archive:$busybox" true
expect_rc 2 fcvm run -it --detach-keys ctrl-1 "oci-archive:$busybox" sh
grep -q 'invalid --detach-keys "ctrl-1"' "$TEST_TMP/last.err" || fail "bad --detach-keys: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm attach no-such-vm
[ -z "$(fcvm ls -a -q)" ] || fail "bad input created a VM: $(fcvm ls -a)"

# 1. run -dit keeps a shell waiting; attach types into it and leaves with ctrl-p,ctrl-q.
fcvm run -dit --name att --stop-timeout 1 "oci-archive:$busybox" sh >/dev/null
drive rows=33 cols=111 raw send='echo attached-$((6*7)); stty size\r' expect='33 111' \
  send='\x10\x11' -- "$FCVM_BIN" attach att >"$TEST_TMP/attach1" 2>&1 ||
  fail "attach + detach exited $?: $(cat "$TEST_TMP/attach1")"
grep -q '^attached-42$' "$TEST_TMP/attach1" || fail "attach: typed input not run: $(cat "$TEST_TMP/attach1")"
grep -q 'detached from VM att' "$TEST_TMP/attach1" || fail "attach: no word of the detach: $(cat "$TEST_TMP/attach1")"
[ "$(fcvm inspect att | jq -r '.[0].state.status')" = running ] ||
  fail "the VM did not run on after the detach: $(fcvm inspect att 2>&1 | jq -c '.[0].state' 2>&1)"
# 2. Attach again: the shell's exit code is attach's.
rc=0
drive raw send='exit 5\r' -- "$FCVM_BIN" attach att >"$TEST_TMP/attach2" 2>&1 || rc=$?
[ "$rc" -eq 5 ] || fail "attach: exit code $rc, want 5: $(cat "$TEST_TMP/attach2")"
wait_until 30 sh -c "[ \"\$('$FCVM_BIN' inspect att | jq -r '.[0].state.status')\" = exited ]" ||
  fail "att did not end: $(fcvm ls -a)"
expect_rc 2 fcvm attach att
grep -q 'is exited' "$TEST_TMP/last.err" || fail "attach to an exited VM: $(cat "$TEST_TMP/last.err")"
# 3. start -a -i boots it again with this terminal.
expect_rc 2 fcvm start -i att
rc=0
drive raw send='echo again-$((2*3)); exit 6\r' -- "$FCVM_BIN" start -a -i att >"$TEST_TMP/start" 2>&1 || rc=$?
[ "$rc" -eq 6 ] || fail "start -a -i: exit code $rc, want 6: $(cat "$TEST_TMP/start")"
grep -q '^again-6$' "$TEST_TMP/start" || fail "start -a -i: typed input not run: $(cat "$TEST_TMP/start")"
fcvm rm att >/dev/null

# 4. A foreground run -it leaves with its own detach keys; the VM runs on until it is stopped.
drive raw send='echo fg-$((1+1))\r' expect='fg-2' send='\x1d' -- \
  "$FCVM_BIN" run -it --name fg --stop-timeout 1 --detach-keys 'ctrl-]' "oci-archive:$busybox" sh \
  >"$TEST_TMP/fg" 2>&1 || fail "run -it + detach exited $?: $(cat "$TEST_TMP/fg")"
# (Its shell's output can reach us before the monitor records the container as running.)
wait_until 30 sh -c "[ \"\$('$FCVM_BIN' inspect fg | jq -r '.[0].state.status')\" = running ]" ||
  fail "fg did not run on after the detach: $(fcvm inspect fg 2>&1 | jq -c '.[0].state' 2>&1)"
fcvm stop fg >/dev/null
wait_until 30 sh -c "! '$FCVM_BIN' inspect fg >/dev/null 2>&1" || fail "the foreground VM was not removed when it ended"

# 5. --restart on-failure:2: the container fails three times (the first run, two restarts).
fcvm run -d --name rs --restart on-failure:2 "oci-archive:$busybox" sh -c 'echo run-$(date +%s%N); exit 3' >/dev/null
[ "$(fcvm wait rs)" = 3 ] || fail "wait rs: $(fcvm ls -a)"
[ "$(fcvm inspect rs | jq -r '.[0].state.restart_count')" = 2 ] || fail "restart_count: $(fcvm inspect rs | jq '.[0].state')"
[ "$(fcvm inspect rs | jq -r '.[0].restart_policy')" = on-failure:2 ] || fail "restart_policy"
[ "$(fcvm inspect rs | jq -r '.[0].state.status')" = exited ] || fail "rs is not exited"
[ "$(fcvm logs rs | grep -c '^run-')" = 3 ] || fail "the container did not run 3 times: $(fcvm logs rs)"
fcvm events --no-stream --filter vm=rs --filter event=restarting >"$TEST_TMP/events" 2>&1
[ "$(grep -c ' restarting rs ' "$TEST_TMP/events")" = 2 ] || fail "two restarting events: $(cat "$TEST_TMP/events")"
[ "$(fcvm ls -a --format '{{.Name}} {{.Restarts}}' --filter name=rs)" = "rs 2" ] || fail "ls Restarts"

# 6. --restart always: it comes back after a clean exit; fcvm stop ends it for good.
fcvm run -d --name al --restart always --stop-timeout 1 "oci-archive:$busybox" sh -c 'sleep 2; exit 0' >/dev/null
wait_until 120 sh -c "[ \"\$('$FCVM_BIN' inspect al | jq -r '.[0].state.restart_count')\" -ge 1 ]" ||
  fail "always did not restart: $(fcvm inspect al | jq '.[0].state')"
fcvm stop al >/dev/null
[ "$(fcvm inspect al | jq -r '.[0].state.status')" = exited ] || fail "al after stop: $(fcvm inspect al | jq '.[0].state')"
count=$(fcvm inspect al | jq -r '.[0].state.restart_count')
# Not restarted after the stop: its monitor is gone and the count stays.
[ -z "$(pgrep -f "__monitor $(fcvm inspect al | jq -r '.[0].id')")" ] || fail "al's monitor outlived the stop"
[ "$(fcvm inspect al | jq -r '.[0].state.restart_count')" = "$count" ] || fail "al restarted after the stop"

fcvm rm rs al >/dev/null
[ -z "$(fcvm ls -a -q)" ] || fail "VMs left: $(fcvm ls -a)"
assert_no_leftovers
echo "attach and restart: ok"
