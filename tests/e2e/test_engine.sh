#!/usr/bin/env bash
# The engine's promises with real VMs: a client that never reads stalls nothing (an exec and a
# stop of the same VM finish in normal time while a foreground run's output goes nowhere, and the
# container log keeps every line), and `fcvm events` shows each VM's whole life, for VMs started
# after it began, with filters and --since.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"
ms() { echo $(($(date +%s%N) / 1000000)); }

# 1. Events from this moment on, followed in the background (--since: nothing can slip between
#    the start of the follower and the first VM).
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fcvm events --json --since "$since" >"$TEST_TMP/events" 2>"$TEST_TMP/events.err" &
follower=$!
on_exit "kill $follower 2>/dev/null"

# 2. The baseline: exec on a VM nobody stalls.
fcvm run -d --stop-timeout 1 --name quiet "oci-archive:$busybox" sleep 600 >/dev/null || fail "run -d quiet"
t=$(ms)
[ "$(fcvm exec quiet -- echo hi)" = hi ] || fail "exec quiet"
base_exec=$(($(ms) - t))

# 3. A foreground run whose stdout is a pipe that nobody reads: 30000 lines of 991 bytes (~30 MB,
#    far past the monitor's 4 MiB per-client bound), then it stays up.
lines=30000
mkfifo "$TEST_TMP/pipe"
sleep 100000 <"$TEST_TMP/pipe" &
reader=$!
on_exit "kill $reader 2>/dev/null"
"$FCVM_BIN" run --keep --stop-timeout 2 --name loud "oci-archive:$busybox" \
  sh -c "yes \"\$(printf '%0990d' 0)\" | head -n $lines; echo done-writing >&2; exec sleep 600" \
  >"$TEST_TMP/pipe" 2>"$TEST_TMP/loud.err" &
runner=$!
on_exit "kill -9 $runner 2>/dev/null"
written() { grep -q done-writing "$FCVM_DATA_DIR"/vms/*/container.log 2>/dev/null; }
deadline=$((SECONDS + 240))
until written; do
  [ $SECONDS -lt $deadline ] || fail "the container never finished writing: $(cat "$TEST_TMP/loud.err")"
  kill -0 "$runner" 2>/dev/null || fail "the foreground run ended: $(cat "$TEST_TMP/loud.err")"
  sleep 0.5
done

# 4. With that client stalled: exec and stop of the same VM in normal time.
t=$(ms)
out=$(timeout 60 "$FCVM_BIN" exec loud -- echo still-served) || fail "exec loud while a client stalls"
[ "$out" = still-served ] || fail "exec loud printed '$out'"
stalled_exec=$(($(ms) - t))
t=$(ms)
timeout 90 "$FCVM_BIN" stop loud >/dev/null || fail "stop loud while a client stalls"
stalled_stop=$(($(ms) - t))
log "exec: ${base_exec} ms alone, ${stalled_exec} ms beside a stalled client; stop: ${stalled_stop} ms"
[ "$stalled_exec" -lt 30000 ] || fail "exec took ${stalled_exec} ms beside a stalled client"
[ "$stalled_stop" -lt 45000 ] || fail "stop took ${stalled_stop} ms beside a stalled client"

# 5. The stalled client lost output, the log on disk none.
dir=$(fcvm inspect loud | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["paths"]["dir"])')
grep -q 'missed [0-9]* bytes of output' "$dir/monitor.log" ||
  fail "the client never fell behind (no drop in monitor.log): the test proves nothing"
got=$(fcvm logs loud 2>/dev/null | grep -c '^0\{990\}$' || true)
[ "$got" -eq "$lines" ] || fail "the container log has $got of $lines lines"
kill "$reader" 2>/dev/null
fcvm rm loud >/dev/null || fail "rm loud"
fcvm stop quiet >/dev/null || fail "stop quiet"
fcvm rm quiet >/dev/null || fail "rm quiet"

# 6. Events: each VM's life in order, as the follower saw it and as --no-stream prints it.
wait_until 30 grep -q '"event":"removed".*"vm_name":"quiet"\|"vm_name":"quiet".*"event":"removed"' \
  "$TEST_TMP/events" || fail "the follower saw no removal of quiet: $(cat "$TEST_TMP/events" "$TEST_TMP/events.err")"
python3 - "$TEST_TMP/events" <<'PY' || fail "events: $(cat "$TEST_TMP/events")"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def life(name):
    return [e["event"] for e in events if e["vm_name"] == name]
def in_order(seq, want):
    it = iter(seq)
    return all(any(x == w for x in it) for w in want)
loud = life("loud")
assert in_order(loud, ["created", "starting", "running", "ready", "exec_started", "exec_exited",
                       "stopping", "exited", "removed"]), loud
quiet = life("quiet")
assert in_order(quiet, ["created", "starting", "running", "ready", "exec_started", "exec_exited",
                        "stopping", "exited", "removed"]), quiet
exited = [e for e in events if e["vm_name"] == "loud" and e["event"] == "exited"]
assert exited and exited[0].get("exit_code") == 137, exited  # sleep ignores SIGTERM: SIGKILL
assert all(e["time"].endswith("Z") for e in events), events[0]
PY
only=$(fcvm events --no-stream --since "$since" --json --filter vm=quiet --filter event=exec_exited)
[ "$(wc -l <<<"$only")" -eq 1 ] && grep -q '"exit_code":0' <<<"$only" ||
  fail "events --no-stream with filters: $only"
[ -z "$(fcvm events --no-stream --since 1s --filter vm=no-such-vm)" ] || fail "a filter matched nothing's events"
assert_no_leftovers
echo "engine: ok (exec ${base_exec} ms alone, ${stalled_exec} ms beside a stalled client; stop ${stalled_stop} ms)"
