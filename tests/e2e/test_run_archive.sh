#!/usr/bin/env bash
# oci-archive and docker-archive images, --env and --env-file reaching the container, the
# container's exit code becoming fcvm's, SIGINT cleaning up everything; a rootless guest cannot
# reach the host's loopback (nothing asked for it) though it reaches the host's own address.
source "$(dirname "$0")/../lib/common.sh"
need_root "the e2e tier runs as root in CI"
need_guest
busybox_oci=$(need_image busybox.oci.tar)
busybox_docker=$(need_image busybox.docker.tar)
use_private_data_dir
# Whatever happens, no VM of this test outlives it (a killed foreground run's VM would otherwise
# take its stop timeout to go).
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"
assert_no_leftovers

# 1. oci-archive, env from the command line and a file, exit code 3.
printf '# comment\nFROM_FILE=file value\n' >"$TEST_TMP/env"
rc=0
"$FCVM_BIN" run --env GREETING=hello-from-host --env-file "$TEST_TMP/env" -w /tmp \
  "oci-archive:$busybox_oci" sh -c 'echo "greeting=$GREETING"; echo "file=$FROM_FILE"; echo "cwd=$(pwd)"; echo to-stderr >&2; exit 3' \
  >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out"
[ "$rc" -eq 3 ] || { cat "$TEST_TMP/err" >&2; fail "exit code $rc, want 3"; }
grep -qx 'greeting=hello-from-host' "$TEST_TMP/out" || fail "--env did not reach the container"
grep -qx 'file=file value' "$TEST_TMP/out" || fail "--env-file did not reach the container"
grep -qx 'cwd=/tmp' "$TEST_TMP/out" || fail "--workdir not applied"
grep -qx 'to-stderr' "$TEST_TMP/err" || fail "stderr not streamed to stderr"
assert_no_leftovers

# 2. docker-archive; SIGINT while the container runs stops it and cleans up.
"$FCVM_BIN" run --stop-timeout 2 "docker-archive:$busybox_docker" \
  sh -c 'echo started; exec sleep 600' >"$TEST_TMP/out2" 2>"$TEST_TMP/err2" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
deadline=$((SECONDS + 120))
until grep -q started "$TEST_TMP/out2"; do
  [ $SECONDS -lt $deadline ] || { cat "$TEST_TMP/err2" >&2; fail "container never started"; }
  kill -0 "$pid" 2>/dev/null || { cat "$TEST_TMP/err2" >&2; fail "fcvm exited early"; }
  sleep 0.3
done
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
log "fcvm run exited $rc after SIGINT"
# sleep as PID 1 ignores SIGTERM: the stop timeout passes and SIGKILL ends it (137).
[ "$rc" -eq 137 ] || [ "$rc" -eq 143 ] || { cat "$TEST_TMP/err2" >&2; fail "exit $rc after SIGINT"; }
assert_no_leftovers
echo "archives, env, exit code and SIGINT: ok"

# The host's loopback is closed to a rootless guest: a server on all the host's addresses
# answers the guest on the host's own address, not through the guest's gateway (10.0.2.2).
host_ip=$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
if [ -n "$host_ip" ]; then
  lport=$(free_port)
  echo loopback-test >"$TEST_TMP/index.html"
  python3 -m http.server --bind 0.0.0.0 --directory "$TEST_TMP" "$lport" >/dev/null 2>&1 &
  on_exit "kill $! 2>/dev/null"
  wait_until 10 port_listening "$lport" || fail "the host's test server did not listen"
  # (busybox nc: this image's wget -T crashes.)
  get="printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5"
  out=$(fcvm run "oci-archive:$busybox_oci" sh -c \
    "echo own: \$($get $host_ip $lport | tail -n 1); echo gateway: \$($get 10.0.2.2 $lport 2>&1 | tail -n 1)" 2>&1) ||
    fail "the loopback probe run failed: $out"
  grep -qx "own: loopback-test" <<<"$out" || fail "the guest does not reach the host's $host_ip:$lport: $out"
  grep -q "^gateway: " <<<"$out" && ! grep -q "^gateway: loopback-test" <<<"$out" ||
    fail "a rootless guest reached the host's loopback through its gateway: $out"
  log "host loopback closed to a rootless guest ($(grep '^gateway:' <<<"$out")); the host's $host_ip open"
  assert_no_leftovers
else
  log "no host address with a route: the loopback check needs one"
fi
