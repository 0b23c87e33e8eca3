#!/usr/bin/env bash
# Many fcvm commands at once keep the store consistent: 10 parallel `run -d` + `rm -f` from
# separate processes (every VM accounted for, nothing left), and two runs racing for one name
# (exactly one wins, the other gets a clear error and creates nothing).
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"

# Small VMs: under software emulation ten boots share two cores.
n=10
start=$SECONDS
for i in $(seq $n); do
  (
    rc=0
    fcvm run -d --name "p$i" --mem 256 --cpu 1 "oci-archive:$busybox" sh -c "echo vm $i" >"$TEST_TMP/run$i.out" 2>&1 || rc=$?
    echo $rc >"$TEST_TMP/run$i.rc"
  ) &
done
# The race for one name runs alongside.
for j in 1 2; do
  (
    rc=0
    fcvm run -d --name same --mem 256 --cpu 1 "oci-archive:$busybox" true >"$TEST_TMP/same$j.out" 2>&1 || rc=$?
    echo $rc >"$TEST_TMP/same$j.rc"
  ) &
done
wait
log "$((n + 2)) parallel run -d finished in $((SECONDS - start)) s"
for i in $(seq $n); do
  [ "$(cat "$TEST_TMP/run$i.rc")" = 0 ] || fail "run p$i failed: $(cat "$TEST_TMP/run$i.out")"
done
rcs=$(cat "$TEST_TMP/same1.rc" "$TEST_TMP/same2.rc" | sort | tr '\n' ' ')
[ "$rcs" = "0 2 " ] || fail "name race: exit codes $rcs, want one 0 and one 2: $(cat "$TEST_TMP"/same*.out)"
grep -h 'already in use' "$TEST_TMP"/same*.out >/dev/null || fail "name race: no clear error"

# Every VM is accounted for: exactly the names we asked for, each with its own id and directory.
names=$(fcvm ls -a --json | python3 -c 'import json,sys; print(" ".join(sorted(v["name"] for v in json.load(sys.stdin))))')
want=$(printf 'p%s\n' $(seq $n) | sort | tr '\n' ' ')
[ "$names" = "${want}same" ] || fail "ls -a: '$names', want '${want}same'"
[ "$(ls "$FCVM_DATA_DIR/vms" | wc -l)" -eq $((n + 1)) ] || fail "VM directories: $(ls "$FCVM_DATA_DIR/vms")"
for i in $(seq $n); do
  for _ in $(seq 50); do grep -qx "vm $i" <<<"$(fcvm logs "p$i")" && break; sleep 0.2; done
  grep -qx "vm $i" <<<"$(fcvm logs "p$i")" || fail "p$i output: $(fcvm logs "p$i")"
done

# Parallel removal.
for v in $(fcvm __names); do fcvm rm -f "$v" >/dev/null & done
wait
[ -z "$(fcvm ls -a -q)" ] || fail "records left: $(fcvm ls -a)"
[ -z "$(ls -A "$FCVM_DATA_DIR/vms")" ] || fail "directories left"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers
sqlite3 "$FCVM_DATA_DIR/state.db" 'PRAGMA integrity_check' | grep -qx ok || fail "store integrity"
echo "parallel: ok"
