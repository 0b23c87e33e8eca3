#!/usr/bin/env bash
# Volumes in nfs mode (root, --network privileged), for real: the VM's own NFSv4 server
# (NFS-Ganesha, user space) on the bridge exports the directory to that VM's address alone; live
# both ways; :ro refused in the container; a sqlite3 workload intact on the host after stop; the
# server gone with the VM; rm leaves the directory.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
sqlite=$(need_image sqlite.oci.tar)
need_cmd sqlite3
need_cmd nft
[ -x /usr/bin/ganesha.nfsd ] || skip "NFS-Ganesha is not installed (apt-get install nfs-ganesha nfs-ganesha-vfs)"
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"
vol=$TEST_TMP/nfs
mkdir -p "$vol"
echo from-host >"$vol/hello.txt"

fcvm run -d --name nv --network privileged --map "$vol:/data,mode=nfs" "oci-archive:$sqlite" sleep 600 >/dev/null
# 1. The export names this VM's address and nothing else.
dir=$(fcvm inspect nv | jq -r '.[0].paths.dir')
addr=$(fcvm inspect nv | jq -r '.[0].network.host_address')
grep -q "Clients = $addr;" "$dir/ganesha.conf" || fail "the export is not limited to $addr: $(cat "$dir/ganesha.conf")"
[ "$(grep -c 'Clients = ' "$dir/ganesha.conf")" = 1 ] || fail "more than one client allowed"
# 2. Live both ways.
[ "$(fcvm exec nv -- cat /data/hello.txt)" = from-host ] || fail "the container cannot read the host file"
fcvm exec nv -- sh -c 'echo from-container > /data/c.txt'
[ "$(cat "$vol/c.txt")" = from-container ] || fail "the container's write is not on the host while it runs"
echo written-live >"$vol/live.txt"
[ "$(fcvm exec nv -- cat /data/live.txt)" = written-live ] || fail "the host's new file is not in the container"
# 3. A database workload; stop; intact and complete on the host; the server is gone.
fcvm exec nv -- sh -c 'sqlite3 /data/app.db "CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT);" &&
  i=0; while [ $i -lt 300 ]; do echo "INSERT INTO t(v) VALUES (hex(randomblob(64)));"; i=$((i+1)); done |
  sqlite3 /data/app.db' || fail "the sqlite workload failed"
fcvm stop -t 1 nv >/dev/null
[ "$(sqlite3 "$vol/app.db" 'PRAGMA integrity_check;')" = ok ] || fail "the host's database is damaged"
[ "$(sqlite3 "$vol/app.db" 'SELECT count(*) FROM t;')" = 300 ] || fail "rows lost on the host"
[ -z "$(pgrep -f "ganesha.nfsd.*$dir")" ] || fail "the NFS server outlived its VM"
fcvm rm nv >/dev/null
[ -f "$vol/hello.txt" ] && [ -f "$vol/app.db" ] || fail "rm touched the host directory"

# 4. :ro: writes fail in the container.
rc=0
fcvm run --network privileged --map "$vol:/data:ro,mode=nfs" "oci-archive:$sqlite" \
  sh -c 'cat /data/hello.txt && echo x > /data/ro.txt' >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -ne 0 ] && [ "$(cat "$TEST_TMP/out")" = from-host ] || fail ":ro nfs: exit $rc: $(cat "$TEST_TMP/out" "$TEST_TMP/err")"
grep -qi 'read-only' "$TEST_TMP/err" || fail "no read-only error: $(cat "$TEST_TMP/err")"
[ ! -e "$vol/ro.txt" ] || fail "a :ro nfs volume was written"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers
echo "nfs volumes: ok"
