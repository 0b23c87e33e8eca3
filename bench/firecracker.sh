#!/usr/bin/env bash
# Firecracker against QEMU with KVM, in one run, inside the nested-KVM guest of
# tests/lib/kvm-guest.sh (this machine's own KVM cannot boot a guest): for each VMM, a cold
# `fcvm run -d` of the nginx image to the first HTTP 200 on its published port, and a `fcvm clone`
# of a warm snapshot of it to the first HTTP 200. Prints the ratios clone / cold per VMM and
# Firecracker / QEMU per milestone. Absolute times mean little under nested emulation; the
# ratios are the result.
#   bench/firecracker.sh [FCVM_BIN] [IMAGES_DIR]      (make bench; needs ../shared/firecracker)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=$(readlink -f "${1:-$here/build/release/fcvm}")
images=$(readlink -f "${2:-$here/build/images}")

if [ "${FCVM_BENCH_NESTED:-}" != 1 ]; then
  shared=${FCVM_SHARED_DIR:-$here/../shared}
  fc_bin=${FCVM_FIRECRACKER_BIN:-$(ls "$shared"/firecracker/firecracker-v* 2>/dev/null | sort -V | tail -1)}
  if [ -z "$fc_bin" ] || [ ! -x "$fc_bin" ]; then
    echo "firecracker bench: skipped: no Firecracker binary ($shared/firecracker/ is absent)"
    exit 0
  fi
  rc=0
  FCVM_BENCH_NESTED=1 FCVM_FIRECRACKER_BIN=$(readlink -f "$fc_bin") \
    FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm} \
    "$here/tests/lib/kvm-guest.sh" --timeout 900 -- bash "$here/bench/firecracker.sh" "$fcvm" "$images" || rc=$?
  [ "$rc" -ne 77 ] || { echo "firecracker bench: skipped (see above)"; exit 0; }
  exit "$rc"
fi

# Inside the nested guest.
tmp=$(mktemp -d /tmp/fcvm-bench.XXXXXX)
src=$FCVM_GUEST_DIR
mkdir -p "$tmp/guest/images"
cp -a "$src/kernel" "$tmp/guest/"
cp --sparse=always "$(readlink -f "$src/images/rootfs.ext4")" "$tmp/guest/images/rootfs.ext4"
export FCVM_GUEST_DIR=$tmp/guest FCVM_DATA_DIR=$tmp/data
trap 'for v in $("$fcvm" ls -a -q 2>/dev/null); do "$fcvm" rm -f "$v" >/dev/null 2>&1; done; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Milliseconds from now until http://127.0.0.1:PORT/ answers 200, while CMD... runs.
until_http() { # PORT CMD...
  local port=$1 start; shift
  start=$(now_ms)
  "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; return 1; }
  until curl -fsS --max-time 2 "http://127.0.0.1:$port/" >/dev/null 2>&1; do
    [ $(($(now_ms) - start)) -lt 300000 ] || { echo "no HTTP 200 on $port" >&2; return 1; }
    sleep 0.05
  done
  echo $(($(now_ms) - start))
}
declare -A ms
for vmm in firecracker qemu; do
  p=$(free_port)
  ms[$vmm.cold]=$(until_http "$p" "$fcvm" run -d --vmm "$vmm" --cpu 1 --mem 512 --name "cold-$vmm" \
    -p "127.0.0.1:$p:80" "oci-archive:$images/nginx.oci.tar")
  "$fcvm" rm -f "cold-$vmm" >/dev/null
  "$fcvm" run -d --vmm "$vmm" --cpu 1 --mem 512 --name "src-$vmm" --save-snapshot "warm-$vmm" \
    --wait-ready 'mode=http,url=http://127.0.0.1:80/' "oci-archive:$images/nginx.oci.tar" >/dev/null
  p=$(free_port)
  ms[$vmm.clone]=$(until_http "$p" "$fcvm" clone -d --snapshot "warm-$vmm" --name "clone-$vmm" \
    -p "127.0.0.1:$p:80")
  "$fcvm" rm -f "clone-$vmm" "src-$vmm" >/dev/null
  "$fcvm" snapshot rm "warm-$vmm" >/dev/null
  echo "$vmm: cold run -> HTTP 200 ${ms[$vmm.cold]} ms, clone -> HTTP 200 ${ms[$vmm.clone]} ms"
done
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "clone / cold: firecracker $(ratio "${ms[firecracker.clone]}" "${ms[firecracker.cold]}"), qemu-kvm $(ratio "${ms[qemu.clone]}" "${ms[qemu.cold]}")"
echo "firecracker / qemu-kvm: cold $(ratio "${ms[firecracker.cold]}" "${ms[qemu.cold]}"), clone $(ratio "${ms[firecracker.clone]}" "${ms[qemu.clone]}")"
