#!/usr/bin/env bash
# Volumes in sshfs mode, for real: live two-way sharing of a host directory (a host file is read
# in the container, the container's writes are on the host at once, a file the host writes while
# the VM runs is seen in the container), :ro refused in the container, the server confined to the
# directory (the guest cannot reach anything beside it), a sqlite3 workload intact on the host
# after stop, and rm leaving the directory.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
sqlite=$(need_image sqlite.oci.tar)
need_cmd sqlite3
need_cmd bwrap
[ -x /usr/lib/openssh/sftp-server ] || skip "openssh-sftp-server is not installed"
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"
vol=$TEST_TMP/share
mkdir -p "$vol"
echo from-host >"$vol/hello.txt"

fcvm run -d --name sv --map "$vol:/data,mode=sshfs" "oci-archive:$sqlite" sleep 600 >/dev/null
# 1. Live both ways.
[ "$(fcvm exec sv -- cat /data/hello.txt)" = from-host ] || fail "the container cannot read the host file"
fcvm exec sv -- sh -c 'echo from-container > /data/c.txt'
[ "$(cat "$vol/c.txt")" = from-container ] || fail "the container's write is not on the host while it runs"
echo written-live >"$vol/live.txt"
[ "$(fcvm exec sv -- cat /data/live.txt)" = written-live ] || fail "the host's new file is not in the container"
# 2. Confinement: the server's whole world is the directory; the guest sees nothing beside it.
fcvm exec --vm sv -- sh -c 'ls -a /run/fcvm/volumes/0/ | sort' >"$TEST_TMP/ls"
[ "$(grep -cv -x -e . -e .. -e hello.txt -e c.txt -e live.txt "$TEST_TMP/ls")" = 0 ] ||
  fail "unexpected entries in the volume: $(cat "$TEST_TMP/ls")"
# 3. A database workload; then stop: intact and complete on the host.
fcvm exec sv -- sh -c 'sqlite3 /data/app.db "CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT);" &&
  i=0; while [ $i -lt 300 ]; do echo "INSERT INTO t(v) VALUES (hex(randomblob(64)));"; i=$((i+1)); done |
  sqlite3 /data/app.db' || fail "the sqlite workload failed"
fcvm stop -t 1 sv >/dev/null
[ "$(sqlite3 "$vol/app.db" 'PRAGMA integrity_check;')" = ok ] || fail "the host's database is damaged"
[ "$(sqlite3 "$vol/app.db" 'SELECT count(*) FROM t;')" = 300 ] || fail "rows lost on the host"
[ -z "$(ls -A "$vol" | grep fuse_hidden)" ] || fail "sshfs left debris: $(ls -A "$vol")"
fcvm rm sv >/dev/null
[ -f "$vol/hello.txt" ] && [ -f "$vol/app.db" ] || fail "rm touched the host directory"

# 4. :ro: writes fail in the container, the host is untouched.
rc=0
fcvm run --map "$vol:/data:ro,mode=sshfs" "oci-archive:$sqlite" sh -c 'cat /data/hello.txt && echo x > /data/ro.txt' \
  >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -ne 0 ] && [ "$(cat "$TEST_TMP/out")" = from-host ] || fail ":ro sshfs: exit $rc: $(cat "$TEST_TMP/out" "$TEST_TMP/err")"
grep -qi 'read-only' "$TEST_TMP/err" || fail "no read-only error: $(cat "$TEST_TMP/err")"
[ ! -e "$vol/ro.txt" ] || fail "a :ro sshfs volume was written"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers
[ -z "$(pgrep -a -f "bwrap.*$vol")" ] || fail "an SFTP server outlived its VM: $(pgrep -a -f "bwrap.*$vol")"
echo "sshfs volumes: ok"
