#!/usr/bin/env bash
# Lifecycle figures, all from one run:
#  - `fcvm ls -a` with 1000 records in the store (median of 20 runs);
#  - `fcvm exec VM -- true` round trip (median of 10) beside `podman exec` of the same container
#    measured inside the same guest.
#   bench/lifecycle.sh [FCVM_BIN] [IMAGES_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=${1:-$here/build/release/fcvm}
images=${2:-$here/build/images}
tmp=$(mktemp -d /tmp/fcvm-bench.XXXXXX)
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
trap 'FCVM_DATA_DIR=$tmp/exec "$fcvm" rm -f bench-exec >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

median_ms() { # CMD... : runs it N times (N from $N), prints the median wall time in ms
  python3 - "$@" <<'PY'
import os, subprocess, sys, time
n = int(os.environ.get("N", "20"))
times = []
for _ in range(n):
    t = time.perf_counter()
    subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"{times[len(times) // 2]:.1f}")
PY
}

# 1. ls with 1000 records.
export FCVM_DATA_DIR=$tmp/ls
"$fcvm" ls -a -q >/dev/null
python3 - "$FCVM_DATA_DIR/state.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time() * 1000)
rows = [(f"{i:032x}", f"vm-{i}", "busybox", "qemu", "exited", 1, 256, "127.0.0.1:8080:80/tcp",
         "{}", f"/nonexistent/{i}", now - i * 1000, now - i * 1000, now, 0) for i in range(1000)]
db.executemany("INSERT INTO vms (id, name, image, backend, status, vcpus, mem_mib, ports, options_json,"
               " dir, created_ms, started_ms, finished_ms, exit_code) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
db.commit()
PY
[ "$("$fcvm" ls -a -q | wc -l)" -eq 1000 ] || { echo "bench: expected 1000 records" >&2; exit 1; }
ls_all=$(N=20 median_ms "$fcvm" ls -a)
ls_json=$(N=20 median_ms "$fcvm" ls -a --json)
echo "fcvm ls -a, 1000 records:         ${ls_all} ms (median of 20)"
echo "fcvm ls -a --json, 1000 records:  ${ls_json} ms (median of 20)"

# 2. exec round trip against podman exec inside the same guest.
export FCVM_DATA_DIR=$tmp/exec
"$fcvm" run -d --name bench-exec "oci-archive:$images/busybox.oci.tar" sleep 3600 >/dev/null
"$fcvm" exec bench-exec -- true  # warm-up
exec_ms=$(N=10 median_ms "$fcvm" exec bench-exec -- true)
podman_ms=$("$fcvm" exec --vm bench-exec -- sh -c '
  t=""; for i in 1 2 3 4 5; do s=$(date +%s%N); podman exec fcvm-main true; e=$(date +%s%N); t="$t $(( (e - s) / 1000000 ))"; done
  echo $t | tr " " "\n" | sort -n | sed -n 3p')
echo "fcvm exec VM -- true:             ${exec_ms} ms (median of 10, host to guest and back)"
echo "podman exec in the same guest:    ${podman_ms} ms (median of 5, measured inside the guest)"
