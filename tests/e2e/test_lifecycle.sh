#!/usr/bin/env bash
# The VM lifecycle across separate fcvm commands: run -d -> ls (text, --json, -q) -> logs and
# logs -f -> exec (exit code, stdin, env, workdir, --vm) -> inspect -> stop -> exec refused ->
# start -> rm refused while running -> restart -> rename -> port -> pause -> kill and wait ->
# rm -f; then nothing remains. Bad input on the way.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
on_exit "'$FCVM_BIN' rm -f life life2 >/dev/null 2>&1"

expect_rc() { # RC CMD...
  local want=$1; shift
  local rc=0
  "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "$* exited $rc, want $want: $(cat "$TEST_TMP/last.err")"
}

# 1. run -d returns the id once the container runs.
port=$(free_port)
id=$(fcvm run -d --name life --stop-timeout 1 -p "$port:8080" -l tier=test -l owner "oci-archive:$busybox" \
  sh -c 'echo first; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 1; done')
[[ "$id" =~ ^[0-9a-f]{32}$ ]] || fail "run -d printed '$id', want an id"
log "run -d: $id"

# 2. ls in its three forms.
grep -E "^life +${id:0:12} .* up " <<<"$(fcvm ls)" >/dev/null || fail "ls does not show life running: $(fcvm ls)"
fcvm ls --json | python3 -c '
import json, sys
vms = json.load(sys.stdin)
assert [v["name"] for v in vms] == ["life"], vms
assert vms[0]["state"]["status"] == "running", vms[0]["state"]
assert vms[0]["processes"]["vmm"]["pid"] > 0
' || fail "ls --json"
[ "$(fcvm ls -q)" = "${id:0:12}" ] || fail "ls -q: $(fcvm ls -q)"
[ "$(fcvm ls -q --filter label=tier=test --filter label=owner)" = "${id:0:12}" ] || fail "ls --filter label"
[ -z "$(fcvm ls -q --filter label=tier=prod)" ] || fail "ls --filter label=tier=prod matched"
[ -z "$(fcvm ls -q --filter status=exited)" ] || fail "ls --filter status=exited matched"
[ "$(fcvm inspect life | jq -c '.[0].labels')" = '{"owner":"","tier":"test"}' ] || fail "inspect labels"
expect_rc 2 fcvm ls --filter colour=red
[ "$(fcvm ls --format '{{.Name}} {{.Labels}}')" = "life owner=,tier=test" ] || fail "ls --format: $(fcvm ls --format '{{.Name}} {{.Labels}}')"
[ "$(fcvm ls --format 'table {{.Name}}' | head -1)" = NAME ] || fail "ls --format table"
expect_rc 2 fcvm ls --format '{{.Colour}}'
fcvm ls -q "${id:0:6}" >/dev/null 2>&1 && fail "ls takes no arguments"

# 3. logs; logs -f sees output written after it started.
# (Output travels asynchronously from the guest: give it a moment.)
# (grep reads whole outputs here: with pipefail, grep -q closing the pipe early would fail it.)
for _ in $(seq 50); do grep -qx 'tick 1' <<<"$(fcvm logs life)" && break; sleep 0.2; done
grep -qx first <<<"$(fcvm logs life)" || fail "logs lacks the first line: $(fcvm logs life 2>&1)"
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z tick [0-9]+$' <<<"$(fcvm logs --timestamps --tail 1 life)" ||
  fail "logs --timestamps --tail 1: $(fcvm logs --timestamps --tail 1 life)"
last=$(fcvm logs --tail 1 life | awk '{print $2}')
fcvm logs -f life >"$TEST_TMP/follow" 2>&1 &
follower=$!
on_exit "kill $follower 2>/dev/null"
wait_until 30 grep -q "^tick $((last + 2))$" "$TEST_TMP/follow" || fail "logs -f missed new output (last was $last): $(tail -3 "$TEST_TMP/follow")"

# 4. exec: exit code, stdin, env, workdir, the guest OS.
expect_rc 7 fcvm exec life -- sh -c 'exit 7'
[ "$(echo hello-stdin | fcvm exec -i life -- cat)" = hello-stdin ] || fail "exec -i does not forward stdin"
[ "$(fcvm exec -e FOO=bar life -- sh -c 'echo $FOO')" = bar ] || fail "exec -e"
[ "$(fcvm exec -w /tmp life -- pwd)" = /tmp ] || fail "exec -w"
[ "$(fcvm exec --vm life -- cat /proc/sys/kernel/hostname)" = life ] || fail "exec --vm: $(fcvm exec --vm life -- cat /proc/sys/kernel/hostname 2>&1)"
# podman's form: everything after the VM is the command, options included.
[ "$(fcvm exec life sh -c 'echo "$1 $2"' x -e --vm)" = "-e --vm" ] || fail "exec VM CMD ARGS: $(fcvm exec life sh -c 'echo "$1 $2"' x -e --vm 2>&1)"
# Under TCG the guest keeps the TSC as its clocksource (tsc=reliable), not refined-jiffies.
if pgrep -f -- "-name fcvm-life,.* -accel tcg" >/dev/null; then
  cs=$(fcvm exec --vm life cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
  [ "$cs" = tsc ] || fail "TCG guest clocksource: $cs, want tsc"
fi
# A terminal: the command sees a pty with our window size.
tty_out=$(python3 "$FCVM_SOURCE_DIR/tests/lib/pty_drive.py" rows=33 cols=111 -- "$FCVM_BIN" exec -it life -- sh -c 'tty; stty size')
grep -q '/dev/pts/' <<<"$tty_out" || fail "exec -t: no terminal: $tty_out"
grep -qx '33 111' <<<"$tty_out" || fail "exec -t: window size not passed: $tty_out"
[ "$(fcvm exec life -- sh -c 'tty || true')" = "not a tty" ] || fail "exec without -t has a terminal"
expect_rc 127 fcvm exec life -- /no/such/command
[ "$(fcvm exec -u 1234:5678 life -- sh -c 'echo $(id -u):$(id -g)')" = "1234:5678" ] ||
  fail "exec -u 1234:5678 did not run as that user"
expect_rc 2 fcvm exec -u nosuchuser life -- true
grep -q "'nosuchuser' is not in the container's /etc/passwd" "$TEST_TMP/last.err" ||
  fail "unknown exec user message: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm exec nosuchvm -- true
grep -q 'no VM named "nosuchvm"' "$TEST_TMP/last.err" || fail "unknown name message: $(cat "$TEST_TMP/last.err")"

# 5. inspect.
fcvm inspect life | python3 -c '
import json, sys
v = json.load(sys.stdin)[0]
assert v["name"] == "life" and v["backend"] == "qemu", v
assert v["network"]["guest_address"] == "10.0.2.15/24", v["network"]
' || fail "inspect"

# 6. Duplicate and invalid names: refused, nothing created.
expect_rc 2 fcvm run -d --name life "oci-archive:$busybox" true
grep -q 'already in use' "$TEST_TMP/last.err" || fail "duplicate name message: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm run -d --name 'bad name' "oci-archive:$busybox" true
[ "$(ls "$FCVM_DATA_DIR/vms" | wc -l)" -eq 1 ] || fail "a refused run created a VM directory"

# 7. stop: sh as PID 1 ignores SIGTERM, so SIGKILL after the 1 s timeout.
fcvm stop -t 1 life >/dev/null
wait "$follower" || true  # logs -f ends with the VM
grep -E '^life .* exited \(137\)' <<<"$(fcvm ls -a)" >/dev/null || fail "ls -a after stop: $(fcvm ls -a)"
[ -z "$(fcvm ls -q)" ] || fail "ls (running only) still lists life"
pgrep -r R,S,D -f "qemu-system-x86_64 -name fcvm-life" && fail "qemu survived stop"
expect_rc 2 fcvm exec life -- true
grep -q 'not running' "$TEST_TMP/last.err" || fail "exec on stopped VM: $(cat "$TEST_TMP/last.err")"

# 8. start: the same disk, a new boot.
fcvm start life >/dev/null
grep -q '^life ' <<<"$(fcvm ls)" || fail "start: life not running"
for _ in $(seq 50); do [ "$(grep -c '^first$' <<<"$(fcvm logs life)")" -eq 2 ] && break; sleep 0.2; done
[ "$(grep -c '^first$' <<<"$(fcvm logs life)")" -eq 2 ] || fail "start: container did not run again: $(fcvm logs life)"

# 9. rm refuses a running VM.
expect_rc 2 fcvm rm life

# 10. restart: stopped (SIGKILL after 1 s) and booted again.
fcvm restart -t 1 life >/dev/null || fail "restart"
grep -q '^life ' <<<"$(fcvm ls)" || fail "restart: life not running"
wait_until 60 sh -c "[ \"\$('$FCVM_BIN' logs life | grep -c '^first$')\" -eq 3 ]" ||
  fail "restart: the container did not run a third time: $(fcvm logs life)"

# 11. rename while it runs; bad and taken names refused.
fcvm rename life life2 >/dev/null || fail "rename"
grep -q '^life2 ' <<<"$(fcvm ls)" || fail "ls after rename: $(fcvm ls)"
[ "$(fcvm exec life2 -- echo renamed)" = renamed ] || fail "exec by the new name"
expect_rc 2 fcvm rename life2 'bad name'
grep -q 'invalid name "bad name"' "$TEST_TMP/last.err" || fail "bad rename message: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm rename nosuchvm other
fcvm events --no-stream -f event=renamed | grep -q 'life2' || fail "no renamed event: $(fcvm events --no-stream)"

# 12. port: every published port, or one.
[ "$(fcvm port life2)" = "8080/tcp -> 127.0.0.1:$port" ] || fail "port: $(fcvm port life2 2>&1)"
[ "$(fcvm port life2 8080/tcp)" = "127.0.0.1:$port" ] || fail "port 8080/tcp: $(fcvm port life2 8080/tcp 2>&1)"
expect_rc 2 fcvm port life2 81
expect_rc 2 fcvm port life2 http

# 12b. stats and top: the VMM's figures; the container's processes as it sees them.
stats=$(fcvm stats --no-stream --json life2) || fail "stats: $stats"
jq -e '.[0].name == "life2" and .[0].cpu_percent > 0 and .[0].mem_bytes > 0 and .[0].mem_limit_bytes == 1073741824' \
  <<<"$stats" >/dev/null || fail "stats figures: $stats"
fcvm stats --no-stream | grep -q '^life2 ' || fail "stats table: $(fcvm stats --no-stream)"
top=$(fcvm top life2) || fail "top: $top"
log "top: $(echo "$top" | tr '\n' '|')"
grep -Eq '^USER +PID +PPID +TIME +COMMAND' <<<"$top" || fail "top header: $top"
grep -Eq '^0 +1 +0 +[0-9:]+ +sh -c ' <<<"$top" || fail "top lacks the container's PID 1: $top"

# 12c. cp, both ways: names, modes, owners, symlinks; paths resolve in the container's root.
mkdir -p "$TEST_TMP/cpin/sub"
echo data >"$TEST_TMP/cpin/sub/f"
chmod 0750 "$TEST_TMP/cpin/sub/f"
ln -s f "$TEST_TMP/cpin/sub/link"
fcvm cp "$TEST_TMP/cpin" life2:/tmp/ || fail "cp into a directory"
[ "$(fcvm exec life2 -- cat /tmp/cpin/sub/f)" = data ] || fail "cp in: content"
[ "$(fcvm exec life2 -- stat -c %a:%u /tmp/cpin/sub/f)" = 750:0 ] || fail "cp in: mode or owner: $(fcvm exec life2 -- stat -c %a:%u /tmp/cpin/sub/f)"
[ "$(fcvm exec life2 -- readlink /tmp/cpin/sub/link)" = f ] || fail "cp in: symlink"
fcvm cp "$TEST_TMP/cpin/sub/f" life2:/tmp/renamed || fail "cp to a new name"
[ "$(fcvm exec life2 -- cat /tmp/renamed)" = data ] || fail "cp in: renamed"
fcvm exec life2 -- sh -c 'mkdir -p /tmp/out && echo inside >/tmp/out/a && chown 1234:5678 /tmp/out/a &&
  echo container-side >/tmp/marker && ln -s / /tmp/esc' || fail "cp: set-up in the container"
fcvm cp life2:/tmp/out "$TEST_TMP/got" || fail "cp out to a new name"
[ "$(cat "$TEST_TMP/got/a")" = inside ] || fail "cp out: content"
[ "$(stat -c %u:%g "$TEST_TMP/got/a")" = 1234:5678 ] || fail "cp out: owner $(stat -c %u:%g "$TEST_TMP/got/a")"
# /tmp/esc -> / is the container's root, not the guest's (which has no /tmp/marker).
fcvm cp life2:/tmp/esc/tmp/marker "$TEST_TMP/marker" || fail "cp out through a symlink"
[ "$(cat "$TEST_TMP/marker")" = container-side ] || fail "cp out left the container's root"
fcvm cp "$TEST_TMP/cpin/sub/f" life2:/tmp/esc/tmp/through || fail "cp in through a symlink"
[ "$(fcvm exec life2 -- cat /tmp/through)" = data ] || fail "cp in left the container's root"
# Tar streams: out to stdout, in from stdin.
fcvm cp life2:/tmp/out - | tar -tf - | grep -qx 'out/a' || fail "cp out to -"
tar -C "$TEST_TMP/cpin" -cf - sub | fcvm cp - life2:/tmp/streamed/ 2>"$TEST_TMP/err" &&
  fail "cp - into a missing directory succeeded"
fcvm exec life2 -- mkdir /tmp/streamed
tar -C "$TEST_TMP/cpin" -cf - sub | fcvm cp - life2:/tmp/streamed || fail "cp - in"
[ "$(fcvm exec life2 -- cat /tmp/streamed/sub/f)" = data ] || fail "cp - in: content"
expect_rc 2 fcvm cp life2:/no/such "$TEST_TMP/x"
grep -q 'no such file or directory in the container' "$TEST_TMP/last.err" || fail "cp missing: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm cp life2:relative "$TEST_TMP/x"
expect_rc 2 fcvm cp "$TEST_TMP/x" "$TEST_TMP/y"
[ ! -e "$TEST_TMP/x" ] || fail "a failed cp created $TEST_TMP/x"

# 13. pause: ls and inspect say so, exec and kill are refused until unpause.
fcvm pause life2 >/dev/null || fail "pause"
grep -E '^life2 .* \(paused\)' <<<"$(fcvm ls)" >/dev/null || fail "ls while paused: $(fcvm ls)"
[ "$(fcvm inspect life2 | jq -r '.[0].state.status')" = paused ] || fail "inspect while paused"
expect_rc 2 fcvm exec life2 -- true
grep -q 'is paused' "$TEST_TMP/last.err" || fail "exec while paused: $(cat "$TEST_TMP/last.err")"
expect_rc 2 fcvm kill life2
expect_rc 2 fcvm pause life2
fcvm unpause life2 >/dev/null || fail "unpause"
expect_rc 2 fcvm unpause life2
[ "$(fcvm exec life2 -- echo back)" = back ] || fail "exec after unpause"
[ "$(fcvm events --no-stream -f vm=life2 -f event=paused -f event=unpaused | wc -l)" -ge 2 ] ||
  fail "no paused/unpaused events: $(fcvm events --no-stream -f vm=life2)"

# 14. kill and wait: sh as PID 1 ignores TERM (no handler), KILL ends it with 137.
expect_rc 2 fcvm kill -s BOGUS life2
grep -q 'invalid signal "BOGUS"' "$TEST_TMP/last.err" || fail "bad signal message: $(cat "$TEST_TMP/last.err")"
fcvm wait life2 >"$TEST_TMP/wait.out" 2>&1 &
waiter=$!
fcvm kill -s TERM life2 >/dev/null || fail "kill -s TERM"
fcvm events --no-stream -f event=signalled | grep -q 'TERM' || fail "no signalled event"
grep -q '^life2 ' <<<"$(fcvm ls)" || fail "kill -s TERM ended the container (PID 1 has no handler)"
fcvm kill life2 >/dev/null || fail "kill"
wait "$waiter" || fail "wait failed: $(cat "$TEST_TMP/wait.out")"
[ "$(cat "$TEST_TMP/wait.out")" = 137 ] || fail "wait printed '$(cat "$TEST_TMP/wait.out")', want 137"
grep -E '^life2 .* exited \(137\)' <<<"$(fcvm ls -a)" >/dev/null || fail "ls -a after kill: $(fcvm ls -a)"
[ "$(fcvm wait life2)" = 137 ] || fail "wait on an exited VM"
expect_rc 2 fcvm kill life2
grep -q 'not running' "$TEST_TMP/last.err" || fail "kill of a stopped VM: $(cat "$TEST_TMP/last.err")"

# 15. run options: --user, --hostname, --read-only (tmpfs on /tmp), --init (PID 1 is catatonit).
out=$(fcvm run --user 1234:5678 --hostname web.test --read-only --init "oci-archive:$busybox" sh -c '
  echo "user=$(id -u):$(id -g) host=$(hostname)"
  touch /probe 2>/dev/null && echo root=rw || echo root=ro
  touch /tmp/probe && echo tmp=rw
  echo "pid1=$(tr "\000" " " </proc/1/cmdline)"' 2>"$TEST_TMP/err") || fail "run with options: $(cat "$TEST_TMP/err")"
log "run options: $(echo "$out" | tr '\n' '|')"
grep -qx 'user=1234:5678 host=web.test' <<<"$out" || fail "--user/--hostname: $out"
grep -qx 'root=ro' <<<"$out" || fail "--read-only: $out"
grep -qx 'tmp=rw' <<<"$out" || fail "--read-only tmpfs on /tmp: $out"
grep -q '^pid1=/run/fcvm-init -- sh' <<<"$out" || fail "--init: $out"
expect_rc 2 fcvm run --hostname bad_name "oci-archive:$busybox" true
expect_rc 2 fcvm run --user 'a b' "oci-archive:$busybox" true
expect_rc 2 fcvm run --label =x "oci-archive:$busybox" true

# 15b. run -i: stdin is the container's, its end the container's end of input.
[ "$(echo hello-run | fcvm run -i "oci-archive:$busybox" cat)" = hello-run ] || fail "run -i"
# run -it: a terminal in the container with our size; what we type reaches its shell, whose exit
# code is ours; our terminal is as it was afterwards.
if command -v script >/dev/null; then
  printf 'tty; stty size; echo typed-$((6*7)); exit 3\n' >"$TEST_TMP/typed"
  script -qec "stty rows 33 cols 111; stty -g >'$TEST_TMP/before'; '$FCVM_BIN' run -it 'oci-archive:$busybox' sh; echo \"rc=\$?\"; stty -g >'$TEST_TMP/after'" \
    /dev/null <"$TEST_TMP/typed" | tr -d '\r' >"$TEST_TMP/it.out" || true
  log "run -it: $(tr '\n' '|' <"$TEST_TMP/it.out")"
  grep -q '^/dev/pts/' "$TEST_TMP/it.out" || fail "run -it: no terminal in the container: $(cat "$TEST_TMP/it.out")"
  grep -qx '33 111' "$TEST_TMP/it.out" || fail "run -it: window size not passed: $(cat "$TEST_TMP/it.out")"
  grep -qx 'typed-42' "$TEST_TMP/it.out" || fail "run -it: typed input not run: $(cat "$TEST_TMP/it.out")"
  grep -qx 'rc=3' "$TEST_TMP/it.out" || fail "run -it: exit code not passed: $(cat "$TEST_TMP/it.out")"
  cmp -s "$TEST_TMP/before" "$TEST_TMP/after" || fail "run -it: the terminal was not restored"
fi

# 16. rm -f removes it all.
fcvm rm -f life2 >/dev/null
[ -z "$(fcvm ls -a -q)" ] || fail "rm -f left a record"
[ -z "$(ls -A "$FCVM_DATA_DIR/vms")" ] || fail "rm -f left files: $(ls -A "$FCVM_DATA_DIR/vms")"
expect_rc 2 fcvm rm life2
assert_no_leftovers
echo "lifecycle: ok"
