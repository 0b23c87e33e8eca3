#!/usr/bin/env bash
# fcvm against the real Firecracker (the binary in ../shared/firecracker/), inside a QEMU TCG
# guest that has a working /dev/kvm (tests/lib/kvm-guest.sh): this machine's own KVM cannot boot
# a guest. The scenarios themselves are in e2e/nested/firecracker.sh. Skips (77) with the reason
# when the binaries or nested virtualisation are missing.
source "$(dirname "$0")/../lib/common.sh"
need_root "the nested guest runs fcvm as root"
shared=${FCVM_SHARED_DIR:-$FCVM_SOURCE_DIR/../shared}
fc_bin=${FCVM_FIRECRACKER_BIN:-$(ls "$shared"/firecracker/firecracker-v* 2>/dev/null | sort -V | tail -1)}
[ -n "$fc_bin" ] && [ -x "$fc_bin" ] ||
  skip "no Firecracker binary: $shared/firecracker/ is absent (set FCVM_SHARED_DIR or FCVM_FIRECRACKER_BIN)"
jailer_bin=${FCVM_JAILER_BIN:-$(ls "$shared"/firecracker/jailer-v* 2>/dev/null | sort -V | tail -1)}
[ -n "$jailer_bin" ] && [ -x "$jailer_bin" ] ||
  skip "no jailer binary beside Firecracker in $shared/firecracker/ (set FCVM_JAILER_BIN)"
g=${FCVM_GUEST_DIR:-$(data_dir)}
[ -e "$g/kernel/vmlinux" ] ||
  fail "guest artifact $g/kernel/vmlinux missing: Firecracker boots the uncompressed kernel; run make guest"
need_image busybox.oci.tar >/dev/null
need_image nginx.oci.tar >/dev/null
assert_no_leftovers

# The nested guest itself (TCG emulating SVM) sometimes locks up; the harness then kills it at
# once (exit 124). Its own guest (L2) sometimes never reaches its agent either (fcvm's boot
# timeout). Either way the scenarios run again in a fresh guest, at most three times in all.
for attempt in 1 2 3; do
  rc=0
  FCVM_FIRECRACKER_BIN=$(readlink -f "$fc_bin") FCVM_JAILER_BIN=$(readlink -f "$jailer_bin") FCVM_GUEST_DIR=$g \
    "$FCVM_SOURCE_DIR/tests/lib/kvm-guest.sh" --timeout "${FCVM_NESTED_TIMEOUT:-540}" -- \
    bash "$FCVM_SOURCE_DIR/tests/e2e/nested/firecracker.sh" 2>&1 | tee "$TEST_TMP/nested.log" || rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && [ "$attempt" -lt 3 ] || break
  if [ "$rc" -eq 124 ]; then
    log "the nested guest hung or ran out of time (attempt $attempt): trying again in a fresh guest"
  elif grep -q 'the guest agent did not answer within' "$TEST_TMP/nested.log"; then
    log "a VM in the nested guest did not boot (attempt $attempt): trying again in a fresh guest"
  else
    break
  fi
done
case $rc in
  0) ;;
  77) skip "$(grep -m1 'kvm-guest: ' "$TEST_TMP/nested.log" || echo "nested KVM is not available here")" ;;
  124) fail "the nested guest hung or ran out of time on every attempt (see its console above)" ;;
  *) fail "nested Firecracker scenarios failed (exit $rc, above)" ;;
esac
grep -q 'real firecracker: all scenarios passed' "$TEST_TMP/nested.log" || fail "the scenarios did not all run"
assert_no_leftovers
