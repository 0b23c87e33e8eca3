#pragma once
// FirecrackerBackend: one Firecracker process for one VM, configured through its API socket.
//
// start() runs these steps, each registering its undo, so a failure at any step leaves no process
// and none of the files it created (sockets, Firecracker's log and metrics files):
//   spawn (inside spec.netns_holder's namespaces; stdout/stderr -> spec.vmm_log)
//   PUT /logger, /metrics          files firecracker.log, firecracker.metrics in spec.dir
//   PUT /machine-config            vcpu_count, mem_size_mib
//   PUT /boot-source               spec.kernel (uncompressed ELF vmlinux), spec.initrd, boot_args()
//   PUT /serial                    the guest console to spec.console_log (when set)
//   PUT /drives/{id}               raw disks only, root first (the guest sees it as /dev/vda)
//   PUT /network-interfaces/eth0   spec.net->tap, spec.net->mac
//   PUT /vsock                     guest_cid 3, uds_path <dir>/vsock.sock
//   PUT /mmds/config, PUT /mmds    when spec.net and spec.mmds_json are set: mmds_document()
//   PUT /actions InstanceStart
// connect_agent() reaches fc-agent on vsock port 1024 through <dir>/vsock.sock.
// Files in spec.dir: firecracker.sock and vsock.sock (removed once the VMM has ended),
// firecracker.log and firecracker.metrics (kept for `fcvm logs`). Snapshots: backend_snapshot.cpp.
// With FirecrackerOptions::jailer (needs real root) Firecracker runs chrooted in
// spec.dir/jail/<firecracker>/<id>/root, as the jail's uid, in its own PID namespace and cgroup
// (cpu.max and memory.max from the spec); its inputs are hard-linked into the jail root, its
// outputs and sockets symlinked from spec.dir (process.hpp). The jail and the cgroup go when
// Firecracker has ended.
//
// Disk serials: Firecracker has no way to set a virtio-blk serial; the guest reads
// "<st_dev><st_rdev><st_ino>" of the backing file (decimal, at most 20 bytes) as the serial.
// guest_disk_serial() computes it, so the caller can pass e.g. fcvm.root=<that> to the guest.
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/vmm/backend.hpp"
#include "fcvm/vmm/firecracker/api_client.hpp"
#include "fcvm/vmm/firecracker/process.hpp"

namespace fcvm {
class Rollback;
}

namespace fcvm::vmm::firecracker {

// Fixed part of the kernel command line (Firecracker's recommended arguments).
inline constexpr const char* k_base_boot_args = "console=ttyS0 reboot=k panic=1 pci=off";
// Files in VmSpec::dir.
inline constexpr const char* k_api_sock_name = "firecracker.sock";
inline constexpr const char* k_vsock_name = "vsock.sock";
inline constexpr const char* k_log_name = "firecracker.log";
inline constexpr const char* k_metrics_name = "firecracker.metrics";
inline constexpr const char* k_iface_id = "eth0";

struct FirecrackerOptions {
  std::string firecracker_bin{};  // empty: "firecracker" from PATH
  std::optional<JailerOptions> jailer{};
  uint32_t guest_cid = 3;
  uint32_t agent_port = 1024;
  std::string log_level = "Info";
  std::chrono::milliseconds ready_timeout{5000};
  ApiTimeouts api_timeouts{};
  std::chrono::milliseconds snapshot_timeout{120000};
  std::chrono::milliseconds shutdown_grace{3000};
};

// The kernel command line: k_base_boot_args, "fcvm.agent=vsock:<port>" unless the caller passed an
// fcvm.agent= argument, "fcvm.mmds=1" when the plan goes to MMDS (a network and a plan), then
// spec.kernel_args.
std::string boot_args(const VmSpec& spec, uint32_t agent_port);
// The MMDS data store for a plan (JSON text of agent_proto::to_json(Plan)):
//   {"fcvm": {"plan": <plan>}}   (templates/mmds-plan-example.json)
Result<nlohmann::json> mmds_document(const std::string& plan_json);
// The virtio-blk serial Firecracker gives a drive backed by path.
Result<std::string> firecracker_disk_serial(const std::string& path);
// The disks in the order they are attached (root first: the guest sees it as /dev/vda), each
// with its unique drive_id (from its serial, made a valid Firecracker id; "disk<N>" without one).
struct PlannedDrive {
  std::string drive_id;
  DiskSpec disk;
};
std::vector<PlannedDrive> plan_drives(const std::vector<DiskSpec>& disks);

class FirecrackerBackend : public Backend {
 public:
  explicit FirecrackerBackend(FirecrackerOptions options = {});
  ~FirecrackerBackend() override;
  FirecrackerBackend(const FirecrackerBackend&) = delete;
  FirecrackerBackend& operator=(const FirecrackerBackend&) = delete;

  std::string_view name() const override { return "firecracker"; }
  DiskFormat root_disk_format() const override { return DiskFormat::kRaw; }
  bool wants_uncompressed_kernel() const override { return true; }

  Result<> start(const VmSpec& spec) override;
  Result<UniqueFd> connect_agent(std::chrono::milliseconds timeout) override;
  Result<> pause() override;
  Result<> resume() override;
  Result<> shutdown() override;
  Result<std::optional<ExitStatus>> wait_exit(std::chrono::milliseconds timeout) override;
  void kill() override;
  pid_t pid() const override;
  pid_t detach() override;
  std::optional<std::pair<uid_t, gid_t>> vmm_user() const override;
  std::string version() const override { return m_vmm ? m_vmm->version.to_string() : ""; }

  Result<> snapshot_create(const std::string& mem_path, const std::string& state_path,
                           const std::vector<std::string>& disk_paths = {}) override;
  Result<> snapshot_load(const VmSpec& spec, const std::string& mem_path,
                         const std::string& state_path, bool resume_guest) override;
  Result<std::string> guest_disk_serial(const DiskSpec& disk) const override;

  // Host paths of this VM's API and vsock sockets (valid after start()/snapshot_load()).
  const std::string& api_socket() const { return m_paths.api_sock; }
  const std::string& vsock_socket() const { return m_paths.vsock_host; }

 private:
  // Where a file is for us (host) and for Firecracker (vmm); they differ inside the jailer.
  struct Paths {
    std::string api_sock;
    // vsock_host is where we connect; vsock_bound where Firecracker binds (in a jail, the
    // former is a symlink to the latter).
    std::string vsock_host, vsock_bound, vsock_vmm;
    std::string log_host, log_vmm;
    std::string metrics_host, metrics_vmm;
    std::string console_host, console_vmm;
  };

  // booting: the kernel matters (start()); a snapshot load needs none.
  Result<> validate(const VmSpec& spec, bool booting) const;
  // Spawn + logger + metrics: common to start() and snapshot_load().
  Result<> launch(const VmSpec& spec, Rollback& rollback);
  Result<> configure(const VmSpec& spec, Rollback& rollback);
  Result<> configure_console(const VmSpec& spec, Rollback& rollback);
  // How Firecracker reaches a host file: itself, or its link in the jail (expose()).
  Result<std::string> vmm_path(const std::string& host_path, bool writable = true,
                               bool copy_ok = false) const;
  // A drive's file. Jailed, named after the drive ("/drive-<id>") whichever file backs it: a
  // snapshot records that name, so a clone's jail offers its own disks under it to the load.
  Result<std::string> drive_path(const std::string& drive_id, const DiskSpec& disk) const;
  // Inside the jail, Firecracker's output files live in the jail root; `outside` (in spec.dir)
  // becomes a symlink to `inside` so logs are found where they are without a jail.
  Result<> link_out(const std::string& inside, const std::string& outside, Rollback& rollback);
  ApiClient& api() { return *m_api; }
  bool running();
  // Once Firecracker has ended: its sockets, and its jail and cgroup.
  void remove_sockets();
  Result<> set_state(bool paused);

  FirecrackerOptions m_options;
  VmSpec m_spec;
  std::optional<SpawnedVmm> m_vmm;
  std::optional<ApiClient> m_api;
  Paths m_paths;
  bool m_paused = false;
};

}  // namespace fcvm::vmm::firecracker
