#!/usr/bin/env bash
# containerd's `ctr run --rm` through containerd-shim-fcvm-v2 beside `fcvm run --rm` of the same
# image and command, measured in one run on this machine: the time to the container's first line
# of output and to the command's exit, median of N alternating rounds (the image's disk is built
# once before the rounds, for both), and the ratios. Needs root and Debian's containerd.
#   bench/containerd.sh [BUILD_DIR] [IMAGES_DIR]        N=5 by default
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/release}
images=${2:-$here/build/images}
tmp=$(mktemp -d /tmp/fcvm-bench-containerd.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
root=$tmp/ctrd
source "$here/tests/lib/containerd.sh"
start_private_containerd "$root" "$build/containerd-shim-fcvm-v2"
ctrd=$CTRD_PID
cleanup() {
  kill "$ctrd" 2>/dev/null || true
  wait "$ctrd" 2>/dev/null || true
  pkill -f -- "-address $root/containerd.sock" 2>/dev/null || true
  "$build/fcvm" ls -a -q 2>/dev/null | xargs -r "$build/fcvm" rm -f >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
until [ -S "$root/containerd.sock" ]; do sleep 0.05; done
ctr -a "$root/containerd.sock" images import "$images/busybox.oci.tar" >/dev/null
FCVM=$build/fcvm SOCK=$root/containerd.sock FIFO=$root/fifo ARCHIVE=$images/busybox.oci.tar \
  N=${N:-5} python3 - <<'PY'
import os, statistics, subprocess, time

fcvm, sock, archive = os.environ["FCVM"], os.environ["SOCK"], os.environ["ARCHIVE"]
cmd = ["sh", "-c", "echo hi"]
def ctr(i):
    return ["ctr", "-a", sock, "run", "--rm", "--fifo-dir", os.environ["FIFO"], "--runtime",
            "io.containerd.fcvm.v2", "localhost/fcvm-test/busybox:latest", f"b{i}"] + cmd
def run(i):
    return [fcvm, "run", "--rm", f"oci-archive:{archive}"] + cmd

def measure(argv):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    first = p.stdout.readline()
    t1 = time.monotonic()
    p.stdout.read()
    code = p.wait()
    t2 = time.monotonic()
    if first.strip() != b"hi" or code != 0:
        raise SystemExit(f"{argv[0]}: printed {first!r}, exit {code}")
    return t1 - t0, t2 - t0

# Warm-up: each path builds its image disk once (fcvm's image store; the containerd rootfs disk).
measure(ctr("warm")); measure(run("warm"))
rows = {"ctr run": [], "fcvm run": []}
for i in range(int(os.environ["N"])):
    rows["ctr run"].append(measure(ctr(i)))
    rows["fcvm run"].append(measure(run(i)))
med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
       for k, v in rows.items()}
for k, (out, end) in med.items():
    print(f"{k:10} to output {out * 1000:8.0f} ms   to exit {end * 1000:8.0f} ms")
print(f"ctr / fcvm: to output {med['ctr run'][0] / med['fcvm run'][0]:.2f}, "
      f"to exit {med['ctr run'][1] / med['fcvm run'][1]:.2f}   (N={os.environ['N']})")
PY
