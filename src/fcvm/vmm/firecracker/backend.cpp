#include "fcvm/vmm/firecracker/backend.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/rollback.hpp"
#include "fcvm/vmm/firecracker/models.hpp"
#include "fcvm/vmm/firecracker/vsock.hpp"

namespace fcvm::vmm::firecracker {
namespace {

// Creates path if missing (never truncates). Firecracker opens its logger and metrics files but
// does not create them.
Result<> touch(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!fd) return fail_errno(fmt::format("create {}", path));
  return {};
}

bool is_elf(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return true;  // a missing kernel is for Firecracker to report
  char magic[4] = {};
  return ::read(fd.get(), magic, sizeof magic) == 4 && magic[0] == 0x7f && magic[1] == 'E' &&
         magic[2] == 'L' && magic[3] == 'F';
}

}  // namespace

FirecrackerBackend::FirecrackerBackend(FirecrackerOptions options)
    : m_options(std::move(options)) {}

FirecrackerBackend::~FirecrackerBackend() {
  if (m_vmm && m_vmm->process.pid() > 0) kill();
}

Result<> FirecrackerBackend::validate(const VmSpec& spec, bool booting) const {
  if (!valid_instance_id(spec.id)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("VM id \"{}\" is not a valid Firecracker id (letters, digits and '-', "
                            "at most 64)",
                            spec.id));
  }
  if (spec.dir.empty() || !path_exists(spec.dir)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("VM directory \"{}\" does not exist", spec.dir));
  }
  if (!spec.serial_ports.empty()) {
    return fail(ErrorCode::kUnavailable,
                "Firecracker has no virtio-serial ports (needed by --map mode=sshfs): use --vmm "
                "qemu");
  }
  constexpr size_t k_max_sun_path = sizeof(sockaddr_un{}.sun_path) - 1;
  for (const char* name : {k_api_sock_name, k_vsock_name}) {
    auto p = spec.dir + "/" + name;
    if (p.size() > k_max_sun_path) {
      return fail(ErrorCode::kInvalidInput, fmt::format("socket path too long ({} > {} bytes): {}",
                                                        p.size(), k_max_sun_path, p));
    }
  }
  if (booting && spec.kernel.empty()) return fail(ErrorCode::kInvalidInput, "no kernel given");
  if (booting && !is_elf(spec.kernel)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("kernel {} is not an uncompressed ELF vmlinux (Firecracker cannot "
                            "boot a bzImage)",
                            spec.kernel));
  }
  for (const auto& d : spec.disks) {
    if (d.format != DiskFormat::kRaw) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("disk {}: Firecracker supports raw disks only", d.path));
    }
  }
  if (spec.net && spec.net->tap.empty()) {
    return fail(ErrorCode::kInvalidInput, "network: no tap device given");
  }
  if (!spec.mmds_json.empty()) FCVM_TRY(mmds_document(spec.mmds_json));
  return {};
}

Result<std::string> FirecrackerBackend::vmm_path(const std::string& host_path, bool writable,
                                                 bool copy_ok) const {
  if (!m_vmm || !m_vmm->jail) return host_path;
  return m_vmm->jail->expose(host_path, writable, copy_ok);
}

Result<std::string> FirecrackerBackend::drive_path(const std::string& drive_id,
                                                   const DiskSpec& disk) const {
  if (!m_vmm || !m_vmm->jail) return disk.path;
  return m_vmm->jail->expose(disk.path, !disk.read_only, false, "drive-" + drive_id);
}

std::optional<std::pair<uid_t, gid_t>> FirecrackerBackend::vmm_user() const {
  if (!m_options.jailer) return std::nullopt;
  return std::pair{m_options.jailer->uid, m_options.jailer->gid};
}

// The jail's limits: the guest's vCPUs and memory, plus Firecracker's own overhead.
JailerOptions jail_for(const JailerOptions& base, const VmSpec& spec) {
  JailerOptions j = base;
  if (j.chroot_base_dir.empty()) j.chroot_base_dir = spec.dir + "/" + k_jail_dir_name;
  j.cgroup_version = 2;
  j.parent_cgroup = k_jail_parent_cgroup;
  j.new_pid_ns = true;
  constexpr int64_t k_period_us = 100000;
  constexpr int64_t k_overhead_mib = 256;
  j.cgroups.push_back(fmt::format("cpu.max={} {}", spec.vcpus * k_period_us, k_period_us));
  j.cgroups.push_back(
      fmt::format("memory.max={}", (static_cast<int64_t>(spec.mem_mib) + k_overhead_mib) << 20));
  return j;
}

Result<> FirecrackerBackend::link_out(const std::string& inside, const std::string& outside,
                                      Rollback& rollback) {
  if (!m_vmm->jail || outside.empty()) return {};
  ::unlink(outside.c_str());
  if (::symlink(inside.c_str(), outside.c_str()) != 0) {
    return fail_errno(fmt::format("symlink {} -> {}", outside, inside));
  }
  rollback.add("remove " + outside, [outside] { ::unlink(outside.c_str()); });
  return {};
}

Result<> FirecrackerBackend::launch(const VmSpec& spec, Rollback& rollback) {
  m_spec = spec;
  m_paused = false;
  auto bin = resolve_firecracker_bin(m_options.firecracker_bin);
  if (!bin) return tl::unexpected<Error>(bin.error());
  ProcessOptions process;
  process.firecracker_bin = *bin;
  process.id = spec.id;
  process.api_sock = spec.dir + "/" + k_api_sock_name;
  if (m_options.jailer) process.jailer = jail_for(*m_options.jailer, spec);
  process.log_path = spec.vmm_log;
  process.join_namespaces_of = spec.netns_holder;
  process.ready_timeout = m_options.ready_timeout;
  process.cwd = spec.dir;
  auto vmm = spawn_firecracker(process);
  if (!vmm) return tl::unexpected<Error>(vmm.error());
  m_vmm = std::move(*vmm);
  m_api = ApiClient::for_socket(m_vmm->api_sock, m_options.api_timeouts);
  m_paths = {};
  m_paths.api_sock = m_vmm->api_sock;
  rollback.add("stop firecracker", [this] {
    kill();
    if (m_vmm && m_vmm->jail) (void)remove_all(m_vmm->jail->instance_dir());
    m_vmm.reset();
    m_api.reset();
  });

  // Files Firecracker writes: in spec.dir, or in the jail's root (where the jailed process can
  // reach them) with symlinks from spec.dir.
  auto place = [&](const char* name, std::string& host, std::string& vmm_side) {
    if (m_vmm->jail) {
      host = m_vmm->jail->host_path(std::string("/") + name);
      vmm_side = std::string("/") + name;
    } else {
      host = vmm_side = spec.dir + "/" + name;
    }
  };
  place(k_vsock_name, m_paths.vsock_bound, m_paths.vsock_vmm);
  m_paths.vsock_host = spec.dir + "/" + k_vsock_name;
  // Unjailed, the vsock socket is named relative to Firecracker's working directory (the VM's
  // own): a snapshot records that name, so a clone's Firecracker binds the socket in the clone's
  // directory even where PUT /snapshot/load has no vsock_override (before v1.16). Jailed, the
  // working directory is the jail's root: the same relative name lands there.
  m_paths.vsock_vmm = k_vsock_name;
  FCVM_TRY(link_out(m_paths.vsock_bound, m_paths.vsock_host, rollback));
  place(k_log_name, m_paths.log_host, m_paths.log_vmm);
  place(k_metrics_name, m_paths.metrics_host, m_paths.metrics_vmm);
  for (const auto* file : {&m_paths.log_host, &m_paths.metrics_host}) {
    FCVM_TRY(touch(*file));
    rollback.add("remove " + *file, [path = *file] { ::unlink(path.c_str()); });
    if (m_vmm->jail && ::chown(file->c_str(), m_options.jailer->uid, m_options.jailer->gid) != 0) {
      return fail_errno(fmt::format("chown {}", *file));
    }
  }
  FCVM_TRY(link_out(m_paths.log_host, spec.dir + "/" + k_log_name, rollback));
  FCVM_TRY(link_out(m_paths.metrics_host, spec.dir + "/" + k_metrics_name, rollback));
  Logger logger{m_paths.log_vmm, m_options.log_level, true, std::nullopt, std::nullopt};
  FCVM_TRY(api().put(Logger::path(), logger.to_json()));
  FCVM_TRY(api().put(Metrics::path(), Metrics{m_paths.metrics_vmm}.to_json()));
  return {};
}

// The serial console to its own file. Not part of a snapshot: a restored VM sets it before the
// load, as it does the logger.
Result<> FirecrackerBackend::configure_console(const VmSpec& spec, Rollback& rollback) {
  if (spec.console_log.empty() || spec.console_log == spec.vmm_log) return {};
  if (m_vmm->jail) {
    m_paths.console_host = m_vmm->jail->host_path("/console.log");
    m_paths.console_vmm = "/console.log";
  } else {
    m_paths.console_host = m_paths.console_vmm = spec.console_log;
  }
  FCVM_TRY(touch(m_paths.console_host));
  if (m_vmm->jail &&
      ::chown(m_paths.console_host.c_str(), m_options.jailer->uid, m_options.jailer->gid) != 0) {
    return fail_errno(fmt::format("chown {}", m_paths.console_host));
  }
  FCVM_TRY(link_out(m_paths.console_host, spec.console_log, rollback));
  return api().put(SerialDevice::path(), SerialDevice{m_paths.console_vmm}.to_json());
}

Result<> FirecrackerBackend::configure(const VmSpec& spec, Rollback& rollback) {
  MachineConfiguration machine;
  machine.vcpu_count = spec.vcpus;
  machine.mem_size_mib = spec.mem_mib;
  FCVM_TRY(api().put(MachineConfiguration::path(), machine.to_json()));

  BootSource boot;
  auto kernel = vmm_path(spec.kernel, false, true);
  if (!kernel) return fail(kernel.error().wrap("kernel"));
  boot.kernel_image_path = *kernel;
  if (!spec.initrd.empty()) {
    auto initrd = vmm_path(spec.initrd, false, true);
    if (!initrd) return fail(initrd.error().wrap("initrd"));
    boot.initrd_path = *initrd;
  }
  boot.boot_args = boot_args(spec, m_options.agent_port);
  FCVM_TRY(api().put(BootSource::path(), boot.to_json()));

  FCVM_TRY(configure_console(spec, rollback));

  for (const auto& planned : plan_drives(spec.disks)) {
    Drive drive;
    drive.drive_id = planned.drive_id;
    auto path = drive_path(planned.drive_id, planned.disk);
    if (!path) return fail(path.error().wrap("disk"));
    drive.path_on_host = *path;
    // The initramfs finds the root disk itself; Firecracker must not add root= to the cmdline.
    drive.is_root_device = false;
    drive.is_read_only = planned.disk.read_only;
    FCVM_TRY(api().put(drive.path(), drive.to_json()));
  }

  if (spec.net) {
    NetworkInterface net{k_iface_id, spec.net->tap, std::nullopt, std::nullopt};
    if (!spec.net->mac.empty()) net.guest_mac = spec.net->mac;
    FCVM_TRY(api().put(net.path(), net.to_json()));
  }

  ::unlink(m_paths.vsock_bound.c_str());  // Firecracker binds it and refuses an existing file
  FCVM_TRY(api().put(Vsock::path(), Vsock{m_options.guest_cid, m_paths.vsock_vmm}.to_json()));
  rollback.add("remove " + m_paths.vsock_bound,
               [path = m_paths.vsock_bound] { ::unlink(path.c_str()); });

  if (spec.net && !spec.mmds_json.empty()) {
    MmdsConfig mmds{{k_iface_id}, "V2", std::nullopt, std::nullopt};
    FCVM_TRY(api().put(MmdsConfig::path(), mmds.to_json()));
    auto document = mmds_document(spec.mmds_json);
    if (!document) return tl::unexpected<Error>(document.error());
    FCVM_TRY(api().put(mmds_path(), *document));
  } else if (!spec.mmds_json.empty()) {
    FCVM_LOG(kDebug, "firecracker", "no network interface: MMDS not configured");
  }
  return {};
}

Result<> FirecrackerBackend::start(const VmSpec& spec) {
  if (m_vmm) return fail(ErrorCode::kInternal, "firecracker backend already started");
  FCVM_TRY(validate(spec, /*booting=*/true));
  // Under nested virtualisation about one InstanceStart in seven is never answered (the guest
  // makes no progress either): that Firecracker goes, and a new one boots the guest, once.
  for (int attempt = 1;; ++attempt) {
    Rollback rollback;
    FCVM_TRY(launch(spec, rollback));
    FCVM_TRY(configure(spec, rollback));
    auto started = api().put(InstanceActionInfo::path(),
                             InstanceActionInfo{ActionType::kInstanceStart}.to_json());
    if (started) {
      rollback.commit();
      return {};
    }
    if (attempt > 1 || started.error().code() != ErrorCode::kTimeout) {
      return tl::unexpected<Error>(std::move(started.error()));
    }
    FCVM_LOG(kWarn, "firecracker", "InstanceStart unanswered ({}): booting in a new Firecracker",
             started.error().to_string());
  }
}

Result<UniqueFd> FirecrackerBackend::connect_agent(std::chrono::milliseconds timeout) {
  if (!m_vmm) return fail(ErrorCode::kInternal, "connect agent: firecracker is not started");
  VsockConnectOptions options;
  // Stop retrying as soon as the VMM is gone: nobody will ever answer.
  options.still_alive = [this]() -> Result<> {
    if (m_vmm->process.pid() <= 0 || running()) return {};
    auto tail = log_tail(m_spec.vmm_log);
    return fail(ErrorCode::kSystem,
                fmt::format("firecracker exited{}{}", tail.empty() ? "" : ": ", tail));
  };
  return with_context(vsock_connect(m_paths.vsock_host, m_options.agent_port, timeout, options),
                      "connect agent");
}

Result<> FirecrackerBackend::set_state(bool paused) {
  if (!m_vmm) return fail(ErrorCode::kInternal, "firecracker is not started");
  FCVM_TRY(api().patch(Vm::path(), Vm{paused ? VmState::kPaused : VmState::kResumed}.to_json()));
  m_paused = paused;
  return {};
}

Result<> FirecrackerBackend::pause() { return set_state(true); }

Result<> FirecrackerBackend::resume() { return set_state(false); }

bool FirecrackerBackend::running() {
  if (!m_vmm || m_vmm->process.pid() <= 0) return false;
  auto st = m_vmm->process.try_wait();
  return st && !*st;
}

void FirecrackerBackend::remove_sockets() {
  for (const auto& p : {m_paths.api_sock, m_paths.vsock_host, m_paths.vsock_bound}) {
    if (!p.empty()) ::unlink(p.c_str());
  }
  if (m_vmm && m_vmm->jail) {
    if (auto r = remove_jail(m_spec.dir, m_spec.id); !r) {
      FCVM_LOG(kWarn, "firecracker", "{}", r.error().to_string());
    }
  }
}

Result<> FirecrackerBackend::shutdown() {
  if (!running()) {
    if (m_vmm && m_vmm->process.pid() > 0) remove_sockets();
    return {};
  }
  // A paused guest cannot react to Ctrl-Alt-Del; do not wait for it.
  if (!m_paused) {
    auto sent = api().put(InstanceActionInfo::path(),
                          InstanceActionInfo{ActionType::kSendCtrlAltDel}.to_json());
    if (sent) {
      auto st = m_vmm->process.wait_for(m_options.shutdown_grace);
      if (st && *st) {
        remove_sockets();
        return {};
      }
    } else {
      FCVM_LOG(kDebug, "firecracker", "SendCtrlAltDel: {}", sent.error().to_string());
    }
  }
  kill();
  return {};
}

Result<std::optional<ExitStatus>> FirecrackerBackend::wait_exit(std::chrono::milliseconds timeout) {
  if (!m_vmm || m_vmm->process.pid() <= 0) {
    return fail(ErrorCode::kInternal, "wait: firecracker is not started");
  }
  auto st = m_vmm->process.wait_for(timeout);
  if (st && *st) remove_sockets();
  return st;
}

void FirecrackerBackend::kill() {
  if (!m_vmm || m_vmm->process.pid() <= 0) return;
  (void)m_vmm->process.signal(SIGKILL);
  (void)m_vmm->process.wait();
  remove_sockets();
}

pid_t FirecrackerBackend::pid() const { return m_vmm ? m_vmm->process.pid() : 0; }

pid_t FirecrackerBackend::detach() { return m_vmm ? m_vmm->process.detach() : 0; }

Result<std::string> FirecrackerBackend::guest_disk_serial(const DiskSpec& disk) const {
  return firecracker_disk_serial(disk.path);
}

}  // namespace fcvm::vmm::firecracker
