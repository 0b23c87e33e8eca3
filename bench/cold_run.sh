#!/usr/bin/env bash
# Cold run: `fcvm run` of the small nginx image to the first HTTP 200 on the published port, with
# the breakdown fcvm records (--timings). Prints one table per image source.
#   bench/cold_run.sh [FCVM_BIN] [IMAGES_DIR]      (make bench)   RUNS=3 for more runs
# Figures are milliseconds since `fcvm run` started, measured in one run of each kind.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=${1:-$here/build/release/fcvm}
images=${2:-$here/build/images}
runs=${RUNS:-1}
tmp=$(mktemp -d /tmp/fcvm-bench.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
cleanup() {
  "$here/scripts/local-registry.sh" stop "$tmp/registry" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

reg_port=$(free_port)
"$here/scripts/local-registry.sh" start "$tmp/registry" "$reg_port" >/dev/null
"$here/scripts/local-registry.sh" push "$tmp/registry" "$images/nginx.oci.tar" nginx:latest >/dev/null

one_run() { # IMAGE LABEL
  local port timings t0 t_http pid
  port=$(free_port)
  timings=$tmp/timings.$RANDOM
  t0=$(date +%s%N)
  "$fcvm" run --timings "$timings" --publish "127.0.0.1:$port:80" "$1" >/dev/null 2>"$tmp/err" &
  pid=$!
  until curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; do
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
    sleep 0.05
  done
  t_http=$(( ($(date +%s%N) - t0) / 1000000 ))
  kill -TERM "$pid"; wait "$pid" || true
  python3 - "$timings" "$t_http" "$2" <<'PY'
import json, sys
path, http, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ev = {}
for line in open(path):
    j = json.loads(line)
    ev.setdefault(j["event"], j)
def ms(name): return ev[name]["ms"] if name in ev else float("nan")
rows = [
  ("host work before the VMM starts", ms("vmm_starting")),
  ("VMM started", ms("vmm_started")),
  ("kernel + init: agent hello", ms("agent_hello")),
  ("guest network configured", ms("network_ready")),
  ("image ready (pulled / loaded)", ms("image_ready")),
  ("container running", ms("container_running")),
  ("HTTP 200 on the host", http),
]
print(f"cold run, {label}:")
for name, v in rows: print(f"  {name:<34} {v:9.1f} ms")
if "agent_hello" in ev:
    print(f"  (guest uptime at agent hello: {ev['agent_hello'].get('guest_uptime_ms', 0)} ms)")
PY
}

for i in $(seq "$runs"); do
  one_run "127.0.0.1:$reg_port/nginx:latest" "nginx pulled from a local registry"
  one_run "oci-archive:$images/nginx.oci.tar" "nginx from an oci-archive"
done
