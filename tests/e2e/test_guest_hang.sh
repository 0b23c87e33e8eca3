#!/usr/bin/env bash
# A guest kernel that hangs before its container is ready: the monitor sees the kernel's own
# words on the serial console and, unless the guest recovers within 45 s, boots the VM once more
# from a fresh disk (first start only); a second hang fails the run, naming it, with nothing left. A real lockup cannot be had on
# demand, so the kernel's lockup message is written into the real guest's kernel log
# (/dev/kmsg), from where the kernel prints it on the console as it would its own.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"
lockup='<0>watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [fcvm-test]'
container_runs() { fcvm exec "$1" -- true >/dev/null 2>&1; }
hang() { fcvm exec --vm "$1" -- sh -c "echo '$lockup' >/dev/kmsg"; }
monitor_log() { tail -25 "$(fcvm inspect "$1" | jq -r '.[0].paths.dir')/monitor.log" 2>/dev/null; }
starts() { fcvm events --no-stream --filter vm="$1" --filter event=starting | wc -l; }
started_twice() { [ "$(starts "$1")" -ge 2 ]; }

# 1. One hang during the first boot: booted again, then ready.
fcvm run -d --name h1 --wait-ready 'mode=exec,timeout=300,cmd=test -f /tmp/go' \
  "oci-archive:$busybox" sleep 600 >"$TEST_TMP/h1.out" 2>"$TEST_TMP/h1.err" &
runner=$!
wait_until 240 container_runs h1 || fail "h1's container never ran: $(cat "$TEST_TMP/h1.err")"
hang h1 || true  # the VMM may be gone before the exec reports back
wait_until 120 started_twice h1 || fail "h1 was not booted again: $(fcvm events --no-stream --filter vm=h1) $(monitor_log h1)"
wait_until 240 container_runs h1 || fail "h1's container never ran after the second boot: $(monitor_log h1)"
fcvm exec h1 -- touch /tmp/go || fail "touch /tmp/go"
rc=0
wait "$runner" || rc=$?
[ "$rc" -eq 0 ] || fail "run -d h1 exited $rc after one hang: $(cat "$TEST_TMP/h1.err")"
dir=$(fcvm inspect h1 | jq -r '.[0].paths.dir')
grep -q 'booting again' "$dir/monitor.log" || fail "monitor.log says nothing of the second boot"
[ "$(fcvm exec h1 -- echo served)" = served ] || fail "h1 does not serve after its second boot"
fcvm rm -f h1 >/dev/null

# 2. A hang on the second boot too: the run fails at once, naming the hang; nothing is left.
fcvm run -d --name h2 --wait-ready 'mode=exec,timeout=300,cmd=test -f /tmp/go' \
  "oci-archive:$busybox" sleep 600 >"$TEST_TMP/h2.out" 2>"$TEST_TMP/h2.err" &
runner=$!
wait_until 240 container_runs h2 || fail "h2's container never ran: $(cat "$TEST_TMP/h2.err")"
hang h2 || true
wait_until 120 started_twice h2 || fail "h2 was not booted again"
wait_until 240 container_runs h2 || fail "h2's container never ran after the second boot"
t0=$SECONDS
hang h2 || true
rc=0
wait "$runner" || rc=$?
[ "$rc" -eq 1 ] || fail "run -d h2 exited $rc after two hangs"
grep -q 'the guest kernel hung before the container was ready' "$TEST_TMP/h2.err" &&
  grep -q 'soft lockup' "$TEST_TMP/h2.err" || fail "h2's error: $(cat "$TEST_TMP/h2.err")"
[ $((SECONDS - t0)) -lt 100 ] || fail "the second hang took $((SECONDS - t0)) s to fail (45 s of grace)"
[ -z "$(fcvm ls -a -q)" ] || fail "a failed first start left a VM: $(fcvm ls -a)"
no_leftovers() { [ -z "$(fcvm_leftovers)" ]; }
wait_until 30 no_leftovers || fail "left behind: $(fcvm_leftovers)"
assert_no_leftovers
echo "guest hang: ok"
