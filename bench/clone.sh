#!/usr/bin/env bash
# Warm clones against a cold run, all figures from one run:
#   - cold `fcvm run -d` of the small nginx image (512 MiB, oci-archive) to the first HTTP 200 on
#     its published port, against `fcvm clone -d` of a snapshot of the same VM taken once nginx
#     served (median of the first CLONES_TIMED clones, one after another): ratio target <= 0.05;
#   - the host's critical path of a clone before the VMM starts restoring (argument checks,
#     state row, monitor, disk layer, network; the `vmm_starting` milestone): target <= 20 ms;
#   - summed PSS of 10 running clones (every process of each VM: monitor, QEMU, network helper
#     and namespace holder) against one cold VM's: target <= 2.0;
#   - snapshot size and the time `--save-snapshot` added;
#   - disk clone of 512 MiB-2 GiB images, reflink on a loop-mounted XFS beside the copy fallback
#     (bench/disk_clone.sh; skipped where it cannot run).
#   bench/clone.sh [FCVM_BIN] [IMAGES_DIR] [BUILD_DIR]      (make bench)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=${1:-$here/build/release/fcvm}
images=${2:-$here/build/images}
build=${3:-$here/build/release}
tmp=$(mktemp -d /tmp/fcvm-bench-clone.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
cleanup() {
  for v in $("$fcvm" __names 2>/dev/null); do "$fcvm" rm -f "$v" >/dev/null 2>&1 || true; done
  for s in $("$fcvm" snapshot ls -q 2>/dev/null); do "$fcvm" snapshot rm -f "$s" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

python3 - "$fcvm" "$images/nginx.oci.tar" "$tmp" "${CLONES:-10}" "${CLONES_TIMED:-5}" <<'PY'
import json, os, socket, statistics, subprocess, sys, time, urllib.request

fcvm, image, tmp, n_clones, n_timed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def http_ok(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.25) as r:
            return r.status == 200
    except Exception:
        return False

def start_and_poll(argv, port):
    """Runs argv (a -d command), returns (ms to the first HTTP 200, ms until the command returned)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t_http = None
    while t_http is None:
        if http_ok(port):
            t_http = (time.monotonic() - t0) * 1000
            break
        if p.poll() is not None and p.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {p.stderr.read().decode()}")
        time.sleep(0.002)
    p.wait()
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {p.stderr.read().decode()}")
    return t_http, (time.monotonic() - t0) * 1000

def timings(path):
    ev = {}
    for line in open(path):
        j = json.loads(line); ev.setdefault(j["event"], j["ms"])
    return ev

def vm_pss_kib(name):
    info = json.loads(subprocess.check_output([fcvm, "inspect", name]))[0]
    root = info["processes"]["monitor"]["pid"]
    # The monitor and every process below it.
    pids, pending = set(), [root]
    while pending:
        pid = pending.pop(); pids.add(pid)
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    pending += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"): total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total

gate = "mode=http,url=http://127.0.0.1:80/"
# 1. Cold: a fresh VM to HTTP 200.
cold_port = free_port()
cold_http, cold_cmd = start_and_poll([fcvm, "run", "-d", "--name", "cold", "--mem", "512", "-p", f"{cold_port}:80",
                                      f"oci-archive:{image}"], cold_port)
time.sleep(2)
cold_pss = vm_pss_kib("cold")
# 2. The source of the snapshot: the same VM, snapshotted once nginx serves inside it.
src_port = free_port()
t0 = time.monotonic()
subprocess.run([fcvm, "run", "-d", "--name", "src", "--mem", "512", "-p", f"{src_port}:80", "--wait-ready", gate,
                "--save-snapshot", "warm", "--timings", f"{tmp}/src.timings", f"oci-archive:{image}"],
               check=True, stdout=subprocess.DEVNULL)
src = timings(f"{tmp}/src.timings")
snap = json.loads(subprocess.check_output([fcvm, "snapshot", "inspect", "warm"]))[0]
subprocess.run([fcvm, "rm", "-f", "src"], check=True, stdout=subprocess.DEVNULL)
# 3. Clones, one after another, each left running.
clone_http, clone_cmd, host_path, restored = [], [], [], []
for i in range(n_clones):
    port = free_port()
    tf = f"{tmp}/c{i}.timings"
    h, c = start_and_poll([fcvm, "clone", "--snapshot", "warm", "--name", f"c{i}", "-p", f"{port}:80", "-d",
                           "--timings", tf], port)
    ev = timings(tf)
    if i < n_timed:
        clone_http.append(h); clone_cmd.append(c); host_path.append(ev["vmm_starting"])
        restored.append(ev["restored"] - ev["vmm_starting"])
time.sleep(2)
clone_pss = [vm_pss_kib(f"c{i}") for i in range(n_clones)]

med = statistics.median
print(f"clone bench (nginx oci-archive, 512 MiB, 2 vCPUs, rootless, {n_timed} timed clones of {n_clones}):")
print(f"  cold run -> HTTP 200                      {cold_http:9.1f} ms   (run -d returned at {cold_cmd:.1f} ms)")
print(f"  clone -> HTTP 200 (median)                {med(clone_http):9.1f} ms   (min {min(clone_http):.1f}, max {max(clone_http):.1f})")
print(f"  ratio clone / cold                        {med(clone_http) / cold_http:9.3f}      (target <= 0.05)")
print(f"  clone -d returned (ready, median)         {med(clone_cmd):9.1f} ms")
print(f"  host critical path before the VMM (med.)  {med(host_path):9.1f} ms   (max {max(host_path):.1f}; target <= 20)")
print(f"  QEMU start + device state load (median)   {med(restored):9.1f} ms")
print(f"  PSS one cold VM                           {cold_pss / 1024:9.1f} MiB")
print(f"  PSS {n_clones} clones summed                     {sum(clone_pss) / 1024:9.1f} MiB   (per clone {med(clone_pss) / 1024:.1f} MiB median)")
print(f"  ratio {n_clones} clones / one cold VM             {sum(clone_pss) / cold_pss:9.2f}      (target <= 2.0)")
print(f"  snapshot: {snap['size_bytes'] / 2**20:.1f} MiB on disk; --save-snapshot took "
      f"{src['snapshot_saved'] - src['ready']:.1f} ms after the gate passed")
PY

if [ "$(id -u)" -eq 0 ] && [ -x "$build/bench/fcvm_bench_disk_clone" ]; then
  echo "disk clone (bench/disk_clone.sh):"
  RUNS=${RUNS:-5} "$here/bench/disk_clone.sh" "$build" || echo "  (disk clone bench failed)"
else
  echo "disk clone: skipped (needs root and the fcvm_bench_disk_clone target)"
fi
