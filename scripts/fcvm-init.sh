#!/usr/bin/env bash
# Prepares everything fcvm boots: the guest kernel, its initramfs, the agent and the base root
# filesystem. Idempotent: each artifact carries a stamp holding a hash of its inputs, and a run
# with unchanged inputs returns in well under a second.
#
#   scripts/fcvm-init.sh [--agent PATH] [--force]
#
# Artifacts, under DATA=${FCVM_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}:
#   bin/fc-agent          the guest agent (copied from --agent PATH or $FCVM_AGENT_BIN; the static
#                         binary of the CMake target fc-agent)
#   kernel/vmlinuz        Debian cloud kernel bzImage (QEMU)
#   kernel/initrd.img     tiny initramfs (busybox + virtio/vsock/overlay modules)
#   kernel/vmlinux        uncompressed ELF of the same kernel (Firecracker, with initrd.img)
#   kernel/vmlinux-firecracker  optional, made by scripts/build-kernel.sh: everything built in,
#                         no initramfs needed; fcvm prefers it with Firecracker when present
#   kernel/version        the kernel release
#   images/rootfs.ext4    read-only (0444) base root filesystem; VMs boot a qcow2/reflink copy
#   bin/firecracker       downloaded when no firecracker is on PATH and the network allows it
#   bin/jailer            its jailer, from the same release
#   cache/                stamps, the cached mmdebstrap tarball, build logs (cache/logs/)
# If only the agent changed, only rootfs.ext4 is rewritten (from the cached mmdebstrap tarball).
#
# Options:
#   --agent PATH  the fc-agent binary; default $FCVM_AGENT_BIN, else the one already in DATA
#   --force       rebuild everything, including the mmdebstrap tarball; retry the Firecracker
#                 download even if it failed recently
# Environment: FCVM_DATA_DIR, FCVM_AGENT_BIN, FCVM_FIRECRACKER_VERSION (default v1.14.2;
#   fcvm supports v1.10 to v1.16), and
# those of build-guest-kernel.sh and create-rootfs-debian.sh.
# Building the root filesystem needs root (mmdebstrap). Under sudo, DATA is the invoking user's
# and the results are handed to that user.
# Exit status: 0 ready (Firecracker may be missing: fcvm then uses QEMU), 1 failure, 2 usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FCVM_PROG=fcvm-init
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$here/lib/common.sh"

firecracker_version=${FCVM_FIRECRACKER_VERSION:-v1.14.2}
total_steps=4
step_no=0
step_start=""
tty=0
[ -t 2 ] && tty=1

# Progress: "[1/4] kernel ... done (3.1 s)" on a terminal; in a pipe only lines for real work.
step_begin() {
  step_no=$((step_no + 1))
  step_name=$1
  step_start=$(now_s)
  [ "$tty" -eq 0 ] || printf '[%d/%d] %-12s ... ' "$step_no" "$total_steps" "$1" >&2
}
step_end() { # STATUS [built]
  if [ "$tty" -eq 1 ]; then
    if [ "${2:-}" = built ]; then
      printf '%s (%s s)\n' "$1" "$(elapsed_s "$step_start")" >&2
    else
      printf '%s\n' "$1" >&2
    fi
  elif [ "${2:-}" = built ]; then
    printf '%s: %s: %s (%s s)\n' "$FCVM_PROG" "$step_name" "$1" "$(elapsed_s "$step_start")" >&2
  fi
}
# step_fail MESSAGE [LOG]: ends the run with the message and the tail of the step's log.
step_fail() {
  [ "$tty" -eq 0 ] || printf 'FAILED\n' >&2
  if [ -n "${2:-}" ] && [ -s "$2" ]; then
    tail -n 20 "$2" | sed 's/^/  | /' >&2
    printf '%s: full log: %s\n' "$FCVM_PROG" "$2" >&2
  fi
  die "$step_name: $1"
}

need_root() { # WHAT
  [ "$(id -u)" -eq 0 ] && return 0
  step_fail "$1 is missing or out of date and building it needs root; run: sudo $0 ${orig_args[*]}"
}

# run_logged LOG CMD...: runs a builder with its output in LOG (shown on failure).
run_logged() {
  local log_file=$1
  shift
  "$@" >"$log_file" 2>&1
}

# The kernel's inputs come from apt (which package linux-image-cloud-amd64 means, and its version).
# apt-cache takes about a second where its binary cache is disabled (container images), so the
# answer is remembered until the apt lists, the builder or its settings change.
kernel_inputs() {
  local memo=$cache/kernel-inputs.memo sig
  sig=$({
    stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null || true
    env | grep -E '^FCVM_(KERNEL_|BUSYBOX)' | LC_ALL=C sort || true
    hash_paths "$here/build-guest-kernel.sh" "$here/guest/initramfs-init" "$here/lib/common.sh" \
      "${FCVM_BUSYBOX:-/bin/busybox}"
  } | sha256_stdin)
  if [ -f "$memo" ] && [ "$(head -n1 "$memo")" = "$sig" ]; then
    tail -n +2 "$memo"
    return
  fi
  local inputs
  inputs=$("$here/build-guest-kernel.sh" --print-inputs) || return 1
  printf '%s\n%s\n' "$sig" "$inputs" >"$memo.tmp.$$" && mv -f "$memo.tmp.$$" "$memo"
  printf '%s\n' "$inputs"
}

step_kernel() {
  step_begin kernel
  local key stamp=$cache/kernel.stamp log_file=$logs/kernel.log
  key=$(kernel_inputs 2>"$log_file" | sha256_stdin) ||
    step_fail "cannot determine the kernel package" "$log_file"
  if [ "$force" -eq 0 ] && stamp_ok "$stamp" "$key" "$data/kernel/vmlinuz" "$data/kernel/initrd.img" \
    "$data/kernel/version"; then
    step_end "up to date ($(cat "$data/kernel/version"))"
    return
  fi
  run_logged "$log_file" "$here/build-guest-kernel.sh" "$data/kernel" ||
    step_fail "build-guest-kernel.sh failed" "$log_file"
  stamp_write "$stamp" "$key"
  local note=""
  [ -f "$data/kernel/vmlinux" ] || note="; no vmlinux for Firecracker (see $log_file)"
  step_end "done: $(cat "$data/kernel/version")$note" built
}

step_agent() {
  step_begin agent
  local src=${agent_arg:-${FCVM_AGENT_BIN:-}} dest=$data/bin/fc-agent
  if [ -z "$src" ]; then
    if [ -x "$dest" ]; then
      step_end "up to date (no --agent given; keeping $dest)"
      return
    fi
    step_fail "no agent binary: pass --agent PATH (the static binary of the CMake target fc-agent) or set FCVM_AGENT_BIN"
  fi
  { [ -f "$src" ] && [ -x "$src" ]; } || step_fail "agent $src is not an executable file"
  mkdir -p "$data/bin"
  # The guest gets the agent without debug sections (a debug build is ~10x larger).
  install -m 0755 "$src" "$dest.tmp.$$" || step_fail "cannot copy $src to $dest"
  if command -v objcopy >/dev/null 2>&1; then
    objcopy --strip-debug "$dest.tmp.$$" || step_fail "cannot strip $src"
  fi
  if [ -f "$dest" ] && cmp -s "$dest.tmp.$$" "$dest"; then
    rm -f "$dest.tmp.$$"
    step_end "up to date"
    return
  fi
  mv -f "$dest.tmp.$$" "$dest" || step_fail "cannot install $dest"
  step_end "done" built
}

# Removes older base images that no VM disk or snapshot disk in this data directory is made over.
prune_bases() { # CURRENT
  local base in_use
  in_use=$(for d in "$data"/vms/*/root.qcow2 "$data"/snapshots/*/disk.qcow2; do
    [ -f "$d" ] || continue
    qemu-img info --output=json "$d" 2>/dev/null | sed -n 's/.*"backing-filename": "\(.*\)".*/\1/p' || true
  done)
  for base in "$data"/images/rootfs-*.ext4; do
    [ -e "$base" ] || continue
    [ "$(basename "$base")" = "$1" ] && continue
    grep -qxF "$base" <<<"$in_use" && continue
    rm -f "$base"
  done
}

step_rootfs() {
  step_begin rootfs
  local key stamp=$cache/rootfs.stamp log_file=$logs/rootfs.log out=$data/images/rootfs.ext4
  [ -x "$data/bin/fc-agent" ] || step_fail "no agent in $data/bin"
  # Base inputs (packages, mirrors, mmdebstrap code), this stage's files, and the agent.
  key=$({
    "$here/create-rootfs-debian.sh" --print-inputs
    hash_paths "$here/create-rootfs-debian.sh" "$here/lib/common.sh" "$here/guest"
    sha256_file "$data/bin/fc-agent"
  } 2>"$log_file" | sha256_stdin) || step_fail "cannot determine the rootfs inputs" "$log_file"
  if [ "$force" -eq 0 ] && stamp_ok "$stamp" "$key" "$out"; then
    step_end "up to date"
    return
  fi
  need_root "$out"
  mkdir -p "$data/images" "$cache/rootfs"
  local -a opts=(--agent "$data/bin/fc-agent" --cache "$cache/rootfs")
  [ "$force" -eq 0 ] || opts+=(--rebuild-base)
  # Each build is a new file, and rootfs.ext4 a symlink to the newest: the disks of existing VMs
  # keep the base they were made over (a base must never change under a VM's overlay).
  local versioned=rootfs-${key:0:12}.ext4
  run_logged "$log_file" "$here/create-rootfs-debian.sh" "${opts[@]}" "$data/images/$versioned" ||
    step_fail "create-rootfs-debian.sh failed" "$log_file"
  ln -sfn "$versioned" "$out.tmp.$$" && mv -fT "$out.tmp.$$" "$out" ||
    step_fail "cannot point $out at $versioned"
  prune_bases "$versioned"
  stamp_write "$stamp" "$key"
  local how="done"
  grep -q 'reusing the cached base' "$log_file" && how="done (agent/guest files only; cached base)"
  step_end "$how" built
}

# Reports the firecracker binary fcvm will use, downloading the official release if possible.
# Never fails the run: without Firecracker fcvm uses QEMU.
step_firecracker() {
  step_begin firecracker
  local fc kernel_note="vmlinux"
  [ -f "$data/kernel/vmlinux-firecracker" ] && kernel_note="vmlinux-firecracker"
  if fc=$(command -v firecracker 2>/dev/null); then
    fc_report "firecracker: $fc ($("$fc" --version 2>/dev/null | head -n1 || echo 'version unknown'); kernel $kernel_note)"
    return
  fi
  if [ -x "$data/bin/firecracker" ]; then
    fc_report "firecracker: $data/bin/firecracker ($("$data/bin/firecracker" --version 2>/dev/null | head -n1 || echo 'version unknown'); kernel $kernel_note)"
    return
  fi
  local marker=$cache/firecracker.unavailable
  # A failed download is retried after a day (or with --force), so that reruns stay instant.
  if [ "$force" -eq 0 ] && [ -f "$marker" ] && [ -n "$(find "$marker" -mmin -1440 2>/dev/null)" ]; then
    fc_report "firecracker: not available ($(cat "$marker"); retry with --force); fcvm will use QEMU"
    return
  fi
  local reason
  if reason=$(download_firecracker); then
    rm -f "$marker"
    fc_report "firecracker: downloaded $firecracker_version to $data/bin/firecracker (checksum verified)" built
  else
    printf 'download of %s failed: %s' "$firecracker_version" "$reason" >"$marker"
    fc_report "firecracker: not available (download failed: $reason); fcvm will use QEMU"
  fi
}
fc_report() {
  if [ "$tty" -eq 1 ]; then
    step_end "${1#firecracker: }" "${2:-}"
  else
    printf '%s\n' "$1" >&2
  fi
}

# Prints a one-phrase reason and fails when the release cannot be fetched or does not verify.
download_firecracker() {
  local arch base url tmp expected actual
  arch=$(uname -m)
  base=https://github.com/firecracker-microvm/firecracker/releases/download/$firecracker_version
  url=$base/firecracker-$firecracker_version-$arch.tgz
  command -v curl >/dev/null || { echo "curl not installed"; return 1; }
  tmp=$(mktemp -d "$cache/firecracker.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the path is local
  trap "rm -rf '$tmp'" RETURN
  local err
  if ! err=$(curl -fsSL --connect-timeout 5 -m 10 -o "$tmp/sum" "$url.sha256.txt" 2>&1); then
    case "$err" in
      *"resolve host"* | *"onnect"* | *"timed out"* | *"Timeout"*) echo "no network" ;;
      *) echo "${err#curl: }" | head -n1 ;;
    esac
    return 1
  fi
  if ! curl -fsSL --connect-timeout 5 -m 120 -o "$tmp/fc.tgz" "$url" 2>/dev/null; then
    echo "cannot fetch $url"
    return 1
  fi
  expected=$(awk '{ print $1; exit }' "$tmp/sum")
  actual=$(sha256_file "$tmp/fc.tgz")
  if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
    echo "checksum mismatch for $(basename "$url")"
    return 1
  fi
  tar -C "$tmp" -xzf "$tmp/fc.tgz" || { echo "cannot unpack $(basename "$url")"; return 1; }
  local bin=$tmp/release-$firecracker_version-$arch/firecracker-$firecracker_version-$arch
  [ -f "$bin" ] || { echo "no firecracker binary in $(basename "$url")"; return 1; }
  mkdir -p "$data/bin"
  install -m 0755 "$bin" "$data/bin/firecracker.tmp.$$" && mv -f "$data/bin/firecracker.tmp.$$" "$data/bin/firecracker"
  # Its jailer (fcvm runs Firecracker through it when root).
  local jailer=$tmp/release-$firecracker_version-$arch/jailer-$firecracker_version-$arch
  if [ -f "$jailer" ]; then
    install -m 0755 "$jailer" "$data/bin/jailer.tmp.$$" && mv -f "$data/bin/jailer.tmp.$$" "$data/bin/jailer"
  fi
}

main() {
  orig_args=("$@")
  agent_arg=""
  force=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --agent) agent_arg=${2:?--agent needs a path}; shift 2 ;;
      --agent=*) agent_arg=${1#*=}; shift ;;
      --force) force=1; shift ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
      *) usage_error "unknown argument $1 (usage: $0 [--agent PATH] [--force])" ;;
    esac
  done
  if [ -n "$agent_arg" ]; then
    agent_arg=$(realpath -- "$agent_arg" 2>/dev/null) || die "no such agent binary: ${orig_args[*]}"
  fi

  # Under sudo, the artifacts belong in the invoking user's data directory, not root's.
  if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ -z "${FCVM_DATA_DIR:-}" ] &&
    [ -z "${XDG_DATA_HOME:-}" ]; then
    HOME=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  fi
  data=$(fcvm_data_dir)
  cache=$data/cache
  logs=$cache/logs
  mkdir -p "$logs" 2>/dev/null || die "cannot create $data (set FCVM_DATA_DIR to a writable directory)"

  # One run at a time per data directory.
  exec 9>"$cache/.lock"
  if ! flock -n 9; then
    log "waiting for another fcvm-init run on $data"
    flock 9
  fi

  step_kernel
  step_agent
  step_rootfs
  step_firecracker

  if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_UID:-}" ] && [ -z "${FCVM_DATA_DIR:-}" ]; then
    chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$data"
  fi
  [ "$tty" -eq 0 ] || log "guest artifacts ready in $data"
}

main "$@"
