#!/usr/bin/env bash
# Readiness gates: `run -d` returns when the gate passes. A log pattern that appears, an exec
# gate that turns true after a delay, an HTTP gate probed inside the guest, and an HTTP gate that
# never passes (a clear error, exit 1, nothing left).
source "$(dirname "$0")/../lib/common.sh"
e2e_setup
on_exit "for v in \$('$FCVM_BIN' __names 2>/dev/null); do '$FCVM_BIN' rm -f \$v >/dev/null 2>&1; done"

# 1. log: the line appears 2 s after start; run -d returns only once it is there.
fcvm run -d --name g-log --wait-ready 'mode=log,pattern=^serving on [0-9]+$' "oci-archive:$busybox" \
  sh -c 'sleep 2; echo "serving on 8080"; exec sleep 600' >/dev/null
grep -qx 'serving on 8080' <<<"$(fcvm logs g-log)" || fail "log gate passed before the line: $(fcvm logs g-log)"

# 2. exec: true after 3 s; the container's own clock tells how long it took.
fcvm run -d --name g-exec --wait-ready 'mode=exec,cmd=test -f /tmp/ready' "oci-archive:$busybox" \
  sh -c 'date +%s > /tmp/t0; sleep 3; touch /tmp/ready; exec sleep 600' >/dev/null
waited=$(fcvm exec g-exec -- sh -c 'echo $(( $(date +%s) - $(cat /tmp/t0) ))')
[ "$waited" -ge 3 ] || fail "exec gate passed after ${waited} s, before its file existed"

# 3. http, probed inside the guest: busybox httpd comes up after 2 s.
fcvm run -d --name g-http --wait-ready 'mode=http,url=http://127.0.0.1:8080/,timeout=60' \
  "oci-archive:$busybox" sh -c 'mkdir -p /w; echo up > /w/index.html; sleep 2; exec httpd -f -p 8080 -h /w' >/dev/null
[ "$(fcvm exec g-http -- wget -qO- http://127.0.0.1:8080/)" = up ] || fail "http gate passed before the server"
fcvm rm -f g-log g-exec g-http >/dev/null

# 4. An HTTP gate that never passes: a clear error, exit 1, and the VM is gone.
rc=0
fcvm run -d --name g-never --wait-ready 'mode=http,url=http://127.0.0.1:9/,timeout=5' \
  "oci-archive:$busybox" sleep 600 >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 1 ] || fail "failing gate: exit $rc, want 1: $(cat "$TEST_TMP/err")"
grep -q 'did not pass within 5 s' "$TEST_TMP/err" || fail "failing gate message: $(cat "$TEST_TMP/err")"
[ -z "$(fcvm ls -a -q)" ] || fail "a failed gate left the VM: $(fcvm ls -a)"
for _ in $(seq 100); do [ -z "$(fcvm_leftovers)" ] && break; sleep 0.1; done
assert_no_leftovers

# 5. Bad specs are usage errors before anything is created.
rc=0
fcvm run -d --wait-ready 'mode=tcp' "oci-archive:$busybox" true 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q '"mode=tcp"' "$TEST_TMP/err" || fail "bad spec: exit $rc: $(cat "$TEST_TMP/err")"
echo "readiness gates: ok"
