#!/usr/bin/env bash
# The HTTP API's request latency against the CLI doing the same, measured in one run on one VM:
#   GET /v1/vms      vs  fcvm ls --json
#   exec of `true`   vs  fcvm exec VM true
# each through curl (a process per request, as the CLI is) and through the Python client (in
# process, a connection per request); median and p90 of N alternating rounds, and the ratios.
#   bench/api.sh [FCVM_BIN] [IMAGES_DIR]        N=50 by default
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=${1:-$here/build/release/fcvm}
images=${2:-$here/build/images}
tmp=$(mktemp -d /tmp/fcvm-bench-api.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  "$fcvm" rm -f bench-api >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$fcvm" run -d --name bench-api "oci-archive:$images/busybox.oci.tar" sleep 3600 >/dev/null
sock=$tmp/api.sock
"$fcvm" serve --listen "unix:$sock" >"$tmp/serve.out" 2>/dev/null &
server=$!
until [ -s "$tmp/serve.out" ]; do sleep 0.05; done
PYTHONPATH=$here/clients/python FCVM=$fcvm SOCK=$sock N=${N:-50} python3 - <<'PY'
import os, statistics, subprocess, time
from fcvm_client import Client

fcvm, sock, n = os.environ["FCVM"], os.environ["SOCK"], int(os.environ["N"])
client = Client("unix:" + sock)
vm = client.vm("bench-api")
curl = ["curl", "-sS", "-f", "--unix-socket", sock]
ways = {
    "list: fcvm ls --json": lambda: subprocess.run([fcvm, "ls", "--json"], check=True, capture_output=True),
    "list: curl GET /v1/vms": lambda: subprocess.run(curl + ["http://fcvm/v1/vms"], check=True, capture_output=True),
    "list: python client": lambda: client.vms(),
    "exec true: fcvm exec": lambda: subprocess.run([fcvm, "exec", "bench-api", "true"], check=True, capture_output=True),
    "exec true: curl POST exec": lambda: subprocess.run(curl + ["-d", '{"cmd":["true"]}', "http://fcvm/v1/vms/bench-api/exec"], check=True, capture_output=True),
    "exec true: python client": lambda: vm.exec(["true"]),
}
samples = {k: [] for k in ways}
for f in ways.values():  # warm up each once
    f()
for _ in range(n):
    for name, f in ways.items():  # alternating, so drift hits every way alike
        t = time.perf_counter()
        f()
        samples[name].append((time.perf_counter() - t) * 1000)
med = {k: statistics.median(v) for k, v in samples.items()}
for k, v in samples.items():
    print(f"{k:28s} median {med[k]:7.1f} ms  p90 {statistics.quantiles(v, n=10)[-1]:7.1f} ms")
print(f"list: curl / CLI {med['list: curl GET /v1/vms'] / med['list: fcvm ls --json']:.2f}, "
      f"python / CLI {med['list: python client'] / med['list: fcvm ls --json']:.2f}")
print(f"exec: curl / CLI {med['exec true: curl POST exec'] / med['exec true: fcvm exec']:.2f}, "
      f"python / CLI {med['exec true: python client'] / med['exec true: fcvm exec']:.2f}")
PY
