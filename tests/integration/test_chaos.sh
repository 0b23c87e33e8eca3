#!/usr/bin/env bash
# Chaos (tests/chaos/chaos.py): random run -d / run / clone / snapshot create / stop / start / rm
# with a kill -9 of a random fcvm process (CLI, monitor, VMM, slirp4netns, namespace holder) at a
# random moment, rootless and then privileged; after each round `fcvm ls` and `rm -f` must leave
# the host exactly as it was. The VMM is fake-firecracker (the host side is all real).
#   CHAOS_KILLS  kills per network mode (default 12: 24 in all); `make chaos` runs 200
#   CHAOS_SEED   replay a run (the seed is printed)
source "$(dirname "$0")/../lib/common.sh"
need_root "privileged networking and the host-state checks (nft, netns) need root"
need_cmd python3
need_cmd nft
use_fake_firecracker
archive=$FCVM_TEST_IMAGES/busybox.oci.tar
[ -f "$archive" ] || { archive=$TEST_TMP/busybox.oci.tar; echo placeholder >"$archive"; }
on_exit "for v in \$('$FCVM_BIN' ls -a -q 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done; for s in \$('$FCVM_BIN' snapshot ls -q 2>/dev/null); do '$FCVM_BIN' snapshot rm -f \$s >/dev/null 2>&1; done"
# The host-wide part of privileged networking (bridge, table and base chains) is made once and
# kept, by design: it is made before the baseline, so that only what a VM leaves counts; and
# removed afterwards if this test made it.
if ! ip link show fcvm0 >/dev/null 2>&1; then
  on_exit "'$FCVM_SOURCE_DIR/scripts/setup-nftables.sh' remove >/dev/null 2>&1"
fi
"$FCVM_SOURCE_DIR/scripts/setup-nftables.sh" prepare >/dev/null
kills=${CHAOS_KILLS:-12}
for network in rootless privileged; do
  python3 "$FCVM_SOURCE_DIR/tests/chaos/chaos.py" --fcvm "$FCVM_BIN" --kills "$kills" \
    --network "$network" --image "oci-archive:$archive" ${CHAOS_SEED:+--seed "$CHAOS_SEED"} \
    >"$TEST_TMP/chaos-$network.log" 2>&1 || {
    tail -n 40 "$TEST_TMP/chaos-$network.log" >&2
    fail "chaos ($network): leaks or failures (above)"
  }
  log "$(grep '^chaos:' "$TEST_TMP/chaos-$network.log")"
done
