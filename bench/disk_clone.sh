#!/usr/bin/env bash
# How long a VM's writable root disk takes to create: storage::clone_file (reflink, else sparse
# copy) and a qcow2 overlay, for 512 MiB, 1 GiB and 2 GiB images (synthetic, ~14.6% data like the
# guest rootfs) plus the real rootfs.ext4 when the guest directory has one. Measured on the
# filesystem holding /var/tmp (the copy fallback on ext4) and on a loop-mounted XFS with
# reflink=1 (needs root, mkfs.xfs and a loop device; skipped with the reason otherwise).
#
#   bench/disk_clone.sh [BUILD_DIR]     (default BUILD_DIR: build/dev)
#   RUNS=5 FCVM_GUEST_DIR=...           runs per measurement; where rootfs.ext4 is
#
# Prints a table (fs, method, size, data, ms, ms with fsync, MiB used) and removes everything it made:
# the work directories, the XFS mount and its loop device.
set -euo pipefail

src_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$src_dir/build/dev}
bin=$build_dir/bench/fcvm_bench_disk_clone
runs=${RUNS:-5}
guest_dir=${FCVM_GUEST_DIR:-${FCVM_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}}
rootfs=$guest_dir/images/rootfs.ext4

[ -x "$bin" ] || { echo "no $bin: build the fcvm_bench_disk_clone target first" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "qemu-img is not installed" >&2; exit 1; }

work=$(mktemp -d /var/tmp/fcvm-bench-disk.XXXXXX)
mnt=""
loopdev=""
cleanup() {
  if [ -n "$mnt" ] && mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt" || true; fi
  if [ -n "$loopdev" ]; then losetup -d "$loopdev" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# bench DIR: synthetic images, then the real rootfs copied (sparse) into DIR.
bench() {
  "$bin" --runs "$runs" "$1"
  if [ -f "$rootfs" ]; then
    cp --sparse=always "$rootfs" "$1/rootfs.ext4"
    echo "(real guest rootfs)"
    "$bin" --runs "$runs" "$1" "$1/rootfs.ext4" | tail -n +2
    rm -f "$1/rootfs.ext4"
  fi
}

echo "== host filesystem ($(df --output=fstype /var/tmp | tail -1) at /var/tmp), $runs runs each"
mkdir "$work/host"
bench "$work/host"

xfs_skip=""
if [ "$(id -u)" -ne 0 ]; then
  xfs_skip="needs root (mount)"
elif ! command -v mkfs.xfs >/dev/null; then
  xfs_skip="mkfs.xfs is not installed (xfsprogs)"
elif ! losetup -f >/dev/null 2>&1; then
  xfs_skip="no free loop device"
fi
if [ -z "$xfs_skip" ]; then
  truncate -s 12G "$work/xfs.img"
  mkfs.xfs -q -m reflink=1 "$work/xfs.img"
  if loopdev=$(losetup -f --show "$work/xfs.img" 2>&1); then
    mnt=$work/xfs
    mkdir "$mnt"
    if ! mount -t xfs "$loopdev" "$mnt" 2>"$work/mount.err"; then
      xfs_skip="mount failed: $(cat "$work/mount.err")"
    fi
  else
    xfs_skip="losetup failed: $loopdev"
    loopdev=""
  fi
fi
echo
if [ -n "$xfs_skip" ]; then
  echo "== XFS with reflink: SKIPPED: $xfs_skip"
else
  echo "== XFS with reflink=1 (loop device $loopdev), $runs runs each"
  bench "$mnt"
fi
