#!/usr/bin/env bash
# A throwaway OCI registry on 127.0.0.1 for tests, using Debian's docker-registry package.
#
#   scripts/local-registry.sh start DIR [PORT]          start in the background, wait until it answers
#   scripts/local-registry.sh push DIR ARCHIVE NAME:TAG copy an image archive into it
#   scripts/local-registry.sh status DIR                print 127.0.0.1:PORT and exit 0 if running
#   scripts/local-registry.sh stop DIR                  stop it (no error if it is not running)
#
# DIR holds everything: config.yml, data/ (the blobs), registry.log, registry.pid (pid and start
# time, checked before any signal is sent), registry.port.
# PORT defaults to $FCVM_REGISTRY_PORT or 5055. Not 5000 on purpose: that is the port of the
# package's own service (docker-registry.service, started on install where systemd runs), which
# this script leaves alone.
# ARCHIVE is an oci-archive, or a docker-archive when its name ends in .docker.tar.
# The registry speaks plain HTTP: clients need --tls-verify=false / an insecure registry entry.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$here/lib/common.sh"

registry_bin=${FCVM_REGISTRY_BIN:-/usr/bin/docker-registry}

# start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
proc_start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # the command name may contain spaces: cut after its closing parenthesis
  # shellcheck disable=SC2086 # split the remaining fields on purpose
  set -- $stat
  printf '%s\n' "${20}"
}

# running_pid DIR: prints the registry's pid when the recorded process is still that registry.
running_pid() {
  local dir=$1 pid start
  [ -f "$dir/registry.pid" ] || return 1
  read -r pid start <"$dir/registry.pid" || return 1
  [ -n "$pid" ] || return 1
  [ "$(proc_start_time "$pid" || true)" = "$start" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/config.yml" || return 1
  printf '%s\n' "$pid"
}

cmd_start() {
  local dir=$1 port=${2:-${FCVM_REGISTRY_PORT:-5055}} pid=""
  [ -x "$registry_bin" ] || die "$registry_bin not found (apt-get install docker-registry)"
  case "$port" in '' | *[!0-9]*) usage_error "PORT must be a number, not '$port'" ;; esac
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  if pid=$(running_pid "$dir"); then
    log "already running (pid $pid) on 127.0.0.1:$(cat "$dir/registry.port")"
    return 0
  fi
  if curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
    die "something already answers on 127.0.0.1:$port; choose another PORT"
  fi
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: fcvm-test-registry
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
  printf '%s\n' "$port" >"$dir/registry.port"
  rm -f "$dir/registry.pid"
  # A session of its own, so that the terminal's signals do not reach it; the inner shell records
  # its pid, which exec hands to the registry.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'echo "$$" >"$1/registry.pid.new"; exec "$2" serve "$1/config.yml"' \
    _ "$dir" "$registry_bin" >"$dir/registry.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    if [ -s "$dir/registry.pid.new" ]; then
      pid=$(cat "$dir/registry.pid.new")
      break
    fi
    sleep 0.05
  done
  [ -n "$pid" ] || die "the registry did not start; see $dir/registry.log"
  printf '%s %s\n' "$pid" "$(proc_start_time "$pid")" >"$dir/registry.pid"
  rm -f "$dir/registry.pid.new"
  for _ in $(seq 1 100); do
    if curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
      log "running (pid $pid) on 127.0.0.1:$port, data in $dir/data"
      return 0
    fi
    [ -d "/proc/$pid" ] || die "the registry exited: $(tail -n 3 "$dir/registry.log")"
    sleep 0.1
  done
  die "the registry does not answer on 127.0.0.1:$port after 10 s; see $dir/registry.log"
}

cmd_stop() {
  local dir=$1 pid
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  if ! pid=$(running_pid "$dir"); then
    rm -f "$dir/registry.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  # Only if it is still the same process (pid and start time), never a recycled pid.
  if running_pid "$dir" >/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/registry.pid"
  log "stopped (pid $pid)"
}

cmd_status() {
  local dir=$1 pid
  [ -d "$dir" ] || die "not running (no $dir)"
  dir=$(cd "$dir" && pwd)
  pid=$(running_pid "$dir") || die "not running"
  printf '127.0.0.1:%s\n' "$(cat "$dir/registry.port")"
}

cmd_push() {
  local dir=$1 archive=$2 ref=$3 port transport=oci-archive
  [ -f "$archive" ] || die "no such archive: $archive"
  case "$ref" in *:*) ;; *) usage_error "NAME:TAG expected, not '$ref'" ;; esac
  dir=$(cd "$dir" 2>/dev/null && pwd) || die "no registry directory $1"
  running_pid "$dir" >/dev/null || die "the registry in $dir is not running (start it first)"
  port=$(cat "$dir/registry.port")
  case "$archive" in *.docker.tar) transport=docker-archive ;; esac
  skopeo copy -q --dest-tls-verify=false "$transport:$archive" "docker://127.0.0.1:$port/$ref" ||
    die "skopeo copy $archive to 127.0.0.1:$port/$ref failed"
  log "pushed $ref to 127.0.0.1:$port"
}

case "${1:-}" in
  start)
    { [ $# -eq 2 ] || [ $# -eq 3 ]; } || usage_error "usage: $0 start DIR [PORT]"
    cmd_start "$2" "${3:-}"
    ;;
  stop) [ $# -eq 2 ] || usage_error "usage: $0 stop DIR"; cmd_stop "$2" ;;
  status) [ $# -eq 2 ] || usage_error "usage: $0 status DIR"; cmd_status "$2" ;;
  push)
    [ $# -eq 4 ] || usage_error "usage: $0 push DIR ARCHIVE NAME:TAG"
    cmd_push "$2" "$3" "$4"
    ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) usage_error "usage: $0 start DIR [PORT] | push DIR ARCHIVE NAME:TAG | status DIR | stop DIR" ;;
esac
