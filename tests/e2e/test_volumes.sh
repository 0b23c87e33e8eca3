#!/usr/bin/env bash
# Volumes in block mode, for real: a host directory mapped into the container (read there, the
# container's writes and deletions back on the host once the VM ends), :ro, an image file mapped
# as it is, stop/start keeping the data and rm keeping the host's files, a sqlite3 workload whose
# database passes an integrity check on the host with every transaction in it, kill -9 of the VMM
# during writes leaving the directory exactly as it was, and bad --map values refused with exit
# 2 and nothing created.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
sqlite=$(need_image sqlite.oci.tar)
need_cmd sqlite3
need_cmd debugfs
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"
vol=$TEST_TMP/vol
mkdir -p "$vol/sub" "$vol/keep"
echo from-host >"$vol/hello.txt"
echo doomed >"$vol/sub/gone.txt"
echo kept >"$vol/keep/k.txt"

# 1. Read a host file, write, delete and create in the container: the host has the result.
out=$(fcvm run --map "$vol:/data" "oci-archive:$sqlite" sh -c \
  'cat /data/hello.txt; echo from-container > /data/new.txt; rm /data/sub/gone.txt; mkdir /data/d; echo deep > /data/d/f; echo more >> /data/hello.txt') ||
  fail "run with --map failed: $out"
[ "$out" = from-host ] || fail "the container read '$out' from the volume"
[ "$(cat "$vol/new.txt")" = from-container ] || fail "the container's new file is not on the host"
[ "$(cat "$vol/d/f")" = deep ] || fail "the container's new directory is not on the host"
[ ! -e "$vol/sub/gone.txt" ] || fail "a file deleted in the container is still on the host"
[ "$(cat "$vol/keep/k.txt")" = kept ] || fail "an untouched file changed"
[ "$(tail -1 "$vol/hello.txt")" = more ] || fail "an appended file did not come back"
[ -z "$(ls -A "$vol" | grep -v -x -e hello.txt -e new.txt -e d -e sub -e keep)" ] ||
  fail "unexpected entries on the host: $(ls -A "$vol")"

# 2. :ro: the container cannot write, the host keeps its files.
rc=0
fcvm run --map "$vol:/data:ro" "oci-archive:$sqlite" sh -c 'echo x > /data/ro.txt' 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a write to a :ro volume succeeded"
grep -qi 'read-only' "$TEST_TMP/err" || fail "no read-only error: $(cat "$TEST_TMP/err")"
[ ! -e "$vol/ro.txt" ] || fail "a :ro volume was written back"

# 3. An image file is attached as it is; the VM's removal leaves it (and the data in it).
img=$TEST_TMP/user.img
mkdir -p "$TEST_TMP/seed" && echo seeded >"$TEST_TMP/seed/s.txt"
truncate -s 64M "$img" && mke2fs -q -t ext4 -d "$TEST_TMP/seed" "$img"
fcvm run --name img-vm --keep --map "$img:/img" "oci-archive:$sqlite" sh -c 'cat /img/s.txt; echo written > /img/w.txt' >"$TEST_TMP/out" ||
  fail "run with an image file map"
[ "$(cat "$TEST_TMP/out")" = seeded ] || fail "image file content: $(cat "$TEST_TMP/out")"
fcvm rm img-vm >/dev/null
[ -f "$img" ] || fail "rm deleted the user's image file"
[ "$(debugfs -R 'cat /w.txt' "$img" 2>/dev/null)" = written ] || fail "the write into the image file is missing"

# 4. A database workload: 500 transactions, a live `volume sync`, one more, then stop; the host's
#    copy is intact and complete each time.
db=$TEST_TMP/db
mkdir -p "$db"
fcvm run -d --name dbvm --map "$db:/db" "oci-archive:$sqlite" sleep 600 >/dev/null
fcvm exec dbvm -- sh -c 'sqlite3 /db/app.db "CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT);" &&
  i=0; while [ $i -lt 500 ]; do echo "INSERT INTO t(v) VALUES (hex(randomblob(64)));"; i=$((i+1)); done |
  sqlite3 /db/app.db' || fail "the sqlite workload failed"
[ "$(fcvm exec dbvm -- sqlite3 /db/app.db 'SELECT count(*) FROM t;')" = 500 ] || fail "rows in the guest"
# `volume sync` while it runs: the host gets a consistent copy now (the guest's file system is
# frozen while its image is copied); the VM goes on.
[ ! -e "$db/app.db" ] || fail "the database reached the host before any sync"
fcvm volume sync dbvm >/dev/null || fail "volume sync"
[ "$(sqlite3 "$db/app.db" 'PRAGMA integrity_check;')" = ok ] || fail "the live-synced database is damaged"
[ "$(sqlite3 "$db/app.db" 'SELECT count(*) FROM t;')" = 500 ] || fail "rows missing after volume sync"
fcvm exec dbvm -- sqlite3 /db/app.db "INSERT INTO t(v) VALUES ('after-sync');" || fail "the volume is not writable after sync"
[ "$(sqlite3 "$db/app.db" 'SELECT count(*) FROM t;')" = 500 ] || fail "the host changed without a sync"
fcvm stop -t 1 dbvm >/dev/null
[ "$(sqlite3 "$db/app.db" 'PRAGMA integrity_check;')" = ok ] || fail "the host's database is damaged"
[ "$(sqlite3 "$db/app.db" 'SELECT count(*) FROM t;')" = 501 ] || fail "rows lost: $(sqlite3 "$db/app.db" 'SELECT count(*) FROM t;')"

# 5. Volumes survive stop/start: the restarted VM sees what was written back; rm keeps the host
#    directory.
fcvm start dbvm >/dev/null
[ "$(fcvm exec dbvm -- sqlite3 /db/app.db 'SELECT count(*) FROM t;')" = 501 ] || fail "rows after start"
fcvm rm -f dbvm >/dev/null
[ -f "$db/app.db" ] || fail "rm deleted the host's data"

# 6. kill -9 of the VMM during writes: each host file is in its old state (no half-written file,
#    no torn database).
before=$(cd "$db" && sha256sum app.db)
fcvm run -d --name crash --map "$db:/db" "oci-archive:$sqlite" sh -c \
  'while :; do sqlite3 /db/app.db "INSERT INTO t(v) VALUES (hex(randomblob(512)));"; dd if=/dev/urandom of=/db/big bs=64k count=64 2>/dev/null; done' >/dev/null
sleep 3
vmm=$(fcvm inspect crash | jq -r '.[0].processes.vmm.pid')
kill -9 "$vmm"
for _ in $(seq 100); do [ "$(fcvm inspect crash | jq -r '.[0].state.status')" = exited ] && break; sleep 0.1; done
[ "$(cd "$db" && sha256sum app.db)" = "$before" ] || fail "the database changed although the VM was killed"
[ ! -e "$db/big" ] || fail "a file written during the crash reached the host"
[ "$(sqlite3 "$db/app.db" 'PRAGMA integrity_check;')" = ok ] || fail "the database is damaged after the crash"
[ -z "$(ls -A "$db" | grep -v -x app.db)" ] || fail "debris on the host: $(ls -A "$db")"
fcvm rm -f crash >/dev/null

# 7. Bad --map values: exit 2, one message naming the value, nothing created.
for bad in "$TEST_TMP/missing:/data" "$vol:data" "$vol:/data,mode=floppy" "$vol:/"; do
  rc=0
  fcvm run -d --map "$bad" "oci-archive:$sqlite" true 2>"$TEST_TMP/err" || rc=$?
  [ "$rc" -eq 2 ] || fail "--map $bad: exit $rc: $(cat "$TEST_TMP/err")"
  grep -qF -- "${bad%%,*}" "$TEST_TMP/err" || fail "--map $bad: the message does not name it: $(cat "$TEST_TMP/err")"
done
rc=0
fcvm run -d --map "$vol:/a" --map "$TEST_TMP/seed:/a" "oci-archive:$sqlite" true 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'mapped twice' "$TEST_TMP/err" || fail "duplicate guest path: exit $rc: $(cat "$TEST_TMP/err")"
rc=0
fcvm run -d --map "$vol:/a,mode=nfs" "oci-archive:$sqlite" true 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'privileged' "$TEST_TMP/err" || fail "nfs without privileged networking: exit $rc: $(cat "$TEST_TMP/err")"
[ -z "$(ls "$FCVM_DATA_DIR/vms" 2>/dev/null)" ] || fail "bad input created VMs: $(ls "$FCVM_DATA_DIR/vms")"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers
echo "volumes: ok"
