#include "fcvm/vm/top.hpp"

namespace fcvm::vm {

std::string top_script() {
  // /proc/PID/stat after the command name's last ") ": field 1 is the state, 2 the parent, 12
  // and 13 utime and stime in clock ticks (100 per second on Linux).
  return R"SH(set -u
root=/run/fcvm-agent/crun
if [ ! -d "$root/fcvm-main" ]; then
  exec podman top fcvm-main user pid ppid time args
fi
pids=$(crun --root "$root" ps fcvm-main | tail -n +2) || exit 1
printf '%-8s %-7s %-7s %-9s %s\n' USER PID PPID TIME COMMAND
for p in $pids; do
  status=$(cat "/proc/$p/status" 2>/dev/null) || continue
  stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
  uid=$(printf '%s\n' "$status" | sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p')
  nspid=$(printf '%s\n' "$status" | sed -n 's/^NSpid:.*[[:space:]]\([0-9]*\)$/\1/p')
  ppid_host=$(printf '%s\n' "${stat##*) }" | cut -d' ' -f2)
  ppid=$(sed -n 's/^NSpid:.*[[:space:]]\([0-9]*\)$/\1/p' "/proc/$ppid_host/status" 2>/dev/null || echo 0)
  case " $pids " in *" $ppid_host "*) ;; *) ppid=0 ;; esac
  ticks=$(printf '%s\n' "${stat##*) }" | awk '{print $12 + $13}')
  secs=$((ticks / 100))
  time=$(printf '%02d:%02d:%02d' $((secs / 3600)) $((secs % 3600 / 60)) $((secs % 60)))
  cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)
  printf '%-8s %-7s %-7s %-9s %s\n' "$uid" "$nspid" "$ppid" "$time" "${cmd% }"
done
)SH";
}

}  // namespace fcvm::vm
