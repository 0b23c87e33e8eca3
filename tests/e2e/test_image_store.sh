#!/usr/bin/env bash
# The host image store end to end: bad archives, an unknown tag and an unreachable registry each
# fail with one clear error and leave nothing; two concurrent pulls of one image build one disk;
# `run` from a local registry pulls on the host; layers are applied correctly (whiteouts, an
# opaque directory, hard links, a symlink out of the root, numeric owners) as the container sees
# them; two VMs of one image share one disk; rmi is refused while a VM or snapshot uses the image
# and -f removes them with it.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
need_cmd skopeo
need_cmd umoci
nginx=$(need_image nginx.oci.tar)
store=$FCVM_DATA_DIR/image-store

assert_store_empty() { # WHAT
  [ -z "$(fcvm images -q)" ] || fail "$1: images listed: $(fcvm images)"
  [ -z "$(ls -A "$store/disks" 2>/dev/null)" ] || fail "$1: disk left: $(ls "$store/disks")"
  [ -z "$(ls -A "$store/tmp" 2>/dev/null)" ] || fail "$1: work files left: $(ls "$store/tmp")"
}

expect_error() { # WHAT WANT_RC PATTERN -- ARGS...
  local what=$1 want=$2 pattern=$3 rc=0
  shift 4
  fcvm "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "$what: exit $rc, want $want: $(cat "$TEST_TMP/err")"
  [ "$(grep -c 'error' "$TEST_TMP/err")" -eq 1 ] || fail "$what: want one error line: $(cat "$TEST_TMP/err")"
  grep -q -- "$pattern" "$TEST_TMP/err" || fail "$what: error does not say '$pattern': $(cat "$TEST_TMP/err")"
  log "$what: $(cat "$TEST_TMP/err")"
  assert_store_empty "$what"
}

# 1. Bad input: nothing half-built, no row, no file.
head -c 200000 /dev/urandom >"$TEST_TMP/random.tar"
expect_error "corrupt archive" 2 "random.tar is not a readable oci-archive" -- pull "oci-archive:$TEST_TMP/random.tar"
head -c "$(($(stat -c %s "$busybox") / 2))" "$busybox" >"$TEST_TMP/truncated.tar"
expect_error "truncated archive" 2 "truncated.tar is not a readable oci-archive" -- pull "oci-archive:$TEST_TMP/truncated.tar"
start_registry
push_image "$busybox" busybox:latest
expect_error "unknown tag" 2 "the registry has no image $REGISTRY/busybox:nosuch" -- pull "$REGISTRY/busybox:nosuch"
closed=$(free_port)
expect_error "unreachable registry" 1 "cannot reach the registry of 127.0.0.1:$closed/busybox:latest" -- \
  run "127.0.0.1:$closed/busybox:latest" true
assert_no_leftovers

# 2. Two concurrent pulls of one image: both answer its id, one disk is built.
FCVM_LOG=debug fcvm pull "oci-archive:$nginx" >"$TEST_TMP/id1" 2>"$TEST_TMP/pull1" &
p1=$!
FCVM_LOG=debug fcvm pull "oci-archive:$nginx" >"$TEST_TMP/id2" 2>"$TEST_TMP/pull2" &
p2=$!
wait "$p1" || fail "first pull failed: $(cat "$TEST_TMP/pull1")"
wait "$p2" || fail "second pull failed: $(cat "$TEST_TMP/pull2")"
[ "$(cat "$TEST_TMP/id1")" = "$(cat "$TEST_TMP/id2")" ] || fail "two ids for one image"
builds=$(cat "$TEST_TMP/pull1" "$TEST_TMP/pull2" | grep -c 'mke2fs' || true)
[ "$builds" -eq 1 ] || fail "the disk was built $builds times, want 1"
[ "$(ls "$store/disks" | wc -l)" -eq 1 ] || fail "disks: $(ls "$store/disks")"
nginx_id=$(cat "$TEST_TMP/id1")
fcvm images --json | jq -e --arg id "$nginx_id" '.[] | select(.id == $id) | .config.cmd == ["nginx"]' >/dev/null ||
  fail "images --json lacks the image's config: $(fcvm images --json)"

# 3. From the local registry: pulled on the host (the guest needs no way to the registry).
out=$(fcvm run "$REGISTRY/busybox:latest" sh -c 'echo from-the-store; exit 3' 2>"$TEST_TMP/err") && rc=0 || rc=$?
[ "$rc" -eq 3 ] || fail "run from registry: exit $rc: $(cat "$TEST_TMP/err")"
[ "$out" = "from-the-store" ] || fail "run from registry: output '$out'"
fcvm images | grep -q "^$REGISTRY/busybox:latest " || fail "registry image not listed: $(fcvm images)"
[ "$(fcvm images --filter "reference=$REGISTRY/busybox:latest" --filter reference=no-such --format '{{.Name}}')" = "$REGISTRY/busybox:latest" ] ||
  fail "images --filter reference --format: $(fcvm images --filter "reference=$REGISTRY/busybox:latest" --format '{{.Name}}' 2>&1)"
[ -z "$(fcvm images -q --filter dangling=true)" ] || fail "images --filter dangling=true: $(fcvm images)"
rc=0; fcvm images --filter dangling=maybe >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "images --filter dangling=maybe: exit $rc"

# 4. Layers as the container sees them.
python3 "$FCVM_SOURCE_DIR/tests/support/make_layered_image.py" "$busybox" "$TEST_TMP/layered.tar"
out=$(fcvm run "oci-archive:$TEST_TMP/layered.tar" sh -c '
  echo "user=$(id -u):$(id -g):$(id -G | tr " " ,) home=$HOME pwd=$(pwd) from_image=$FROM_IMAGE"
  cd /layers
  echo "kept=$(cat kept) gone=$(test -e gone && echo present || echo absent)"
  echo "dir=$(ls dir | tr "\n" " ")"
  echo "hard=$(stat -c %h:%i hard) kept=$(stat -c %h:%i kept)"
  echo "escape=$(readlink escape)"
  echo "owned=$(stat -c %u:%g:%a owned)"' 2>"$TEST_TMP/err") || fail "layered run: $(cat "$TEST_TMP/err")"
log "layered image: $(echo "$out" | tr '\n' '|')"
grep -qx 'kept=kept gone=absent' <<<"$out" || fail "whiteout not honoured: $out"
grep -qx 'dir=new ' <<<"$out" || fail "opaque directory not honoured: $out"
hard=$(sed -n 's/^hard=\([^ ]*\) kept=\(.*\)$/\1 \2/p' <<<"$out")
read -r h k <<<"$hard"
[ "$h" = "$k" ] && [ "${h%%:*}" = 2 ] || fail "hard link lost: $out"
grep -qx 'escape=../../../../etc/hostname' <<<"$out" || fail "symlink changed: $out"
grep -qx 'owned=1234:5678:640' <<<"$out" || fail "owner or mode lost: $out"
# The image's USER, resolved in the container's own passwd and group (the latter a symlink that
# must resolve inside the root), its workdir and env.
grep -qx 'user=1234:5678:5678,4321 home=/home/app pwd=/layers from_image=1' <<<"$out" ||
  fail "image config (user, groups, home, workdir, env) not applied: $out"

# 5. Two VMs of one image share its disk.
p1=$(free_port)
fcvm run -d --name share1 -p "$p1:80" --wait-ready mode=http,url=http://127.0.0.1:80/ "oci-archive:$nginx" >/dev/null ||
  fail "share1 did not start"
on_exit "'$FCVM_BIN' rm -f share1 share2 clone1 >/dev/null 2>&1"
p2=$(free_port)
fcvm run -d --name share2 -p "$p2:80" --wait-ready mode=http,url=http://127.0.0.1:80/ "oci-archive:$nginx" >/dev/null ||
  fail "share2 did not start"
wait_http "http://127.0.0.1:$p1/" 30 >/dev/null || fail "share1 does not serve"
wait_http "http://127.0.0.1:$p2/" 30 >/dev/null || fail "share2 does not serve"
[ "$(fcvm inspect share1 | jq -r '.[0].image_id')" = "$nginx_id" ] || fail "inspect lacks the image id"
disk=$store/disks/${nginx_id#sha256:}.ext4
users=$(pgrep -a -f "$FCVM_DATA_DIR/vms/" | grep -c -- "$disk" || true)
[ "$users" -eq 2 ] || fail "$users VMMs attach $disk, want 2"
log "disk use: image $(du -k "$disk" | cut -f1) KiB shared; per VM: $(du -sk "$FCVM_DATA_DIR"/vms/* | cut -f1 | tr '\n' ' ')KiB"

# 6. rmi refused while VMs, then a snapshot, use the image; -f removes them and it.
expect_in_use() { # WHO
  local rc=0
  fcvm rmi "oci-archive:$nginx" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
  [ "$rc" -eq 1 ] || fail "rmi in use: exit $rc: $(cat "$TEST_TMP/err")"
  grep -q "in use by .*$1" "$TEST_TMP/err" || fail "rmi in use: unclear: $(cat "$TEST_TMP/err")"
  [ -f "$disk" ] || fail "rmi removed the disk of an image in use"
}
expect_in_use "VM share1, VM share2"
fcvm snapshot create share1 snap1 >/dev/null || fail "snapshot failed"
[ "$(fcvm snapshot inspect snap1 | jq -r '.[0].image_id')" = "$nginx_id" ] ||
  fail "snapshot inspect lacks the image id"
fcvm rm -f share1 share2 >/dev/null
expect_in_use "snapshot snap1"
p3=$(free_port)
fcvm clone -d --snapshot snap1 --name clone1 -p "$p3:80" >/dev/null || fail "clone failed"
wait_http "http://127.0.0.1:$p3/" 60 >/dev/null || fail "the clone does not serve"
fcvm rmi -f "$nginx_id" >"$TEST_TMP/out" || fail "rmi -f failed"
grep -q "Removed VM: clone1" "$TEST_TMP/out" && grep -q "Removed snapshot: snap1" "$TEST_TMP/out" &&
  grep -q "Deleted: $nginx_id" "$TEST_TMP/out" || fail "rmi -f: $(cat "$TEST_TMP/out")"
[ ! -e "$disk" ] || fail "rmi -f left the disk"
assert_no_leftovers
echo "image store: errors clean, one build per image, registry, layers, sharing, rmi: ok"
