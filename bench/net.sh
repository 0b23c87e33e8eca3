#!/usr/bin/env bash
# Rootless vs privileged networking: how long one VM's network takes to set up, and the TCP
# throughput from the host to a server in the guest.
#
#   bench/net.sh [BUILD_DIR]                   (default build/release)
#   RUNS=20 SECS=5                             set-up runs per mode; seconds per iperf3 run
#
# 1. Set-up alone: fcvm_bench_net_setup builds and destroys the network of a VM RUNS times per
#    mode (step 4 of a VM's start, one published port) and prints min/median/max ms.
# 2. The same step inside a real start (`fcvm run --timings`): the part before the VMM starts
#    (network_started - disk_ready) plus what is left of the rest once the VMM runs
#    (network_finished - vmm_started; rootless: slirp4netns readiness and port forwards overlap
#    the VMM's start).
# 3. Throughput host -> guest: iperf3 (Debian's) as a server in a container of the VM (an image
#    built here from the host's iperf3 and the libraries it links), `iperf3 -c` on the host for
#    SECS seconds through the published port on 127.0.0.1 (both modes) and, privileged, straight
#    to the VM's host-side address. Under TCG the guest's CPU, not the network, is the limit.
# The privileged figures need root (they are skipped with the reason otherwise); iperf3 comes from
# scripts/install-deps.sh test. Everything made is removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/release}
fcvm=$build/fcvm
setup_bench=$build/bench/fcvm_bench_net_setup
runs=${RUNS:-20}
secs=${SECS:-5}
tmp=$(mktemp -d /tmp/fcvm-bench-net.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
cleanup() {
  "$fcvm" rm -f bench-rootless bench-privileged >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

for f in "$fcvm" "$setup_bench"; do
  [ -x "$f" ] || { echo "no $f: build fcvm and fcvm_bench_net_setup first" >&2; exit 1; }
done
command -v iperf3 >/dev/null || { echo "iperf3 is not installed: scripts/install-deps.sh test" >&2; exit 1; }
modes=(rootless)
if [ "$(id -u)" -eq 0 ] && command -v nft >/dev/null; then
  modes+=(privileged)
else
  echo "privileged: skipped (needs root and nft)"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# An oci-archive with iperf3 and exactly the libraries it links.
build_iperf3_image() { # OUT
  local root=$tmp/iperf3-root lib
  mkdir -p "$root/usr/bin" "$root/etc" "$root/tmp"
  cp /usr/bin/iperf3 "$root/usr/bin/"
  for lib in $(ldd /usr/bin/iperf3 | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  python3 - "$root" "$1" <<'PY'
import gzip, hashlib, io, json, sys, tarfile
root, out = sys.argv[1], sys.argv[2]
blobs = {}
def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": "sha256:" + digest, "size": len(data)}
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    t.add(root, arcname=".")
layer = layer.getvalue()
config = {"architecture": "amd64", "os": "linux",
          "config": {"Cmd": ["iperf3", "-s"], "ExposedPorts": {"5201/tcp": {}}},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(blob(json.dumps(config).encode()), mediaType="application/vnd.oci.image.config.v1+json"),
            "layers": [dict(blob(gzip.compress(layer)), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [dict(blob(json.dumps(manifest).encode()), mediaType="application/vnd.oci.image.manifest.v1+json",
                            annotations={"org.opencontainers.image.ref.name": "localhost/fcvm-bench/iperf3:latest"})]}
with tarfile.open(out, "w") as t:
    def add(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", json.dumps(index).encode())
    for digest, data in blobs.items():
        add("blobs/sha256/" + digest, data)
PY
}

rate() { # HOST PORT: Mbit/s received by the server
  iperf3 -c "$1" -p "$2" -t "$secs" -J | python3 -c \
    'import json, sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))'
}

echo "== network set-up alone ($runs runs per mode, one published port)"
mkdir -p "$tmp/setup"
"$setup_bench" --runs "$runs" "$tmp/setup"

build_iperf3_image "$tmp/iperf3.oci.tar"
declare -A step_ms
declare -A mbps_port
declare -A mbps_addr
for mode in "${modes[@]}"; do
  port=$(free_port)
  "$fcvm" run -d --name "bench-$mode" --network "$mode" -p "$port:5201" --timings "$tmp/t-$mode" \
    "oci-archive:$tmp/iperf3.oci.tar" iperf3 -s >/dev/null
  for _ in $(seq 100); do
    "$fcvm" logs "bench-$mode" 2>/dev/null | grep -q 'Server listening' && break
    sleep 0.2
  done
  step_ms[$mode]=$(python3 - "$tmp/t-$mode" <<'PY'
import json, sys
ev = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    ev.setdefault(e["event"], e["ms"])
print(f'{ev["network_started"] - ev["disk_ready"]:.1f} + {ev["network_finished"] - ev["vmm_started"]:.1f}')
PY
)
  mbps_port[$mode]=$(rate 127.0.0.1 "$port")
  mbps_addr[$mode]=-
  if [ "$mode" = privileged ]; then
    addr=$("$fcvm" inspect "bench-$mode" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["network"]["host_address"])')
    mbps_addr[$mode]=$(rate "$addr" 5201)
  fi
  "$fcvm" rm -f "bench-$mode" >/dev/null
done

echo
echo "== in a VM start (fcvm run --timings), and TCP host -> guest (iperf3, $secs s)"
printf '%-11s %22s %26s %26s\n' mode "network step ms" "Mbit/s via 127.0.0.1:PORT" "Mbit/s to the VM address"
for mode in "${modes[@]}"; do
  printf '%-11s %22s %26s %26s\n' "$mode" "${step_ms[$mode]}" "${mbps_port[$mode]}" "${mbps_addr[$mode]}"
done
