#!/usr/bin/env bash
# Builds a Firecracker-ready guest kernel (uncompressed ELF vmlinux, all guest drivers built in)
# from Debian's kernel source package. Optional: fcvm-init.sh's Debian cloud kernel works with
# QEMU, and with Firecracker through its initramfs; this kernel needs no initramfs.
#
#   scripts/build-kernel.sh [--config-only] [OUTDIR]
#
# OUTDIR defaults to the fcvm data directory's kernel/ (see fcvm-init.sh); the result is
# OUTDIR/vmlinux-firecracker, which fcvm prefers with Firecracker when present.
# Boot it without an initramfs: Firecracker adds `root=/dev/vda rw` for the root drive; add
# `console=ttyS0 reboot=k panic=1 init=/sbin/fc-init`.
#
# Steps:
#  1. fetch `linux-source` (the versioned linux-source-X.Y package it depends on) with
#     `apt-get download` and unpack its tarball into a work directory (never installed);
#  2. configure: x86_64_defconfig + kvm_guest.config + scripts/kernel/firecracker.config
#     (virtio-mmio with command-line devices, virtio-blk/net/console/rng, vsock, ext4, overlay,
#     cgroup v2 and namespaces for podman), `make olddefconfig`, and check that every option of
#     the fragment survived (an option whose dependencies are unmet is silently dropped by
#     Kconfig);
#  3. `make vmlinux` with all cores (about 20-40 minutes on 2 cores), strip debug sections.
# --config-only stops after step 2 (a quick check of the fragment; writes
# OUTDIR/vmlinux-firecracker.config).
#
# Environment:
#   FCVM_KERNEL_WORKDIR  where to unpack and build (default: a directory under ${TMPDIR:-/tmp},
#                        removed afterwards; about 1.5 GB). Set it to keep the tree for rebuilds.
#   FCVM_SOURCE_PACKAGE  source package to use instead of the one linux-source depends on
#   JOBS                 parallel make jobs (default: number of cores)
# Needs: build-essential bc bison flex libssl-dev libelf-dev xz-utils (installed when run as
# root, otherwise the missing ones are named).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$here/lib/common.sh"

fragment=$here/kernel/firecracker.config
build_deps=(build-essential bc bison flex libssl-dev libelf-dev xz-utils)

ensure_build_deps() {
  local -a missing=()
  local p
  for p in "${build_deps[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing build dependencies; run: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing build dependencies: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

resolve_source_package() {
  if [ -n "${FCVM_SOURCE_PACKAGE:-}" ]; then
    printf '%s\n' "$FCVM_SOURCE_PACKAGE"
    return
  fi
  local pkg
  pkg=$(apt-cache depends linux-source 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-source-[0-9][^ ]*\)$/\1/p' | head -n1)
  [ -n "$pkg" ] || die "apt knows no linux-source package (run: sudo apt-get update)"
  printf '%s\n' "$pkg"
}

# check_fragment CONFIG: every option set in the fragment has the same value in CONFIG.
check_fragment() {
  local config=$1 line name bad=0
  while IFS= read -r line; do
    case "$line" in
      CONFIG_*=*)
        grep -qxF "$line" "$config" || { warn "not applied: $line (got: $(grep "^${line%%=*}=" "$config" || echo unset))"; bad=1; }
        ;;
      "# CONFIG_"*" is not set")
        name=${line#\# }
        name=${name%% *}
        if grep -q "^$name=" "$config"; then
          warn "not applied: $line (got: $(grep "^$name=" "$config"))"
          bad=1
        fi
        ;;
    esac
  done <"$fragment"
  [ "$bad" -eq 0 ] || die "the configuration fragment did not apply (see above)"
}

main() {
  local config_only=0
  case "${1:-}" in
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
    --config-only) config_only=1; shift ;;
    -*) usage_error "usage: $0 [--config-only] [OUTDIR]" ;;
  esac
  local out=${1:-$(fcvm_data_dir)/kernel} pkg work tarball src jobs
  ensure_build_deps
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  jobs=${JOBS:-$(nproc)}

  if [ -n "${FCVM_KERNEL_WORKDIR:-}" ]; then
    work=$FCVM_KERNEL_WORKDIR
    mkdir -p "$work"
  else
    work=$(mktemp -d "${TMPDIR:-/tmp}/fcvm-kernel-build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
  fi

  # 1. Source.
  pkg=$(resolve_source_package)
  src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n1)
  if [ -z "$src" ] || [ ! -f "$src/Makefile" ]; then
    log "fetching $pkg"
    local -a apt_opts=()
    [ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
    (cd "$work" && apt-get "${apt_opts[@]}" download -q "$pkg" >/dev/null) || die "apt-get download $pkg failed"
    dpkg-deb -x "$work"/"$pkg"_*.deb "$work/pkg"
    tarball=$(find "$work/pkg/usr/src" -maxdepth 1 -name 'linux-source-*.tar.*' | head -n1)
    [ -n "$tarball" ] || die "$pkg ships no /usr/src/linux-source-*.tar.*"
    log "unpacking $(basename "$tarball")"
    tar -C "$work" -xf "$tarball"
    rm -rf "$work/pkg" "$work"/"$pkg"_*.deb
    src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n1)
  fi
  [ -f "$src/Makefile" ] || die "no kernel tree in $work"

  # 2. Configuration.
  log "configuring $(basename "$src")"
  make -C "$src" -s x86_64_defconfig
  make -C "$src" -s kvm_guest.config
  "$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" >/dev/null
  make -C "$src" -s olddefconfig
  check_fragment "$src/.config"
  if [ "$config_only" -eq 1 ]; then
    cp "$src/.config" "$out/vmlinux-firecracker.config"
    log "configuration OK: $out/vmlinux-firecracker.config"
    return
  fi

  # 3. Build.
  log "building vmlinux with $jobs jobs (this takes a while)"
  make -C "$src" -s -j "$jobs" vmlinux
  objcopy --strip-debug "$src/vmlinux" "$out/.vmlinux-firecracker.tmp"
  mv -f "$out/.vmlinux-firecracker.tmp" "$out/vmlinux-firecracker"
  cp "$src/.config" "$out/vmlinux-firecracker.config"
  log "wrote $out/vmlinux-firecracker ($(make -C "$src" -s kernelrelease))"
}

main "$@"
