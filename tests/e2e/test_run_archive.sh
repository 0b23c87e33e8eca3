#!/usr/bin/env bash
# oci-archive and docker-archive images, --env and --env-file reaching the container, the
# container's exit code becoming fcvm's, SIGINT cleaning up everything.
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
