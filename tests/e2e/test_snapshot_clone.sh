#!/usr/bin/env bash
# Warm snapshots and clones, for real (QEMU): nginx with an HTTP gate and --save-snapshot; three
# clones at once serving on their own ports; a file written in one clone's container is absent
# from the others and from the snapshot; exec and logs on a clone; stop/rm of clones leave the
# snapshot intact; `snapshot rm` refused while clones exist (-f removes them); `snapshot create`
# of a running VM; kill -9 while a snapshot is written leaves nothing listed; clone of a missing
# snapshot is exit 2 with nothing created.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
nginx=$(need_image nginx.oci.tar)
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done; for s in \$('$FCVM_BIN' snapshot ls -q 2>/dev/null); do '$FCVM_BIN' snapshot rm -f \$s >/dev/null 2>&1; done"
welcome='Welcome to fcvm nginx'
snapdir=$FCVM_DATA_DIR/snapshots

# 1. The source: ready when nginx answers inside the guest, then snapshotted, then resumed.
p0=$(free_port)
t0=$SECONDS
fcvm run -d --name src --mem 512 -p "$p0:80" --wait-ready 'mode=http,url=http://127.0.0.1:80/' \
  --save-snapshot warm "oci-archive:$nginx" >/dev/null
log "source ready and snapshotted in $((SECONDS - t0)) s"
[ "$(fcvm snapshot ls -q)" = warm ] || fail "snapshot ls: $(fcvm snapshot ls)"
[ "$(fcvm snapshot ls --filter source=src --filter name=war --format '{{.Name}} {{.Source}} {{.Backend}}')" = "warm src qemu" ] ||
  fail "snapshot ls --filter --format: $(fcvm snapshot ls --filter source=src --format '{{.Name}} {{.Source}}' 2>&1)"
[ -z "$(fcvm snapshot ls -q --filter source=other)" ] || fail "snapshot ls --filter source=other matched"
[ "$(fcvm snapshot ls --format json | jq -r '.[0].name')" = warm ] || fail "snapshot ls --format json"
rc=0; fcvm snapshot ls --filter colour=red >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "snapshot ls --filter colour=red: exit $rc"
fcvm snapshot inspect warm >"$TEST_TMP/snap.json"
jq -e '.[0] | .source.name == "src" and .backend == "qemu" and .resources.mem_mib == 512 and .size_bytes > 0 and .status == "complete"' \
  "$TEST_TMP/snap.json" >/dev/null || fail "snapshot inspect: $(cat "$TEST_TMP/snap.json")"
curl -fsS "http://127.0.0.1:$p0/" | grep -q "$welcome" || fail "the source does not serve after its snapshot"

# 2. Three clones at once, each on its own port.
ports=()
for i in 1 2 3; do ports[i]=$(free_port); done
t0=$(date +%s%N)
pids=()
for i in 1 2 3; do
  fcvm clone --snapshot warm --name "c$i" -p "${ports[i]}:80" -d >"$TEST_TMP/c$i.out" 2>"$TEST_TMP/c$i.err" &
  pids[i]=$!
done
for i in 1 2 3; do
  wait "${pids[i]}" || fail "clone c$i failed: $(cat "$TEST_TMP/c$i.err")"
done
log "3 clones ready in $((($(date +%s%N) - t0) / 1000000)) ms"
for i in 1 2 3; do
  body=$(curl -fsS --max-time 10 "http://127.0.0.1:${ports[i]}/") || fail "clone c$i does not serve"
  grep -q "$welcome" <<<"$body" || fail "clone c$i serves: $body"
done
jq -e --arg id "$(jq -r '.[0].id' "$TEST_TMP/snap.json")" '.[0].snapshot == $id' \
  <(fcvm inspect c1) >/dev/null || fail "inspect c1 does not name its snapshot"

# 3. Isolation: a file written into c1's container (through its root overlay in the guest, whose
#    writable layer is on c1's own disk; the image has no shell) is served by c1 only.
fcvm exec --vm c1 -- sh -c 'echo only-c1 > /run/fcvm/rootfs/usr/share/nginx/html/marker.txt' ||
  fail "cannot write into c1's container"
[ "$(curl -fsS "http://127.0.0.1:${ports[1]}/marker.txt")" = only-c1 ] || fail "c1 does not serve its file"
for p in "${ports[2]}" "${ports[3]}" "$p0"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/marker.txt")
  [ "$code" = 404 ] || fail "port $p serves c1's file (HTTP $code)"
done

# 4. exec and logs on a clone: the container answers, and the clone's own requests are logged.
fcvm exec c2 -- nginx -v 2>&1 | grep -q 'nginx version' || fail "exec in clone c2"
curl -fsS "http://127.0.0.1:${ports[2]}/?from-test-c2" >/dev/null
for _ in $(seq 50); do fcvm logs c2 2>&1 | grep -q 'from-test-c2' && break; sleep 0.2; done
fcvm logs c2 2>&1 | grep -q 'GET /?from-test-c2' || fail "clone c2's log lacks its request: $(fcvm logs c2 | tail -5)"

# 5. The snapshot cannot go while clones use it; the refusal names them.
rc=0
fcvm snapshot rm warm 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'c1' "$TEST_TMP/err" || fail "snapshot rm with clones: exit $rc: $(cat "$TEST_TMP/err")"
[ "$(fcvm snapshot ls -q)" = warm ] || fail "the refused rm removed the snapshot"

# 6. stop and rm of a clone leave the snapshot intact: a new clone still starts from it, without
#    c1's file.
fcvm stop -t 0 c3 >/dev/null
fcvm rm c3 >/dev/null
p4=$(free_port)
fcvm clone --snapshot warm --name c4 -p "$p4:80" -d --wait-ready 'mode=http,url=http://127.0.0.1:80/' \
  >/dev/null || fail "clone (with an HTTP gate) after rm of a clone"
curl -fsS "http://127.0.0.1:$p4/" | grep -q "$welcome" || fail "c4 does not serve"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p4/marker.txt")
[ "$code" = 404 ] || fail "the snapshot has c1's file (HTTP $code)"
fcvm rm -f c4 >/dev/null

# 7. snapshot create of a running VM; a clone of a clone's memory is refused (QEMU maps it
#    privately) with a clear message.
fcvm snapshot create src warm2 >/dev/null || fail "snapshot create src warm2"
curl -fsS "http://127.0.0.1:$p0/" | grep -q "$welcome" || fail "the source does not serve after snapshot create"
rc=0
fcvm snapshot create c1 nope 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'restored from a snapshot' "$TEST_TMP/err" || fail "snapshot of a clone: exit $rc: $(cat "$TEST_TMP/err")"
[ -z "$(fcvm snapshot ls -q | grep -x nope)" ] || fail "a failed snapshot is listed"

# 8. Bad input: exit 2, nothing created.
before=$(ls "$FCVM_DATA_DIR/vms" | wc -l)
rc=0
fcvm clone --snapshot no-such-snapshot -d 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'no-such-snapshot' "$TEST_TMP/err" || fail "clone of a missing snapshot: exit $rc: $(cat "$TEST_TMP/err")"
rc=0
fcvm snapshot create src 'bad/name' 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 2 ] || fail "bad snapshot name: exit $rc"
rc=0
fcvm snapshot create src warm 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'already exists' "$TEST_TMP/err" || fail "taken snapshot name: exit $rc: $(cat "$TEST_TMP/err")"
[ "$(ls "$FCVM_DATA_DIR/vms" | wc -l)" = "$before" ] || fail "bad input created a VM directory"

# 9. kill -9 of the writer (the source's monitor) while the snapshot is written: nothing listed,
#    no partial files once anything looks.
monitor=$(fcvm inspect src | jq -r '.[0].processes.monitor.pid')
existing=$(ls "$snapdir")
fcvm snapshot create src torn >/dev/null 2>&1 &
writer=$!
for _ in $(seq 200); do
  [ "$(ls "$snapdir" | grep -vxF "$existing" | wc -l)" -gt 0 ] && break
  sleep 0.01
done
kill -9 "$monitor"
wait "$writer" && fail "snapshot create succeeded although its writer was killed"
[ -z "$(fcvm snapshot ls -q | grep -x torn)" ] || fail "a torn snapshot is listed"
[ "$(ls "$snapdir" | grep -vxF "$existing" | wc -l)" -eq 0 ] || fail "a torn snapshot left files: $(ls -la "$snapdir")"
fcvm rm -f src >/dev/null

# 10. snapshot rm -f stops and removes the clones, then the snapshot; warm2 has none.
fcvm snapshot rm -f warm >/dev/null || fail "snapshot rm -f"
[ -z "$(fcvm ls -a -q)" ] || fail "snapshot rm -f left clones: $(fcvm ls -a)"
fcvm snapshot rm warm2 >/dev/null || fail "snapshot rm warm2"
[ -z "$(ls "$snapdir")" ] || fail "snapshot files left: $(ls -la "$snapdir")"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers

# 11. The event journal recorded the snapshots and the clones' restores.
fcvm events --no-stream --json --filter event=snapshot_created >"$TEST_TMP/snap-events"
grep -q '"detail":"warm"' "$TEST_TMP/snap-events" && grep -q '"detail":"warm2"' "$TEST_TMP/snap-events" ||
  fail "snapshot_created events: $(cat "$TEST_TMP/snap-events")"
[ "$(fcvm events --no-stream --filter event=clone_started | grep -c ' clone_started c[123] ')" -ge 3 ] ||
  fail "clone_started events: $(fcvm events --no-stream --filter event=clone_started)"
echo "snapshots and clones: ok"
