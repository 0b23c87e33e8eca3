#!/usr/bin/env bash
# Builds the guest kernel artifacts from Debian's cloud kernel package, without installing it.
#
#   scripts/build-guest-kernel.sh OUTDIR
#
# Writes into OUTDIR (each file replaced atomically):
#   vmlinuz     the package's compressed bzImage (what QEMU boots)
#   initrd.img  a tiny initramfs: static busybox, the virtio/vsock/overlay modules the kernel does
#               not build in, and /init (scripts/guest/initramfs-init) which mounts the disk whose
#               virtio serial is `fcvm.root=SERIAL` (default fcvm-root) and switch_roots into
#               /sbin/fc-init
#   vmlinux     the uncompressed ELF kernel extracted from vmlinuz (what Firecracker boots, with
#               initrd.img); if extraction fails one line says so and the file is removed
#   version     the kernel release (`uname -r` in the guest), one line
#   package     the Debian package name and version, one line
#
# Environment:
#   FCVM_KERNEL_PACKAGE  package to use instead of the one linux-image-cloud-amd64 depends on
#   FCVM_KERNEL_DEB      a local .deb to use instead of downloading one
#   FCVM_BUSYBOX         static busybox to put in the initramfs (default /bin/busybox)
# `build-guest-kernel.sh --print-inputs` prints what the result depends on (package and version,
# busybox, these scripts); fcvm-init.sh hashes it to decide whether a rebuild is needed.
#
# Needs no root unless apt has no package lists yet (then it runs `apt-get update`).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$here/lib/common.sh"

# Modules the guest needs, by module name. Their dependencies are added from the modules' own
# metadata; names the kernel builds in are skipped. Optional ones may be absent from a kernel.
required_modules=(virtio virtio_ring virtio_mmio virtio_pci virtio_blk virtio_net virtio_console
  vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport overlay ext4 fuse)
optional_modules=(virtio_pci_modern_dev virtio_pci_legacy_dev net_failover failover virtio_rng nfsv4)

busybox=${FCVM_BUSYBOX:-/bin/busybox}
init_script=$here/guest/initramfs-init

# The versioned package linux-image-cloud-amd64 points to, e.g. linux-image-6.1.0-56-cloud-amd64.
resolve_kernel_package() {
  if [ -n "${FCVM_KERNEL_PACKAGE:-}" ]; then
    printf '%s\n' "$FCVM_KERNEL_PACKAGE"
    return
  fi
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1)
  if [ -z "$pkg" ]; then
    [ "$(id -u)" -eq 0 ] || die "apt knows no linux-image-cloud-amd64; run as root: apt-get update"
    log "apt knows no linux-image-cloud-amd64: running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1)
  fi
  [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 to a versioned kernel package"
  printf '%s\n' "$pkg"
}

candidate_version() {
  apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1
}

print_inputs() {
  if [ -n "${FCVM_KERNEL_DEB:-}" ]; then
    printf 'deb %s\n' "$(sha256_file "$FCVM_KERNEL_DEB")"
  else
    local pkg
    pkg=$(resolve_kernel_package)
    printf 'package %s %s\n' "$pkg" "$(candidate_version "$pkg")"
  fi
  printf 'busybox %s\n' "$(sha256_file "$busybox")"
  printf 'script %s\n' "$(hash_paths "${BASH_SOURCE[0]}" "$init_script" "$here/lib/common.sh")"
}

# extract_vmlinux BZIMAGE OUT: finds the compressed payload in a bzImage by its magic bytes and
# decompresses it (what the kernel's scripts/extract-vmlinux does). True when OUT is an ELF file.
extract_vmlinux() {
  local img=$1 out=$2 magic tool pos
  # magic (grep -P byte escapes) and the decompressor reading a stream from stdin
  local -a formats=(
    '\x02\x21\x4c\x18|lz4 -dc'
    '\x1f\x8b\x08|gzip -dc'
    '\xfd\x37\x7a\x58\x5a\x00|xz -dc'
    '\x28\xb5\x2f\xfd|zstd -dcq'
    'BZh|bzip2 -dc'
    '\x5d\x00\x00\x00|xz -dc --format=lzma'
    '\x89\x4c\x5a|lzop -dc'
  )
  for entry in "${formats[@]}"; do
    magic=${entry%%|*}
    tool=${entry#*|}
    command -v "${tool%% *}" >/dev/null || continue
    # Try the first few matches: the magic can also occur by chance inside the payload.
    while read -r pos; do
      # Decompressors complain about the data trailing the payload; the ELF check decides.
      # shellcheck disable=SC2086 # $tool is a command with its options
      tail -c "+$((pos + 1))" "$img" | $tool >"$out" 2>/dev/null || true
      if [ "$(head -c4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
        return 0
      fi
    done < <(LC_ALL=C grep -obUaP "$magic" "$img" 2>/dev/null | head -n3 | cut -d: -f1)
  done
  rm -f "$out"
  return 1
}

# module_file NAME: the .ko file of module NAME in the extracted tree ('-' and '_' are equivalent).
declare -A module_path=()
index_modules() {
  local f name
  while IFS= read -r -d '' f; do
    name=$(basename "$f")
    name=${name%%.ko*}
    module_path[${name//-/_}]=$f
  done < <(find "$1" \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0)
}

# uncompressed_module SRC DST: copies a module, decompressing .ko.xz/.ko.zst/.ko.gz.
uncompressed_module() {
  case "$1" in
    *.ko) cp "$1" "$2" ;;
    *.ko.xz) xz -dc "$1" >"$2" ;;
    *.ko.zst) zstd -dcq "$1" >"$2" ;;
    *.ko.gz) gzip -dc "$1" >"$2" ;;
    *) die "unknown module file type: $1" ;;
  esac
}

# module_depends KO: the comma-separated `depends=` of an uncompressed module.
module_depends() {
  if command -v modinfo >/dev/null; then
    modinfo -F depends "$1"
  elif [ -x /sbin/modinfo ]; then
    /sbin/modinfo -F depends "$1"
  else
    # .modinfo holds NUL-separated key=value strings.
    tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n1
  fi
}

# Depth-first walk: a module is appended to load_order after all of its dependencies.
declare -A visit_state=()
load_order=()
visit_module() {
  local name=$1 deps dep
  case ${visit_state[$name]:-} in
    done) return ;;
    active) die "module dependency cycle at $name" ;;
  esac
  visit_state[$name]="active"
  uncompressed_module "${module_path[$name]}" "$initramfs/lib/modules/$name.ko"
  deps=$(module_depends "$initramfs/lib/modules/$name.ko")
  for dep in ${deps//,/ }; do
    dep=${dep//-/_}
    [ -n "${module_path[$dep]:-}" ] || die "module $name needs $dep, which the package does not ship"
    visit_module "$dep"
  done
  visit_state[$name]="done"
  load_order+=("$name")
}

# is_builtin NAME: listed in modules.builtin of the kernel release.
is_builtin() {
  grep -Eq "/${1//_/[-_]}\.ko\$" "$modroot/modules.builtin" 2>/dev/null
}

# Appends a newc cpio archive holding only the character device dev/console (5,1) to stdout.
# The kernel opens /dev/console for /init before anything is mounted; creating the node with
# mknod would need root, so the archive entry is written by hand (the kernel reads concatenated
# cpio archives).
cpio_console_node() {
  local name=dev/console trailer='TRAILER!!!'
  # fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    1 $((8#020600)) 0 0 1 0 0 0 0 5 1 $((${#name} + 1)) 0
  printf '%s\0' "$name" # 110 + 12 = 122 bytes: pad to 124
  printf '\0\0'
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    0 0 0 0 1 0 0 0 0 0 0 $((${#trailer} + 1)) 0
  printf '%s\0' "$trailer" # 110 + 11 = 121 bytes: pad to 124
  printf '\0\0\0'
}

build() {
  local out=$1 pkg version release deb bzimage config compressor
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  [ -x "$busybox" ] || die "static busybox not found at $busybox (apt-get install busybox-static)"
  if command -v file >/dev/null && ! file -bL "$busybox" | grep -q 'statically linked'; then
    die "$busybox is not statically linked (apt-get install busybox-static)"
  fi

  work=$(mktemp -d "${TMPDIR:-/tmp}/fcvm-kernel.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  # 1. Fetch and unpack the package (never installed: the host's /boot is left alone).
  if [ -n "${FCVM_KERNEL_DEB:-}" ]; then
    deb=$FCVM_KERNEL_DEB
  else
    pkg=$(resolve_kernel_package)
    local -a apt_opts=()
    # apt drops to the _apt user for downloads, which cannot write into our private temp dir.
    [ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
    (cd "$work" && apt-get "${apt_opts[@]}" download -q "$pkg" >/dev/null) ||
      die "apt-get download $pkg failed"
    deb=$(find "$work" -maxdepth 1 -name '*.deb' | head -n1)
  fi
  pkg=$(dpkg-deb -f "$deb" Package)
  version=$(dpkg-deb -f "$deb" Version)
  dpkg-deb -x "$deb" "$work/pkg"
  modroot=""
  local d
  for d in "$work"/pkg/lib/modules/* "$work"/pkg/usr/lib/modules/*; do
    [ -d "$d" ] && modroot=$d && break
  done
  [ -n "$modroot" ] || die "$pkg ships no /lib/modules/RELEASE"
  release=$(basename "$modroot")
  bzimage=$work/pkg/boot/vmlinuz-$release
  config=$work/pkg/boot/config-$release
  [ -f "$bzimage" ] || die "$pkg ships no /boot/vmlinuz-$release"
  [ -f "$config" ] || die "$pkg ships no /boot/config-$release"
  grep -q '^CONFIG_BLK_DEV_INITRD=y' "$config" || die "kernel $release has no initramfs support"

  # 2. Initramfs tree: busybox with a link per applet, the modules, /init.
  initramfs=$work/initramfs
  mkdir -p "$initramfs"/{bin,dev,proc,sys,newroot,lib/modules}
  cp "$busybox" "$initramfs/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$initramfs/bin/$applet"
  done
  install -m 0755 "$init_script" "$initramfs/init"

  index_modules "$modroot"
  local name
  for name in "${required_modules[@]}"; do
    if [ -n "${module_path[$name]:-}" ]; then
      visit_module "$name"
    elif ! is_builtin "$name"; then
      die "kernel $release has $name neither built in nor as a module"
    fi
  done
  for name in "${optional_modules[@]}"; do
    [ -z "${module_path[$name]:-}" ] || visit_module "$name"
  done
  printf '%s\n' "${load_order[@]}" >"$initramfs/lib/modules/load-order"

  # 3. Deterministic archive: sorted names, owner 0, mtime 0, compressor without timestamps.
  if grep -q '^CONFIG_RD_ZSTD=y' "$config" && command -v zstd >/dev/null; then
    compressor=(zstd -q -19 -c)
  else
    compressor=(gzip -n -9 -c)
  fi
  find "$initramfs" -exec touch -h -d @0 {} +
  (
    cd "$initramfs"
    find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
      cpio --quiet -o -H newc -R 0:0 --reproducible
    cpio_console_node
  ) | "${compressor[@]}" >"$work/initrd.img"

  # 4. Publish, each file atomically.
  cp "$bzimage" "$out/.vmlinuz.tmp" && mv -f "$out/.vmlinuz.tmp" "$out/vmlinuz"
  mv -f "$work/initrd.img" "$out/initrd.img"
  if extract_vmlinux "$bzimage" "$work/vmlinux"; then
    mv -f "$work/vmlinux" "$out/vmlinux"
  else
    rm -f "$out/vmlinux"
    log "vmlinux: could not extract an ELF kernel from the bzImage (Firecracker needs one; see scripts/build-kernel.sh)"
  fi
  printf '%s\n' "$release" >"$out/.version.tmp" && mv -f "$out/.version.tmp" "$out/version"
  printf '%s %s\n' "$pkg" "$version" >"$out/.package.tmp" && mv -f "$out/.package.tmp" "$out/package"
  log "kernel $release ($pkg $version), initramfs modules: ${load_order[*]}"
}

case "${1:-}" in
  --print-inputs) print_inputs ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  "" | -*) usage_error "usage: $0 OUTDIR   (see --help)" ;;
  *) build "$1" ;;
esac
