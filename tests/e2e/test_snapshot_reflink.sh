#!/usr/bin/env bash
# Snapshots and clones on a filesystem with reflinks (a loop-mounted XFS, reflink=1): the
# snapshot's disk shares the source VM's blocks instead of copying them (the RAM lives on tmpfs
# and is copied), the clone's disk is a layer over it, and the clone serves. Skips with the reason where loop devices or mkfs.xfs are
# unavailable.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
need_cmd mkfs.xfs
need_cmd losetup
need_cmd filefrag
nginx=$(need_image nginx.oci.tar)

img=$TEST_TMP/xfs.img
mnt=$TEST_TMP/xfs
truncate -s 3G "$img"
mkfs.xfs -q -m reflink=1 "$img" || skip "mkfs.xfs -m reflink=1 failed"
mkdir -p "$mnt"
loop=$(losetup --find --show "$img" 2>/dev/null) || skip "no loop device available"
on_exit "losetup -d '$loop' 2>/dev/null"
mount "$loop" "$mnt" || skip "cannot mount a loop device here"
on_exit "umount '$mnt' 2>/dev/null || umount -l '$mnt'"
export FCVM_DATA_DIR=$mnt/data
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done; for s in \$('$FCVM_BIN' snapshot ls -q 2>/dev/null); do '$FCVM_BIN' snapshot rm -f \$s >/dev/null 2>&1; done"

p0=$(free_port)
fcvm run -d --name src --mem 512 -p "$p0:80" --wait-ready 'mode=http,url=http://127.0.0.1:80/' \
  --save-snapshot warm --timings "$TEST_TMP/src.timings" "oci-archive:$nginx" >/dev/null
dir=$(fcvm snapshot inspect warm | jq -r '.[0].paths.dir')
# A reflinked copy: its extents are shared with the source VM's disk.
filefrag -v "$dir/disk.qcow2" | grep -q shared ||
  fail "disk.qcow2 is not a reflink: $(filefrag -v "$dir/disk.qcow2" | head -5)"
saved=$(jq -s 'map(select(.event=="ready" or .event=="snapshot_saved")) | (.[1].ms - .[0].ms) | floor' "$TEST_TMP/src.timings")
log "snapshot of a 512 MiB VM with reflinks: $saved ms"

p1=$(free_port)
fcvm clone --snapshot warm --name c1 -p "$p1:80" -d >/dev/null || fail "clone on XFS"
curl -fsS "http://127.0.0.1:$p1/" | grep -q 'Welcome to fcvm nginx' || fail "the clone does not serve"
curl -fsS "http://127.0.0.1:$p0/" | grep -q 'Welcome to fcvm nginx' || fail "the source does not serve"
fcvm rm -f c1 src >/dev/null
fcvm snapshot rm warm >/dev/null
[ -z "$(ls "$FCVM_DATA_DIR/snapshots")" ] || fail "snapshot files left"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers
echo "snapshots with reflinks: ok"
