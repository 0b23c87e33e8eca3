#!/usr/bin/env bash
# Installs a built fcvm under PREFIX (make install): the binary, the containerd shim
# (containerd-shim-fcvm-v2, on containerd's PATH for the runtime io.containerd.fcvm.v2), the guest
# agent and the scripts
# fcvm-init needs, bash and zsh completions, the manual pages, fcvm-restart.service and the API's
# fcvm-api.socket and fcvm-api.service. DESTDIR is prepended to every path, as packagers expect.
#   scripts/install.sh BUILD_DIR PREFIX
set -euo pipefail
build=${1:?usage: install.sh BUILD_DIR PREFIX}
prefix=${2:?usage: install.sh BUILD_DIR PREFIX}
src=$(cd "$(dirname "$0")/.." && pwd)
root=${DESTDIR:-}$prefix
for f in "$build/fcvm" "$build/containerd-shim-fcvm-v2" "$build/fc-agent" "$build/man/fcvm.1"; do
  [ -e "$f" ] || { echo "install.sh: $f is missing: build first (make build)" >&2; exit 1; }
done
install -D -m 0755 "$build/fcvm" "$root/bin/fcvm"
install -D -m 0755 "$build/containerd-shim-fcvm-v2" "$root/bin/containerd-shim-fcvm-v2"
install -D -m 0755 "$build/fc-agent" "$root/lib/fcvm/fc-agent"
install -D -m 0644 "$src/completions/fcvm.bash" "$root/share/bash-completion/completions/fcvm"
install -D -m 0644 "$src/completions/_fcvm" "$root/share/zsh/site-functions/_fcvm"
install -d -m 0755 "$root/lib/systemd/system"
for unit in fcvm-restart.service fcvm-api.service fcvm-api.socket; do
  sed "s|@BINDIR@|$prefix/bin|" "$src/systemd/$unit" >"$root/lib/systemd/system/$unit"
  chmod 0644 "$root/lib/systemd/system/$unit"
done
install -d -m 0755 "$root/share/man/man1"
for page in "$build"/man/*.1; do
  install -m 0644 "$page" "$root/share/man/man1/"
done
echo "installed fcvm under $root (bin/fcvm, bin/containerd-shim-fcvm-v2, lib/fcvm/fc-agent, completions, lib/systemd/system/fcvm-{restart.service,api.socket,api.service}, $(ls "$build"/man/*.1 | wc -l) manual pages)"
