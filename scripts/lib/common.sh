# shellcheck shell=bash
# Helpers shared by the fcvm shell scripts. Source it; it defines functions only.
#
# Conventions: messages go to stderr prefixed with the script name; `die` exits 1;
# `usage_error` exits 2 (bad arguments), like the fcvm binary.

FCVM_PROG=${FCVM_PROG:-$(basename "$0" .sh)}

log() { printf '%s: %s\n' "$FCVM_PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$FCVM_PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$FCVM_PROG" "$*" >&2
  exit 1
}
usage_error() {
  printf '%s: %s\n' "$FCVM_PROG" "$*" >&2
  exit 2
}

# The directory fcvm keeps its guest artifacts in (kernel, rootfs, agent, caches).
fcvm_data_dir() {
  printf '%s\n' "${FCVM_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fcvm}"
}

# sha256 of stdin, hex only.
sha256_stdin() { sha256sum | cut -d' ' -f1; }

# sha256 of one file, hex only.
sha256_file() { sha256sum -- "$1" | cut -d' ' -f1; }

# A stable hash over the names and contents of files and directories (recursively). Used as the
# input key of a cached artifact: any change to one of the inputs changes the key.
hash_paths() {
  local p f
  for p in "$@"; do
    if [ -d "$p" ]; then
      while IFS= read -r -d '' f; do
        printf '%s\n' "${f#"$p"/}"
        sha256_file "$f"
      done < <(find "$p" -type f -print0 | LC_ALL=C sort -z)
    elif [ -e "$p" ]; then
      printf '%s\n' "$(basename "$p")"
      sha256_file "$p"
    else
      printf 'missing %s\n' "$p"
    fi
  done | sha256_stdin
}

# stamp_ok STAMP KEY OUTPUT...: true when STAMP holds KEY and every OUTPUT exists.
stamp_ok() {
  local stamp=$1 key=$2 out
  shift 2
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] || return 1
  for out in "$@"; do
    [ -e "$out" ] || return 1
  done
}

# stamp_write STAMP KEY: records that the artifact was built from KEY (atomically).
stamp_write() {
  printf '%s\n' "$2" >"$1.tmp.$$"
  mv -f "$1.tmp.$$" "$1"
}

# Seconds since the epoch with milliseconds, for step timings.
now_s() { date +%s.%N | cut -c1-14; }
elapsed_s() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }
