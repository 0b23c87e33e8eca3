#!/usr/bin/env bash
# The host-wide part of privileged networking (fcvm run --network privileged), made ahead of time
# or removed. fcvm creates the same on demand at the first privileged VM, so `prepare` is
# optional; `remove` is how it goes away again. Prints every change it makes.
#
#   scripts/setup-nftables.sh prepare             bridge + address, route_localnet on it,
#                                                 net.ipv4.ip_forward=1, table inet fcvm with its
#                                                 three empty base chains
#   scripts/setup-nftables.sh remove [--force]    table inet fcvm and the bridge; ip_forward back
#                                                 to 0 if `prepare` turned it on. Refuses while
#                                                 VMs have rules in the table (--force: anyway)
#   scripts/setup-nftables.sh status              what exists now
#
# FCVM_BRIDGE (fcvm0), FCVM_BRIDGE_CIDR (172.31.0.1/16) and FCVM_NFT_TABLE (fcvm) must match what
# fcvm uses (its built-in defaults). Only `table inet $FCVM_NFT_TABLE` is ever touched; other
# tables (iptables-nft, firewalld, docker) are left alone. The base chains are the ones of
# network/nftables-template.nft. Needs root, ip (iproute2) and nft (nftables).
set -euo pipefail

bridge=${FCVM_BRIDGE:-fcvm0}
cidr=${FCVM_BRIDGE_CIDR:-172.31.0.1/16}
table=${FCVM_NFT_TABLE:-fcvm}
state_dir=/run/fcvm
forward_mark=$state_dir/ip_forward.set-by-setup-nftables

say() { printf 'setup-nftables: %s\n' "$*"; }
die() { printf 'setup-nftables: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

check_tools() {
  [ "$(id -u)" -eq 0 ] || die "needs root"
  command -v ip >/dev/null || die "ip is not installed (apt-get install iproute2)"
  command -v nft >/dev/null || die "nft is not installed (apt-get install nftables)"
}

table_exists() { nft list table inet "$table" >/dev/null 2>&1; }
vm_rule_count() {
  table_exists || { echo 0; return; }
  nft list table inet "$table" | grep -c 'comment "fcvm:' || true
}

prepare() {
  if [ -e "/sys/class/net/$bridge" ]; then
    say "bridge $bridge exists: $(ip -br addr show dev "$bridge" | awk '{$1=$1; print}')"
  else
    ip link add "$bridge" type bridge
    ip addr add "$cidr" dev "$bridge"
    ip link set "$bridge" up
    say "created bridge $bridge with address $cidr"
  fi
  echo 1 >"/proc/sys/net/ipv4/conf/$bridge/route_localnet"
  say "set net.ipv4.conf.$bridge.route_localnet=1 (ports published on 127.0.0.1 are DNATed through it)"
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ]; then
    say "net.ipv4.ip_forward is already 1"
  else
    echo 1 >/proc/sys/net/ipv4/ip_forward
    mkdir -p "$state_dir"
    : >"$forward_mark"
    say "set net.ipv4.ip_forward=1 (the VMs' traffic is routed by the host; remove sets it back)"
  fi
  local existed=0
  table_exists && existed=1
  nft -f - <<EOF
add table inet $table
add chain inet $table prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain inet $table output { type nat hook output priority -100; policy accept; }
add chain inet $table postrouting { type nat hook postrouting priority srcnat; policy accept; }
EOF
  if [ "$existed" = 1 ]; then
    say "table inet $table exists ($(vm_rule_count) VM rules); base chains checked"
  else
    say "created table inet $table with chains prerouting, output, postrouting"
  fi
}

remove() {
  local force=$1 rules
  rules=$(vm_rule_count)
  if [ "$rules" -gt 0 ] && [ "$force" != 1 ]; then
    die "table inet $table still holds $rules rules of running VMs: remove the VMs first (fcvm rm -f), or use --force"
  fi
  if table_exists; then
    nft delete table inet "$table"
    say "deleted table inet $table ($rules VM rules in it)"
  else
    say "table inet $table does not exist"
  fi
  if [ -e "/sys/class/net/$bridge" ]; then
    ip link del "$bridge"
    say "deleted bridge $bridge"
  else
    say "bridge $bridge does not exist"
  fi
  if [ -e "$forward_mark" ]; then
    echo 0 >/proc/sys/net/ipv4/ip_forward
    rm -f "$forward_mark"
    say "set net.ipv4.ip_forward=0 again (prepare had turned it on)"
  else
    say "net.ipv4.ip_forward left at $(cat /proc/sys/net/ipv4/ip_forward) (not set by this script)"
  fi
}

status() {
  if [ -e "/sys/class/net/$bridge" ]; then
    say "bridge: $(ip -br addr show dev "$bridge" | awk '{$1=$1; print}')"
  else
    say "bridge $bridge: absent"
  fi
  if table_exists; then
    say "table inet $table: present, $(vm_rule_count) VM rules"
  else
    say "table inet $table: absent"
  fi
  say "net.ipv4.ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    *) usage ;;
  esac
done
case "$cmd" in
  prepare) check_tools; prepare ;;
  remove) check_tools; remove "$force" ;;
  status) check_tools; status ;;
  *) usage ;;
esac
