#!/usr/bin/env bash
# containerd runs fcvm VMs: a private containerd (Debian's package) under a temporary directory,
# with containerd-shim-fcvm-v2 first on its PATH, drives real VMs under QEMU/TCG through the
# runtime io.containerd.fcvm.v2:
#   ctr run --rm prints the output and exits with the container's code, leaving no VM; events
#   create, start, exit, delete in order; run -d, task exec (output and exit code), pause and
#   resume, kill (a signal the container handles, then SIGKILL), task rm; stdin through the
#   FIFO; a terminal (size and exit code); kill -9 of the shim leaves no VM (containerd's
#   `delete` cleans up); the shim answers garbage, an unknown method and an oversized frame with
#   errors and serves on; a bundle asking for a host bind mount is refused at create, leaving
#   nothing; Kubernetes' CRI (tests/e2e/cri/cri_flow.py) runs a pod whose container gets a VM
#   sized by the pod's annotations.
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/containerd.sh"
e2e_setup
need_cmd containerd
need_cmd ctr
need_cmd script
: "${FCVM_SHIM_BIN:?FCVM_SHIM_BIN must point at containerd-shim-fcvm-v2}"

root=$TEST_TMP/ctrd
sockets_before=$(ls /run/fcvm/s 2>/dev/null || true)
# Directories containerd hard-codes outside its own: removed afterwards unless they were there.
[ -d /run/containerd ] || on_exit "rm -rf /run/containerd"
start_private_containerd "$root" "$FCVM_SHIM_BIN"
on_exit "kill $CTRD_PID 2>/dev/null; wait $CTRD_PID 2>/dev/null"
# Shims outlive containerd (a restarted one reconnects): ours go with the test.
on_exit "pkill -TERM -f -- '-address $root/containerd.sock' || true"
on_exit "'$FCVM_BIN' ls -a -q 2>/dev/null | xargs -r '$FCVM_BIN' rm -f >/dev/null 2>&1"
wait_until 30 test -S "$root/containerd.sock" || fail "containerd did not start: $(tail -5 "$root/containerd.log")"
c() { timeout 180 ctr -a "$root/containerd.sock" "$@"; }
run() { c run --fifo-dir "$root/fifo" --runtime io.containerd.fcvm.v2 "$@"; }
c images import "$busybox" >/dev/null || fail "ctr images import"
c -n k8s.io images import "$busybox" >/dev/null || fail "ctr images import (k8s.io)"
img=localhost/fcvm-test/busybox:latest
vms() { "$FCVM_BIN" ls -a -q; }
task_status() { c task ls | awk -v t="$1" '$1 == t {print $3}'; }
stopped() { [ "$(task_status "$1")" = STOPPED ]; }
no_vms() { [ -z "$(vms)" ]; }
# What the shims and the VMs' monitors said, for a failure's message.
shim_log() {
  grep -a "shim" "$root/containerd.log" | tail -20
  tail -n 8 "$FCVM_DATA_DIR"/vms/*/monitor.log 2>/dev/null
}

# 1. run --rm: output and exit code; events in order; nothing left.
c events >"$TEST_TMP/events" 2>&1 &
events_pid=$!
on_exit "kill $events_pid 2>/dev/null"
set +e
out=$(run --rm "$img" r1 sh -c 'echo hi; exit 3')
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "ctr run --rm exited $rc, not 3 (output: $out); $(shim_log)"
[ "$out" = "hi" ] || fail "ctr run --rm printed '$out', not 'hi'"
[ -z "$(vms)" ] || fail "VMs left after ctr run --rm: $(vms)"
[ ! -e "$root/state/io.containerd.runtime.v2.task/default/r1" ] || fail "the bundle of r1 is left"
wait_until 10 grep -q '/tasks/delete.*"container_id":"r1"' "$TEST_TMP/events" ||
  fail "no /tasks/delete event for r1: $(cat "$TEST_TMP/events")"
order=$(grep '"container_id":"r1"' "$TEST_TMP/events" | grep -o '/tasks/[a-z-]*' | tr '\n' ' ')
[ "$order" = "/tasks/create /tasks/start /tasks/exit /tasks/delete " ] ||
  fail "events of r1 in the wrong order: $order"
grep '/tasks/exit.*"container_id":"r1"' "$TEST_TMP/events" | grep -q '"exit_status":3' ||
  fail "the exit event of r1 lacks exit_status 3"
log "run --rm: 'hi', exit 3, events $order"

# The spec's rlimits reach the container (ctr's default spec: RLIMIT_NOFILE 1024), as fcvm run
# --ulimit's do.
out=$(run --rm "$img" u1 sh -c 'ulimit -n; ulimit -Hn' | tr '\n' ' ')
[ "$out" = "1024 1024 " ] || fail "the spec's RLIMIT_NOFILE 1024 did not reach the container: $out"
out=$("$FCVM_BIN" run --ulimit nofile=4096:8192 "oci-archive:$busybox" sh -c 'ulimit -n; ulimit -Hn' | tr '\n' ' ')
[ "$out" = "4096 8192 " ] || fail "fcvm run --ulimit nofile=4096:8192: $out"
log "rlimits: the spec's 1024, --ulimit's 4096:8192"

# 2. Detached: the VM is an fcvm VM with containerd's labels; exec; pause/resume; signals.
run -d "$img" d1 sh -c 'trap "exit 143" TERM; echo up; while :; do sleep 1; done' >/dev/null
[ "$(task_status d1)" = RUNNING ] || fail "d1 is not RUNNING: $(c task ls)"
[ "$("$FCVM_BIN" ls -q --filter label=containerd.id=d1 --filter label=containerd.namespace=default)" != "" ] ||
  fail "fcvm ls does not show d1's VM by its labels"
[ "$(c task exec --fifo-dir "$root/fifo" --exec-id e1 d1 sh -c 'echo $((6*7))')" = 42 ] ||
  fail "task exec did not print 42"
set +e
c task exec --fifo-dir "$root/fifo" --exec-id e2 d1 sh -c 'echo err >&2; exit 5' 2>"$TEST_TMP/exec.err"
rc=$?
set -e
[ "$rc" -eq 5 ] || fail "task exec exited $rc, not 5"
grep -qx err "$TEST_TMP/exec.err" || fail "task exec's stderr is missing"
c task pause d1
[ "$(task_status d1)" = PAUSED ] || fail "d1 is not PAUSED: $(c task ls)"
c task resume d1
[ "$(task_status d1)" = RUNNING ] || fail "d1 is not RUNNING after resume"
c task kill -s SIGTERM d1
wait_until 30 stopped d1 || fail "d1 did not stop on SIGTERM: $(shim_log)"
grep '/tasks/exit.*"container_id":"d1","id":"d1"' "$TEST_TMP/events" | grep -q '"exit_status":143' ||
  fail "d1's exit event lacks 143"
for e in paused resumed exec-added exec-started; do
  grep -q "/tasks/$e.*\"container_id\":\"d1\"" "$TEST_TMP/events" || fail "no /tasks/$e for d1"
done
c task rm d1 >/dev/null
c containers rm d1
[ -z "$(vms)" ] || fail "VMs left after task rm: $(vms)"
log "detached: exec 42 and exit 5, pause/resume, SIGTERM -> 143, rm leaves nothing"

# SIGKILL ends a container that ignores everything else.
run -d "$img" d2 sh -c 'trap "" TERM INT; while :; do sleep 1; done' >/dev/null
c task kill -s SIGKILL d2
wait_until 30 stopped d2 || fail "d2 did not stop on SIGKILL"
c task rm d2 >/dev/null && c containers rm d2
[ -z "$(vms)" ] || fail "VMs left after d2: $(vms)"

# 3. stdin through the FIFO (its end closes the container's input).
out=$(printf 'abc\ndef\n' | run --rm "$img" s1 cat)
[ "$out" = "$(printf 'abc\ndef')" ] || fail "stdin: got '$out'"
# 4. A terminal: the client's size reaches it; its exit code comes back.
set +e
script -qec "stty rows 20 cols 70; ctr -a '$root/containerd.sock' run --fifo-dir '$root/fifo' -t --rm --runtime io.containerd.fcvm.v2 $img t1 sh -c 'tty; stty size; exit 4'" \
  "$TEST_TMP/tty.out" </dev/null >/dev/null
rc=$?
set -e
grep -q '/dev/pts/' "$TEST_TMP/tty.out" || fail "run -t: no terminal: $(cat -A "$TEST_TMP/tty.out")"
grep -q '20 70' "$TEST_TMP/tty.out" || fail "run -t: size not passed: $(cat -A "$TEST_TMP/tty.out")"
[ "$rc" -eq 4 ] || fail "run -t exited $rc, not 4"
log "stdin and terminal"

# 5. Bad input to the shim's socket: garbage, an unknown method, a frame over 4 MiB; it serves on.
run -d "$img" k1 sh -c 'while :; do sleep 1; done' >/dev/null
bundle=$root/state/io.containerd.runtime.v2.task/default/k1
sock=$(sed 's#^unix://##' "$bundle/address")
[ "$(stat -c %a "$sock")" = 600 ] || fail "the shim's socket is $(stat -c %a "$sock"), not 600"
python3 - "$sock" <<'PY' || fail "the shim's answers to bad frames"
import socket, struct, sys
def frame(sid, payload, kind=1):
    return struct.pack(">IIBB", len(payload), sid, kind, 0) + payload
def pb_str(field, s):
    b = s.encode(); return bytes([field << 3 | 2, len(b)]) + b
def answer(s):
    hdr = b""
    while len(hdr) < 10: hdr += s.recv(10 - len(hdr))
    n, sid, kind, _ = struct.unpack(">IIBB", hdr)
    body = b""
    while len(body) < n: body += s.recv(n - len(body))
    # Response.status (field 1) -> Status.code (field 1, varint)
    code = body[3] if body[:1] == b"\x0a" and body[2:3] == b"\x08" else 0
    return sid, code
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(frame(1, pb_str(1, "containerd.task.v2.Task") + pb_str(2, "Frobnicate")))
assert answer(s) == (1, 12), "unknown method: not Unimplemented"
s.sendall(frame(3, b"\xff\xff\xff"))
assert answer(s) == (3, 3), "garbage: not InvalidArgument"
s.sendall(struct.pack(">IIBB", (4 << 20) + 1, 5, 1, 0) + b"\0" * ((4 << 20) + 1))
assert answer(s) == (5, 8), "oversized: not ResourceExhausted"
PY
[ "$(task_status k1)" = RUNNING ] || fail "the shim stopped serving after bad frames"

# 6. kill -9 of the shim: containerd's `delete` removes the VM and the socket.
shim=$(pgrep -f -- "-id k1 .*serve") || fail "no shim process for k1"
kill -9 "$shim"
wait_until 60 no_vms || fail "kill -9 of the shim left VMs: $(vms)"
wait_until 30 test ! -e "$sock" || fail "the dead shim's socket is left"
c containers rm k1 >/dev/null 2>&1 || true
log "bad frames answered; kill -9 of the shim left nothing"

# 7. A bundle fcvm cannot honour: refused at create, naming the mount; nothing left.
set +e
msg=$(run --rm --mount type=bind,src=/tmp,dst=/host,options=rbind:ro "$img" b1 true 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a host bind mount was accepted"
grep -q 'mount /tmp on /host' <<<"$msg" || fail "the error does not name the mount: $msg"
[ -z "$(vms)" ] || fail "a refused create left VMs: $(vms)"
c containers rm b1 >/dev/null 2>&1 || true

# 8. Kubernetes' CRI (containerd's CRI plugin, runtime handler fcvm), driven as kubelet would.
/usr/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null || fail "python3-grpcio and python3-grpc-tools are missing (scripts/install-deps.sh)"
mkdir -p "$TEST_TMP/pod-logs"
/usr/bin/python3 "$FCVM_SOURCE_DIR/tests/e2e/cri/cri_flow.py" "$root/containerd.sock" "$img" \
  "$TEST_TMP/pod-logs" "$FCVM_BIN" >&2 ||
  fail "the CRI flow: $(shim_log; grep -a 'level=error\|level=warn' "$root/containerd.log" | tail -5)"
log "CRI: pod, container in a 512 MiB VM, ExecSync, stop, removal"

# The shim's own subcommands: delete is idempotent; bad arguments exit 2.
(cd "$TEST_TMP" && "$FCVM_SHIM_BIN" -namespace default -id nothing -address x delete >"$TEST_TMP/del.out") ||
  fail "delete of a task without a VM failed"
[ -s "$TEST_TMP/del.out" ] || fail "delete printed no DeleteResponse"
set +e
"$FCVM_SHIM_BIN" -namespace default -id x frob 2>"$TEST_TMP/bad.err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q '"frob"' "$TEST_TMP/bad.err" || fail "a bad action: exit $rc, $(cat "$TEST_TMP/bad.err")"
[ "$(ls /run/fcvm/s 2>/dev/null)" = "$sockets_before" ] ||
  fail "shim sockets left: $(ls /run/fcvm/s)"
pgrep -f -- "-address $root/containerd.sock" >/dev/null && fail "shims left: $(pgrep -af -- "-address $root")"
log "ok"
