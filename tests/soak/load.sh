#!/usr/bin/env bash
# Load: N VMs (default 20: a quarter cold `run -d`, the rest clones of a warm snapshot) started
# concurrently, checked, and removed concurrently, ROUNDS times (default 2). Real guests (QEMU,
# TCG here), rootless networking.
#
#   tests/soak/load.sh FCVM IMAGES_DIR [N] [ROUNDS]      (make load)
#
# Each VM publishes its own port. A cold VM's container serves its own id (its --env VMID) there;
# a clone serves the snapshot source's page (it resumes that container) and answers an exec
# through its own monitor. After each start: every VM is listed running exactly once, ids and
# ports are unique, the store passes SQLite's integrity check. After each removal: the host is
# as before (processes, VM directories, sockets, store rows). Prints the wall times.
set -euo pipefail
fcvm=$(realpath "${1:?usage: load.sh FCVM IMAGES_DIR [N] [ROUNDS]}")
images=$(realpath "${2:?images dir}")
n=${3:-20}
rounds=${4:-2}
cold=$(((n + 3) / 4))
busybox=$images/busybox.oci.tar
[ -f "$busybox" ] || { echo "load: $busybox missing (make images)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/fcvm-load.XXXXXX)
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${FCVM_DATA_DIR:-$HOME/.local/share/fcvm}}
export FCVM_DATA_DIR=$tmp/data
cleanup() {
  for v in $("$fcvm" ls -a -q 2>/dev/null); do "$fcvm" rm -f "$v" >/dev/null 2>&1 || true; done
  "$fcvm" snapshot rm -f warm >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "load: FAIL: $*" >&2; exit 1; }
ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
serve='mkdir -p /tmp/w && echo "$VMID" >/tmp/w/index.html && exec httpd -f -p 80 -h /tmp/w'
answer() { curl -fsS --max-time 10 "http://127.0.0.1:$1/index.html" 2>/dev/null; }
wait_answer() { # PORT WANT
  local deadline=$((SECONDS + 120))
  until [ "$(answer "$1")" = "$2" ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
# What must come back after each round: our processes, VM directories, sockets, store rows.
host_state() {
  {
    pgrep -a -f "$FCVM_DATA_DIR" | sed 's/^[0-9]* //' | sort
    ls "$FCVM_DATA_DIR/vms" 2>/dev/null
    find "$FCVM_DATA_DIR" -type s
    sqlite3 "$FCVM_DATA_DIR/state.db" 'select count(*) from vms; select count(*) from snapshots;'
  } 2>/dev/null
}

# The warm snapshot: a source VM serving "src", kept running through the rounds.
p0=$(free_port)
t=$(ms)
"$fcvm" run -d --name src --mem 256 --cpu 1 -p "$p0:80" --env VMID=src \
  --wait-ready "mode=http,url=http://127.0.0.1:80/index.html" --save-snapshot warm \
  "oci-archive:$busybox" sh -c "$serve" >/dev/null || fail "the source VM"
echo "load: source ready and snapshotted in $(($(ms) - t)) ms"
before=$(host_state)

for round in $(seq "$rounds"); do
  declare -A port=()
  names=()
  for i in $(seq "$n"); do
    if [ "$i" -le "$cold" ]; then names+=("r$i"); else names+=("c$i"); fi
    port[${names[-1]}]=$(free_port)
  done
  # Start all at once.
  t=$(ms)
  pids=()
  for name in "${names[@]}"; do
    if [ "${name:0:1}" = r ]; then
      "$fcvm" run -d --name "$name" --mem 256 --cpu 1 -p "${port[$name]}:80" --env "VMID=$name" \
        "oci-archive:$busybox" sh -c "$serve" >"$tmp/$name.out" 2>&1 &
    else
      "$fcvm" clone -d --snapshot warm --name "$name" -p "${port[$name]}:80" >"$tmp/$name.out" 2>&1 &
    fi
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[i]}" || fail "round $round: ${names[i]} did not start: $(cat "$tmp/${names[i]}.out")"
  done
  started=$(($(ms) - t))
  # Each answers on its own port: a cold VM with its own id, a clone with its source's page
  # and an exec through its own monitor.
  for name in "${names[@]}"; do
    if [ "${name:0:1}" = r ]; then
      wait_answer "${port[$name]}" "$name" || fail "round $round: $name answers '$(answer "${port[$name]}")' on ${port[$name]}, want $name"
    else
      wait_answer "${port[$name]}" src || fail "round $round: clone $name does not serve on ${port[$name]}"
      [ "$("$fcvm" exec "$name" -- echo "exec-$name")" = "exec-$name" ] || fail "round $round: exec in $name"
    fi
  done
  served=$(($(ms) - t))
  # The store: every VM once, running, unique ids and ports; SQLite's own check.
  "$fcvm" ls --json >"$tmp/ls.json"
  python3 - "$tmp/ls.json" "$n" <<'PY' || fail "round $round: the store is inconsistent (above)"
import json, sys
vms = json.load(open(sys.argv[1]))
want = int(sys.argv[2]) + 1  # and the source
ids = [v["id"] for v in vms]
names = [v["name"] for v in vms]
ports = [p for v in vms for p in v["ports"]]
bad = [v["name"] for v in vms if v["state"]["status"] != "running"]
ok = len(vms) == want and len(set(ids)) == want and len(set(names)) == want and \
     len(set(ports)) == len(ports) and not bad
if not ok:
    print(f"{len(vms)} VMs (want {want}), {len(set(ids))} ids, {len(set(ports))}/{len(ports)} ports, not running: {bad}")
sys.exit(0 if ok else 1)
PY
  [ "$(sqlite3 "$FCVM_DATA_DIR/state.db" 'pragma integrity_check')" = ok ] || fail "round $round: integrity_check"
  # Remove all at once.
  t=$(ms)
  pids=()
  for name in "${names[@]}"; do "$fcvm" rm -f "$name" >"$tmp/$name.rm" 2>&1 & pids+=($!); done
  for i in "${!pids[@]}"; do
    wait "${pids[i]}" || fail "round $round: rm -f ${names[i]}: $(cat "$tmp/${names[i]}.rm")"
  done
  removed=$(($(ms) - t))
  deadline=$((SECONDS + 30))
  until [ "$(host_state)" = "$before" ]; do
    [ $SECONDS -lt $deadline ] || fail "round $round: left behind: $(diff <(echo "$before") <(host_state))"
    sleep 0.2
  done
  echo "load: round $round: $n VMs ($cold run -d, $((n - cold)) clones) started in $started ms, all serving after $served ms, removed in $removed ms; store consistent, nothing left"
done
