#!/usr/bin/env bash
# The real Firecracker path: `fcvm run --vmm firecracker` boots the guest in Firecracker, runs a
# busybox container that prints a line and exits 7, and leaves nothing behind. Runs only where a
# firecracker binary and a KVM that boots guests exist; skips (77) with the reason otherwise.
source "$(dirname "$0")/../lib/common.sh"

fc_bin=${FCVM_FIRECRACKER_BIN:-$(command -v firecracker || true)}
[ -n "$fc_bin" ] && [ -x "$fc_bin" ] || skip "no firecracker binary (PATH or FCVM_FIRECRACKER_BIN)"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "KVM cannot boot a guest here (/dev/kvm missing or not accessible)"
need_root "the e2e tier runs as root in CI"
g=${FCVM_GUEST_DIR:-$(data_dir)}
[ -e "$g/kernel/vmlinux" ] ||
  fail "guest artifact $g/kernel/vmlinux missing: Firecracker boots the uncompressed kernel; run make guest"
busybox=$(need_image busybox.oci.tar)
assert_no_leftovers

rc=0
"$FCVM_BIN" run --vmm firecracker "oci-archive:$busybox" \
  sh -c 'echo "hello from firecracker"; exit 7' >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out"
if [ "$rc" -ne 7 ] && grep -q "KVM cannot boot a guest here" "$TEST_TMP/err"; then
  skip "$(grep -m1 "KVM cannot boot a guest here" "$TEST_TMP/err")"
fi
[ "$rc" -eq 7 ] || { cat "$TEST_TMP/err" >&2; fail "exit code $rc, want 7"; }
grep -qx 'hello from firecracker' "$TEST_TMP/out" || fail "container output missing"
left=$(pgrep -a -f "$fc_bin --api-sock" || true)
[ -z "$left" ] || fail "firecracker left running: $left"
assert_no_leftovers
echo "firecracker run, output and exit code: ok"
