#!/usr/bin/env bash
# Reproduces the TCG guest soft lockup ("watchdog: BUG: soft lockup - CPU#0 stuck for NNs!")
# in a loop and counts it, for one QEMU variant at a time.
#
#   tests/soak/tcg_lockup.sh FCVM IMAGES_DIR [MINUTES] [VMS] [VARIANT]
#
# VMS VMs (default 2) run side by side, each with a fresh block volume (ext4's lazy inode-table
# init runs in the guest) and a loop of heavy guest work, all at once on both vCPUs:
# `podman run` of the busybox image, a 64 MiB fsync'd write on the volume, a fork-heavy shell
# loop. Every round has a deadline; a round that misses it, with "soft lockup" on the guest's
# console, is a lockup (the VM is removed and a new one started). The summary line reads:
#   variant=V fresh=F minutes=M rounds=R lockups=L vm_boots=B
# VARIANT changes how QEMU runs the guest, through a wrapper first in PATH:
#   default      fcvm's own command line
#   mttcg        -accel tcg,thread=multi (multi-threaded TCG: one host thread per vCPU)
#   single       -accel tcg,thread=single (one host thread runs every vCPU in turn)
#   nox2apic     -cpu max,-x2apic
#   onecpu       -smp 1
#   jiffies      without tsc=reliable (the guest falls back to the refined-jiffies clocksource)
# FRESH=1 boots a new VM for every round (boot, one round, remove): the sightings came early in a
# guest's life.
# Kernel messages go to the console at loglevel 7 in every variant, so a lockup's backtrace is
# kept in the console log (copied to $OUT, default /tmp/fcvm-lockup).
set -euo pipefail
fcvm=$(realpath "${1:?usage: tcg_lockup.sh FCVM IMAGES_DIR [MINUTES] [VMS] [VARIANT]}")
images=$(realpath "${2:?images dir}")
minutes=${3:-10}
vms=${4:-2}
variant=${5:-default}
out=${OUT:-/tmp/fcvm-lockup}
round_deadline_s=${ROUND_DEADLINE_S:-120}
mkdir -p "$out"

work=$(mktemp -d /tmp/fcvm-lockup.XXXXXX)
export FCVM_DATA_DIR=$work/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
cleanup() {
  local rc=$?
  for v in $("$fcvm" __names 2>/dev/null); do "$fcvm" rm -f "$v" >/dev/null 2>&1 || true; done
  jobs -p | xargs -r kill 2>/dev/null || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT INT TERM

real_qemu=$(command -v qemu-system-x86_64)
mkdir -p "$work/bin"
cat >"$work/bin/qemu-system-x86_64" <<EOF
#!/usr/bin/env bash
# Rewrites fcvm's QEMU command line for variant "$variant".
args=()
while [ \$# -gt 0 ]; do
  case "\$1" in
    -append)
      a="\${2/loglevel=3/loglevel=7}"
      [ "$variant" = jiffies ] && a="\${a/ tsc=reliable/}"
      args+=("\$1" "\$a"); shift 2; continue ;;
    -accel)
      case "$variant" in
        mttcg) [ "\$2" = tcg ] && { args+=(-accel tcg,thread=multi); shift 2; continue; } ;;
        single) [ "\$2" = tcg ] && { args+=(-accel tcg,thread=single); shift 2; continue; } ;;
      esac ;;
    -cpu) [ "$variant" = nox2apic ] && { args+=(-cpu "\$2,-x2apic"); shift 2; continue; } ;;
    -smp) [ "$variant" = onecpu ] && { args+=(-smp 1); shift 2; continue; } ;;
  esac
  args+=("\$1"); shift
done
exec "$real_qemu" "\${args[@]}"
EOF
chmod +x "$work/bin/qemu-system-x86_64"
export PATH=$work/bin:$PATH

busybox=$images/busybox.oci.tar
[ -f "$busybox" ] || { echo "missing $busybox: run make images" >&2; exit 1; }

vm_dir() { "$fcvm" inspect "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["paths"]["dir"])' 2>/dev/null; }

# One worker: a VM, rounds of heavy work until the time is up; a lockup replaces the VM.
worker() { # INDEX END_EPOCH
  local i=$1 end=$2 n=0 rounds=0 lockups=0 boots=0
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1))
    local name="w$i-$n" vol="$work/vol-$i-$n"
    mkdir -p "$vol"
    boots=$((boots + 1))
    if ! timeout "$round_deadline_s" "$fcvm" run -d --name "$name" --map "$vol:/vol" \
      "oci-archive:$busybox" sleep 100000 >/dev/null 2>"$work/err-$i"; then
      local bdir; bdir=$(vm_dir "$name")
      if grep -qs "soft lockup" "$work/err-$i" "${bdir:-/nonexistent}/console.log"; then
        lockups=$((lockups + 1))
        cat "$work/err-$i" "${bdir:-/nonexistent}/console.log" >"$out/$variant-boot-$i-$n.txt" 2>/dev/null
        echo "lockup during boot: worker $i VM $name" >&2
      else
        echo "boot failed without a lockup: worker $i VM $name: $(tail -3 "$work/err-$i")" >&2
      fi
      "$fcvm" rm -f "$name" >/dev/null 2>&1 || true
      rm -rf "$vol"
      continue
    fi
    local dir; dir=$(vm_dir "$name")
    while [ "$(date +%s)" -lt "$end" ]; do
      rounds=$((rounds + 1))
      if ! timeout "$round_deadline_s" "$fcvm" exec --vm "$name" -- sh -c '
          img=$(podman images -q | head -1)
          podman run --rm --network none "$img" sh -c "i=0; while [ \$i -lt 300 ]; do /bin/true; i=\$((i+1)); done" &&
          dd if=/dev/urandom of=/run/fcvm/volumes/0/blob bs=1M count=64 conv=fsync status=none &&
          rm -f /run/fcvm/volumes/0/blob' >/dev/null 2>&1; then
        if grep -qs "soft lockup" "$dir/console.log"; then
          lockups=$((lockups + 1))
          cp "$dir/console.log" "$out/$variant-$i-$n.console.log"
          echo "lockup: worker $i VM $name round $rounds (console in $out)" >&2
          break
        fi
        echo "round failed without a lockup: worker $i VM $name" >&2
        break
      fi
      [ "${FRESH:-0}" = 1 ] && break
    done
    "$fcvm" rm -f "$name" >/dev/null 2>&1 || true
    rm -rf "$vol"
  done
  echo "$rounds $lockups $boots" >"$work/result-$i"
}

end=$(($(date +%s) + minutes * 60))
for ((i = 1; i <= vms; i++)); do worker "$i" "$end" & done
wait
rounds=0 lockups=0 boots=0
for ((i = 1; i <= vms; i++)); do
  read -r r l b <"$work/result-$i"
  rounds=$((rounds + r)) lockups=$((lockups + l)) boots=$((boots + b))
done
echo "variant=$variant fresh=${FRESH:-0} minutes=$minutes rounds=$rounds lockups=$lockups vm_boots=$boots"
