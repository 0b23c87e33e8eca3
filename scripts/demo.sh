#!/usr/bin/env bash
# The demo: nginx (built locally from Debian packages) in its own microVM, published on
# http://127.0.0.1:PORT. Runs until Ctrl-C; with DEMO_ONCE=1 it stops after the first page.
#   scripts/demo.sh FCVM_BIN IMAGE_ARCHIVE [PORT]
set -euo pipefail
fcvm=$1 image=$2 port=${3:-8080}
[ -x "$fcvm" ] || { echo "demo: $fcvm is not built (make build)" >&2; exit 1; }
[ -f "$image" ] || { echo "demo: $image is missing (make images)" >&2; exit 1; }

echo "demo: booting nginx in a microVM: fcvm run --name fcvm-demo --publish 127.0.0.1:$port:80 oci-archive:$image"
"$fcvm" run --name fcvm-demo --publish "127.0.0.1:$port:80" "oci-archive:$image" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' INT TERM
start=$SECONDS
until curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; do
  if ! kill -0 $pid 2>/dev/null; then
    wait $pid || true
    echo "demo: the VM ended before serving (see the error above)" >&2
    exit 1
  fi
  sleep 0.2
done
echo
echo "demo: http://127.0.0.1:$port/ answered after $((SECONDS - start)) s:"
curl -fsS "http://127.0.0.1:$port/" | sed -n 's/.*<title>\(.*\)<\/title>.*/  title: \1/p; s/.*<h1>\(.*\)<\/h1>.*/  heading: \1/p'
if [ "${DEMO_ONCE:-0}" = 1 ]; then
  kill -TERM $pid
  wait $pid || true
  exit 0
fi
echo "demo: serving until Ctrl-C (try: curl http://127.0.0.1:$port/)"
wait $pid || true
