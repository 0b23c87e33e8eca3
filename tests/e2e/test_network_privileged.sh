#!/usr/bin/env bash
# Privileged networking (--network privileged): bad input refused with nothing created; two VMs
# serving on their published ports at once, with egress to a server on the host's bridge address;
# a VM without --publish unreachable from the host; every rule, veth, namespace and lease gone
# after rm, and after kill -9 of the monitor followed by rm; an image from a registry on the
# host's loopback. Also checks that
# network/nftables-template.nft is valid for this kernel and scripts/setup-nftables.sh.
source "$(dirname "$0")/../lib/common.sh"
need_root "privileged networking creates namespaces, veths and nftables rules"
need_cmd nft
need_cmd ip
need_cmd setpriv
need_guest
busybox=$(need_image busybox.oci.tar)
export FCVM_DATA_DIR=$TEST_TMP/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-$(FCVM_DATA_DIR= data_dir)}
for n in net1 net2 net3; do on_exit "'$FCVM_BIN' rm -f $n >/dev/null 2>&1"; done
setup=$FCVM_SOURCE_DIR/scripts/setup-nftables.sh
leases=/run/fcvm/leases.json

expect_rc() { # RC CMD...
  local want=$1; shift
  local rc=0
  "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "$* exited $rc, want $want: $(cat "$TEST_TMP/last.err")"
}
vm_rules() { nft list table inet fcvm 2>/dev/null | grep -c "comment \"fcvm:$1" || true; }
no_vm_dirs() { [ ! -d "$FCVM_DATA_DIR/vms" ] || [ -z "$(ls -A "$FCVM_DATA_DIR/vms")" ]; }
net_field() { # VM FIELD [SUBFIELD]
  fcvm inspect "$1" | python3 -c "import json, sys; v = json.load(sys.stdin)[0]['network']['$2']
print(v['${3:-}'] if '${3:-}' else v)"
}
# Nothing of a VM (by id, holder pid, veth) is left on the host; the veth and namespace go with
# the holder, which the kernel finishes asynchronously: allow it a moment.
assert_vm_gone() { # ID HOLDER_PID VETH
  local id=$1 holder=$2 veth=$3
  for _ in $(seq 50); do
    [ ! -e "/sys/class/net/$veth" ] && ! kill -0 "$holder" 2>/dev/null && break
    sleep 0.1
  done
  [ "$(vm_rules "$id")" -eq 0 ] || fail "rules of VM $id remain: $(nft list table inet fcvm)"
  [ ! -e "/sys/class/net/$veth" ] || fail "veth $veth remains"
  ! kill -0 "$holder" 2>/dev/null || fail "namespace holder $holder remains: $(ps -o pid,stat,comm -p "$holder")"
  ! grep -q "$id" "$leases" 2>/dev/null || fail "lease of VM $id remains: $(cat "$leases")"
}

# 0. The template is valid nftables for this kernel; the host-wide part can be made ahead.
nft -c -f "$FCVM_SOURCE_DIR/network/nftables-template.nft" || fail "network/nftables-template.nft does not parse"
bridge_existed=0
[ -e /sys/class/net/fcvm0 ] && bridge_existed=1
forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
"$setup" prepare >"$TEST_TMP/setup.out" || fail "setup-nftables.sh prepare: $(cat "$TEST_TMP/setup.out")"
grep -q 'fcvm0' "$TEST_TMP/setup.out" || fail "setup-nftables.sh prepare does not say what it did"
if [ "$bridge_existed" = 0 ]; then
  # Leave the host as it was (the VMs first: remove refuses while they have rules).
  on_exit "'$FCVM_BIN' rm -f net1 net2 net3 >/dev/null 2>&1; '$setup' remove >/dev/null 2>&1; echo $forward_before >/proc/sys/net/ipv4/ip_forward"
fi
[ -e /sys/class/net/fcvm0 ] && nft list table inet fcvm >/dev/null || fail "prepare made no bridge or table"

# 1. Bad input: exit 2, one message naming the problem, nothing created.
taken=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$taken)); s.listen(); time.sleep(600)" &
on_exit "kill $!"
wait_until 30 port_listening "$taken" || fail "the helper never bound port $taken"
rules_before=$(nft list table inet fcvm | grep -c 'comment "fcvm:' || true)
expect_rc 2 fcvm run --network bogus "oci-archive:$busybox" true
grep -q '"bogus"' "$TEST_TMP/last.err" || fail "--network bogus: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm run --network privileged -p "$taken:80" "oci-archive:$busybox" true
grep -q 'already in use' "$TEST_TMP/last.err" || fail "taken port: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm run --network privileged -p 203.0.113.77:8080:80 "oci-archive:$busybox" true
grep -q 'not an address of this host' "$TEST_TMP/last.err" || fail "foreign address: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm run --network privileged -p 1.2.3.4.5:8080:80 "oci-archive:$busybox" true
grep -q '"1.2.3.4.5"' "$TEST_TMP/last.err" || fail "invalid address: $(cat "$TEST_TMP/last.err")"
# Without privileges (an ordinary user): refused before anything is created.
mkdir -p "$TEST_TMP/nobody" && chown 65534:65534 "$TEST_TMP/nobody"
rc=0
out=$(HOME=$TEST_TMP/nobody FCVM_DATA_DIR=$TEST_TMP/nobody/data setpriv --reuid=65534 --regid=65534 \
  --clear-groups "$FCVM_BIN" run --network privileged -p "$(free_port):80" "oci-archive:$busybox" true 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "privileged mode as an ordinary user exited $rc, want 2: $out"
grep -q 'needs root' <<<"$out" || fail "privileged mode as an ordinary user: $out"
[ ! -e "$TEST_TMP/nobody/data/vms" ] || [ -z "$(ls -A "$TEST_TMP/nobody/data/vms")" ] || fail "an unprivileged run created a VM"
no_vm_dirs || fail "a refused run created a VM directory: $(ls "$FCVM_DATA_DIR/vms")"
[ "$(nft list table inet fcvm | grep -c 'comment "fcvm:' || true)" -eq "$rules_before" ] || fail "a refused run added rules"

# 2. A server on the host's bridge address for the guests' egress.
mkdir -p "$TEST_TMP/www"
token=egress-$RANDOM$RANDOM
echo "$token" >"$TEST_TMP/www/probe.txt"
eport=$(free_port)
python3 -m http.server "$eport" --bind 172.31.0.1 --directory "$TEST_TMP/www" >"$TEST_TMP/http.log" 2>&1 &
on_exit "kill $!"
wait_http "http://172.31.0.1:$eport/probe.txt" 10 >/dev/null || fail "the host test server did not start: $(cat "$TEST_TMP/http.log")"

# 3. Two VMs, each serving on its own published port; egress to the host server.
p1=$(free_port)
p2=$(free_port)
t0=$SECONDS
id1=$(fcvm run -d --name net1 --network privileged -p "$p1:80" "oci-archive:$busybox" httpd -f -p 80 -h /var/www)
id2=$(fcvm run -d --name net2 --network privileged -p "$p2:8080" "oci-archive:$busybox" httpd -f -p 8080 -h /var/www)
log "two VMs up in $((SECONDS - t0)) s"
[ "$(wait_http "http://127.0.0.1:$p1/" 30)" = "Hello from fcvm busybox" ] || fail "net1 does not serve on 127.0.0.1:$p1"
[ "$(wait_http "http://127.0.0.1:$p2/" 30)" = "Hello from fcvm busybox" ] || fail "net2 does not serve on 127.0.0.1:$p2"
[ "$(curl -fsS --max-time 5 "http://127.0.0.1:$p1/")" = "Hello from fcvm busybox" ] || fail "net1 stopped serving once net2 ran"
a1=$(net_field net1 host_address)
a2=$(net_field net2 host_address)
[[ "$a1" =~ ^172\.31\.[0-9]+\.[0-9]+$ ]] && [[ "$a2" =~ ^172\.31\.[0-9]+\.[0-9]+$ ]] && [ "$a1" != "$a2" ] ||
  fail "host addresses '$a1' and '$a2': want two different ones in 172.31.0.0/16"
[ "$(net_field net1 guest_address)" = 10.0.2.15/24 ] && [ "$(net_field net2 guest_address)" = 10.0.2.15/24 ] ||
  fail "the guests' address differs between VMs"
[ "$(net_field net1 mode)" = privileged ] || fail "inspect: mode $(net_field net1 mode)"
grep -E "^net1 .* 127\.0\.0\.1:$p1:80/tcp" <<<"$(fcvm ls)" >/dev/null || fail "ls does not show net1's port: $(fcvm ls)"
grep -E "^net2 .* 127\.0\.0\.1:$p2:8080/tcp" <<<"$(fcvm ls)" >/dev/null || fail "ls does not show net2's port: $(fcvm ls)"
# The published guest port is also reached at the VM's own address (a routable address).
[ "$(curl -fsS --max-time 5 "http://$a2:8080/")" = "Hello from fcvm busybox" ] || fail "net2 not reached at $a2:8080"
for vm in net1 net2; do
  got=$(fcvm exec "$vm" -- wget -qO- "http://172.31.0.1:$eport/probe.txt" 2>&1) || true
  [ "$got" = "$token" ] || fail "egress from $vm to the host server: '$got'"
done
# A host port that a VM publishes is refused to the next one, before anything is created.
expect_rc 2 fcvm run -d --name net3 --network privileged -p "$p1:80" "oci-archive:$busybox" true
grep -q "already in use (published by VM ${id1:0:12})" "$TEST_TMP/last.err" || fail "port of net1: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm run -d --name net3 -p "0.0.0.0:$p2:80" "oci-archive:$busybox" true  # rootless too
[ "$(ls "$FCVM_DATA_DIR/vms" | wc -l)" -eq 2 ] || fail "a refused run created a VM directory"

# 4. rm removes every rule, veth, namespace and lease of both.
h1=$(net_field net1 holder pid)
h2=$(net_field net2 holder pid)
v1=$(net_field net1 veth)
v2=$(net_field net2 veth)
[ "$(vm_rules "$id1")" -gt 0 ] && [ -e "/sys/class/net/$v1" ] || fail "net1 has no rules or veth while running"
fcvm rm -f net1 net2 >/dev/null
assert_vm_gone "$id1" "$h1" "$v1"
assert_vm_gone "$id2" "$h2" "$v2"
curl -fsS --max-time 2 "http://127.0.0.1:$p1/" >/dev/null 2>&1 && fail "port $p1 still answers after rm"

# 5. Without --publish nothing is reachable from the host, though the guest serves.
id3=$(fcvm run -d --name net3 --network privileged "oci-archive:$busybox" httpd -f -p 80 -h /var/www)
a3=$(net_field net3 host_address)
[ "$a3" = "$a1" ] || [ "$a3" = "$a2" ] || fail "freed addresses are not reused: got $a3 after $a1 and $a2"
for _ in $(seq 50); do
  [ "$(fcvm exec net3 -- wget -qO- http://127.0.0.1/ 2>/dev/null)" = "Hello from fcvm busybox" ] && break
  sleep 0.2
done
[ "$(fcvm exec net3 -- wget -qO- http://127.0.0.1/ 2>&1)" = "Hello from fcvm busybox" ] || fail "net3 does not serve inside"
curl -fsS --max-time 3 "http://$a3:80/" >/dev/null 2>&1 && fail "net3 is reachable at $a3:80 without --publish"
curl -fsS --max-time 3 "http://10.0.2.15:80/" >/dev/null 2>&1 && fail "a guest address is reachable from the host"
[ -z "$(fcvm ls | awk '$1 == "net3" {print $NF}' | grep ':')" ] || fail "ls shows ports for net3: $(fcvm ls)"

# 6. kill -9 of the monitor, then rm: still nothing left.
h3=$(net_field net3 holder pid)
v3=$(net_field net3 veth)
monitor=$(fcvm inspect net3 | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["processes"]["monitor"]["pid"])')
kill -9 "$monitor"
[ "$(vm_rules "$id3")" -gt 0 ] || fail "net3's rules vanished before clean-up: the kill -9 path is not exercised"
fcvm rm net3 >/dev/null
assert_vm_gone "$id3" "$h3" "$v3"
no_vm_dirs || fail "rm left VM directories: $(ls "$FCVM_DATA_DIR/vms")"

# 7. An image from a registry on the host's loopback: the guest reaches 127.0.0.1 through its
#    gateway (namespace DNAT to the bridge address, host DNAT to 127.0.0.1 for that VM only).
if command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
  start_registry
  push_image "$busybox" fcvm-test/busybox:latest
  out=$(fcvm run --network privileged "$REGISTRY/fcvm-test/busybox:latest" echo pulled-through-loopback 2>&1) ||
    fail "run from the loopback registry: $out"
  grep -qx pulled-through-loopback <<<"$out" || fail "run from the loopback registry: $out"
  [ "$(nft list table inet fcvm | grep -c 'comment "fcvm:' || true)" -eq "$rules_before" ] ||
    fail "the foreground VM left rules: $(nft list table inet fcvm)"
else
  log "docker-registry or skopeo missing: loopback registry not checked"
fi
no_vm_dirs || fail "the foreground run left its VM directory"
assert_no_leftovers
echo "privileged networking: ok"
