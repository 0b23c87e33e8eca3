#!/usr/bin/env bash
# `fcvm run --vmm firecracker` through the real CLI, monitor, disk clone and rootless network, with
# fake-firecracker standing in for Firecracker: it checks every API call against Firecracker's
# official spec and plays the guest's fc-agent behind the hybrid vsock socket. Covers
#   a. a run: the container's exit code and output, and the API calls fcvm made, in order;
#   b. SIGTERM to fcvm run: the container is stopped, exit 143;
#   c. a failure injected at each configuration call: exit 1, one error line naming the call and
#      Firecracker's fault_message, nothing left behind;
#   d. --vmm firecracker without a binary: exit 1, a clear message, nothing created;
#   e. run --save-snapshot and clone: the snapshot and load calls, disks and memory backend;
# and for a, b and c the monitor's phases as its events show them (created ... removed).
# FCVM_ACCEL=kvm trusts KVM without the boot probe (this host's KVM may not boot a guest); the
# probe still opens /dev/kvm and creates a VM, so the test needs /dev/kvm.
source "$(dirname "$0")/../lib/common.sh"
need_root "the network helper and the VM directory checks run as root in CI"
use_fake_firecracker
need_cmd python3

# Whatever fails, no VM (and no fake VMM) of this test outlives it.
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done; for s in \$('$FCVM_BIN' snapshot ls -q 2>/dev/null); do '$FCVM_BIN' snapshot rm -f \$s >/dev/null 2>&1; done"
# Like a real guest, the fake agent listens only after a while (fcvm retries the vsock CONNECT
# meanwhile) and its container takes a while to start after the plan: `fcvm run` has attached to
# the VM's monitor before the container's first output, as it has with a booting guest.
export FAKE_FC_GUEST_DELAY_MS=200 FAKE_FC_START_DELAY_MS=500
# The image goes into the host image store (a real pull: skopeo, umoci, mke2fs); the fake guest
# never reads the disk made of it.
archive=$FCVM_TEST_IMAGES/busybox.oci.tar
[ -f "$archive" ] || skip "test image $archive missing: run make images"

# What a run may leave behind, scoped to this test (other fcvm tests may run at the same time):
# live fcvm, monitor, fake-firecracker and slirp4netns processes of this data directory (zombies
# do not count), VM directories, sockets.
leftovers() {
  local pid
  for pid in $(pgrep -r R,S,D -f "$FCVM_BIN|__monitor|fake-firecracker|slirp4netns" || true); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "FCVM_DATA_DIR=$FCVM_DATA_DIR" ||
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$TEST_TMP"; then
      echo "process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    fi
  done
  ls -A "$FCVM_DATA_DIR/vms" 2>/dev/null | sed 's/^/vm dir: /' || true
  find "$TEST_TMP" -type s | sed 's/^/socket: /'
}
# The logs of the VMs that still exist, for a failure's diagnosis.
show_vm_logs() {
  local f
  for f in "$FCVM_DATA_DIR"/vms/*/{monitor,vmm}.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; } >&2
  done
  return 0
}
assert_clean() { # WHAT
  local left; left=$(leftovers)
  [ -n "$left" ] || return 0
  show_vm_logs
  fail "$1 left behind: $left"
}
run_fc() { "$FCVM_BIN" run --vmm firecracker "$@"; }
# The monitor's state machine as its events show it: the events of the VMs that appeared since
# the events.log line count MARK are, VM by VM, exactly WANT (space-separated names; "exited=N"
# also checks the exit code, "exited!" an error detail).
events_mark() {
  if [ -f "$FCVM_DATA_DIR/events.log" ]; then wc -l <"$FCVM_DATA_DIR/events.log"; else echo 0; fi
}
assert_events() { # WHAT MARK WANT
  tail -n +"$(($2 + 1))" "$FCVM_DATA_DIR/events.log" 2>/dev/null |
    python3 -c '
import json, sys
want = sys.argv[1].split()
vms = {}
for line in sys.stdin:
    e = json.loads(line)
    name = e["event"]
    if name == "exited":
        name += "=%d" % e["exit_code"] if "exit_code" in e else "!" if e.get("detail") else ""
    vms.setdefault(e["vm_id"], []).append(name)
bad = {v: seq for v, seq in vms.items() if seq != want}
if not vms or bad:
    print("want %s for each VM, got %s" % (want, vms or "no events"))
    sys.exit(1)' "$3" >"$TEST_TMP/events.err" || fail "$1: events: $(cat "$TEST_TMP/events.err")"
}

# a. A run: exit code, output, and the API calls in order.
rec=$TEST_TMP/calls.jsonl
rc=0
mark=$(events_mark)
FAKE_FC_RECORD=$rec FAKE_FC_EXIT_CODE=5 run_fc --cpu 1 --mem 256 --env GREETING=hi \
  "oci-archive:$archive" echo hello >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 5 ] || fail "run exited $rc, want the fake guest's 5: $(cat "$TEST_TMP/err")"
grep -qx "fake guest: running oci-archive:$archive" "$TEST_TMP/out" ||
  fail "no guest output: $(cat "$TEST_TMP/out" "$TEST_TMP/err")"
grep -qx "fake guest: env GREETING=hi" "$TEST_TMP/out" || fail "--env did not reach the guest"
python3 - "$rec" "$guest_dir" "$FCVM_DATA_DIR" "$archive" <<'PY' || fail "API calls (above)"
import json, re, sys
rec, guest, data, archive = sys.argv[1:]
calls = [json.loads(l) for l in open(rec)]
errors = []
def check(ok, what):
    if not ok: errors.append(what)
for c in calls:
    check(c["status"] < 300, f'{c["method"]} {c["path"]} answered {c["status"]}: {c.get("fault_message")}')
want = ["PUT /machine-config", "PUT /boot-source", "PUT /drives/", "PUT /network-interfaces/eth0",
        "PUT /vsock", "PUT /mmds/config", "PUT /mmds", "PUT /actions"]
seen = [f'{c["method"]} {c["path"]}' for c in calls]
i = 0
for s in seen:
    if i < len(want) and (s == want[i] or (want[i].endswith("/") and s.startswith(want[i]))):
        i += 1
check(i == len(want), f"calls out of order or missing: want {want} in order, got {seen}")
body = {f'{c["method"]} {c["path"]}': c["body"] for c in calls}
m = body.get("PUT /machine-config", {})
check(m.get("vcpu_count") == 1 and m.get("mem_size_mib") == 256, f"machine-config {m}")
b = body.get("PUT /boot-source", {})
args = b.get("boot_args", "").split()
check(re.fullmatch(r"fcvm\.root=\d{1,20}", next((a for a in args if a.startswith("fcvm.root=")), "")),
      f"boot_args without fcvm.root=<serial>: {args}")
for a in ("fcvm.agent=vsock:1024", "reboot=k", "console=ttyS0"):
    check(a in args, f"boot_args without {a}: {args}")
check(b.get("kernel_image_path", "").startswith(guest + "/kernel/vmlinux"), f"kernel {b}")
check(b.get("initrd_path") == guest + "/kernel/initrd.img", f"initrd {b}")
drives = [c["body"] for c in calls if c["path"].startswith("/drives/")]
check(len(drives) == 2, f"want root and image drives: {drives}")
if len(drives) == 2:
    root, image = drives
    check(root["path_on_host"].startswith(data + "/vms/") and root["path_on_host"].endswith("/root.ext4")
          and not root["is_read_only"], f"root drive {root}")
    check(image["path_on_host"].startswith(data + "/image-store/disks/")
          and image["path_on_host"].endswith(".ext4") and image["is_read_only"], f"image drive {image}")
n = body.get("PUT /network-interfaces/eth0", {})
check(n.get("host_dev_name") == "tap0" and n.get("guest_mac"), f"network {n}")
v = body.get("PUT /vsock", {})
check(v.get("uds_path") == "vsock.sock" and v.get("guest_cid") == 3, f"vsock {v} (relative to the VM directory, the working directory)")
plan = body.get("PUT /mmds", {}).get("fcvm", {}).get("plan", {})
check(plan.get("command") == ["echo", "hello"], f"mmds plan {plan}")
rootfs = plan.get("image", {}).get("rootfs", {})
check(rootfs.get("fstype") == "ext4" and rootfs.get("cmd") == ["sh"], f"mmds plan's stored image {rootfs}")
check(body.get("PUT /actions") == {"action_type": "InstanceStart"}, "no InstanceStart")
for e in errors: print("  " + e)
sys.exit(1 if errors else 0)
PY
assert_clean "a run"
assert_events "a run" "$mark" "created starting running ready exited=5 removed"
log "a. run: exit 5, output and $(wc -l <"$rec") API calls as expected"

# b. SIGTERM while the container runs: a clean stop, exit 143.
# fcvm itself in the background (not a function: $! must be fcvm's pid).
mark=$(events_mark)
FAKE_FC_RUN_UNTIL_STOP=1 "$FCVM_BIN" run --vmm firecracker "oci-archive:$archive" \
  >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
deadline=$((SECONDS + 20))
until grep -q 'fake guest: running' "$TEST_TMP/out"; do
  [ $SECONDS -lt $deadline ] || { show_vm_logs; fail "the guest never ran: $(cat "$TEST_TMP/err")"; }
  kill -0 "$pid" 2>/dev/null || fail "fcvm exited early: $(cat "$TEST_TMP/err")"
  sleep 0.1
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 143 ] || fail "exit $rc after SIGTERM, want 143: $(cat "$TEST_TMP/err")"
assert_clean "a stopped run"
assert_events "a stopped run" "$mark" "created starting running ready stopping exited=143 removed"
log "b. SIGTERM: exit 143, clean"

# c. A failure at each configuration call.
for call in "PUT /logger" "PUT /metrics" "PUT /machine-config" "PUT /boot-source" "PUT /serial" \
  "PUT /drives/*" "PUT /network-interfaces/*" "PUT /vsock" "PUT /mmds/config" "PUT /mmds" \
  "PUT /actions"; do
  message="fake fault at ${call#PUT }"
  rc=0
  mark=$(events_mark)
  FAKE_FC_FAIL=$call FAKE_FC_FAIL_MESSAGE=$message run_fc "oci-archive:$archive" \
    >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
  err=$(cat "$TEST_TMP/err")
  [ "$rc" -eq 1 ] || fail "$call failing: exit $rc, want 1: $err"
  [ "$(wc -l <"$TEST_TMP/err")" -eq 1 ] || fail "$call failing: want one error line, got: $err"
  named=${call%\*}
  [ "$named" != "$call" ] || named="$call:"
  grep -q "^fcvm: error: .*$named.*$message" <<<"$err" ||
    fail "$call failing: the error does not name the call and the fault: $err"
  assert_clean "a failure at $call"
  assert_events "a failure at $call" "$mark" "created starting exited! removed"
done
log "c. a failure at each of 11 calls: exit 1, named, clean"

# d. No Firecracker: exit 1 at once, a clear message, nothing created.
rc=0
FCVM_FIRECRACKER_BIN=/nonexistent run_fc "oci-archive:$archive" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
  rc=$?
err=$(cat "$TEST_TMP/err")
[ "$rc" -eq 1 ] || fail "no firecracker: exit $rc, want 1: $err"
grep -q "^fcvm: error: .*--vmm firecracker: not available: .*/nonexistent" <<<"$err" ||
  fail "no firecracker: unclear message: $err"
[ -z "$("$FCVM_BIN" ls -a -q)" ] || fail "no firecracker: a VM was recorded: $("$FCVM_BIN" ls -a)"
assert_clean "--vmm firecracker without a binary"
log "d. no binary: exit 1: $err"
# e. Snapshot and clone with Firecracker: run -d --save-snapshot, then a clone restored from it;
#    every call checked against the spec; the snapshot names its own disk copies, the clone loads
#    it with a File memory backend and points the drives at its own disk.
rec_src=$TEST_TMP/snap-src.jsonl
rec_clone=$TEST_TMP/snap-clone.jsonl
FAKE_FC_RUN_UNTIL_STOP=1 FAKE_FC_RECORD=$rec_src run_fc -d --name fsrc --cpu 1 --mem 256 \
  --save-snapshot fcsnap "oci-archive:$archive" >/dev/null 2>"$TEST_TMP/err" ||
  { show_vm_logs; fail "run --save-snapshot with firecracker: $(cat "$TEST_TMP/err")"; }
[ "$("$FCVM_BIN" snapshot ls -q)" = fcsnap ] || fail "snapshot ls: $("$FCVM_BIN" snapshot ls)"
snapdir=$("$FCVM_BIN" snapshot inspect fcsnap | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["paths"]["dir"])')
FAKE_FC_RUN_UNTIL_STOP=1 FAKE_FC_RECORD=$rec_clone "$FCVM_BIN" clone --snapshot fcsnap --name fclone -d \
  >/dev/null 2>"$TEST_TMP/err" || { show_vm_logs; fail "clone with firecracker: $(cat "$TEST_TMP/err")"; }
# The guest's output follows its `ready` (which `clone -d` returns on).
clone_output() { "$FCVM_BIN" logs fclone 2>/dev/null | grep -q 'fake guest: running'; }
wait_until 60 clone_output || { show_vm_logs; fail "no output from the clone"; }
python3 - "$rec_src" "$rec_clone" "$snapdir" "$FCVM_DATA_DIR" <<'PY' || fail "snapshot API calls (above)"
import json, sys
rec_src, rec_clone, snapdir, data = sys.argv[1:]
src = [json.loads(l) for l in open(rec_src)]
clone = [json.loads(l) for l in open(rec_clone)]
errors = []
def check(ok, what):
    if not ok: errors.append(what)
for c in src + clone:
    check(c["status"] < 300, f'{c["method"]} {c["path"]} answered {c["status"]}: {c.get("fault_message")}')
seen = [f'{c["method"]} {c["path"]}' for c in src if c["method"] != "GET"]
i = seen.index("PUT /snapshot/create") if "PUT /snapshot/create" in seen else -1
check(i > 0, f"no snapshot/create: {seen}")
if i > 0:
    before = [c for c in src if c["method"] == "PATCH" and c["path"].startswith("/drives/")][:2]
    check(all(c["body"]["path_on_host"].startswith(snapdir + "/") for c in before),
          f"the snapshot does not name its own disk copies: {[c['body'] for c in before]}")
    create = next(c for c in src if c["path"] == "/snapshot/create")
    check(create["body"]["mem_file_path"] == snapdir + "/memory.ram", f"mem file {create['body']}")
load = next((c for c in clone if c["path"] == "/snapshot/load"), None)
check(load is not None, "the clone did not load the snapshot")
if load:
    check(load["body"].get("mem_backend", {}).get("backend_type") == "File", f"load {load['body']}")
    check(load["body"]["snapshot_path"] == snapdir + "/state.bin", f"load {load['body']}")
drives = [c["body"] for c in clone if c["method"] == "PATCH" and c["path"].startswith("/drives/")]
check(any(d["path_on_host"].startswith(data + "/vms/") and d["path_on_host"].endswith("/root.ext4")
          for d in drives), f"the clone's root drive is not its own disk: {drives}")
check(not any(c["path"] == "/boot-source" for c in clone), "the clone booted instead of loading")
if load:  # v1.16: the clone's vsock socket is named in the load request
    check("vsock_override" in load["body"], f"v1.16 load without vsock_override: {load['body']}")
for e in errors: print("  " + e)
sys.exit(1 if errors else 0)
PY
rc=0
"$FCVM_BIN" snapshot rm fcsnap 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "snapshot rm with a clone: exit $rc, want 2"
"$FCVM_BIN" rm -f fclone fsrc >/dev/null
"$FCVM_BIN" snapshot rm fcsnap >/dev/null || fail "snapshot rm"
assert_clean "snapshot and clone"
log "e. firecracker snapshot + clone: spec-checked calls, own disk copies, File memory backend"

# f. Firecracker v1.14's dialect (as the real v1.14.2 answers): no vsock_override on load. Two
#    clones of one snapshot run side by side beside their source, each with the vsock socket in
#    its own directory (the name recorded in the snapshot is relative to Firecracker's directory).
export FAKE_FC_VERSION=1.14.2
rec_old=$TEST_TMP/snap-1.14.jsonl
FAKE_FC_RUN_UNTIL_STOP=1 run_fc -d --name osrc --cpu 1 --mem 256 --save-snapshot osnap \
  "oci-archive:$archive" >/dev/null 2>"$TEST_TMP/err" ||
  { show_vm_logs; fail "v1.14: run --save-snapshot: $(cat "$TEST_TMP/err")"; }
for n in 1 2; do
  FAKE_FC_RUN_UNTIL_STOP=1 FAKE_FC_RECORD=$rec_old "$FCVM_BIN" clone --snapshot osnap --name "oclone$n" -d \
    >/dev/null 2>"$TEST_TMP/err" || { show_vm_logs; fail "v1.14: clone $n: $(cat "$TEST_TMP/err")"; }
done
for v in osrc oclone1 oclone2; do
  [ "$("$FCVM_BIN" inspect "$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"]["status"])')" = running ] ||
    { show_vm_logs; fail "v1.14: $v is not running: $("$FCVM_BIN" ls -a)"; }
  dir=$("$FCVM_BIN" inspect "$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["paths"]["dir"])')
  [ -S "$dir/vsock.sock" ] || fail "v1.14: $v has no vsock socket in its own directory $dir"
  ver=$("$FCVM_BIN" inspect "$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["vmm_version"])')
  [ "$ver" = v1.14.2 ] || fail "v1.14: inspect $v shows vmm_version $ver"
done
python3 - "$rec_old" <<'PY' || fail "v1.14 load calls (above)"
import json, sys
loads = [json.loads(l) for l in open(sys.argv[1])]
loads = [c for c in loads if c["path"] == "/snapshot/load"]
bad = [c for c in loads if c["status"] >= 300 or "vsock_override" in c["body"]]
if len(loads) != 2 or bad:
    print(f"  want 2 accepted loads without vsock_override, got {len(loads)}: {bad}")
    sys.exit(1)
PY
"$FCVM_BIN" rm -f oclone1 oclone2 osrc >/dev/null
"$FCVM_BIN" snapshot rm osnap >/dev/null || fail "v1.14: snapshot rm"
assert_clean "v1.14 snapshot and clones"
# A version outside v1.10-v1.16 is refused, naming it; nothing is recorded.
rc=0
FAKE_FC_VERSION=1.9.0 run_fc "oci-archive:$archive" >/dev/null 2>"$TEST_TMP/err" || rc=$?
grep -q "Firecracker v1.9.0 is not supported: fcvm supports v1.10 to v1.16" "$TEST_TMP/err" ||
  fail "v1.9.0: exit $rc, want the supported range named: $(cat "$TEST_TMP/err")"
[ "$rc" -ne 0 ] || fail "v1.9.0 accepted"
[ -z "$("$FCVM_BIN" ls -a -q)" ] || fail "v1.9.0: a VM was recorded: $("$FCVM_BIN" ls -a)"
unset FAKE_FC_VERSION
log "f. v1.14 dialect: 2 clones side by side without vsock_override; v1.9.0 refused: $(cat "$TEST_TMP/err")"
echo "firecracker run via fake-firecracker: all scenarios passed"
