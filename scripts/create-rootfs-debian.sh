#!/usr/bin/env bash
# Builds the read-only base root filesystem of the fcvm guest: Debian bookworm with podman.
#
#   scripts/create-rootfs-debian.sh --agent PATH [--cache DIR] [--rebuild-base] OUTPUT.ext4
#   scripts/create-rootfs-debian.sh --print-inputs
#
# Two stages:
#  1. base: mmdebstrap of bookworm with the packages in scripts/guest/rootfs-packages.txt, from
#     the Debian mirrors in the host's apt sources, without docs, man pages and locales. Cached as
#     DIR/rootfs-base-KEY.tar, KEY being a hash of everything that stage depends on (package list,
#     mirrors, the code of build_base), so changing only the agent or the guest files reuses it.
#  2. image: the cached tree plus scripts/guest/fc-init as /sbin/fc-init, the agent as
#     /usr/sbin/fc-agent (0755), scripts/guest/rootfs/ (podman configuration without systemd,
#     /etc/hosts, /etc/hostname) and an empty /etc/containers/registries.conf.d/ (fc-agent writes
#     registry entries there at run time), written with `mkfs.ext4 -d` into a sparse file
#     (label fcvm-root), mode 0444. The guest boots a copy-on-write overlay of it, never the file.
#
# Options and environment:
#   --agent PATH          the fc-agent binary (a static executable)
#   --cache DIR           where the base tarball is kept (default: the directory of OUTPUT)
#   --rebuild-base        ignore a cached base tarball
#   --print-inputs        print what the base stage depends on (fcvm-init.sh hashes it) and exit
#   FCVM_DEBIAN_MIRROR    a Debian mirror URI to use instead of the host's apt sources
#   FCVM_ROOTFS_SIZE      size of the ext4 image (default 2G; the file is sparse)
#
# Runs as root (mmdebstrap in root mode, device nodes and file owners in the tree).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$here/lib/common.sh"

suite=bookworm
packages_file=$here/guest/rootfs-packages.txt
guest_dir=$here/guest

packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$packages_file" | tr -d ' \t'; }

# sources_deb822_lines FILE: the stanzas of a deb822 sources file that serve $suite*, one line each.
sources_deb822_lines() {
  awk -v suite="$suite" '
    function flush(   n, u, m, s, i, j) {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
        n = split(uris, u, /[ \t]+/)
        m = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
          if (u[i] != "" && (s[j] == suite || index(s[j], suite "-") == 1))
            print "deb " u[i] " " s[j] " " (comps == "" ? "main" : comps)
      }
      types = uris = suites = comps = enabled = ""
    }
    /^[ \t]*$/ { flush(); next }
    /^#/ { next }
    {
      key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
      if (key == "types") types = val
      else if (key == "uris") uris = val
      else if (key == "suites") suites = val
      else if (key == "components") comps = val
      else if (key == "enabled") enabled = tolower(val)
    }
    END { flush() }
  ' "$1"
}

# sources_list_lines FILE: the `deb` lines of a one-line sources file that serve $suite*.
sources_list_lines() {
  sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$1" | awk -v suite="$suite" '
    $1 == "deb" && ($3 == suite || index($3, suite "-") == 1) {
      comps = ""; for (i = 4; i <= NF; i++) comps = comps " " $i
      print "deb " $2 " " $3 (comps == "" ? " main" : comps)
    }'
}

# One-line apt sources ("deb URI SUITE COMPONENTS") for the host's Debian mirrors of $suite, its
# -updates and -security suites. Reads deb822 (*.sources) and one-line (*.list) files.
mirror_lines() {
  if [ -n "${FCVM_DEBIAN_MIRROR:-}" ]; then
    printf 'deb %s %s main\n' "$FCVM_DEBIAN_MIRROR" "$suite"
    printf 'deb %s %s-updates main\n' "$FCVM_DEBIAN_MIRROR" "$suite"
    return
  fi
  # An empty result is reported by build_base.
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources) sources_deb822_lines "$f" ;;
      *) sources_list_lines "$f" ;;
    esac
  done | awk '!seen[$0]++'
}

# Stage 1 (its code is part of the cache key: edit it and the base is rebuilt).
build_base() {
  local out=$1
  local -a mirrors
  mapfile -t mirrors < <(mirror_lines)
  [ ${#mirrors[@]} -gt 0 ] || die "no Debian $suite mirror in the host's apt sources; set FCVM_DEBIAN_MIRROR=URI"
  # shellcheck disable=SC2016 # mmdebstrap passes the chroot as $1 to each hook
  mmdebstrap --mode=root --variant=apt --format=tar --quiet \
    --include="$(packages | paste -sd, -)" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/bash-completion/*' \
    --dpkgopt='path-exclude=/usr/share/zsh/*' \
    --dpkgopt='path-exclude=/usr/share/fish/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/*.log "$1"/var/log/apt/*' \
    --customize-hook='rm -f "$1"/etc/containers/registries.conf.d/* "$1"/etc/cni/net.d/87-podman-bridge.conflist' \
    "$suite" "$out" "${mirrors[@]}"
}

print_inputs() {
  printf 'suite %s\n' "$suite"
  printf 'mmdebstrap %s\n' "$(mmdebstrap --version 2>/dev/null || echo none)"
  printf 'packages\n'
  packages
  printf 'mirrors\n'
  mirror_lines
  printf 'code\n'
  declare -f build_base packages
}

# Stage 2.
build_image() {
  local agent=$1 base=$2 out=$3 tree tmp_img size=${FCVM_ROOTFS_SIZE:-2G}
  tree=$(mktemp -d "$(dirname "$out")/.rootfs-tree.XXXXXX")
  tmp_img=$(dirname "$out")/.$(basename "$out").tmp.$$
  # shellcheck disable=SC2064 # expand now: the paths are local
  trap "rm -rf '$tree' '$tmp_img'" EXIT
  tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base"
  install -m 0755 "$guest_dir/fc-init" "$tree/usr/sbin/fc-init"
  install -m 0755 "$agent" "$tree/usr/sbin/fc-agent"
  cp -R --no-preserve=ownership "$guest_dir/rootfs/." "$tree/"
  mkdir -p "$tree/etc/containers/registries.conf.d"
  [ -x "$tree/usr/bin/catatonit" ] || die "the base tree has no /usr/bin/catatonit"
  [ -x "$tree/usr/bin/podman" ] || die "the base tree has no /usr/bin/podman"
  [ -f "$tree/etc/containers/policy.json" ] || die "the base tree has no /etc/containers/policy.json"
  [ -e "$tree/sbin/fc-init" ] || die "/sbin/fc-init does not resolve in the tree (no merged /usr?)"

  rm -f "$tmp_img"
  truncate -s "$size" "$tmp_img"
  mkfs.ext4 -q -F -L fcvm-root -E root_owner=0:0 -d "$tree" "$tmp_img" ||
    die "mkfs.ext4 -d failed (is $size large enough?)"
  chmod 0444 "$tmp_img"
  mv -f "$tmp_img" "$out"
}

main() {
  local agent="" cache="" rebuild_base=0 out=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --agent) agent=${2:?--agent needs a path}; shift 2 ;;
      --agent=*) agent=${1#*=}; shift ;;
      --cache) cache=${2:?--cache needs a directory}; shift 2 ;;
      --cache=*) cache=${1#*=}; shift ;;
      --rebuild-base) rebuild_base=1; shift ;;
      --print-inputs) print_inputs; return ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
      -*) usage_error "unknown option $1 (see --help)" ;;
      *) [ -z "$out" ] || usage_error "only one OUTPUT.ext4"; out=$1; shift ;;
    esac
  done
  [ -n "$out" ] || usage_error "usage: $0 --agent PATH [--cache DIR] OUTPUT.ext4"
  [ -n "$agent" ] || usage_error "--agent PATH is required"
  { [ -f "$agent" ] && [ -x "$agent" ]; } || die "agent $agent is not an executable file"
  if command -v file >/dev/null && file -bL "$agent" | grep -q 'dynamically linked'; then
    warn "agent $agent is dynamically linked; fc-agent is meant to be static"
  fi
  [ "$(id -u)" -eq 0 ] || die "building the root filesystem needs root (mmdebstrap, device nodes); run it with sudo"
  local tool
  for tool in mmdebstrap mkfs.ext4 tar; do
    command -v "$tool" >/dev/null || die "$tool not found (run scripts/install-deps.sh guest)"
  done

  mkdir -p "$(dirname "$out")"
  cache=${cache:-$(dirname "$out")}
  mkdir -p "$cache"
  local key base
  key=$(print_inputs | sha256_stdin | cut -c1-16)
  base=$cache/rootfs-base-$key.tar
  if [ "$rebuild_base" -eq 1 ] || [ ! -f "$base" ]; then
    log "mmdebstrap $suite (about a minute)"
    build_base "$base.tmp.$$" || { rm -f "$base.tmp.$$"; die "mmdebstrap failed"; }
    mv -f "$base.tmp.$$" "$base"
    # Only the current base is worth its few hundred MB.
    find "$cache" -maxdepth 1 -name 'rootfs-base-*.tar' ! -name "$(basename "$base")" -delete
  else
    log "reusing the cached base $(basename "$base")"
  fi
  build_image "$agent" "$base" "$out"
  log "wrote $out ($(du -h --apparent-size "$out" | cut -f1) sparse, $(du -h "$out" | cut -f1) used)"
}

main "$@"
