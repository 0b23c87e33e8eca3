#!/usr/bin/env bash
# The HTTP API (fcvm serve) with curl on real VMs, then the Python client against the same
# server: socket modes and another user refused; create with a readiness gate, list = ls --json,
# inspect = fcvm inspect; logs follow; exec (stdout, stderr, exit code, stdin); snapshot + clone;
# pause/resume; time-to-live; delete -> 404; 20 clients at once while one stalls on a stream;
# garbage and oversized requests; TCP with the bearer token; socket activation; bad input creates
# nothing; SIGTERM ends the server and removes its socket.
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
need_cmd curl
need_cmd jq
need_cmd setpriv
id nobody >/dev/null 2>&1 || skip "no user nobody"

export XDG_RUNTIME_DIR=$TEST_TMP/run
mkdir -p "$XDG_RUNTIME_DIR" && chmod 0755 "$XDG_RUNTIME_DIR"
# root's default socket is /run/fcvm/api.sock: this test listens on a socket of its own instead.
sock=$XDG_RUNTIME_DIR/fcvm/api.sock
mkdir -m 0700 "$XDG_RUNTIME_DIR/fcvm"
on_exit "'$FCVM_BIN' rm -f a1 c1 t1 p1 p2 >/dev/null 2>&1; '$FCVM_BIN' snapshot rm -f s1 ps1 >/dev/null 2>&1"

servers=()
stop_servers() { for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done; }
on_exit stop_servers
# serve ARGS...: starts fcvm serve in the background; its address (stdout) in $addr.
serve() {
  local out=$TEST_TMP/serve.$RANDOM
  "$FCVM_BIN" serve "$@" >"$out" 2>"$out.err" &
  servers+=($!)
  wait_until 20 test -s "$out" || fail "fcvm serve $* printed no address: $(cat "$out.err")"
  addr=$(head -1 "$out")
}
api() { curl -sS --max-time 120 --unix-socket "$sock" "$@"; }
# code METHOD PATH [curl args...]: the HTTP status; the body in $TEST_TMP/body.
code() {
  local m=$1 p=$2; shift 2
  api -o "$TEST_TMP/body" -w '%{http_code}' -X "$m" "$@" "http://fcvm$p"
}

# 1. The socket: 0600 in a 0700 directory; another user cannot connect.
serve --listen "unix:$sock"
[ "$addr" = "unix:$sock" ] || fail "serve printed \"$addr\", want unix:$sock"
[ "$(stat -c %a "$sock")" = 600 ] || fail "socket mode $(stat -c %a "$sock"), want 600"
[ "$(stat -c %a "$XDG_RUNTIME_DIR/fcvm")" = 700 ] || fail "socket dir mode, want 700"
[ "$(api http://fcvm/v1/_ping)" = OK ] || fail "ping"
chmod 0711 "$XDG_RUNTIME_DIR/fcvm"  # even where the directory lets it through, the socket does not
if setpriv --reuid=nobody --regid=nogroup --clear-groups curl -sS --max-time 5 --unix-socket "$sock" \
  http://fcvm/v1/vms >"$TEST_TMP/nobody" 2>&1; then
  fail "user nobody reached the API: $(cat "$TEST_TMP/nobody")"
fi
grep -qi 'permission denied\|couldn.t connect' "$TEST_TMP/nobody" || fail "nobody: $(cat "$TEST_TMP/nobody")"
chmod 0700 "$XDG_RUNTIME_DIR/fcvm"
# Clients that connect while the server is busy wait in the backlog; none is refused (a Unix
# socket refuses a connect at once when its backlog is full, as curl does not block on it).
kill -STOP "${servers[0]}"
rc=0
python3 - "$sock" "${servers[0]}" >"$TEST_TMP/backlog" 2>&1 <<'PY' || rc=$?
import os, signal, socket, sys
conns = []
for i in range(64):
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except OSError as e:
        sys.exit(f"client {i + 1} of 64 refused while the server was stopped: {e}")
    conns.append(s)
os.kill(int(sys.argv[2]), signal.SIGCONT)
for s in conns:
    s.setblocking(True)
    s.settimeout(60)
    s.sendall(b"GET /v1/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := s.recv(4096):
        answer += chunk
    if not answer.endswith(b"\r\n\r\nOK"):
        sys.exit(f"a waiting client got {answer!r}")
PY
kill -CONT "${servers[0]}"  # whatever became of the client
[ $rc = 0 ] || fail "backlog: $(cat "$TEST_TMP/backlog")"
log "1. socket 0600 in 0700, nobody refused; 64 clients wait for a stopped server"

# 2. Bad input: one clear error, 400, nothing created.
[ "$(code POST /v1/vms -d '{"image":"x","bogus":1}')" = 400 ] || fail "unknown field: $(cat "$TEST_TMP/body")"
jq -e '.error.code == "invalid_input" and (.error.message | contains("unknown field \"bogus\""))' "$TEST_TMP/body" >/dev/null ||
  fail "unknown field error: $(cat "$TEST_TMP/body")"
[ "$(code POST /v1/vms -d '{not json')" = 400 ] || fail "bad JSON accepted"
[ "$(code POST /v1/vms -d "{\"image\":\"oci-archive:$busybox\",\"mem\":\"lots\"}")" = 400 ] || fail "bad mem"
grep -q 'lots' "$TEST_TMP/body" || fail "the bad value is not named: $(cat "$TEST_TMP/body")"
[ "$(code POST /v1/vms -d "{\"image\":\"oci-archive:$busybox\",\"publish\":[\"99999:80\"]}")" = 400 ] || fail "bad publish"
head -c 2000000 /dev/zero | tr '\0' 'x' >"$TEST_TMP/big"
[ "$(code POST /v1/vms --data-binary @"$TEST_TMP/big")" = 413 ] || fail "an oversized body was not refused"
[ "$(code GET /v1/nope)" = 404 ] || fail "unknown route"
[ "$(code GET /v1/vms/nope)" = 404 ] && jq -e '.error.code == "not_found"' "$TEST_TMP/body" >/dev/null || fail "unknown VM: $(cat "$TEST_TMP/body")"
[ -z "$(fcvm ls -a -q)" ] || fail "bad input created a VM: $(fcvm ls -a)"
log "2. bad input: 400/413/404, nothing created"

# 3. Create (returns when the gate passed), list = ls --json, inspect = fcvm inspect.
[ "$(code POST /v1/vms -d "{\"image\":\"oci-archive:$busybox\",\"name\":\"a1\",\"labels\":{\"team\":\"api\"},
  \"stop_timeout\":1,\"cmd\":[\"sh\",\"-c\",\"echo ready; i=0; while sleep 0.2; do i=\$((i+1)); echo tick\$i; done\"],
  \"wait_ready\":\"mode=log,pattern=ready\"}")" = 201 ] || fail "create: $(cat "$TEST_TMP/body")"
id=$(jq -r .id "$TEST_TMP/body")
[ "$(jq -r .state.status "$TEST_TMP/body")" = running ] || fail "created VM not running: $(cat "$TEST_TMP/body")"
[ "$(code GET '/v1/vms?label=team%3Dapi')" = 200 ] || fail "list"
[ "$(jq -r '.[].id' "$TEST_TMP/body")" = "$id" ] || fail "list by label: $(cat "$TEST_TMP/body")"
[ "$(code GET '/v1/vms?label=team%3Dother')" = 200 ] && [ "$(jq length "$TEST_TMP/body")" = 0 ] || fail "label filter"
code GET /v1/vms >/dev/null
diff <(jq -S '[.[] | del(.state)]' "$TEST_TMP/body") <(fcvm ls --json | jq -S '[.[] | del(.state)]') ||
  fail "GET /v1/vms differs from fcvm ls --json"
code GET /v1/vms/a1 >/dev/null
diff <(jq -S . "$TEST_TMP/body") <(fcvm inspect a1 | jq -S '.[0]') || fail "GET /v1/vms/a1 differs from fcvm inspect"
log "3. created $id; list and inspect equal the CLI's"

# 4. Logs: the past with timestamps, and follow (in the background, until the VM ends).
api "http://fcvm/v1/vms/a1/logs?tail=1&timestamps=1" >"$TEST_TMP/logs"
[ "$(wc -l <"$TEST_TMP/logs")" = 1 ] && jq -e '.time and .stream == "stdout"' "$TEST_TMP/logs" >/dev/null ||
  fail "logs tail=1 timestamps: $(cat "$TEST_TMP/logs")"
api -N "http://fcvm/v1/vms/a1/logs?follow=1" >"$TEST_TMP/follow" &
follow_pid=$!
wait_until 60 grep -q '"line":"tick5"' "$TEST_TMP/follow" || fail "logs follow: no tick5: $(tail -3 "$TEST_TMP/follow")"
head -1 "$TEST_TMP/follow" | jq -e '.line == "ready"' >/dev/null || fail "logs follow starts with $(head -1 "$TEST_TMP/follow")"
log "4. logs tail and follow"

# 5. Exec: stdout, stderr, exit code; stdin through a second request.
api -X POST -d '{"cmd":["sh","-c","echo out; echo err >&2; exit 5"]}' http://fcvm/v1/vms/a1/exec >"$TEST_TMP/exec"
[ "$(jq -r 'select(.stream=="stdout") | .data' "$TEST_TMP/exec" | base64 -d)" = out ] || fail "exec stdout: $(cat "$TEST_TMP/exec")"
[ "$(jq -r 'select(.stream=="stderr") | .data' "$TEST_TMP/exec" | base64 -d)" = err ] || fail "exec stderr: $(cat "$TEST_TMP/exec")"
[ "$(tail -1 "$TEST_TMP/exec" | jq -c .)" = '{"exit_code":5}' ] || fail "exec exit code: $(tail -1 "$TEST_TMP/exec")"
head -1 "$TEST_TMP/exec" | jq -e .exec_id >/dev/null || fail "exec: no exec_id first"
api -N -X POST -d '{"cmd":["cat"],"stdin":true}' http://fcvm/v1/vms/a1/exec >"$TEST_TMP/cat" &
cat_pid=$!
wait_until 30 test -s "$TEST_TMP/cat" || fail "exec cat: no exec_id"
eid=$(head -1 "$TEST_TMP/cat" | jq -r .exec_id)
[ "$(code POST "/v1/vms/a1/exec/$eid/stdin" --data-binary abc)" = 204 ] || fail "stdin: $(cat "$TEST_TMP/body")"
[ "$(code POST "/v1/vms/a1/exec/$eid/stdin?close=1" --data-binary def)" = 204 ] || fail "stdin close"
wait $cat_pid || fail "exec cat stream failed"
[ "$(jq -r 'select(.stream=="stdout") | .data' "$TEST_TMP/cat" | base64 -d | tr -d '\n')" = abcdef ] ||
  fail "exec stdin: $(cat "$TEST_TMP/cat")"
[ "$(code POST "/v1/vms/a1/exec/$eid/stdin" --data-binary x)" = 404 ] || fail "stdin of an ended exec"
# A signal ends a running exec.
api -N -X POST -d '{"cmd":["sh","-c","echo started; exec sleep 600"]}' http://fcvm/v1/vms/a1/exec >"$TEST_TMP/sleep" &
sleep_pid=$!
wait_until 30 grep -q '"stream":"stdout"' "$TEST_TMP/sleep" || fail "exec sleep did not start"
eid=$(head -1 "$TEST_TMP/sleep" | jq -r .exec_id)
[ "$(code POST "/v1/vms/a1/exec/$eid/signal" -d '{"signal":"KILL"}')" = 204 ] || fail "exec signal"
wait $sleep_pid
[ "$(tail -1 "$TEST_TMP/sleep" | jq -c .)" = '{"exit_code":137}' ] || fail "exec after KILL: $(tail -1 "$TEST_TMP/sleep")"
log "5. exec: out/err/5, stdin, signal"

# 6. 20 clients list and exec at once while a 21st holds a stream and never reads it.
python3 - "$sock" >"$TEST_TMP/stall.log" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET /v1/vms/a1/logs?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(600)  # never reads
PY
stall_pid=$!
on_exit "kill $stall_pid 2>/dev/null"
pids=()
for i in $(seq 20); do
  (api "http://fcvm/v1/vms" | jq -e 'length == 1' >/dev/null &&
    api -X POST -d "{\"cmd\":[\"echo\",\"client$i\"]}" http://fcvm/v1/vms/a1/exec |
    jq -r 'select(.stream=="stdout") | .data' | base64 -d | grep -qx "client$i") >"$TEST_TMP/client$i" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || fail "client $((i + 1)) failed: $(cat "$TEST_TMP/client$((i + 1))")"; done
log "6. 20 concurrent clients answered while one stalls"

# 7. Garbage on the socket: an error answer, and the server serves on.
printf 'GARBAGE\r\n\r\n' | python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.recv(100).split(b'\r\n')[0].decode())" "$sock" >"$TEST_TMP/garbage"
grep -q '^HTTP/1.1 400' "$TEST_TMP/garbage" || fail "garbage: $(cat "$TEST_TMP/garbage")"
[ "$(api http://fcvm/v1/_ping)" = OK ] || fail "the server did not survive garbage"

# 8. Snapshot and clone; pause and resume.
[ "$(code POST /v1/vms/a1/snapshots -d '{"name":"s1"}')" = 201 ] || fail "snapshot: $(cat "$TEST_TMP/body")"
[ "$(jq -r .name "$TEST_TMP/body")" = s1 ] || fail "snapshot answer: $(cat "$TEST_TMP/body")"
[ "$(code GET /v1/snapshots/s1)" = 200 ] || fail "snapshot inspect"
[ "$(code POST /v1/snapshots/s1/clone -d '{"name":"c1"}')" = 201 ] || fail "clone: $(cat "$TEST_TMP/body")"
[ "$(api -X POST -d '{"cmd":["cat","/proc/uptime"]}' http://fcvm/v1/vms/c1/exec | tail -1 | jq -c .)" = '{"exit_code":0}' ] ||
  fail "the clone does not answer exec"
[ "$(code POST /v1/vms/c1/pause -d '')" = 200 ] && [ "$(jq -r .state.status "$TEST_TMP/body")" = paused ] || fail "pause: $(cat "$TEST_TMP/body")"
[ "$(code POST /v1/vms/c1/resume -d '')" = 200 ] && [ "$(jq -r .state.status "$TEST_TMP/body")" = running ] || fail "resume"
log "8. snapshot s1, clone c1 answers; pause/resume"

# 9. Time-to-live: the monitor stops the VM; wait returns; the event says why.
[ "$(code PUT /v1/vms/c1/ttl -d '{"seconds":1}')" = 200 ] || fail "ttl: $(cat "$TEST_TMP/body")"
jq -e '.state.expires_ms > 0' "$TEST_TMP/body" >/dev/null || fail "ttl not shown: $(cat "$TEST_TMP/body")"
[ "$(code POST /v1/vms/c1/wait -d '')" = 200 ] || fail "wait: $(cat "$TEST_TMP/body")"
[ "$(fcvm inspect c1 | jq -r '.[0].state.status')" = exited ] || fail "c1 not stopped by its ttl"
api "http://fcvm/v1/events?vm=c1&event=expired&since=10m&stream=0" | jq -e -s 'length == 1' >/dev/null ||
  fail "no expired event: $(api "http://fcvm/v1/events?vm=c1&since=10m&stream=0")"
# The CLI's --timeout is the same time-to-live.
rc=0
fcvm run -d --timeout soon "oci-archive:$busybox" true >/dev/null 2>"$TEST_TMP/ttl.err" || rc=$?
[ $rc = 2 ] && grep -q 'invalid --timeout "soon"' "$TEST_TMP/ttl.err" || fail "bad --timeout: rc $rc $(cat "$TEST_TMP/ttl.err")"
fcvm run -d --name t1 --timeout 600 "oci-archive:$busybox" sleep 600 >/dev/null
[ "$(fcvm inspect t1 | jq '.[0].state.expires_ms - .[0].state.created_ms')" = 600000 ] || fail "run --timeout: $(fcvm inspect t1 | jq -c '.[0].state')"
fcvm rm -f t1 >/dev/null
# A time-to-live that ends before the VM is ready fails its start, saying so; nothing is left.
rc=0
fcvm run -d --name t1 --timeout 0 "oci-archive:$busybox" true >/dev/null 2>&1 || rc=$?
[ $rc = 0 ] || fail "run --timeout 0 (none) failed"
fcvm rm -f t1 >/dev/null
rc=0
fcvm run -d --name t1 --timeout 1 --wait-ready mode=log,pattern=never "oci-archive:$busybox" sleep 600 >/dev/null 2>"$TEST_TMP/ttl.err" || rc=$?
[ $rc = 1 ] && grep -q 'time-to-live (--timeout) ended before it was ready' "$TEST_TMP/ttl.err" ||
  fail "a ttl during start-up: rc $rc $(cat "$TEST_TMP/ttl.err")"
! fcvm inspect t1 >/dev/null 2>&1 || fail "t1 left after a ttl during start-up: $(fcvm ls -a)"
log "9. ttl stopped c1; run --timeout"

# 10. Stop, delete -> 404; the follow stream ended with the VM.
[ "$(code POST '/v1/vms/a1/stop?timeout=1' -d '')" = 200 ] || fail "stop: $(cat "$TEST_TMP/body")"
wait $follow_pid || fail "logs follow did not end cleanly"
[ "$(code POST /v1/vms/a1/start -d '')" = 200 ] && [ "$(jq -r .state.status "$TEST_TMP/body")" = running ] ||
  fail "start: $(cat "$TEST_TMP/body")"
[ "$(code POST '/v1/vms/a1/stop?timeout=1' -d '')" = 200 ] || fail "stop again: $(cat "$TEST_TMP/body")"
# The server reaps the monitors it started: no zombie children.
no_zombies() { ! ps -o stat= --ppid "${servers[0]}" | grep -q Z; }
wait_until 20 no_zombies || fail "zombie children of the server: $(ps -o pid,stat,args --ppid "${servers[0]}")"
[ "$(code DELETE '/v1/vms/a1?force=1')" = 204 ] || fail "delete: $(cat "$TEST_TMP/body")"
[ "$(code GET /v1/vms/a1)" = 404 ] || fail "deleted VM still there"
[ "$(code DELETE '/v1/snapshots/s1?force=1')" = 204 ] || fail "delete snapshot: $(cat "$TEST_TMP/body")"
[ -z "$(fcvm ls -a -q)" ] || fail "VMs left: $(fcvm ls -a)"
log "10. stop, delete, 404"

# 11. The Python client against the same server, installed with pip from the repository.
# Debian's interpreter (its pip, setuptools and wheel come from make deps; nothing from PyPI).
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
if "$py" -m pip --version >/dev/null 2>&1; then
  # From a copy: a build writes build/ and *.egg-info beside the sources.
  cp -r "$FCVM_SOURCE_DIR/clients/python" "$TEST_TMP/client-src"
  "$py" -m pip install -q --no-build-isolation --no-deps --target "$TEST_TMP/py" \
    "$TEST_TMP/client-src" >"$TEST_TMP/pip.log" 2>&1 || fail "pip install: $(cat "$TEST_TMP/pip.log")"
  export PYTHONPATH=$TEST_TMP/py
else
  export PYTHONPATH=$FCVM_SOURCE_DIR/clients/python
fi
FCVM_API="unix:$sock" BUSYBOX=$busybox "$py" "$FCVM_SOURCE_DIR/tests/e2e/api_client_test.py" ||
  fail "the Python client's tests failed"
[ "$(cd / && "$py" -c 'import fcvm_client, os; print(os.path.dirname(fcvm_client.__file__))')" != "$FCVM_SOURCE_DIR/clients/python/fcvm_client" ] ||
  [ "$PYTHONPATH" = "$FCVM_SOURCE_DIR/clients/python" ] || fail "the client did not come from the pip install"
log "11. python client"

# 12. TCP: no token, wrong token -> 401; the token -> 200; rotation; non-loopback refused.
serve --listen 127.0.0.1:0
tcp=$addr
token_file=$FCVM_DATA_DIR/api-token
[ "$(stat -c %a "$token_file")" = 600 ] || fail "token file mode $(stat -c %a "$token_file")"
t=$(cat "$token_file")
st() { curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }
[ "$(st "http://$tcp/v1/vms")" = 401 ] || fail "no token: not 401"
# The token with its last character changed (a token ending in 0 stays wrong: it gets a 1).
wrong=${t%?}$([ "${t: -1}" = 0 ] && echo 1 || echo 0)
[ "$wrong" != "$t" ] || fail "the wrong token equals the token"
[ "$(st -H "Authorization: Bearer $wrong" "http://$tcp/v1/vms")" = 401 ] || fail "wrong token: not 401"
[ "$(st -H "Authorization: Bearer $t" "http://$tcp/v1/vms")" = 200 ] || fail "right token: not 200"
curl -sS -D - -o /dev/null "http://$tcp/v1/vms" | grep -qi '^WWW-Authenticate: Bearer' || fail "no WWW-Authenticate"
fcvm serve --rotate-token >/dev/null
[ "$(st -H "Authorization: Bearer $t" "http://$tcp/v1/vms")" = 401 ] || fail "the old token still works"
[ "$(st -H "Authorization: Bearer $(cat "$token_file")" "http://$tcp/v1/vms")" = 200 ] || fail "the new token does not"
rc=0
fcvm serve --listen 0.0.0.0:0 >/dev/null 2>"$TEST_TMP/remote.err" || rc=$?
[ $rc = 2 ] && grep -q 'not a loopback address' "$TEST_TMP/remote.err" || fail "0.0.0.0 without --allow-remote: rc $rc $(cat "$TEST_TMP/remote.err")"
log "12. tcp: 401 401 200, rotation, remote refused"

# 13. Socket activation (as systemd does it), and SIGTERM ends a server and removes its socket.
if command -v systemd-socket-activate >/dev/null; then
  act=$TEST_TMP/act.sock
  systemd-socket-activate -l "$act" "$FCVM_BIN" serve >/dev/null 2>"$TEST_TMP/act.err" &
  servers+=($!)
  wait_until 20 test -S "$act" || fail "systemd-socket-activate made no socket"
  [ "$(curl -sS --max-time 10 --unix-socket "$act" http://fcvm/v1/_ping)" = OK ] || fail "activated server: $(cat "$TEST_TMP/act.err")"
  log "13. socket activation"
fi
kill -TERM "${servers[0]}"
wait "${servers[0]}" || fail "serve did not end cleanly on SIGTERM"
[ ! -e "$sock" ] || fail "the socket stayed after SIGTERM"
log "done"
