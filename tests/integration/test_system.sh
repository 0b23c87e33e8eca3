#!/usr/bin/env bash
# `fcvm system df` and `fcvm system prune` over real rows, disks and a real image store, with
# fake-firecracker as the VMM: a running VM, an exited one kept, one that made a snapshot and
# stopped, and an image nothing uses. df counts them; prune asks first (a "no" removes nothing),
# then with -f removes the exited VMs, the snapshot nobody cloned and the unused image, and keeps
# the running VM and its image.
source "$(dirname "$0")/../lib/common.sh"
need_root "the network helper and the VM directory checks run as root in CI"
use_fake_firecracker
need_cmd jq
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done; for s in \$('$FCVM_BIN' snapshot ls -q 2>/dev/null); do '$FCVM_BIN' snapshot rm -f \$s >/dev/null 2>&1; done"
export FAKE_FC_GUEST_DELAY_MS=100 FAKE_FC_START_DELAY_MS=100
busybox=$FCVM_TEST_IMAGES/busybox.oci.tar
sqlite=$FCVM_TEST_IMAGES/sqlite.oci.tar
[ -f "$busybox" ] && [ -f "$sqlite" ] || skip "test images missing: run make images"
fc() { "$FCVM_BIN" "$@"; }

FAKE_FC_RUN_UNTIL_STOP=1 fc run -d --vmm firecracker --name keep "oci-archive:$busybox" >/dev/null ||
  fail "run -d keep"
fc run --vmm firecracker --keep --name gone "oci-archive:$busybox" >/dev/null 2>&1 || true
FAKE_FC_RUN_UNTIL_STOP=1 fc run -d --vmm firecracker --name src --save-snapshot snap-a \
  "oci-archive:$busybox" >/dev/null || fail "run -d --save-snapshot"
fc stop -t 1 src >/dev/null || fail "stop src"
fc pull -q "oci-archive:$sqlite" >/dev/null || fail "pull sqlite"

df=$(fc system df --json) || fail "system df"
log "df before: $(jq -c . <<<"$df")"
check() { # JQ-EXPR WHAT
  jq -e "$1" <<<"$df" >/dev/null || fail "$2: $(jq -c . <<<"$df")"
}
check '.vms.total == 3 and .vms.active == 1 and .vms.reclaimable_bytes > 0' "VMs counted"
check '.snapshots.total == 1 and .snapshots.active == 0 and .snapshots.reclaimable_bytes == .snapshots.bytes' "snapshots counted"
check '.images.total == 2 and .images.active == 1 and .images.reclaimable_bytes > 0' "images counted"
fc system df | grep -Eq '^VMs +3 +1 ' || fail "system df table: $(fc system df)"

# A "no" (or no answer) removes nothing.
echo n | fc system prune >/dev/null 2>&1 || fail "prune answered no"
[ "$(fc system df --json | jq -c .)" = "$(jq -c . <<<"$df")" ] || fail "prune removed something after a no"

out=$(fc system prune -f --json) || fail "system prune -f: $out"
log "pruned: $(jq -c . <<<"$out")"
jq -e '(.vms | sort) == ["gone", "src"] and .snapshots == ["snap-a"] and (.images | length) == 1 and .reclaimed_bytes > 0' \
  <<<"$out" >/dev/null || fail "prune removed the wrong things: $out"
[ "$(fc ls -a -q | wc -l)" -eq 1 ] && fc ls | grep -q '^keep ' || fail "prune touched the running VM: $(fc ls -a)"
[ -z "$(fc snapshot ls -q)" ] || fail "snapshot left: $(fc snapshot ls)"
[ "$(fc images -q | wc -l)" -eq 1 ] || fail "images left: $(fc images)"
df=$(fc system df --json)
check '.vms.total == 1 and .snapshots.total == 0 and .images.total == 1 and .images.active == 1' "df after prune"
[ "$(ls "$FCVM_DATA_DIR/vms" | wc -l)" -eq 1 ] || fail "VM directories left: $(ls "$FCVM_DATA_DIR/vms")"
[ "$(ls "$FCVM_DATA_DIR/image-store/disks" | wc -l)" -eq 1 ] || fail "image disks left: $(ls "$FCVM_DATA_DIR/image-store/disks")"
"$FCVM_BIN" system >/dev/null 2>&1 && fail "system without a subcommand succeeded"
fc rm -f keep >/dev/null
echo "system: ok"
