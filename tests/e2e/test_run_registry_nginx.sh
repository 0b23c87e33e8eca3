#!/usr/bin/env bash
# The headline: nginx (built locally from Debian packages) pulled from a real local registry
# into the host image store, published on 127.0.0.1, serving its page; SIGTERM stops it cleanly and
# leaves nothing behind.
source "$(dirname "$0")/../lib/common.sh"
need_root "the default data dir and registry of the e2e tier run as root in CI"
need_guest
nginx=$(need_image nginx.oci.tar)
assert_no_leftovers
start_registry
push_image "$nginx" nginx:latest

port=$(free_port)
log "fcvm run $REGISTRY/nginx:latest --publish 127.0.0.1:$port:80"
"$FCVM_BIN" run --name web-e2e --publish "127.0.0.1:$port:80" "$REGISTRY/nginx:latest" \
  >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null; '$FCVM_BIN' rm -f web-e2e >/dev/null 2>&1"
start=$SECONDS
body=$(wait_http "http://127.0.0.1:$port/" 120) || {
  cat "$TEST_TMP/err" >&2
  fail "no HTTP 200 from nginx within 120 s"
}
log "HTTP 200 after $((SECONDS - start)) s"
grep -q "Welcome to fcvm nginx" <<<"$body" || fail "unexpected page: $body"

# The container's access log reaches fcvm's stdout/stderr.
wait_until 30 grep -q 'GET / HTTP' "$TEST_TMP/out" "$TEST_TMP/err" || fail "nginx access log not streamed"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
log "fcvm run exited $rc after SIGTERM"
[ "$rc" -eq 0 ] || { cat "$TEST_TMP/err" >&2; fail "exit code $rc after SIGTERM, want nginx's 0"; }
assert_no_leftovers
curl -fsS --max-time 2 "http://127.0.0.1:$port/" >/dev/null 2>&1 && fail "port still answers"

# An image the registry does not have: one clear error (the host pulls it), exit 2, nothing left.
rc=0
"$FCVM_BIN" run "$REGISTRY/nosuch:latest" >"$TEST_TMP/out3" 2>"$TEST_TMP/err3" || rc=$?
[ "$rc" -eq 2 ] || fail "missing image: exit $rc, want 2: $(cat "$TEST_TMP/err3")"
grep -q "the registry has no image $REGISTRY/nosuch:latest" "$TEST_TMP/err3" ||
  fail "missing image: unclear error: $(cat "$TEST_TMP/err3")"
[ "$(grep -c 'error' "$TEST_TMP/err3")" -ge 1 ] || fail "no error line"
log "missing image: $(head -c 300 "$TEST_TMP/err3")"
assert_no_leftovers
# --guest-pull: podman in the guest pulls from the host's loopback registry through the gateway.
push_image "$(need_image busybox.oci.tar)" busybox:latest
out=$("$FCVM_BIN" run --guest-pull "$REGISTRY/busybox:latest" sh -c 'echo pulled-in-guest; exit 4' \
  2>"$TEST_TMP/err4") && rc=0 || rc=$?
[ "$rc" -eq 4 ] && [ "$out" = "pulled-in-guest" ] ||
  fail "--guest-pull: exit $rc, output '$out': $(cat "$TEST_TMP/err4")"
assert_no_leftovers
echo "nginx from the local registry served and stopped cleanly; --guest-pull works"
