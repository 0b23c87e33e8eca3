#!/usr/bin/env bash
# Volume throughput by mode, beside the same operations on the host's own disk:
#   sequential write (dd 1 MiB blocks, MB=256 MiB, then fsync), sequential read of that file
#   (guest page cache dropped first), and small-file creation (FILES=1000 files of 4 KiB, then
#   sync), measured inside the container of one VM per mode (busybox tools, timed with the
#   guest's /proc/uptime) and on the host in a directory under /var/tmp.
# Block mode's two host-side copies are reported too: the image made at start (volumes_ready
# milestone) and the write-back after a clean stop (volume_written_back).
#   bench/volumes.sh [FCVM_BIN] [IMAGES_DIR]       (make bench)   MB=256 FILES=1000
# Modes: block, sshfs (needs openssh-sftp-server and bubblewrap), nfs (needs root and nfs-ganesha).
# Under TCG the guest CPU, not the disk, is the limit for every in-guest figure.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=${1:-$here/build/release/fcvm}
images=${2:-$here/build/images}
mb=${MB:-256}
files=${FILES:-1000}
tmp=$(mktemp -d /var/tmp/fcvm-bench-vol.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
cleanup() {
  for v in $("$fcvm" __names 2>/dev/null); do "$fcvm" rm -f "$v" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# The workload, as a shell script for busybox (guest) or the host's sh: prints
# "WRITE_S READ_S FILES_S" (seconds). $1 = directory, $2 = a command that drops the page cache.
workload='
d=$1; drop=$2
now() { cut -d" " -f1 /proc/uptime; }
a=$(now); dd if=/dev/zero of="$d/seq" bs=1M count='"$mb"' conv=fsync 2>/dev/null; b=$(now)
eval "$drop"
c=$(now); dd if="$d/seq" of=/dev/null bs=1M 2>/dev/null; e=$(now)
mkdir -p "$d/small"; head -c 4096 /dev/zero > "$d/one"
f=$(now); i=0; while [ $i -lt '"$files"' ]; do cat "$d/one" > "$d/small/$i"; i=$((i+1)); done; sync; g=$(now)
echo "$b $a $e $c $g $f" | awk "{ printf \"%.2f %.2f %.2f\\n\", \$1-\$2, \$3-\$4, \$5-\$6 }"
'
row() { # LABEL "W R F"
  read -r w r f <<<"$2"
  awk -v l="$1" -v w="$w" -v r="$r" -v f="$f" -v mb="$mb" -v n="$files" 'BEGIN {
    printf "%-26s %12.1f %12.1f %14.0f\n", l, mb / (w > 0 ? w : 0.01), mb / (r > 0 ? r : 0.01), n / (f > 0 ? f : 0.01) }'
}

printf '%-26s %12s %12s %14s\n' where "write MB/s" "read MB/s" "small files/s"
mkdir -p "$tmp/host"
drop_host='sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true'
row "host disk (/var/tmp)" "$(sh -c "$workload" sh "$tmp/host" "$drop_host")"

for mode in block sshfs nfs; do
  dir=$tmp/vol-$mode
  mkdir -p "$dir"
  if [ "$mode" = sshfs ] && { [ ! -x /usr/lib/openssh/sftp-server ] || ! command -v bwrap >/dev/null; }; then
    echo "$mode: skipped (needs openssh-sftp-server and bubblewrap)"
    continue
  fi
  net=()
  if [ "$mode" = nfs ]; then
    if [ "$(id -u)" -ne 0 ] || [ ! -x /usr/bin/ganesha.nfsd ]; then
      echo "$mode: skipped (needs root and nfs-ganesha)"
      continue
    fi
    net=(--network privileged)
  fi
  "$fcvm" run -d --name "bench-$mode" "${net[@]}" --timings "$tmp/t-$mode" --map "$dir:/data,mode=$mode" \
    "oci-archive:$images/sqlite.oci.tar" sleep 3600 >/dev/null
  vm=bench-$mode
  # The page cache is the guest's: drop it from the guest OS between write and read.
  drop="true"
  result=$("$fcvm" exec "$vm" -- sh -c "$workload" sh /data "$drop" 2>/dev/null || true)
  if [ -z "$result" ]; then echo "$mode: the workload failed"; continue; fi
  # Re-read with the guest's cache dropped (the container cannot do it itself).
  "$fcvm" exec --vm "$vm" -- sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'
  reread=$("$fcvm" exec "$vm" -- sh -c 'a=$(cut -d" " -f1 /proc/uptime); dd if=/data/seq of=/dev/null bs=1M 2>/dev/null; b=$(cut -d" " -f1 /proc/uptime); echo "$b $a" | awk "{ printf \"%.2f\", \$1-\$2 }"')
  read -r w _ f <<<"$result"
  row "container, $mode" "$w $reread $f"
  "$fcvm" stop -t 1 "$vm" >/dev/null
  if [ "$mode" = block ]; then
    python3 - "$tmp/t-$mode" "$mb" "$files" <<'PY'
import json, sys
ev = {}
for line in open(sys.argv[1]):
    j = json.loads(line); ev.setdefault(j["event"], j["ms"])
made = ev.get("volumes_ready", 0) - ev.get("backend_ready", 0)
back = ev.get("volume_written_back", float("nan")) - ev.get("volume_writing_back", float("nan"))
print(f"  block, host side: image of the (empty) directory made at start in {made:.0f} ms; "
      f"the container's {sys.argv[2]} MiB + {sys.argv[3]} files written back at stop in {back:.0f} ms")
PY
  fi
  "$fcvm" rm "$vm" >/dev/null
done
