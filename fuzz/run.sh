#!/usr/bin/env bash
# Runs every libFuzzer target of a `fuzz` build: fuzz/run.sh BUILD_DIR [RUNS] [MAX_SECONDS]
#   RUNS         executions per target (default 1000000)
#   MAX_SECONDS  a target that has not reached RUNS by then stops there (default 600)
# Each target starts from its seed corpus (fuzz/corpus/NAME, read only) plus what earlier runs
# found (BUILD_DIR/corpus/NAME). A crash, leak, sanitizer report or hang fails the run; its input
# is kept in BUILD_DIR/artifacts. Prints one line a target: executions, seconds, executions/s.
set -euo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR [RUNS] [MAX_SECONDS]}
runs=${2:-1000000}
max=${3:-600}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/artifacts"
failed=0
shopt -s nullglob
targets=("$build"/fuzz/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $build/fuzz (build the fuzz preset)" >&2; exit 1; }
printf '%-18s %12s %8s %10s  %s\n' target executions seconds 'exec/s' result
for bin in "${targets[@]}"; do
  name=${bin##*/fuzz_}
  mkdir -p "$build/corpus/$name"
  log=$build/artifacts/$name.log
  start=$SECONDS
  rc=0
  "$bin" -runs="$runs" -max_total_time="$max" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-" \
    "$build/corpus/$name" "$src/corpus/$name" >"$log" 2>&1 || rc=$?
  secs=$((SECONDS - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  result=ok
  if [ "$rc" -ne 0 ]; then
    result="FAILED (exit $rc): $(grep -m1 -E 'ERROR|SUMMARY|deadly signal|Timeout' "$log" || tail -n 1 "$log"); see $log"
    failed=1
  fi
  printf '%-18s %12s %8s %10s  %s\n' "$name" "${execs:-?}" "$secs" \
    "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$result"
done
exit $failed
