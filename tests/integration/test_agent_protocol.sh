#!/usr/bin/env bash
# fc-agent against a scripted host over a Unix socket, on this machine: the agent runs with
# --no-system (no clock, hostname or power changes) and fake podman/ip/conmon commands, so this
# checks the protocol sequence, the exact commands and the files written, without a VM. The exec
# scenarios (agent/exec_scenarios.py) cover tty sessions, resize, stdin EOF, signals and refusals.
set -euo pipefail
agent=${FCVM_AGENT_BIN:-}
if [ -z "$agent" ] || [ ! -x "$agent" ]; then
  echo "SKIP: FCVM_AGENT_BIN is not set to a built fc-agent"; exit 77
fi
if ! command -v python3 >/dev/null; then
  echo "SKIP: python3 is not installed"; exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for scenario in run archive_reconnect_exec_stop pull_fails run_fails stop_early sigterm \
    bad_version exec_tty exec_signal exec_pipes exec_not_running; do
  echo "== $scenario"
  if ! python3 "$here/agent/fake_host.py" "$scenario" "$agent" "$work"; then
    failed=1
    echo "-- agent console output:"; cat "$work/agent-$scenario.log" || true
  fi
done
exit $failed
