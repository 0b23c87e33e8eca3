#!/usr/bin/env bash
# The TCG guest's clocksource: fcvm's kernel command line (tsc=reliable, the TSC kept) against the
# same VM with that argument removed (the guest marks its TSC unstable and falls back to
# refined-jiffies), alternating, measured in one run. For each variant, a 2-vCPU busybox VM:
#   - `fcvm run -d` to ready;
#   - the guest's clocksource and its local timer interrupts per second per vCPU;
#   - the host CPU the idle VM's QEMU uses over IDLE_S seconds (percent of one core);
#   - the guest's clock under host load: both host cores kept busy for LOAD_S seconds, the
#     guest's CLOCK_MONOTONIC advance over the host's (1.000 = no time lost).
#   bench/tcg_clocksource.sh [FCVM_BIN] [IMAGES_DIR]      ROUNDS=2 IDLE_S=20 LOAD_S=20
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fcvm=${1:-$here/build/release/fcvm}
images=${2:-$here/build/images}
rounds=${ROUNDS:-2}
idle_s=${IDLE_S:-20}
load_s=${LOAD_S:-20}
tmp=$(mktemp -d /tmp/fcvm-bench.XXXXXX)
export FCVM_DATA_DIR=$tmp/data
export FCVM_GUEST_DIR=${FCVM_GUEST_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}
hogs=()
cleanup() {
  for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done
  for v in $("$fcvm" ls -a -q 2>/dev/null); do "$fcvm" rm -f "$v" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
now_ms() { echo $(($(date +%s%N) / 1000000)); }
busybox=oci-archive:$images/busybox.oci.tar
"$fcvm" pull -q "$busybox" >/dev/null
clk_tck=$(getconf CLK_TCK)

# The "jiffies" variant: a QEMU first in PATH that drops tsc=reliable from the kernel arguments.
real_qemu=$(command -v qemu-system-x86_64)
mkdir -p "$tmp/jiffies"
cat >"$tmp/jiffies/qemu-system-x86_64" <<EOF
#!/usr/bin/env bash
args=()
while [ \$# -gt 0 ]; do
  if [ "\$1" = -append ]; then args+=("\$1" "\${2/ tsc=reliable/}"); shift 2; continue; fi
  args+=("\$1"); shift
done
exec "$real_qemu" "\${args[@]}"
EOF
chmod +x "$tmp/jiffies/qemu-system-x86_64"

qemu_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
guest_monotonic() { "$fcvm" exec --vm "$1" -- cat /proc/uptime | awk '{print $1}'; }
local_timer_irqs() { # VM -> total LOC interrupts over all vCPUs
  "$fcvm" exec --vm "$1" -- cat /proc/interrupts |
    awk '$1 == "LOC:" { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }'
}

one() { # VARIANT ROUND -> "variant boot_ms clocksource irq_per_s idle_pct clock_ratio"
  local variant=$1 name="cs-$1-$2" t0 boot qemu cs irq0 irq1 c0 c1 g0 g1 h0 h1
  local path=$PATH
  [ "$variant" = jiffies ] && path=$tmp/jiffies:$PATH
  t0=$(now_ms)
  PATH=$path "$fcvm" run -d --cpu 2 --name "$name" "$busybox" sleep 3600 >/dev/null
  boot=$(($(now_ms) - t0))
  qemu=$(pgrep -f -- "-name fcvm-$name," | head -1)
  cs=$("$fcvm" exec --vm "$name" -- cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
  irq0=$(local_timer_irqs "$name")
  c0=$(qemu_cpu_ticks "$qemu")
  h0=$(now_ms)
  sleep "$idle_s"
  c1=$(qemu_cpu_ticks "$qemu")
  irq1=$(local_timer_irqs "$name")
  h1=$(now_ms)
  local irq_per_s idle_pct
  irq_per_s=$(((irq1 - irq0) * 1000 / (h1 - h0) / 2))
  idle_pct=$(awk -v c="$((c1 - c0))" -v t="$clk_tck" -v ms="$((h1 - h0))" 'BEGIN { printf "%.1f", c * 100 * 1000 / t / ms }')
  # Under host load: two busy loops, one per host core.
  g0=$(guest_monotonic "$name")
  h0=$(now_ms)
  hogs=()
  for _ in 1 2; do
    (while :; do :; done) &
    hogs+=($!)
  done
  sleep "$load_s"
  for h in "${hogs[@]}"; do kill "$h"; done
  wait "${hogs[@]}" 2>/dev/null || true
  hogs=()
  g1=$(guest_monotonic "$name")
  h1=$(now_ms)
  local ratio
  ratio=$(awk -v g="$g1" -v f="$g0" -v h="$((h1 - h0))" 'BEGIN { printf "%.3f", (g - f) * 1000 / h }')
  "$fcvm" rm -f "$name" >/dev/null
  echo "$variant $boot $cs $irq_per_s $idle_pct $ratio"
}

results=$tmp/results
: >"$results"
for r in $(seq 1 "$rounds"); do
  for v in tsc jiffies; do
    one "$v" "$r" | tee -a "$results" | awk '{ printf "  %-8s run -d %6d ms  clocksource %-15s timer irqs %4d /s/vCPU  idle QEMU %5.1f%% of a core  guest clock under load %s\n", $1, $2, $3, $4, $5, $6 }'
  done
done
awk -v n="$rounds" '
  { boot[$1] += $2; irq[$1] += $4; idle[$1] += $5; clock[$1] += $6 }
  END {
    printf "means over %d rounds:\n", n
    for (v in boot) printf "  %-8s run -d %6d ms  timer irqs %4d /s/vCPU  idle QEMU %5.1f%%  guest clock under load %.3f\n", v, boot[v] / n, irq[v] / n, idle[v] / n, clock[v] / n
    printf "jiffies / tsc: idle QEMU CPU %.1f, timer irqs %.1f, run -d %.2f\n", idle["jiffies"] / (idle["tsc"] ? idle["tsc"] : 1), irq["jiffies"] / (irq["tsc"] ? irq["tsc"] : 1), boot["jiffies"] / boot["tsc"]
  }' "$results"
