#!/usr/bin/env bash
# What fcvm creates has the modes DESIGN.md ("Permissions") states, and a second local user
# (nobody) can neither list, reach nor change another user's VMs, sockets, snapshots or events.
# A running VM and a snapshot of it come from the real CLI and monitor with fake-firecracker as the
# VMM (every API call spec-checked), so the test needs no guest boot.
source "$(dirname "$0")/../lib/common.sh"
need_root "a second user is played with setpriv"
need_cmd setpriv
need_cmd python3
id nobody >/dev/null 2>&1 || skip "no user nobody"
use_fake_firecracker

# Others may pass through the test's directory (not list it): what stops them is fcvm's own
# modes, not mktemp's.
chmod 0711 "$TEST_TMP"
export FAKE_FC_RUN_UNTIL_STOP=1
on_exit "'$FCVM_BIN' rm -f p1 >/dev/null 2>&1; '$FCVM_BIN' snapshot rm -f s1 >/dev/null 2>&1"
archive=$FCVM_TEST_IMAGES/busybox.oci.tar
[ -f "$archive" ] || { archive=$TEST_TMP/busybox.oci.tar; echo placeholder >"$archive"; }

fcvm run -d --name p1 --vmm firecracker "oci-archive:$archive" >/dev/null ||
  fail "run -d failed"
fcvm snapshot create p1 s1 >/dev/null || fail "snapshot create failed"
vm_dir=$(fcvm inspect p1 | jq -r '.[0].paths.dir')
[ -d "$vm_dir" ] || fail "inspect gave no VM directory: $vm_dir"
snap_dir=$(find "$FCVM_DATA_DIR/snapshots" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -d "$snap_dir" ] || fail "no snapshot directory"

# 1. Modes, as DESIGN.md states them.
mode() { stat -c %a "$1"; }
want_mode() { # PATH MODE
  [ -e "$1" ] || fail "$1 does not exist"
  [ "$(mode "$1")" = "$2" ] || fail "${1#"$TEST_TMP"/} has mode $(mode "$1"), want $2"
}
for d in "$FCVM_DATA_DIR" "$FCVM_DATA_DIR/vms" "$FCVM_DATA_DIR/snapshots" "$vm_dir"; do
  want_mode "$d" 700
done
want_mode "$snap_dir" 500
for f in "$snap_dir"/*; do want_mode "$f" 400; done
for f in "$FCVM_DATA_DIR/events.log" "$vm_dir/container.log" "$vm_dir/monitor.log"; do
  want_mode "$f" 600
done
writable=$(find "$FCVM_DATA_DIR" ! -type l -perm /022 -printf '%m %p\n')
[ -z "$writable" ] || fail "group- or world-writable: $writable"
sockets=$(find "$FCVM_DATA_DIR" -type s | wc -l)
[ "$sockets" -ge 3 ] || fail "want the VM's sockets, found $sockets"
log "1. modes: $(find "$FCVM_DATA_DIR" | wc -l) paths, $sockets sockets, none writable by others"

# 2. Another user: refused everything, and the VM is unchanged.
as_nobody() {
  setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$TEST_TMP/nobody-home" \
    FCVM_DATA_DIR="$FCVM_DATA_DIR" FCVM_GUEST_DIR="$guest_dir" "$@"
}
mkdir -p "$TEST_TMP/nobody-home" && chown nobody "$TEST_TMP/nobody-home"
refused() { # WHAT CMD...: the command fails
  local what=$1; shift
  if as_nobody "$@" >"$TEST_TMP/out" 2>&1; then
    fail "nobody could $what: $(cat "$TEST_TMP/out")"
  fi
}
refused "list the VMs" "$FCVM_BIN" ls -a
refused "remove the VM" "$FCVM_BIN" rm -f p1
refused "stop the VM" "$FCVM_BIN" stop p1
refused "exec in the VM" "$FCVM_BIN" exec p1 true
refused "read the events" "$FCVM_BIN" events --no-stream --since 0
refused "remove the snapshot" "$FCVM_BIN" snapshot rm -f s1
refused "read the event journal" cat "$FCVM_DATA_DIR/events.log"
refused "read the container log" cat "$vm_dir/container.log"
refused "read the store" cat "$FCVM_DATA_DIR/state.db"
refused "clone the snapshot's disk" cat "$snap_dir/disk.ext4"
for s in $(find "$FCVM_DATA_DIR" -type s); do
  refused "connect to ${s#"$TEST_TMP"/}" python3 -c '
import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(sys.argv[1])' "$s"
done
status=$(fcvm inspect p1 | jq -r '.[0].state.status')
[ "$status" = running ] || fail "p1 is $status after nobody's attempts, want running"
[ -n "$(fcvm snapshot ls -q)" ] || fail "the snapshot is gone"
log "2. nobody: refused ls, rm, stop, exec, events, snapshot rm, the journal, logs, store, disk and $sockets sockets; the VM is unchanged"
echo "permissions: all checks passed"
