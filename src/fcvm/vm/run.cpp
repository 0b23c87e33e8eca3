#include "fcvm/vm/run.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "fcvm/net/rootless.hpp"
#include "fcvm/storage/disk.hpp"
#include "fcvm/sys/host.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/rollback.hpp"
#include "fcvm/vm/backend_select.hpp"
#include "fcvm/vm/plan.hpp"
#include "fcvm/vm/session.hpp"
#include "fcvm/vm/timings.hpp"

namespace fcvm::vm {
namespace {

using namespace std::chrono_literals;

// Blocks the stop signals for this thread and delivers them through a signalfd; restores the
// old mask when destroyed. Children start with an empty mask (ChildProcess).
class StopSignals {
 public:
  StopSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &set, &m_old);
    m_fd.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  }
  ~StopSignals() { ::pthread_sigmask(SIG_SETMASK, &m_old, nullptr); }
  int fd() const { return m_fd.get(); }

 private:
  sigset_t m_old{};
  UniqueFd m_fd;
};

Result<> check_artifacts(const Paths& paths, bool uncompressed_kernel) {
  std::string kernel = uncompressed_kernel ? paths.vmlinux() : paths.kernel();
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

std::string generate_name(const std::string& id) { return "vm-" + id.substr(0, 8); }

}  // namespace

Result<int> run_foreground(Context& ctx, const RunOptions& options) {
  Timings timings(options.timings_file);
  StopSignals signals;
  Rollback rollback;

  // 1. Backend and artifacts: fail before creating anything when a prerequisite is missing.
  std::string why;
  auto backend = select_backend(ctx, options.vmm, why);
  if (!backend) return tl::unexpected<Error>(backend.error());
  FCVM_LOG(kInfo, "run", "vmm: {}", why);
  FCVM_TRY(check_artifacts(ctx.paths, (*backend)->wants_uncompressed_kernel()));

  // 2. Identity and the VM's directory (sockets, disk, logs).
  auto id = sys::random_hex(32);
  auto name = options.name.empty() ? generate_name(id) : options.name;
  auto dir = ctx.paths.vms_dir() + "/" + id;
  FCVM_TRY(make_dirs(ctx.paths.vms_dir(), 0700));
  if (::mkdir(dir.c_str(), 0700) != 0) return fail_errno(fmt::format("create {}", dir));
  rollback.add("vm directory", [dir] { (void)remove_all(dir); });

  // 3. Copy-on-write root disk over the read-only base image.
  vmm::DiskSpec root;
  root.serial = k_root_serial;
  root.root = true;
  root.format = (*backend)->root_disk_format();
  if (root.format == vmm::DiskFormat::kQcow2) {
    root.path = dir + "/root.qcow2";
    FCVM_TRY(storage::create_qcow2_overlay(ctx.runner, ctx.paths.rootfs(), root.path));
  } else {
    root.path = dir + "/root.ext4";
    FCVM_TRY_CTX(storage::clone_file(ctx.paths.rootfs(), root.path), "create root disk");
  }
  timings.mark("disk_ready");

  // 4. Network: namespaces, tap and bridge, slirp4netns with the published ports.
  net::RootlessConfig net_config;
  net_config.dir = dir;
  net_config.ports = options.ports;
  net_config.allow_host_loopback = needs_host_loopback(options);
  auto network = net::RootlessNetwork::create(net_config, ctx.runner);
  if (!network) return tl::unexpected<Error>(std::move(network.error()).wrap("network"));
  timings.mark("network_ready_host");

  // 5. The VMM, inside the VM's namespaces. The guest finds its disks by serial, and the serial
  //    a disk shows is the backend's business (Firecracker derives it from the file).
  vmm::VmSpec spec;
  spec.id = id;
  spec.name = name;
  spec.dir = dir;
  spec.kernel = (*backend)->wants_uncompressed_kernel() ? ctx.paths.vmlinux() : ctx.paths.kernel();
  spec.initrd = ctx.paths.initrd();
  spec.vcpus = options.vcpus;
  spec.mem_mib = options.mem_mib;
  spec.disks.push_back(root);
  if (options.image.source != storage::ImageSource::kRegistry) {
    spec.disks.push_back({options.image.archive_path, vmm::DiskFormat::kRaw, true, k_image_serial});
  }
  auto root_serial = (*backend)->guest_disk_serial(spec.disks[0]);
  if (!root_serial) return tl::unexpected<Error>(root_serial.error());
  spec.kernel_args = {fmt::format("fcvm.root={}", *root_serial),
                      fmt::format("fcvm.hostname={}", name)};
  spec.net = vmm::NetSpec{(*network)->tap(), (*network)->guest().mac};
  spec.console_log = dir + "/console.log";
  spec.vmm_log = dir + "/vmm.log";
  spec.netns_holder = (*network)->holder_pid();
  auto plan = make_plan(options, id, name, (*network)->guest());
  if (spec.disks.size() > 1) {
    auto image_serial = (*backend)->guest_disk_serial(spec.disks[1]);
    if (!image_serial) return tl::unexpected<Error>(image_serial.error());
    plan.image.archive_serial = *image_serial;
  }
  spec.mmds_json = agent_proto::to_json(plan).dump();
  timings.mark("vmm_starting");
  FCVM_TRY_CTX((*backend)->start(spec), fmt::format("start {}", (*backend)->name()));
  timings.mark("vmm_started");

  // 6. The agent: hand it the plan, stream output until the container exits.
  auto channel = (*backend)->connect_agent(10s);
  if (!channel) {
    (*backend)->kill();
    return tl::unexpected<Error>(std::move(channel.error()).wrap("connect to the guest agent"));
  }
  UniqueFd log_fd(::open((dir + "/container.log").c_str(),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  SessionIo io;
  io.log_fd = log_fd.get();
  io.signal_fd = signals.fd();
  io.console_log = spec.console_log;
  AgentSession session(**backend, plan, io, timings);
  auto result = session.run(std::move(*channel), 180s);
  (*backend)->kill();
  timings.mark("vm_ended");
  if (!result) return tl::unexpected<Error>(result.error());
  if (result->exit_code) return *result->exit_code;
  // Interrupted before the container reported an exit: the shell convention for SIGINT.
  return 130;
}

}  // namespace fcvm::vm
