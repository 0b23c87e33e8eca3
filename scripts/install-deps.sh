#!/usr/bin/env bash
# Installs the Debian packages fcvm needs. Idempotent: installs only what is missing.
#   scripts/install-deps.sh [build|run|guest|fuzz|test|all]   (default: all)
#  build: compilers and libraries; run: what `fcvm run` uses on the host (QEMU, slirp4netns, ...);
#  guest: what fcvm-init.sh needs to build the kernel, initramfs and rootfs;
#  fuzz: clang and libFuzzer (the fuzz preset);
#  test: build + run + guest + fuzz + the local registry and image tools the tests use.
set -euo pipefail

build_pkgs=(g++ cmake ninja-build make pkg-config libcli11-dev nlohmann-json3-dev libfmt-dev
  libcpp-httplib-dev libssl-dev libprotobuf-dev protobuf-compiler
  libexpected-dev libsqlite3-dev libgtest-dev libgmock-dev libyaml-cpp-dev
  clang-format)
run_pkgs=(qemu-system-x86 qemu-utils slirp4netns iproute2 nftables uidmap util-linux curl e2fsprogs
  skopeo umoci
  bubblewrap openssh-sftp-server)
guest_pkgs=(mmdebstrap e2fsprogs busybox-static cpio zstd xz-utils lz4 kmod file dpkg-dev)
fuzz_pkgs=(clang libclang-rt-14-dev)
test_pkgs=(docker-registry skopeo podman xfsprogs python3 python3-pip python3-setuptools python3-wheel sqlite3 procps psmisc iperf3 jq erofs-utils
  nfs-ganesha nfs-ganesha-vfs containerd python3-grpcio python3-grpc-tools)

what=${1:-all}
case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  run) pkgs=("${run_pkgs[@]}") ;;
  guest) pkgs=("${guest_pkgs[@]}") ;;
  fuzz) pkgs=("${fuzz_pkgs[@]}") ;;
  test | all)
    pkgs=("${build_pkgs[@]}" "${run_pkgs[@]}" "${guest_pkgs[@]}" "${fuzz_pkgs[@]}" "${test_pkgs[@]}")
    ;;
  *) echo "usage: $0 [build|run|guest|fuzz|test|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "fcvm: missing packages: ${missing[*]}" >&2
  echo "fcvm: run as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
