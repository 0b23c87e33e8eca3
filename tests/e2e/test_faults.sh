#!/usr/bin/env bash
# kill -9 at the worst moments: of the monitor, of the VMM, of a foreground `fcvm run` during
# boot. Afterwards `ls`/`rm` find and remove everything; no process or file survives.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
on_exit "'$FCVM_BIN' rm -f f1 f2 >/dev/null 2>&1"
pid_of() { # VM PROCESS(monitor|vmm|network_helper)
  fcvm inspect "$1" | python3 -c "import json,sys; p=json.load(sys.stdin)[0]['processes']['$2']; print(p['pid'] if p else 0)"
}
wait_gone() { # PID
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" | cut -c1)" != Z ] || return 0; sleep 0.1; done
  fail "process $1 still alive"
}

# 1. kill -9 of the monitor: its VMM and slirp4netns die with it (PDEATHSIG); ls reconciles.
fcvm run -d --name f1 "oci-archive:$busybox" sleep 600 >/dev/null
mon=$(pid_of f1 monitor); vmm=$(pid_of f1 vmm); helper=$(pid_of f1 network_helper)
[ "$mon" -gt 0 ] && [ "$vmm" -gt 0 ] && [ "$helper" -gt 0 ] || fail "inspect lacks process ids"
kill -9 "$mon"
wait_gone "$vmm"
wait_gone "$helper"
grep -E '^f1 .* exited \(error\)' <<<"$(fcvm ls -a)" >/dev/null || fail "ls -a after kill -9 monitor: $(fcvm ls -a)"
[ ! -e "$FCVM_DATA_DIR/vms/$(fcvm inspect f1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')/control.sock" ] ||
  fail "reconcile left the control socket"
fcvm rm f1 >/dev/null
assert_no_leftovers

# 2. kill -9 of the VMM: the monitor records the failure and cleans up.
fcvm run -d --name f2 "oci-archive:$busybox" sleep 600 >/dev/null
vmm=$(pid_of f2 vmm); mon=$(pid_of f2 monitor)
kill -9 "$vmm"
wait_gone "$mon"
fcvm inspect f2 | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["state"]
assert s["status"] == "exited" and "stopped before its container finished" in s["error"], s
' || fail "VMM kill not recorded: $(fcvm inspect f2)"
fcvm rm f2 >/dev/null
assert_no_leftovers

# 3. kill -9 of a foreground `fcvm run` while the VM boots: the monitor notices that its
#    attached client is gone and removes the (auto-remove) VM.
"$FCVM_BIN" run --name f3 "oci-archive:$busybox" sleep 600 >/dev/null 2>&1 &
runner=$!
# Mid-boot: its VMM runs, the container does not yet.
vmm_running() { [ "$(pid_of f3 vmm 2>/dev/null || echo 0)" -gt 0 ]; }
wait_until 60 vmm_running || fail "the VMM of f3 never started"
kill -9 "$runner"
for _ in $(seq 300); do [ -z "$(fcvm ls -a -q)" ] && break; sleep 0.1; done
[ -z "$(fcvm ls -a -q)" ] || fail "VM of a killed foreground run survives: $(fcvm ls -a)"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers
[ -z "$(ls -A "$FCVM_DATA_DIR/vms")" ] || fail "files left: $(ls -A "$FCVM_DATA_DIR/vms")"
echo "faults: ok"
