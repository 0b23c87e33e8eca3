# Shared helpers of the integration and e2e test scripts (sourced). Tests exit 77 to skip, with
# the reason printed first.
set -euo pipefail

: "${FCVM_BIN:?FCVM_BIN must point at the fcvm binary}"
: "${FCVM_SOURCE_DIR:?FCVM_SOURCE_DIR must point at the source tree}"
FCVM_TEST_IMAGES=${FCVM_TEST_IMAGES:-$FCVM_SOURCE_DIR/build/images}

TEST_NAME=$(basename "$0" .sh)
TEST_TMP=$(mktemp -d "/tmp/fcvm-$TEST_NAME.XXXXXX")
chmod 0755 "$TEST_TMP"
_cleanups=()

log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

on_exit() { _cleanups+=("$1"); }
_run_cleanups() {
  local rc=$?
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[$i]}" || true; done
  rm -rf "$TEST_TMP"
  exit $rc
}
trap _run_cleanups EXIT

need_root() { [ "$(id -u)" -eq 0 ] || skip "needs root: $*"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed"; }

# Runs CMD... until it succeeds, for at most TIMEOUT_S seconds: waits on a condition, never on
# a fixed time. Returns 1 at the deadline.
wait_until() { # TIMEOUT_S CMD...
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
# Something listens on 127.0.0.1:PORT.
port_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A TCP port nobody listens on right now.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# Guest artifacts must exist (make guest / scripts/fcvm-init.sh); the e2e tier does not skip
# silently when they are missing: it fails with the fix.
data_dir() { echo "${FCVM_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}"; }
need_guest() {
  local g=${FCVM_GUEST_DIR:-$(data_dir)}
  for f in kernel/vmlinuz kernel/initrd.img images/rootfs.ext4; do
    [ -e "$g/$f" ] || fail "guest artifact $g/$f missing: run make guest"
  done
  command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing: run make deps"
}
# The fcvm under test, as a command.
fcvm() { "$FCVM_BIN" "$@"; }

# The common start of a real-VM test: root, guest artifacts, the busybox image (in $busybox) and
# a private data dir.
e2e_setup() {
  need_root "the e2e tier runs as root in CI"
  need_guest
  busybox=$(need_image busybox.oci.tar)
  use_private_data_dir
}

# Gives the test its own state (store, VM directories) while it keeps using the installed guest.
use_private_data_dir() {
  export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-$(data_dir)}
  export FCVM_DATA_DIR=$TEST_TMP/data
}
need_image() {
  [ -f "$FCVM_TEST_IMAGES/$1" ] || fail "test image $FCVM_TEST_IMAGES/$1 missing: run make images"
  echo "$FCVM_TEST_IMAGES/$1"
}

# Starts a private registry holding the given archives; sets REGISTRY=127.0.0.1:PORT.
start_registry() {
  need_cmd docker-registry
  need_cmd skopeo
  local port; port=$(free_port)
  "$FCVM_SOURCE_DIR/scripts/local-registry.sh" start "$TEST_TMP/registry" "$port" >&2
  on_exit "'$FCVM_SOURCE_DIR/scripts/local-registry.sh' stop '$TEST_TMP/registry' >&2"
  REGISTRY=127.0.0.1:$port
}
push_image() { # ARCHIVE NAME:TAG
  "$FCVM_SOURCE_DIR/scripts/local-registry.sh" push "$TEST_TMP/registry" "$1" "$2" >&2
}

# Polls URL until it answers 200 (prints the body) or the timeout passes.
wait_http() { # URL TIMEOUT_S
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    if curl -fsS --max-time 2 "$1" 2>/dev/null; then return 0; fi
    sleep 0.3
  done
  return 1
}

# Snapshot of what fcvm may leave behind under this test's data dir: processes whose command line
# names a VM directory there (QEMU, slirp4netns, fake firecracker) and VM directories.
fcvm_leftovers() {
  local d; d=$(data_dir)
  {
    pgrep -r R,S,D -a -f "$d/vms/" || true
    ls "$d/vms" 2>/dev/null | sed 's/^/vm dir: /' || true
  }
}
assert_no_leftovers() {
  local left; left=$(fcvm_leftovers)
  [ -z "$left" ] || fail "left behind: $left"
}

# For tests that drive the real CLI and monitor with fake-firecracker as the VMM (every API call
# checked against Firecracker's spec, the guest played): skips unless the spec, the fake, the
# guest artifacts and /dev/kvm (the Firecracker probe opens it) are here; then exports what fcvm
# and the fake need (a private data directory) and sets $fake, $spec and $guest_dir.
use_fake_firecracker() {
  local shared=${FCVM_SHARED_DIR:-$FCVM_SOURCE_DIR/../shared} f
  spec=$shared/firecracker-api/firecracker.yaml
  [ -f "$spec" ] || skip "Firecracker's API spec $spec is absent (fake-firecracker checks every call against it; set FCVM_SHARED_DIR)"
  fake=${FCVM_FAKE_FIRECRACKER:-${FCVM_BUILD_DIR:-/nonexistent}/tests/fake-firecracker}
  [ -x "$fake" ] || skip "fake-firecracker is not built (set FCVM_FAKE_FIRECRACKER)"
  guest_dir=${FCVM_GUEST_DIR:-$(data_dir)}
  for f in kernel/vmlinux kernel/initrd.img images/rootfs.ext4; do
    [ -e "$guest_dir/$f" ] || skip "guest artifact $guest_dir/$f is missing (scripts/fcvm-init.sh)"
  done
  [ -c /dev/kvm ] || skip "no /dev/kvm: the Firecracker probe opens it and creates a VM"
  need_cmd slirp4netns
  # FCVM_ACCEL=kvm trusts KVM without the boot probe (this host's KVM may not boot a guest).
  export FCVM_DATA_DIR=$TEST_TMP/data FCVM_GUEST_DIR=$guest_dir FCVM_ACCEL=kvm
  export FCVM_FIRECRACKER_BIN=$fake FAKE_FC_SPEC=$spec
  # The fake cannot be jailed (it reads its spec from the host): a jailer that fcvm-init installed
  # must not be picked for it.
  printf 'jailer: off\n' >"$TEST_TMP/config.yml"
  export FCVM_CONFIG=$TEST_TMP/config.yml
  unset FAKE_FC_FAIL FAKE_FC_FAIL_MESSAGE FAKE_FC_EXIT_CODE FAKE_FC_RUN_UNTIL_STOP \
    FAKE_FC_RECORD FAKE_FC_GUEST_DELAY_MS FAKE_FC_START_DELAY_MS
}
