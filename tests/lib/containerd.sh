# A private containerd (Debian's package) for tests and benchmarks: everything under ROOT, the
# shim first on its PATH, its CRI plugin with the runtime handler `fcvm` (the default one).
#   start_private_containerd ROOT SHIM_BIN   -> CTRD_PID; the socket is ROOT/containerd.sock, its
#                                               log ROOT/containerd.log
# The caller waits for the socket, and stops containerd and the shims (pkill -f "-address
# ROOT/containerd.sock"), which outlive it by design.
start_private_containerd() {
  local root=$1 shim=$2
  mkdir -p "$root/bin" "$root/fifo" "$root/cni/bin" "$root/cni/net.d"
  ln -sf "$shim" "$root/bin/containerd-shim-fcvm-v2"
  cat >"$root/config.toml" <<TOML
version = 2
root = "$root/root"
state = "$root/state"
[grpc]
  address = "$root/containerd.sock"
[ttrpc]
  address = "$root/containerd.sock.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  sandbox_image = "localhost/fcvm-test/busybox:latest"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$root/cni/bin"
    conf_dir = "$root/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "fcvm"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.fcvm]
      runtime_type = "io.containerd.fcvm.v2"
      pod_annotations = ["fcvm.io/*"]
TOML
  PATH="$root/bin:$PATH" containerd --config "$root/config.toml" >"$root/containerd.log" 2>&1 &
  CTRD_PID=$!
}
