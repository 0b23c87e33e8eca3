#!/usr/bin/env bash
# Cold run: `fcvm run` of the small nginx image to the first HTTP 200 on the published port, with
# the breakdown fcvm records (--timings), measured in one run:
#   1. the first pull into the host image store (registry and archive), and its disk;
#   2. cold runs of an image already in the store, and the same with --guest-pull (the image
#      pulled or loaded inside the guest): the ratio (HTTP 200) / (agent hello) of each;
#   3. the disk used by 10 VMs of one image (one shared image disk + 10 thin layers);
#   4. ext4 (mke2fs -d) against EROFS (mkfs.erofs) for the image disk: build time and size;
#   5. in one guest, over one stored image's root: `crun run` of the agent's bundle against
#      `podman run --rootfs` (what starting the container costs each way), alternating.
#   bench/cold_run.sh [FCVM_BIN] [IMAGES_DIR]      (make bench)   VMS=10 for part 3
# Figures are milliseconds since `fcvm run` started.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=${1:-$here/build/release/fcvm}
images=${2:-$here/build/images}
vms=${VMS:-10}
tmp=$(mktemp -d /tmp/fcvm-bench.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
cleanup() {
  for v in $("$fcvm" ls -a -q 2>/dev/null); do "$fcvm" rm -f "$v" >/dev/null 2>&1 || true; done
  "$here/scripts/local-registry.sh" stop "$tmp/registry" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

reg_port=$(free_port)
"$here/scripts/local-registry.sh" start "$tmp/registry" "$reg_port" >/dev/null
"$here/scripts/local-registry.sh" push "$tmp/registry" "$images/nginx.oci.tar" nginx:latest >/dev/null
registry_ref=127.0.0.1:$reg_port/nginx:latest
archive_ref=oci-archive:$images/nginx.oci.tar

# 1. First pulls.
echo "first pull into the image store:"
for ref in "$registry_ref" "$archive_ref"; do
  t0=$(now_ms)
  "$fcvm" pull -q "$ref" >/dev/null
  printf '  %-58s %7d ms\n' "$ref" $(($(now_ms) - t0))
done
"$fcvm" rmi "$archive_ref" >/dev/null  # one name left: the next pull of it fetches again
t0=$(now_ms)
"$fcvm" pull -q "$archive_ref" >/dev/null
printf '  %-58s %7d ms\n' "again, image already built (fetch only)" $(($(now_ms) - t0))

# 2. Cold runs.
one_run() { # LABEL FCVM_RUN_ARGS...
  local label=$1 port timings t0 t_http pid
  shift
  port=$(free_port)
  timings=$tmp/timings.$RANDOM
  t0=$(date +%s%N)
  "$fcvm" run --timings "$timings" --publish "127.0.0.1:$port:80" "$@" >/dev/null 2>"$tmp/err" &
  pid=$!
  until curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; do
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
    sleep 0.05
  done
  t_http=$(( ($(date +%s%N) - t0) / 1000000 ))
  kill -TERM "$pid"; wait "$pid" || true
  python3 - "$timings" "$t_http" "$label" <<'PY'
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
  ("image ready", ms("image_ready")),
  ("container running", ms("container_running")),
  ("HTTP 200 on the host", http),
]
print(f"cold run, {label}:")
for name, v in rows: print(f"  {name:<34} {v:9.1f} ms")
print(f"  ratio (HTTP 200) / (agent hello)   {http / ms('agent_hello'):9.2f}")
PY
}
one_run "stored image (registry name)" "$registry_ref"
one_run "stored image (oci-archive)" "$archive_ref"
one_run "--guest-pull from the registry" --guest-pull "$registry_ref"
one_run "--guest-pull of the oci-archive (podman load)" --guest-pull "$archive_ref"
echo "  target for a stored image: ratio <= 1.3"

# 3. Disk used by VMS VMs of one image.
pids=()
for i in $(seq "$vms"); do
  "$fcvm" run -d --name "disk$i" --mem 256 "$archive_ref" >/dev/null 2>"$tmp/err$i" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { cat "$tmp"/err* >&2; exit 1; }; done
image_kib=$(du -sk "$FCVM_DATA_DIR/image-store/disks" | cut -f1)
vm_kib=$(du -sk "$FCVM_DATA_DIR/vms" | cut -f1)
echo "disk used by $vms running VMs of one image:"
printf '  %-40s %8d KiB\n' "image disks (all images in the store)" "$image_kib" \
  "$vms VMs' own files (disks, logs)" "$vm_kib" "per VM" $((vm_kib / vms))
for v in $(seq "$vms"); do "$fcvm" rm -f "disk$v" >/dev/null; done

# 4. ext4 against EROFS for the image disk (host side: build time and size).
if command -v mkfs.erofs >/dev/null && command -v umoci >/dev/null; then
  skopeo copy -q "$archive_ref" "oci:$tmp/layout:img"
  umoci unpack --image "$tmp/layout:img" "$tmp/bundle" >/dev/null
  usage=$(du -sk "$tmp/bundle/rootfs" | cut -f1)
  echo "image disk formats (nginx, ${usage} KiB unpacked):"
  truncate -s "$((usage * 2 + 65536))k" "$tmp/img.ext4"
  t0=$(now_ms)
  mke2fs -q -F -t ext4 -O ^has_journal,^resize_inode -m 0 -d "$tmp/bundle/rootfs" "$tmp/img.ext4" \
    "$((usage * 2 + 65536))k"
  printf '  %-28s %6d ms %8d KiB\n' "ext4 (mke2fs -d)" $(($(now_ms) - t0)) "$(du -k "$tmp/img.ext4" | cut -f1)"
  t0=$(now_ms)
  mkfs.erofs "$tmp/img.erofs" "$tmp/bundle/rootfs" >/dev/null 2>&1
  printf '  %-28s %6d ms %8d KiB\n' "erofs (uncompressed)" $(($(now_ms) - t0)) "$(du -k "$tmp/img.erofs" | cut -f1)"
  t0=$(now_ms)
  mkfs.erofs -zlz4hc "$tmp/img-lz4.erofs" "$tmp/bundle/rootfs" >/dev/null 2>&1
  printf '  %-28s %6d ms %8d KiB\n' "erofs (lz4hc)" $(($(now_ms) - t0)) "$(du -k "$tmp/img-lz4.erofs" | cut -f1)"
else
  echo "image disk formats: skipped (mkfs.erofs or umoci not installed)"
fi

# 5. crun against podman in one guest (busybox's stored root; the command is `sleep 0`).
runs=${RUNS:-3}
"$fcvm" run -d --name runtimes "oci-archive:$images/busybox.oci.tar" sleep 600 >/dev/null
# The agent's bundle for the main container, copied with its own cgroup and `sleep 0`.
"$fcvm" exec --vm runtimes -- sh -c 'mkdir -p /tmp/b && sed -e "s|\"600\"|\"0\"|; s|/fcvm/main|/fcvm/bench|" /run/fcvm-agent/bundle/config.json >/tmp/b/config.json'
echo "container start in one guest (busybox, sleep 0; $runs runs each, alternating):"
"$fcvm" exec --vm runtimes -- sh -c '
  ms() { echo $(($(date +%s%N) / 1000000)); }
  crun_total=0 podman_total=0
  for i in $(seq '"$runs"'); do
    t0=$(ms); crun --root /tmp/crun-bench run --bundle /tmp/b bench$i >/dev/null || exit 1
    t1=$(ms); podman run --rm --network host --rootfs /run/fcvm/rootfs sleep 0 >/dev/null || exit 1
    t2=$(ms)
    crun_total=$((crun_total + t1 - t0)) podman_total=$((podman_total + t2 - t1))
    echo "  run $i: crun run $((t1 - t0)) ms, podman run --rootfs $((t2 - t1)) ms"
  done
  echo "  mean: crun run $((crun_total / '"$runs"')) ms, podman run --rootfs $((podman_total / '"$runs"')) ms"
  awk -v c=$crun_total -v p=$podman_total "BEGIN { printf \"  ratio podman / crun %.1f\\n\", p / c }"'
"$fcvm" rm -f runtimes >/dev/null
