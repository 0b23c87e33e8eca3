#!/usr/bin/env bash
# Builds the small OCI images the tests run, without any registry: from Debian packages and the
# host's static busybox, assembled by hand into deterministic `oci-archive` files.
#
#   scripts/build-test-images.sh [--force] OUTDIR
#
# Writes:
#   OUTDIR/busybox.oci.tar     static busybox with a link per applet (sh, echo, env, cat, sleep,
#                              httpd, ...); Cmd ["sh"]; /var/www/index.html says
#                              "Hello from fcvm busybox". Ref name localhost/fcvm-test/busybox:latest
#   OUTDIR/busybox.docker.tar  the same image as a docker-archive (tagged busybox:latest)
#   OUTDIR/nginx.oci.tar       nginx from Debian's `nginx` package with only the libraries `ldd`
#                              lists, a minimal /etc/nginx/nginx.conf (foreground, logs to
#                              stdout/stderr, port 80) and /usr/share/nginx/html/index.html
#                              containing "Welcome to fcvm nginx". Cmd ["nginx"], ExposedPorts
#                              80/tcp, StopSignal SIGQUIT. Ref name localhost/fcvm-test/nginx:latest
#   OUTDIR/sqlite.oci.tar      the busybox image plus the host's sqlite3 and the libraries it links
#                              (a database workload). Ref name localhost/fcvm-test/sqlite:latest
# Same inputs, same bytes. A second run with unchanged inputs does nothing (stamp file in OUTDIR).
# Each archive is checked with `skopeo inspect`. Needs: busybox-static, apt (for `apt-get
# download nginx`), the host libraries nginx links (same Debian release), sqlite3, skopeo; no root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$here/lib/common.sh"

busybox=${FCVM_BUSYBOX:-/bin/busybox}
sqlite3_bin=${FCVM_SQLITE3:-/usr/bin/sqlite3}
tar_det=(--sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu)

# What the images are made of: this script, busybox, sqlite3, the nginx package and the libraries
# they link.
inputs() {
  hash_paths "${BASH_SOURCE[0]}" "$here/lib/common.sh" "$busybox" "$sqlite3_bin"
  apt-cache policy nginx 2>/dev/null | sed -n 's/^ *Candidate: /nginx /p'
  dpkg-query -W libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g libsqlite3-0 libreadline8 2>/dev/null || true
}

# make_layer DIR OUT.tar.gz: a deterministic gzip layer; prints the sha256 of the uncompressed tar
# (the diff_id).
make_layer() {
  local dir=$1 out=$2
  find "$dir" -exec touch -h -d @0 {} +
  (cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    tar "${tar_det[@]}" --no-recursion -cf - -T -) >"$out.tar"
  sha256_file "$out.tar"
  gzip -n -9 -c "$out.tar" >"$out"
  rm -f "$out.tar"
}

# add_blob LAYOUT FILE: moves FILE into LAYOUT/blobs/sha256/ and prints its digest.
add_blob() {
  local layout=$1 file=$2 digest
  digest=$(sha256_file "$file")
  mkdir -p "$layout/blobs/sha256"
  mv -f "$file" "$layout/blobs/sha256/$digest"
  printf '%s\n' "$digest"
}

# make_oci_archive ROOTDIR REF CONFIG_JSON OUT: packs ROOTDIR as the only layer of an image whose
# container config (the "config" object of the image config) is CONFIG_JSON.
make_oci_archive() {
  local root=$1 ref=$2 container_config=$3 out=$4
  local layout diff_id layer_digest layer_size
  local config_digest config_size manifest_digest manifest_size
  layout=$work/layout-$(basename "$out")
  rm -rf "$layout"
  mkdir -p "$layout"
  diff_id=$(make_layer "$root" "$work/layer.tar.gz")
  layer_size=$(stat -c %s "$work/layer.tar.gz")
  layer_digest=$(add_blob "$layout" "$work/layer.tar.gz")

  printf '{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"fcvm build-test-images.sh"}]}' \
    "$container_config" "$diff_id" >"$work/config.json"
  config_size=$(stat -c %s "$work/config.json")
  config_digest=$(add_blob "$layout" "$work/config.json")

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
  manifest_size=$(stat -c %s "$work/manifest.json")
  manifest_digest=$(add_blob "$layout" "$work/manifest.json")

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$ref" >"$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

  find "$layout" -exec touch -h -d @0 {} +
  (cd "$layout" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    tar "${tar_det[@]}" --no-recursion -cf - -T -) >"$out.tmp"
  skopeo inspect "oci-archive:$out.tmp" >/dev/null 2>"$work/skopeo.err" ||
    die "skopeo rejects $(basename "$out"): $(cat "$work/skopeo.err")"
  mv -f "$out.tmp" "$out"
}

# base_files ROOT: /etc/passwd, /etc/group and the usual writable directories.
base_files() {
  local root=$1
  mkdir -p "$root"/{etc,root,tmp,run,var/tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 0700 "$root/root"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# add_libraries ROOT BINARY: the libraries BINARY links and the loader, at the paths ldd reports
# (the host is the same Debian release).
add_libraries() {
  local root=$1 binary=$2 ldd_out lib
  ldd_out=$(ldd "$binary") || die "ldd $binary failed"
  if grep -q 'not found' <<<"$ldd_out"; then
    die "$(basename "$binary") needs libraries the host lacks: $(grep 'not found' <<<"$ldd_out" | tr -s ' \t\n' ' ')"
  fi
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    chmod 0755 "$root$lib"
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out")
}

# The busybox image plus the host's sqlite3 (Debian's `sqlite3` package) and its libraries: a
# database workload for the volume tests.
build_sqlite() {
  local out=$1 root=$work/sqlite
  mkdir -p "$root/usr/bin"
  busybox_root "$root"
  install -m 0755 "$sqlite3_bin" "$root/usr/bin/sqlite3"
  add_libraries "$root" "$root/usr/bin/sqlite3"
  make_oci_archive "$root" localhost/fcvm-test/sqlite:latest \
    '{"Env":["PATH=/usr/bin:/bin"],"Cmd":["sh"],"WorkingDir":"/"}' "$out"
}

# busybox_root ROOT: base files and static busybox with a link per applet in ROOT/bin.
busybox_root() {
  local root=$1 applet
  mkdir -p "$root/bin"
  base_files "$root"
  install -m 0755 "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
}

build_busybox() {
  local out=$1 root=$work/busybox
  mkdir -p "$root/var/www"
  busybox_root "$root"
  printf 'Hello from fcvm busybox\n' >"$root/var/www/index.html"
  make_oci_archive "$root" localhost/fcvm-test/busybox:latest \
    '{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"}' "$out"
}

build_nginx() {
  local out=$1 root=$work/nginx deb lib
  local -a apt_opts=()
  # apt drops to the _apt user for downloads, which cannot write into our private temp dir.
  [ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
  mkdir -p "$work/deb"
  (cd "$work/deb" && apt-get "${apt_opts[@]}" download -q nginx >/dev/null) ||
    die "apt-get download nginx failed (run apt-get update?)"
  deb=$(find "$work/deb" -name 'nginx_*.deb' | head -n1)
  dpkg-deb -x "$deb" "$work/nginx-pkg"

  mkdir -p "$root"/{usr/sbin,etc/nginx,usr/share/nginx/html,var/log/nginx,run/lock}
  mkdir -p "$root"/var/lib/nginx/{body,fastcgi,proxy,scgi,uwsgi}
  base_files "$root"
  ln -s ../run/lock "$root/var/lock"
  install -m 0755 "$work/nginx-pkg/usr/sbin/nginx" "$root/usr/sbin/nginx"

  add_libraries "$root" "$root/usr/sbin/nginx"

  cat >"$root/etc/nginx/nginx.conf" <<'EOF'
# fcvm test image: foreground, logs on stdout/stderr, port 80.
daemon off;
user root;
worker_processes 1;
error_log stderr;
pid /run/nginx.pid;
events { worker_connections 64; }
http {
  types {
    text/html html htm;
    text/plain txt;
    application/json json;
  }
  default_type application/octet-stream;
  access_log /dev/stdout;
  sendfile on;
  server {
    listen 80;
    root /usr/share/nginx/html;
    index index.html;
  }
}
EOF
  cat >"$root/usr/share/nginx/html/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><title>fcvm nginx</title></head>
<body><h1>Welcome to fcvm nginx</h1></body></html>
EOF
  make_oci_archive "$root" localhost/fcvm-test/nginx:latest \
    '{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["nginx"],"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT","WorkingDir":"/"}' \
    "$out"
}

main() {
  local force=0 outdir=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --force) force=1; shift ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
      -*) usage_error "unknown option $1 (see --help)" ;;
      *) [ -z "$outdir" ] || usage_error "only one OUTDIR"; outdir=$1; shift ;;
    esac
  done
  [ -n "$outdir" ] || usage_error "usage: $0 [--force] OUTDIR"
  [ -x "$busybox" ] || die "static busybox not found at $busybox (apt-get install busybox-static)"
  command -v skopeo >/dev/null || die "skopeo not found (apt-get install skopeo)"
  [ -x "$sqlite3_bin" ] || die "sqlite3 not found at $sqlite3_bin (apt-get install sqlite3)"
  mkdir -p "$outdir"

  local key stamp=$outdir/.test-images.stamp
  local -a outputs=("$outdir/busybox.oci.tar" "$outdir/busybox.docker.tar" "$outdir/nginx.oci.tar"
    "$outdir/sqlite.oci.tar")
  key=$(inputs | sha256_stdin)
  if [ "$force" -eq 0 ] && stamp_ok "$stamp" "$key" "${outputs[@]}"; then
    return 0
  fi

  work=$(mktemp -d "${TMPDIR:-/tmp}/fcvm-images.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  build_busybox "$outdir/busybox.oci.tar"
  rm -f "$outdir/busybox.docker.tar.tmp"
  skopeo copy -q "oci-archive:$outdir/busybox.oci.tar" \
    "docker-archive:$outdir/busybox.docker.tar.tmp:busybox:latest" >/dev/null ||
    die "skopeo copy to docker-archive failed"
  mv -f "$outdir/busybox.docker.tar.tmp" "$outdir/busybox.docker.tar"
  build_nginx "$outdir/nginx.oci.tar"
  build_sqlite "$outdir/sqlite.oci.tar"
  stamp_write "$stamp" "$key"
  local f
  for f in "${outputs[@]}"; do
    log "$(basename "$f"): $(du -h --apparent-size "$f" | cut -f1)"
  done
}

main "$@"
