#!/usr/bin/env bash
# Runs inside tests/lib/kvm-guest.sh (a guest with a working /dev/kvm), driven by
# e2e/test_firecracker_real.sh: fcvm against the real Firecracker binary and its jailer. One guest
# boot covers --vmm auto, a foreground run's stdin, output and exit code (unjailed), nginx with
# rootless and privileged networking (jailed, as root is by default: user, PID namespace, chroot
# and cgroup checked), exec, logs, stop, start, kill -9 of the monitor, rm, a snapshot and two
# clones, that nothing is left behind, and QEMU with KVM. Prints one line per milestone with its
# time. The VMs get one vCPU: a second one stalls (RCU) under nested emulation on two host cores.
source "$(dirname "$0")/../../lib/common.sh"
: "${FCVM_FIRECRACKER_BIN:?the firecracker binary}"
: "${FCVM_JAILER_BIN:?the jailer binary}"
[ -c /dev/kvm ] || fail "no /dev/kvm: run me through tests/lib/kvm-guest.sh"
busybox=$(need_image busybox.oci.tar)
nginx=$(need_image nginx.oci.tar)
welcome="Welcome to fcvm nginx"
t0=$SECONDS
step() { log "$(printf '%4d s' $((SECONDS - t0))) $*"; }

# The guest's files over 9p are slow to copy for every VM: one copy in this guest's memory.
src=${FCVM_GUEST_DIR:-$(data_dir)}
mkdir -p /tmp/guest/images
cp -a "$src/kernel" /tmp/guest/
[ -d "$src/bin" ] && cp -a "$src/bin" /tmp/guest/
cp --sparse=always "$(readlink -f "$src/images/rootfs.ext4")" /tmp/guest/images/rootfs.ext4
export FCVM_GUEST_DIR=/tmp/guest FCVM_DATA_DIR=$TEST_TMP/data
step "guest files copied"

vm_field() { fcvm inspect "$1" | python3 -c "import json,sys; v=json.load(sys.stdin)[0]; print(eval('v' + sys.argv[1]))" "$2"; }
# Firecracker processes: jailed, their command line names the binary by its base name in the
# chroot (a monitor's names it as an argument).
fc_pattern="^[^ ]*/$(basename "$FCVM_FIRECRACKER_BIN" | sed 's/\./\\./g')( |$)"
firecrackers() { pgrep -f "$fc_pattern" || true; }
# What fcvm may leave behind on this host. The privileged mode's bridge (fcvm0) and its nftables
# table with empty chains are shared infrastructure, made once and kept (like podman's bridge);
# the VM's own links, namespaces and rules are not.
host_state() {
  { firecrackers; pgrep -f 'slirp4netns|__monitor' || true
    ip -o link | awk -F': ' '{print $2}' | grep -Ev '^(lo|fcvm0)$' || true
    ip netns list 2>/dev/null || true
    nft list table inet fcvm 2>/dev/null | grep -Ev '^\s*(table|chain|type|policy|\}|$)' || true
    find /sys/fs/cgroup/fcvm -mindepth 1 -maxdepth 1 -type d 2>/dev/null || true
    ls "$FCVM_DATA_DIR/vms" 2>/dev/null || true; } | sort
}
before=$(host_state)
expect_clean() {
  local now; now=$(host_state)
  [ "$now" = "$before" ] || fail "$1: the host differs from its starting state (< before, > now):
$(diff <(echo "$before") <(echo "$now"))"
}

# 1. --vmm auto picks Firecracker here; a foreground run prints and exits with the code.
rc=0
printf 'through stdin\n' | fcvm run -i --keep --no-jailer --name fg --cpu 1 "oci-archive:$busybox" \
  sh -c 'read -r l; echo "hello from firecracker: $l"; exit 3' >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 3 ] || fail "foreground run: exit $rc, want 3: $(tail -5 "$TEST_TMP/err")"
grep -qx 'hello from firecracker: through stdin' "$TEST_TMP/out" || fail "foreground run: output $(cat "$TEST_TMP/out")"
[ "$(vm_field fg '["backend"]')" = firecracker ] || fail "--vmm auto picked $(vm_field fg '["backend"]')"
want=$("$FCVM_FIRECRACKER_BIN" --version | head -1 | awk '{print $2}')
[ "$(vm_field fg '["vmm_version"]')" = "$want" ] || fail "inspect: vmm_version $(vm_field fg '["vmm_version"]'), want $want"
console=$(vm_field fg '["paths"]["console_log"]')
grep -q 'channel vsock:1024: host connected' "$console" || fail "the agent did not talk over vsock"
grep -q "plan from MMDS: vm $(vm_field fg '["id"]')" "$console" || fail "the plan did not reach the agent through MMDS"
grep -q 'plan received from the host: ' "$console" || fail "the container did not wait for the host's plan"
! grep -q 'jailed by' "$(vm_field fg '["paths"]["monitor_log"]')" || fail "--no-jailer: the VM was jailed"
fcvm rm fg >/dev/null
expect_clean "foreground run"
step "1. --vmm auto -> firecracker; foreground run -i: stdin, output and exit code 3; plan through MMDS, agent over vsock"

# 2. nginx, rootless: serves on its port; exec with stdin; logs; stop; start; rm.
p1=$(free_port)
fcvm run -d --name web --cpu 1 --mem 512 -p "127.0.0.1:$p1:80" "oci-archive:$nginx" >/dev/null 2>"$TEST_TMP/err" ||
  fail "run -d nginx: $(tail -5 "$TEST_TMP/err")"
wait_http "http://127.0.0.1:$p1/?from-test" 120 | grep -q "$welcome" || fail "nginx (rootless) does not serve"
step "2. nginx (rootless) serves on 127.0.0.1:$p1"
# Jailed (root, with a jailer): Firecracker is the only child of its PID namespace's init.
init=$(vm_field web '["processes"]["vmm"]["pid"]')
fc=$(cat "/proc/$init/task/$init/children" | tr -d ' ')
[ -n "$fc" ] || fail "the VMM process $init has no child: not jailed?"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$fc/status")
[ "$uid" -ge $((1 << 30)) ] || fail "jailed Firecracker runs as uid $uid, want the jail's own (>= 2^30)"
[ "$(awk '/^NSpid:/ {print NF - 1}' "/proc/$fc/status")" -eq 2 ] || fail "Firecracker is not in a PID namespace of its own: $(grep NSpid "/proc/$fc/status")"
ls "/proc/$fc/root/firecracker.socket" >/dev/null 2>&1 && [ ! -e "/proc/$fc/root/usr" ] ||
  fail "Firecracker's root is not its chroot: $(ls "/proc/$fc/root/" 2>&1 | head)"
id=$(vm_field web '["id"]')
[ "$(cat "/proc/$fc/cgroup")" = "0::/fcvm/$id" ] || fail "Firecracker's cgroup: $(cat "/proc/$fc/cgroup")"
[ "$(cat "/sys/fs/cgroup/fcvm/$id/cpu.max")" = "100000 100000" ] || fail "cpu.max: $(cat "/sys/fs/cgroup/fcvm/$id/cpu.max")"
[ "$(cat "/sys/fs/cgroup/fcvm/$id/memory.max")" = $(((512 + 256) << 20)) ] || fail "memory.max: $(cat "/sys/fs/cgroup/fcvm/$id/memory.max")"
step "2. jailed: uid $uid, PID namespace, chroot, cgroup fcvm/$id (cpu.max 1 CPU, memory.max 768 MiB)"
fcvm exec web -- nginx -v 2>&1 | grep -q 'nginx version' || fail "exec nginx -v"
# exec with stdin (the nginx image has nothing but nginx: it checks a configuration read from
# stdin; an empty one would lack its events section).
printf 'events {}\n' | fcvm exec -i web -- nginx -t -c /dev/stdin >"$TEST_TMP/out" 2>&1 || true
grep -q 'syntax is ok' "$TEST_TMP/out" || fail "exec -i: nginx -t of a configuration on stdin: $(cat "$TEST_TMP/out")"
rc=0; fcvm exec web -- nginx -t -c /nonexistent >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "exec exit code $rc, want nginx's 1"
wait_until 30 sh -c "'$FCVM_BIN' logs web 2>&1 | grep -q 'GET /?from-test'" || fail "logs lack the request"
fcvm stop web >/dev/null || fail "stop"
[ "$(vm_field web '["state"]["status"]')" = exited ] || fail "stop: $(vm_field web '["state"]')"
[ -z "$(firecrackers)" ] || fail "stop left Firecracker running"
[ ! -e "/sys/fs/cgroup/fcvm/$id" ] || fail "stop left the jail's cgroup"
[ ! -e "$(vm_field web '["paths"]["dir"]')/jail" ] || fail "stop left the jail"
fcvm start web >/dev/null 2>"$TEST_TMP/err" || fail "start: $(tail -5 "$TEST_TMP/err")"
wait_http "http://127.0.0.1:$p1/" 120 | grep -q "$welcome" || fail "nginx does not serve after start"
# kill -9 of the monitor: the PID namespace's init dies with it, and Firecracker with the namespace
# (the jailer's change of user cleared Firecracker's own parent-death signal).
kill -9 "$(vm_field web '["processes"]["monitor"]["pid"]')"
wait_until 30 sh -c "! pgrep -f '$fc_pattern' >/dev/null" || fail "Firecracker outlived its killed monitor"
fcvm rm -f web >/dev/null
expect_clean "rootless nginx"
step "2. exec (output, exit code, stdin), logs, stop, start (serves again), kill -9 monitor, rm: clean"

# 3. A warm snapshot and two clones, each on its own port with its own id.
p2=$(free_port)
fcvm run -d --name src --cpu 1 --mem 512 -p "127.0.0.1:$p2:80" --save-snapshot warm \
  --wait-ready 'mode=http,url=http://127.0.0.1:80/' "oci-archive:$nginx" >/dev/null 2>"$TEST_TMP/err" ||
  fail "run --save-snapshot: $(tail -5 "$TEST_TMP/err")"
step "3. snapshot 'warm' saved"
ids=()
for n in 1 2; do
  port=$(free_port)
  fcvm clone --snapshot warm --name "c$n" -p "127.0.0.1:$port:80" -d >/dev/null 2>"$TEST_TMP/err" ||
    fail "clone c$n: $(tail -5 "$TEST_TMP/err")"
  wait_http "http://127.0.0.1:$port/" 60 | grep -q "$welcome" || fail "clone c$n does not serve on $port"
  id=$(vm_field "c$n" '["id"]')
  dir=$(vm_field "c$n" '["paths"]["dir"]')
  wait_until 30 grep -qs "now VM c$n ($id)" "$dir/console.log" ||
    fail "clone c$n's guest did not take its own id $id: $(ls -l "$dir"; grep -s 'now VM' "$dir"/*.log)"
  grep -q 'jailed by' "$(vm_field "c$n" '["paths"]["monitor_log"]')" || fail "clone c$n is not jailed"
  ids+=("$id")
done
[ "${ids[0]}" != "${ids[1]}" ] || fail "the clones share an id"
curl -fsS --max-time 10 "http://127.0.0.1:$p2/" | grep -q "$welcome" || fail "the source stopped serving"
fcvm rm -f c1 c2 src >/dev/null
fcvm snapshot rm warm >/dev/null
expect_clean "snapshot and clones"
step "3. two jailed clones serve on their own ports with their own ids; the source still serves; clean"

# 4. nginx with privileged networking (namespace, veth, nftables).
p3=$(free_port)
fcvm run -d --name pweb --cpu 1 --mem 512 --network privileged -p "127.0.0.1:$p3:80" "oci-archive:$nginx" \
  >/dev/null 2>"$TEST_TMP/err" || fail "run -d --network privileged: $(tail -5 "$TEST_TMP/err")"
wait_http "http://127.0.0.1:$p3/" 120 | grep -q "$welcome" || fail "nginx (privileged) does not serve"
grep -q 'jailed by' "$(vm_field pweb '["paths"]["monitor_log"]')" || fail "privileged nginx is not jailed"
fcvm rm -f pweb >/dev/null
expect_clean "privileged nginx"
step "4. nginx (privileged networking, jailed) serves on 127.0.0.1:$p3; rm: clean"
# 5. QEMU with KVM: here the KVM probe passes, so QEMU runs its guest with -accel kvm.
rc=0
fcvm run --vmm qemu --cpu 1 --keep --name q "oci-archive:$busybox" sh -c 'echo hello from qemu-kvm; exit 4' \
  >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 4 ] || fail "qemu run: exit $rc, want 4: $(tail -5 "$TEST_TMP/err")"
grep -qx 'hello from qemu-kvm' "$TEST_TMP/out" || fail "qemu run: output $(cat "$TEST_TMP/out")"
grep -q 'vmm: qemu: kvm' "$(vm_field q '["paths"]["monitor_log"]')" ||
  fail "QEMU did not use KVM: $(grep -m1 'vmm: qemu' "$(vm_field q '["paths"]["monitor_log"]')")"
fcvm rm q >/dev/null
expect_clean "qemu with kvm"
step "5. QEMU with KVM: output and exit code 4"
echo "real firecracker: all scenarios passed in $((SECONDS - t0)) s"
