#!/usr/bin/env bash
# A guest kernel that hangs before its container is ready: the monitor sees the kernel's own
# words on the serial console and, unless the guest recovers within 45 s, boots the VM once more
# from a fresh disk (first start only); a second hang fails the run, naming it, with nothing
# left. A real lockup cannot be had on demand, so the kernel's lockup message is written into the
# real guest's kernel log (/dev/kmsg), from where the kernel prints it on the console as it would
# its own. A silent hang (no init by --boot-timeout, nothing on the console) is booted once more
# too; its QEMU is stopped with SIGSTOP before the guest's init runs.
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

# 3. A silent hang: the first boot's kernel never starts the guest's init and prints nothing (here
#    its QEMU is stopped with SIGSTOP before it gets there). At --boot-timeout the monitor logs
#    where the vCPUs were, keeps that console as console.1.log and boots once more.
# The VMM's pid, once its start is done (QMP answered, the network finished): what is stopped.
vmm_of() {
  local pid
  pid=$(fcvm inspect "$1" 2>/dev/null | jq -r '.[0].processes.vmm.pid // 0') && [ "${pid:-0}" -gt 0 ] &&
    echo "$pid"
}
h3_started=false
for attempt in 1 2 3; do
  fcvm run -d --name h3 --boot-timeout 45 "oci-archive:$busybox" sleep 600 \
    >"$TEST_TMP/h3.out" 2>"$TEST_TMP/h3.err" &
  runner=$!
  wait_until 60 vmm_of h3 || fail "h3's QEMU never started: $(cat "$TEST_TMP/h3.err")"
  first=$(vmm_of h3)
  kill -STOP "$first"
  dir=$(fcvm inspect h3 | jq -r '.[0].paths.dir')
  if ! grep -qs 'fc-init' "$dir/console.log"; then
    h3_started=true
    break
  fi
  # The guest was quicker than the test: its init already ran, which is no silent hang.
  kill -CONT "$first"
  wait "$runner" || true
  fcvm rm -f h3 >/dev/null
done
$h3_started || fail "three guests reached their init before SIGSTOP"
rc=0
wait "$runner" || rc=$?
[ "$rc" -eq 0 ] || fail "run -d h3 exited $rc after a silent first boot: $(cat "$TEST_TMP/h3.err")"
! kill -0 "$first" 2>/dev/null || fail "the first boot's QEMU ($first) is still there"
started_twice h3 || fail "h3 was not booted again: $(fcvm events --no-stream --filter vm=h3)"
grep -q 'hung boot: vCPU' "$dir/monitor.log" || fail "monitor.log does not say where the vCPUs were: $(monitor_log h3)"
grep -q 'booting again' "$dir/monitor.log" || fail "monitor.log says nothing of the second boot"
[ -f "$dir/console.1.log" ] || fail "the first boot's console was not kept"
! grep -q 'fc-init' "$dir/console.1.log" || fail "the first boot's console shows its init"
grep -q 'fc-init' "$dir/console.log" || fail "the second boot's console does not show its init"
[ "$(fcvm exec h3 -- echo served)" = served ] || fail "h3 does not serve after its second boot"
fcvm rm -f h3 >/dev/null
wait_until 30 no_leftovers || fail "left behind: $(fcvm_leftovers)"
assert_no_leftovers
echo "guest hang: ok"
