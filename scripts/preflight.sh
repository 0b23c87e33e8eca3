#!/usr/bin/env bash
# Checks every prerequisite of `fcvm run` for the current user and says how to fix what is missing.
#
#   scripts/preflight.sh
#
# One line per check: "ok", "MISSING" (required: the line ends with the command that fixes it),
# or "optional" (fcvm works without it, in a reduced way; the fix is given too).
# Checks: qemu-system-x86_64, qemu-img, slirp4netns (rootless networking), ip, nft (optional),
# unshare and user namespaces, /dev/net/tun usable by this user, /dev/kvm (optional: without it
# QEMU emulates the CPU with TCG), firecracker (optional), and the guest artifacts under
# ${FCVM_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}.
# Exit status: 0 when everything required is there, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$here/lib/common.sh"

missing=0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo "
is_root=0
[ "$(id -u)" -ne 0 ] || is_root=1

ok() { printf '  ok        %-22s %s\n' "$1" "$2"; }
missing() {
  printf '  MISSING   %-22s %s\n            %-22s fix: %s\n' "$1" "$2" "" "$3"
  missing=1
}
optional() { printf '  optional  %-22s %s\n            %-22s fix: %s\n' "$1" "$2" "" "$3"; }

# check_tool NAME PACKAGE [required|optional] [WHY]
check_tool() {
  local name=$1 pkg=$2 need=${3:-required} why=${4:-} path
  if path=$(command -v "$name" 2>/dev/null); then
    ok "$name" "$path"
  elif [ "$need" = required ]; then
    missing "$name" "not found${why:+ ($why)}" "${sudo}apt-get install -y $pkg"
  else
    optional "$name" "not found${why:+ ($why)}" "${sudo}apt-get install -y $pkg"
  fi
}

echo "fcvm preflight for user $(id -un) (uid $(id -u))"

echo "Host tools:"
check_tool qemu-system-x86_64 qemu-system-x86
check_tool qemu-img qemu-utils
if [ "$is_root" -eq 1 ]; then
  check_tool slirp4netns slirp4netns optional "only used for rootless networking"
else
  check_tool slirp4netns slirp4netns required "rootless networking"
fi
check_tool ip iproute2
check_tool nft nftables optional "port forwarding in the privileged network mode"
check_tool unshare util-linux
PATH=$PATH:/usr/sbin:/sbin check_tool mke2fs e2fsprogs required "--map volumes in block mode"
PATH=$PATH:/usr/sbin:/sbin check_tool debugfs e2fsprogs required "writing block volumes back"
check_tool bwrap bubblewrap optional "--map mode=sshfs (sandboxes the SFTP server)"
check_tool ganesha.nfsd nfs-ganesha optional "--map mode=nfs (also nfs-ganesha-vfs)"
if [ -x /usr/lib/openssh/sftp-server ]; then
  ok sftp-server /usr/lib/openssh/sftp-server
else
  optional sftp-server "not found (--map mode=sshfs)" "${sudo}apt-get install -y openssh-sftp-server"
fi

echo "Kernel features:"
userns_ok=1
if [ -r /proc/sys/user/max_user_namespaces ] && [ "$(cat /proc/sys/user/max_user_namespaces)" -eq 0 ]; then
  missing "user namespaces" "disabled (user.max_user_namespaces = 0)" \
    "${sudo}sysctl -w user.max_user_namespaces=15000"
  userns_ok=0
fi
if [ "$is_root" -eq 0 ] && [ -r /proc/sys/kernel/unprivileged_userns_clone ] &&
  [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" != 1 ]; then
  missing "user namespaces" "unprivileged use disabled (kernel.unprivileged_userns_clone = 0)" \
    "${sudo}sysctl -w kernel.unprivileged_userns_clone=1"
  userns_ok=0
fi
if [ "$is_root" -eq 0 ] && [ -r /proc/sys/kernel/apparmor_restrict_unprivileged_userns ] &&
  [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns)" = 1 ]; then
  missing "user namespaces" "restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns = 1)" \
    "${sudo}sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
  userns_ok=0
fi
if [ "$userns_ok" -eq 1 ] && command -v unshare >/dev/null; then
  # The real test: create one (what rootless fcvm does for its network namespace).
  if unshare --user --map-root-user --net true 2>/dev/null; then
    ok "user namespaces" "unshare --user --map-root-user --net works"
  else
    missing "user namespaces" "unshare --user --map-root-user --net fails for this user" \
      "${sudo}sysctl -w user.max_user_namespaces=15000 (and check security modules)"
  fi
fi

if [ ! -e /dev/net/tun ]; then
  missing /dev/net/tun "absent" "${sudo}modprobe tun"
elif [ -r /dev/net/tun ] && [ -w /dev/net/tun ]; then
  ok /dev/net/tun "usable ($(stat -c '%a %U:%G' /dev/net/tun))"
else
  # Distributions ship it 0666; some minimal systems leave it root-only, which breaks the
  # rootless tap device even inside a user namespace.
  missing /dev/net/tun "not usable by $(id -un) (mode $(stat -c '%a %U:%G' /dev/net/tun))" \
    "sudo chmod 0666 /dev/net/tun"
fi

if [ ! -e /dev/kvm ]; then
  optional /dev/kvm "absent: QEMU will emulate the CPU (TCG), which works but is slower" \
    "${sudo}modprobe kvm_intel || ${sudo}modprobe kvm_amd (needs virtualisation enabled in firmware)"
elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  ok /dev/kvm "accessible; fcvm probes at run time whether KVM really boots a guest and falls back to TCG if not"
else
  kvm_group=$(stat -c %G /dev/kvm)
  if [ "$kvm_group" = root ]; then
    kvm_fix="sudo chgrp kvm /dev/kvm && sudo chmod 0660 /dev/kvm && sudo usermod -aG kvm $(id -un) (then log in again)"
  else
    kvm_fix="sudo usermod -aG $kvm_group $(id -un) (then log in again)"
  fi
  optional /dev/kvm "not accessible by $(id -un) (mode $(stat -c '%a %U:%G' /dev/kvm)): QEMU will use TCG" \
    "$kvm_fix"
fi

echo "Firecracker:"
data=$(fcvm_data_dir)
if fc=$(command -v firecracker 2>/dev/null); then
  ok firecracker "$fc"
elif [ -x "$data/bin/firecracker" ]; then
  ok firecracker "$data/bin/firecracker"
else
  optional firecracker "not found: fcvm uses QEMU" "scripts/fcvm-init.sh (downloads the release where the network allows)"
fi

echo "Guest artifacts in $data:"
repo=$(cd "$here/.." && pwd)
agent_hint="<build dir>/fc-agent"
for candidate in "$repo"/build/release/fc-agent "$repo"/build/dev/fc-agent "$repo"/build/*/fc-agent; do
  if [ -x "$candidate" ]; then
    agent_hint=${candidate#"$PWD"/}
    break
  fi
done
init_fix="sudo scripts/fcvm-init.sh --agent $agent_hint"
[ "$is_root" -eq 0 ] || init_fix="scripts/fcvm-init.sh --agent $agent_hint"
[ "$agent_hint" != "<build dir>/fc-agent" ] ||
  init_fix="cmake --build --preset release --target fc-agent && $init_fix"
for artifact in kernel/vmlinuz kernel/initrd.img images/rootfs.ext4 bin/fc-agent; do
  if [ -r "$data/$artifact" ]; then
    ok "$artifact" "$(du -h --apparent-size "$data/$artifact" | cut -f1)"
  elif [ -e "$data/$artifact" ]; then
    missing "$artifact" "not readable by $(id -un)" "sudo chown -R $(id -un) $data"
  else
    missing "$artifact" "absent" "$init_fix"
  fi
done

if [ "$missing" -eq 0 ]; then
  echo "preflight: ready (required prerequisites present)"
else
  echo "preflight: NOT ready: fix the MISSING lines above"
fi
exit "$missing"
