#!/usr/bin/env bash
# A non-root user runs a VM: rootless network (user+net namespace, slirp4netns), a published
# port on 127.0.0.1, output and exit code, nothing left behind.
source "$(dirname "$0")/../lib/common.sh"
need_root "creates a test user and opens /dev/net/tun to it as ordinary distributions do"
need_guest
need_cmd runuser
busybox=$(need_image busybox.oci.tar)

user=fcvm-e2e
id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
# Ordinary distributions ship /dev/net/tun as 0666; some hardened hosts make it root-only.
tun_mode=$(stat -c %a /dev/net/tun)
chmod 0666 /dev/net/tun
on_exit "chmod $tun_mode /dev/net/tun"

# Everything the user needs, readable by it: the binary, the guest artifacts, the image.
guest=${FCVM_GUEST_DIR:-$(data_dir)}
mkdir -p "$TEST_TMP/guest/kernel" "$TEST_TMP/guest/images" "$TEST_TMP/home"
cp "$FCVM_BIN" "$TEST_TMP/fcvm"
cp "$guest/kernel/vmlinuz" "$guest/kernel/initrd.img" "$TEST_TMP/guest/kernel/"
cp --sparse=always "$guest/images/rootfs.ext4" "$TEST_TMP/guest/images/"
cp "$busybox" "$TEST_TMP/busybox.oci.tar"
chmod -R a+rX "$TEST_TMP"
chown "$user" "$TEST_TMP/home"

as_user() {
  runuser -u "$user" -- env HOME="$TEST_TMP/home" FCVM_GUEST_DIR="$TEST_TMP/guest" \
    FCVM_DATA_DIR="$TEST_TMP/home/data" FCVM_LOG="${FCVM_LOG:-warn}" "$@"
}

port=$(free_port)
as_user "$TEST_TMP/fcvm" run --stop-timeout 1 --publish "$port:8080" "oci-archive:$TEST_TMP/busybox.oci.tar" \
  sh -c 'id -u; mkdir -p /www; echo rootless-ok > /www/index.html; echo serving; exec httpd -f -p 8080 -h /www' \
  >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
pid=$!
on_exit "pkill -9 -u $user 2>/dev/null"
body=$(wait_http "http://127.0.0.1:$port/" 150) || { cat "$TEST_TMP/err" >&2; fail "no HTTP 200 as $user"; }
[ "$body" = "rootless-ok" ] || fail "unexpected body: $body"
# The VMM and slirp4netns run as the user, not as root.
owner=$(ps -o user= -p "$(pgrep -d, -f "slirp4netns.*$TEST_TMP/home/data")" | sort -u | tr -d ' ')
[ "$owner" = "$user" ] || fail "slirp4netns runs as '$owner', want $user"
# Signal fcvm itself: runuser would forward SIGTERM and then SIGKILL its child after 2 s.
fcvm_pid=$(pgrep -u "$user" -x -r R,S fcvm) || fail "fcvm process of $user not found"
kill -TERM "$fcvm_pid"
rc=0
wait "$pid" || rc=$?
log "fcvm run (as $user) exited $rc"
[ "$rc" -eq 143 ] || [ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || { cat "$TEST_TMP/err" >&2; fail "exit $rc"; }
[ -z "$(ls -A "$TEST_TMP/home/data/vms" 2>/dev/null)" ] || fail "VM directory left behind: $(ls -laR "$TEST_TMP/home/data/vms")"
# (Zombies are not ours to reap when the sandbox's PID 1 does not reap orphans.)
live=$(ps -u "$user" -o stat=,pid=,args= | grep -v '^Z' || true)
[ -z "$live" ] || fail "processes of $user left behind: $live"
echo "non-root run with a published port: ok"
