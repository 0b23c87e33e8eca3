#include "fcvm/vm/setup.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "fcvm/net/privileged.hpp"
#include "fcvm/net/rootless.hpp"
#include "fcvm/storage/disk.hpp"
#include "fcvm/storage/volume.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/inet.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/vm/backend_select.hpp"
#include "fcvm/vm/plan.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::vm {

using namespace std::chrono_literals;

namespace {
Result<> check_artifacts(const Paths& paths, vmm::KernelKind kernel_kind) {
  std::string kernel = paths.kernel_for(kernel_kind);
  for (const auto& f : {kernel, paths.initrd(), paths.rootfs()}) {
    if (!path_exists(f)) {
      return fail(ErrorCode::kUnavailable,
                  fmt::format("guest artifact {} is missing: run scripts/fcvm-init.sh (or set "
                              "FCVM_GUEST_DIR to where it put them)",
                              f));
    }
  }
  return {};
}

Result<std::unique_ptr<net::VmNetwork>> make_network(Context& ctx, const state::VmRecord& rec,
                                                     const RunOptions& options,
                                                     const vmm::Backend& backend) {
  std::optional<net::TapOwner> owner;
  if (auto user = backend.vmm_user()) owner = net::TapOwner{user->first, user->second};
  if (options.network == NetworkMode::kPrivileged) {
    net::PrivilegedConfig config;
    config.tap_owner = owner;
    config.vm_id = rec.id;
    config.dir = rec.dir;
    config.ports = options.ports;
    config.allow_host_loopback = needs_host_loopback(options);
    auto network = net::PrivilegedNetwork::create(config, ctx.runner);
    if (!network) return tl::unexpected<Error>(network.error());
    return std::unique_ptr<net::VmNetwork>(std::move(*network));
  }
  net::RootlessConfig config;
  config.tap_owner = owner;
  config.dir = rec.dir;
  config.ports = options.ports;
  config.allow_host_loopback = needs_host_loopback(options);
  auto network = net::RootlessNetwork::create(config, ctx.runner);
  if (!network) return tl::unexpected<Error>(network.error());
  return std::unique_ptr<net::VmNetwork>(std::move(*network));
}

Result<> start_nfs_server(VmResources& vm, const state::VmRecord& rec, std::string& server,
                          int& port) {
  std::vector<storage::NfsExport> exports;
  for (size_t i = 0; i < vm.options.volumes.size(); ++i) {
    const auto& m = vm.options.volumes[i];
    if (m.mode == storage::VolumeMode::kNfs) {
      exports.push_back({m.host, fmt::format("/vol{}", i), m.read_only});
    }
  }
  if (exports.empty()) return {};
  auto net = vm.network->describe();
  auto client = net.value("host_address", std::string());
  auto bridge = net.value("bridge_address", std::string());
  if (client.empty() || bridge.empty()) {
    return fail(ErrorCode::kInvalidInput, "mode=nfs needs --network privileged");
  }
  server = bridge.substr(0, bridge.find('/'));
  auto p = free_tcp_port(server);
  if (!p) return tl::unexpected<Error>(p.error());
  port = *p;
  auto state_dir = rec.dir + "/nfs";
  FCVM_TRY(make_dirs(state_dir, 0700));
  auto config = rec.dir + "/ganesha.conf";
  FCVM_TRY(write_file_atomic(
      config, storage::nfs_server_config(exports, server, port, client, state_dir), 0600));
  auto child = storage::spawn_nfs_server(config, server, port, rec.dir + "/nfs.log");
  if (!child) return tl::unexpected<Error>(child.error());
  vm.volume_servers.push_back(std::move(*child));
  return {};
}

}  // namespace

std::string sshfs_port_name(size_t index) { return fmt::format("fcvm.vol{}", index); }

std::string volume_image_path(const state::VmRecord& rec, size_t index) {
  return fmt::format("{}/vol-{}.ext4", rec.dir, index);
}

std::string memory_file_path(const state::VmRecord& rec) {
  // Guest RAM on a tmpfs: as fast as anonymous memory (a disk-backed file costs the guest ~15%
  // in writeback), and never on disk. Where there is no usable /dev/shm, the VM's directory.
  static const bool shm = ::access("/dev/shm", W_OK | X_OK) == 0;
  return shm ? fmt::format("/dev/shm/fcvm-{}.ram", rec.id) : rec.dir + "/memory.ram";
}

Result<std::unique_ptr<VmResources>> setup_vm(Context& ctx, state::VmRecord& rec, Timings& timings,
                                              const std::function<void()>& save,
                                              const state::SnapshotRecord* restore_from) {
  auto vm = std::make_unique<VmResources>();
  rec.monitor = sys::ProcessIdentity::of(::getpid());
  rec.status = state::VmStatus::kStarting;
  rec.started_ms = state::now_ms();
  rec.finished_ms.reset();
  rec.exit_code.reset();
  rec.error.clear();
  save();

  // 1. The options the VM was created with (an archive may have disappeared since).
  auto options = options_from_json(rec.options_json);
  if (!options) return tl::unexpected<Error>(options.error());
  vm->options = *options;

  // 2. Backend and artifacts. A VM keeps the backend of its first start: its disk is in that
  //    backend's format.
  //    A clone restores with the backend of its snapshot, from the snapshot's own files.
  std::string why;
  auto wanted = vm->options.vmm;
  if (restore_from || !rec.backend.empty()) {
    FCVM_TRY_ASSIGN(wanted, parse_vmm_choice(restore_from ? restore_from->backend : rec.backend,
                                             "the VM's backend"));
  }
  auto backend = select_backend(ctx, wanted, why, vm->options.jailer);
  if (!backend) return tl::unexpected<Error>(backend.error());
  vm->backend = std::move(*backend);
  FCVM_LOG(kInfo, "monitor", "vmm: {}", why);
  FCVM_TRY_ASSIGN(const auto* traits, vmm::backend_traits(vm->backend->name()));
  std::optional<SnapshotFiles> snap;
  if (restore_from) {
    snap = snapshot_files(*restore_from);
    for (const auto& f : {snap->memory, snap->state, snap->disk}) {
      if (!path_exists(f)) {
        return fail(ErrorCode::kNotFound,
                    fmt::format("snapshot {} is incomplete: {} is missing", restore_from->name, f));
      }
    }
    vm->restored = true;
  } else {
    FCVM_TRY(check_artifacts(ctx.paths, traits->kernel));
  }
  rec.backend = std::string(vm->backend->name());

  timings.mark("backend_ready");
  // 3. Copy-on-write root disk over the read-only base image (kept across stop/start).
  vmm::DiskSpec root;
  root.serial = k_root_serial;
  root.root = true;
  root.format = traits->root_disk_format;
  root.path = rec.dir + "/" + traits->root_disk_file;
  if (root.format == vmm::DiskFormat::kQcow2) {
    if (snap) {
      // A fresh writable layer over the snapshot's disk (which stays read-only).
      ::unlink(root.path.c_str());
      auto size = storage::disk_virtual_size(snap->disk);
      if (!size) return tl::unexpected<Error>(size.error());
      FCVM_TRY(storage::write_qcow2_overlay(snap->disk, storage::BackingFormat::kQcow2, *size,
                                            root.path));
    } else if (!path_exists(root.path)) {
      // The overlay names the resolved base: rootfs.ext4 is a symlink that a rebuild moves on,
      // while this disk stays tied to the base it was made over.
      std::error_code ec;
      auto base = std::filesystem::canonical(ctx.paths.rootfs(), ec);
      if (ec) return fail_errno(fmt::format("resolve {}", ctx.paths.rootfs()), ec.value());
      FCVM_TRY(storage::create_qcow2_overlay(ctx.runner, base.string(), root.path));
    }
  } else {
    if (snap) {
      ::unlink(root.path.c_str());
      FCVM_TRY_CTX(storage::clone_file(snap->disk, root.path), "create root disk");
    } else if (!path_exists(root.path)) {
      FCVM_TRY_CTX(storage::clone_file(ctx.paths.rootfs(), root.path), "create root disk");
    }
  }
  timings.mark("disk_ready");

  // 4. Network: the VM's namespace with its tap, and the way out and in: slirp4netns
  //    (rootless) or a veth to the host bridge with nftables rules (privileged).
  auto network = make_network(ctx, rec, vm->options, *vm->backend);
  if (!network) return tl::unexpected<Error>(std::move(network.error()).wrap("network"));
  vm->network = std::move(*network);
  rec.helper = sys::ProcessIdentity::of(vm->network->helper_pid());
  const auto& guest = vm->network->guest();
  rec.network_json = vm->network->describe().dump();
  timings.mark("network_started");
  save();  // from here on the record says what to clean up if this process is killed

  // 4b. nfs volumes: the VM's own NFS server on the bridge, exporting to the VM's address alone.
  std::string nfs_server;
  int nfs_port = 0;
  FCVM_TRY_CTX(start_nfs_server(*vm, rec, nfs_server, nfs_port), "nfs volumes");

  // 5. The VMM, inside the VM's namespaces. The guest finds its disks by serial; the serial a
  //    disk shows is the backend's business (Firecracker derives it from the file).
  vmm::VmSpec spec;
  spec.id = rec.id;
  spec.name = rec.name;
  spec.dir = rec.dir;
  spec.kernel = ctx.paths.kernel_for(traits->kernel);
  spec.initrd = ctx.paths.initrd();
  if (snap && traits->snapshot.copies_kernel) {
    spec.kernel = snap->kernel;
    spec.initrd = snap->initrd;
  }
  spec.vcpus = vm->options.vcpus;
  spec.mem_mib = vm->options.mem_mib;
  spec.disks.push_back(root);
  if (!vm->options.image_id.empty()) {
    // The stored image's disk, shared read-only by every VM of the image.
    if (!path_exists(vm->options.image_disk)) {
      return fail(ErrorCode::kNotFound,
                  fmt::format("the disk of image {} is missing: {} (pull the image again)",
                              vm->options.image_id, vm->options.image_disk));
    }
    spec.disks.push_back({vm->options.image_disk, vmm::DiskFormat::kRaw, true, k_image_serial});
  } else if (vm->options.image.source != storage::ImageSource::kRegistry) {
    spec.disks.push_back(
        {vm->options.image.archive_path, vmm::DiskFormat::kRaw, true, k_image_serial});
  }
  // Volumes (block mode): a directory becomes a fresh ext4 image of its contents, an image file
  //    is attached as it is.
  size_t first_volume_disk = spec.disks.size();
  for (size_t i = 0; i < vm->options.volumes.size(); ++i) {
    const auto& m = vm->options.volumes[i];
    if (m.mode == storage::VolumeMode::kSshfs) {
      spec.serial_ports.push_back(sshfs_port_name(i));
      continue;
    }
    if (m.mode == storage::VolumeMode::kNfs) continue;
    if (m.mode != storage::VolumeMode::kBlock) {
      return fail(ErrorCode::kUnavailable,
                  fmt::format("--map {}: mode {} is not available", m.to_string(),
                              storage::volume_mode_name(m.mode)));
    }
    vmm::DiskSpec disk;
    disk.format = vmm::DiskFormat::kRaw;
    disk.read_only = m.read_only;
    disk.serial = fmt::format("fcvm-vol{}", i);
    disk.path = m.host;
    if (m.host_is_dir) {
      disk.path = volume_image_path(rec, i);
      auto usage = storage::tree_usage(m.host);
      if (!usage) return tl::unexpected<Error>(usage.error().wrap("volume " + m.host));
      FCVM_TRY(storage::create_volume_image(
          ctx.runner, m.host, disk.path,
          storage::volume_image_size(*usage, vm->options.map_size_mib)));
    }
    spec.disks.push_back(disk);
  }
  if (!vm->options.volumes.empty()) timings.mark("volumes_ready");
  auto root_serial = vm->backend->guest_disk_serial(spec.disks[0]);
  if (!root_serial) return tl::unexpected<Error>(root_serial.error());
  spec.kernel_args = {fmt::format("fcvm.root={}", *root_serial),
                      fmt::format("fcvm.hostname={}",
                                  vm->options.hostname.empty() ? rec.name : vm->options.hostname)};
  spec.net = vmm::NetSpec{vm->network->tap(), guest.mac};
  spec.console_log = rec.dir + "/console.log";
  spec.vmm_log = rec.dir + "/vmm.log";
  spec.netns_holder = vm->network->holder_pid();
  spec.memory_file = memory_file_path(rec);
  vm->plan = make_plan(vm->options, rec.id, rec.name, guest);
  if (first_volume_disk > 1) {
    auto image_serial = vm->backend->guest_disk_serial(spec.disks[1]);
    if (!image_serial) return tl::unexpected<Error>(image_serial.error());
    (vm->options.image_id.empty() ? vm->plan.image.archive_serial : vm->plan.image.rootfs_serial) =
        *image_serial;
  }
  for (size_t i = 0, disk = first_volume_disk; i < vm->options.volumes.size(); ++i) {
    const auto& m = vm->options.volumes[i];
    if (m.mode == storage::VolumeMode::kSshfs) {
      vm->plan.volumes.push_back({m.guest, "sshfs", sshfs_port_name(i), m.read_only});
      continue;
    }
    if (m.mode == storage::VolumeMode::kNfs) {
      vm->plan.volumes.push_back(
          {m.guest, "nfs", "", m.read_only, fmt::format("{}:/vol{}", nfs_server, i),
           fmt::format("vers=4.2,addr={},port={},proto=tcp,sec=sys,hard,clientaddr={}", nfs_server,
                       nfs_port, guest.ip)});
      continue;
    }
    auto serial = vm->backend->guest_disk_serial(spec.disks[disk++]);
    if (!serial) return tl::unexpected<Error>(serial.error());
    vm->plan.volumes.push_back({m.guest, "block", *serial, m.read_only});
  }
  spec.mmds_json = agent_proto::to_json(vm->plan).dump();
  timings.mark("vmm_starting");
  if (snap) {
    FCVM_TRY_CTX(vm->backend->snapshot_load(spec, snap->memory, snap->state, /*resume=*/false),
                 fmt::format("restore snapshot {} in {}", restore_from->name, vm->backend->name()));
    timings.mark("vmm_started");
  } else {
    FCVM_TRY_CTX(vm->backend->start(spec), fmt::format("start {}", vm->backend->name()));
    timings.mark("vmm_started");
  }
  // What the network set up beside the VMM's start (slirp4netns, port forwards) is done before
  // the guest can use it: a restored guest resumes only now; a booting one needs seconds.
  FCVM_TRY_CTX(vm->network->finish(), "network");
  timings.mark("network_finished");
  if (snap) {
    FCVM_TRY_CTX(vm->backend->resume(), "resume the restored guest");
    timings.mark("restored");
  }
  rec.vmm = sys::ProcessIdentity::of(vm->backend->pid());
  rec.vmm_version = vm->backend->version();
  save();

  // 5b. Volumes served from the host (sshfs): each port gets its sandboxed SFTP server.
  for (size_t i = 0; i < vm->options.volumes.size(); ++i) {
    const auto& m = vm->options.volumes[i];
    if (m.mode != storage::VolumeMode::kSshfs) continue;
    auto port = vm->backend->connect_serial_port(sshfs_port_name(i), 10s);
    if (!port) return tl::unexpected<Error>(port.error().wrap("volume " + m.guest));
    auto server = storage::spawn_sftp_server(ctx.runner, m.host, m.read_only, port->get(),
                                             fmt::format("{}/sftp-{}.log", rec.dir, i));
    if (!server) return tl::unexpected<Error>(server.error().wrap("volume " + m.guest));
    vm->volume_servers.push_back(std::move(*server));
    // The server has its own copy of the descriptor; ours closes here.
  }

  // 6. The agent channel is the monitor's to connect (Monitor::connect_channel): with Firecracker
  // the guest's agent accepts only once it has booted.
  return vm;
}

}  // namespace fcvm::vm
