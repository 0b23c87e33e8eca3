# The init of kvm-guest.sh's guest (busybox sh, run from the control share mounted on /ctl):
# checks /dev/kvm, mounts the host's root and the work shares, runs /ctl/run.sh chrooted in the
# host's root with its output on ttyS1, leaves the exit code in /ctl/rc and powers off.
. /ctl/config

finish() { # CODE [REASON]
  [ -n "${2:-}" ] && echo "kvm-guest: $2" >/ctl/reason
  echo "$1" >/ctl/rc
  sync
  poweroff -f
}
ninep() { # TAG DIR [OPTIONS]
  mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000${3:+,$3}" "$1" "$2"
}

[ -c /dev/kvm ] || finish 77 "no /dev/kvm in the guest: the emulated CPU offers no SVM ($(grep -m1 -o 'kvm.*' /proc/kmsg 2>/dev/null || dmesg | grep -m1 -i 'svm\|kvm'))"
ninep hostroot /host ro,cache=loose || finish 1 "cannot mount the host's root over 9p"
for d in tmp run; do mount -t tmpfs -o mode=1777 tmpfs "/host/$d" || finish 1 "tmpfs on /$d"; done
chmod 0755 /host/run
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup 2>/dev/null || true
# This kernel's modules live in the cache (the host's /lib/modules is not theirs): modprobe is
# pointed there, for the kernel's autoloader (which runs in the initramfs, not the chroot) and for
# the command (MODPROBE_OPTIONS, set in run.sh).
printf '#!/bin/sh\nexec chroot /host /sbin/modprobe -d "%s/x" "$@"\n' "$KG_CACHE" >/bin/modprobe-host
chmod 0755 /bin/modprobe-host
echo /bin/modprobe-host >/proc/sys/kernel/modprobe
i=0
for w in $KG_WORKS; do
  mkdir -p "/host$w" 2>/dev/null
  ninep "work$i" "/host$w" cache=mmap || finish 1 "cannot mount the work share $w"
  i=$((i + 1))
done
mkdir -p /host/run/kvm-guest
mount --bind /ctl /host/run/kvm-guest
ip link set lo up
hostname kvm-guest
chroot /host /bin/bash /run/kvm-guest/run.sh </dev/null >/dev/ttyS1 2>&1
[ -f /ctl/rc ] || finish 1 "the command left no exit code"
sync
poweroff -f
