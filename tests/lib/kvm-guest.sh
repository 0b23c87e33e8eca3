#!/usr/bin/env bash
# Runs a command as root inside a QEMU TCG guest that has a working /dev/kvm (nested SVM), with
# this machine's own root filesystem shared read-only, so that fcvm and its tests run there
# unchanged against a real KVM: Firecracker, and QEMU with -accel kvm.
#
#   tests/lib/kvm-guest.sh [--timeout S] [--quiet-limit S] [--mem MIB] [--cpus N] [--work DIR]...
#                          -- COMMAND [ARG...]
#
# The guest ("L1") runs Debian's generic kernel, downloaded once with apt-get and cached under
# the build directory (FCVM_KVM_GUEST_CACHE, default build/kvm-guest) with a small initramfs
# (static busybox, kvm-amd, 9p, tun). In it: the host's / read-only, a tmpfs on /tmp, /run and
# /dev/shm, each --work DIR read-write at its own path, the kernel's own modules on /lib/modules
# (so that modprobe of bridge, veth or nf_tables works), cgroup2, loopback up. The home is
# read-only there: XDG_CACHE_HOME defaults to /tmp/.cache. COMMAND runs in
# the current directory with the caller's exported environment; its stdout and stderr come out
# on this script's stdout, and its exit code is this script's.
#
# Exit codes besides COMMAND's: 77 = cannot run here (no QEMU, no SVM in the emulated CPU, no
# kernel package), the reason on stderr; 124 = the guest did not finish within --timeout, its
# kernel reported a soft lockup, an RCU stall or a task blocked for minutes, or neither the
# command nor the kernel wrote a byte for --quiet-limit seconds (default 240: an L1 guest that
# hangs silently), and it was killed (its console's tail on stderr). Nothing is left running on
# the host either way.
set -euo pipefail

self_dir=$(cd "$(dirname "$0")" && pwd)
src_dir=$(cd "$self_dir/../.." && pwd)
timeout_s=600
quiet_limit_s=240
mem_mib=6144
cpus=2
works=()

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --quiet-limit) quiet_limit_s=$2; shift 2 ;;
    --mem) mem_mib=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --work) works+=("$(cd "$2" && pwd)"); shift 2 ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) echo "kvm-guest: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "kvm-guest: no command given (see --help)" >&2; exit 2; }
for v in "$timeout_s" "$quiet_limit_s" "$mem_mib" "$cpus"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "kvm-guest: '$v' is not a positive number" >&2; exit 2; }
done

skip() { echo "kvm-guest: cannot run here: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (the guest runs the command as root over the host's files)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
  skip "no static /bin/busybox (install busybox-static)"

# --- The cached kernel, modules and initramfs ---------------------------------------------------
cache=${FCVM_KVM_GUEST_CACHE:-$src_dir/build/kvm-guest}
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$cache/ready" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
  [ -n "$pkg" ] || skip "apt-cache names no linux-image-*-amd64 package for linux-image-amd64"
  echo "kvm-guest: preparing $pkg under $cache (once)" >&2
  rm -rf "$cache/x" "$cache/deb" && mkdir -p "$cache/deb"
  (cd "$cache/deb" && apt-get download "$pkg" >/dev/null 2>&1) ||
    skip "apt-get download $pkg failed (no Debian mirror reachable?)"
  dpkg -x "$cache"/deb/*.deb "$cache/x"
  rm -rf "$cache/deb"
  kver=$(ls "$cache/x/lib/modules")
  depmod -b "$cache/x" "$kver"
  root=$cache/initramfs
  rm -rf "$root" && mkdir -p "$root"/{bin,sbin,proc,sys,dev,host,ctl,mods}
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
  for m in kvm_amd tun 9p 9pnet_virtio virtio_pci; do
    modprobe -d "$cache/x" -S "$kver" --show-depends "$m" | sed -n 's/^insmod \([^ ]*\).*/\1/p'
  done | awk '!seen[$0]++' >"$cache/insmod.list"
  while read -r ko; do
    cp "$ko" "$root/mods/"
    basename "$ko" >>"$root/mods/order"
  done <"$cache/insmod.list"
  # The initramfs only loads its modules and hands over to the init script of the control share
  # (kvm-guest-init.sh, read fresh on every run).
  cat >"$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev
while read -r m; do insmod "/mods/$m" || echo "kvm-guest: insmod $m failed"; done </mods/order
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 kgctl /ctl || echo "kvm-guest: no control share"
exec sh /ctl/init.sh
INIT
  chmod 0755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$cache/initramfs.gz")
  cp "$cache"/x/boot/vmlinuz-* "$cache/vmlinuz"
  echo "$kver" >"$cache/ready"
fi
kver=$(cat "$cache/ready")
flock -u 9

# --- One run -------------------------------------------------------------------------------------
ctl=$(mktemp -d /tmp/kvm-guest.XXXXXX)
qemu_pid=
tail_pid=
cleanup() {
  local rc=$?
  if [ -n "$qemu_pid" ]; then kill -KILL "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
  if [ -n "$tail_pid" ]; then kill "$tail_pid" 2>/dev/null || true; wait "$tail_pid" 2>/dev/null || true; fi
  rm -rf "$ctl"
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

{
  printf 'KG_CACHE=%q\nKG_KVER=%q\n' "$cache" "$kver"
  printf 'KG_WORKS=%q\n' "${works[*]:-}"
} >"$ctl/config"
cp "$self_dir/kvm-guest-init.sh" "$ctl/init.sh"
{
  echo '#!/bin/bash'
  export -p | grep -Ev '^declare -x (BASH[A-Z_]*|SHLVL|PWD|OLDPWD|_|SHELLOPTS|TMPDIR)='
  printf 'export MODPROBE_OPTIONS=%q\n' "-d $cache/x"
  echo 'export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/.cache}  # the home is read-only in here' 
  printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
  printf '%q ' "$@"
  echo
  echo 'echo $? >/run/kvm-guest/rc'
} >"$ctl/run.sh"

fsdevs=(-fsdev "local,id=ctl,path=$ctl,security_model=none"
  -device virtio-9p-pci,fsdev=ctl,mount_tag=kgctl
  -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot)
i=0
for w in "${works[@]}"; do
  fsdevs+=(-fsdev "local,id=work$i,path=$w,security_model=none,multidevs=remap"
    -device "virtio-9p-pci,fsdev=work$i,mount_tag=work$i")
  i=$((i + 1))
done

# ttyS0 is the kernel's console (kept for a failure), ttyS1 carries the command's output.
qemu-system-x86_64 -accel tcg -cpu max -machine q35 \
  -m "$mem_mib" -smp "$cpus" -nographic -nodefaults -no-reboot \
  -kernel "$cache/vmlinuz" -initrd "$cache/initramfs.gz" \
  -append "console=ttyS0 loglevel=4 rdinit=/init panic=-1" \
  -serial "file:$ctl/console.log" -serial "file:$ctl/out.log" \
  "${fsdevs[@]}" </dev/null &
qemu_pid=$!
# The command's output, as it comes (and the watchdog's measure of progress).
tail -n +1 -F --pid="$qemu_pid" "$ctl/out.log" 2>/dev/null &
tail_pid=$!
# The guest ends by itself, or at the deadline, or as soon as its kernel reports a lockup or a task
# blocked for minutes (under emulation such a guest rarely recovers; the caller may try again). A
# hung-task report is console output, so the quiet limit alone does not catch that kind.
deadline=$((SECONDS + timeout_s))
why=
progress=-1
last_progress=$SECONDS
while kill -0 "$qemu_pid" 2>/dev/null; do
  size=$(($(stat -c %s "$ctl/out.log" 2>/dev/null || echo 0) + $(stat -c %s "$ctl/console.log" 2>/dev/null || echo 0)))
  if [ "$size" != "$progress" ]; then
    progress=$size
    last_progress=$SECONDS
  fi
  if [ $SECONDS -ge $deadline ]; then
    why="did not finish within ${timeout_s} s"
  elif grep -qE 'soft lockup|detected stalls on CPUs|blocked for more than [0-9]+ seconds' \
    "$ctl/console.log" 2>/dev/null; then
    why="hung (its kernel reports a lockup or a blocked task)"
  elif [ $((SECONDS - last_progress)) -ge "$quiet_limit_s" ]; then
    why="wrote nothing for ${quiet_limit_s} s (hung silently)"
  fi
  [ -z "$why" ] || { kill -KILL "$qemu_pid" 2>/dev/null; break; }
  sleep 1
done
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=
wait "$tail_pid" 2>/dev/null || true  # it ends with QEMU, after printing what was left
tail_pid=
if [ -f "$ctl/rc" ]; then
  code=$(cat "$ctl/rc")
  [ -f "$ctl/reason" ] && cat "$ctl/reason" >&2
  exit "$code"
fi
if [ -n "$why" ]; then
  echo "kvm-guest: the guest $why and was killed; its console ends:" >&2
  rc=124
else
  echo "kvm-guest: the guest ended (QEMU exit $rc) without the command's exit code; its console ends:" >&2
  rc=1
fi
tail -n 30 "$ctl/console.log" >&2 || true
exit "$rc"
