#!/usr/bin/env bash
# Bad input to `fcvm run`: one clear error naming the value, exit code 2, nothing created.
source "$(dirname "$0")/../lib/common.sh"
export FCVM_DATA_DIR=$TEST_TMP/data

expect_usage_error() { # EXPECTED_TEXT ARGS...
  local want=$1; shift
  local out rc=0
  out=$("$FCVM_BIN" "$@" 2>&1) || rc=$?
  [ "$rc" -eq 2 ] || fail "fcvm $* exited $rc, want 2 (output: $out)"
  grep -qF -- "$want" <<<"$out" || fail "fcvm $*: message does not name \"$want\": $out"
  [ "$(grep -c 'error' <<<"$out")" -eq 1 ] || fail "fcvm $*: want one error line, got: $out"
  [ ! -e "$FCVM_DATA_DIR/vms" ] || [ -z "$(ls -A "$FCVM_DATA_DIR/vms")" ] || fail "fcvm $* created a VM"
}

taken=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$taken)); s.listen(); time.sleep(30)" &
holder=$!
on_exit "kill $holder"
wait_until 30 port_listening "$taken" || fail "the helper never bound port $taken"

expect_usage_error '"8080"' run --publish 8080 busybox
expect_usage_error 'no command given' exec somevm
expect_usage_error 'no command given' exec somevm --
expect_usage_error 'no VM given' exec -i
expect_usage_error '"--bogus"' exec --bogus somevm ls
expect_usage_error '"x:80"' run --publish x:80 busybox
expect_usage_error '"70000"' run --publish 70000:80 busybox
expect_usage_error '"1.2.3.4.5"' run --publish 1.2.3.4.5:80:80 busybox
expect_usage_error '"sctp"' run --publish 80:80/sctp busybox
expect_usage_error 'same host port' run -p 9000:80 -p 9000:81 busybox
expect_usage_error "already in use" run --publish "$taken:80" busybox
expect_usage_error '"1BAD=x"' run --env 1BAD=x busybox
expect_usage_error 'FCVM_SURELY_UNSET_VAR' run --env FCVM_SURELY_UNSET_VAR busybox
expect_usage_error '/nonexistent/env' run --env-file /nonexistent/env busybox
expect_usage_error '"lots"' run --mem lots busybox
expect_usage_error '"64"' run --mem 64 busybox
expect_usage_error '"0"' run --cpu 0 busybox
expect_usage_error '"two"' run --cpu two busybox
expect_usage_error '"5"' run --boot-timeout 5 busybox
expect_usage_error '"soon"' run --boot-timeout soon busybox
expect_usage_error '"-bad"' run --name -bad busybox
expect_usage_error '"a/b"' run --name a/b busybox
expect_usage_error '"Upper/Case"' run Upper/Case
expect_usage_error '"nginx:"' run nginx:
expect_usage_error '/nonexistent.tar' run oci-archive:/nonexistent.tar
expect_usage_error '"bogus"' run --vmm bogus busybox
expect_usage_error 'not QEMU' run --jailer --vmm qemu busybox
expect_usage_error 'excludes' run --jailer --no-jailer busybox
printf 'jailer: sometimes\n' >"$TEST_TMP/jail.yml"
FCVM_CONFIG=$TEST_TMP/jail.yml expect_usage_error '"sometimes"' run busybox
expect_usage_error '"bogus"' run --network bogus busybox
if [ "$(id -u)" -ne 0 ]; then
  expect_usage_error 'needs root' run --network privileged busybox
fi
expect_usage_error '"rel/dir"' run --workdir rel/dir busybox
expect_usage_error '"nofile=20:10"' run --ulimit nofile=20:10 busybox
expect_usage_error '"files=1"' run --ulimit files=1 busybox
expect_usage_error 'missing IMAGE' run
expect_usage_error 'frobnicate' frobnicate

# fcvm events: bad times and filters name the value.
expect_usage_error '"yesterday"' events --since yesterday --no-stream
expect_usage_error '"soon"' events --until soon --no-stream
expect_usage_error '"colour=red"' events --filter colour=red --no-stream
expect_usage_error '"exploded"' events --filter event=exploded --no-stream

# The image store: bad references, missing archives and files, unknown images; nothing stored.
expect_usage_error '"Upper/Case"' pull Upper/Case
expect_usage_error '/nonexistent.tar' pull oci-archive:/nonexistent.tar
expect_usage_error '"/nonexistent/auth.json"' pull --authfile /nonexistent/auth.json busybox
expect_usage_error '"/nonexistent/auth.json"' run --authfile /nonexistent/auth.json busybox
expect_usage_error '--guest-pull' run --guest-pull --authfile /dev/null busybox
expect_usage_error '"bad host"' pull --insecure-registry 'bad host' busybox
expect_usage_error 'no image "nosuch:v1"' rmi nosuch:v1
expect_usage_error 'no image "nosuch"' image inspect nosuch
[ -z "$("$FCVM_BIN" images -q)" ] || fail "an image was stored"
[ -z "$(ls -A "$FCVM_DATA_DIR/image-store/disks" 2>/dev/null)" ] || fail "a disk was left"

# What a killed pull left (its work directory, named by its dead owner) goes at the next ls.
mkdir -p "$FCVM_DATA_DIR/image-store/tmp/999999999-1-dead/layout"
"$FCVM_BIN" ls -q >/dev/null || fail "ls"
[ -z "$(ls -A "$FCVM_DATA_DIR/image-store/tmp")" ] || fail "a dead pull's work directory was not reaped"

# --help and --version succeed.
# (Into files: `grep -q` leaves a pipe early, and a help longer than one write then dies of SIGPIPE.)
"$FCVM_BIN" --help >"$TEST_TMP/help" || fail "--help exited $?"
grep -q 'Exit codes' "$TEST_TMP/help" || fail "--help lacks exit codes"
"$FCVM_BIN" run --help >"$TEST_TMP/help" || fail "run --help exited $?"
grep -q -- '--publish' "$TEST_TMP/help" || fail "run --help lacks --publish"
grep -q -- '--no-jailer' "$TEST_TMP/help" || fail "run --help lacks --no-jailer"
"$FCVM_BIN" --version >"$TEST_TMP/help" || fail "--version exited $?"
grep -q '^fcvm ' "$TEST_TMP/help" || fail "--version"
echo "bad input: all rejected with exit 2"
